/*
 * sdnotify.h - the systemd notification protocol, natively (no
 * libsystemd): datagrams of "KEY=VALUE\n" lines to the unix socket named
 * by $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace).
 *
 * Without $NOTIFY_SOCKET every call is a no-op. Master only: systemd
 * accepts messages from the main pid (NotifyAccess=main). The variables
 * are left in the environment so a re-executed master (graceful reload)
 * finds them again.
 */
#ifndef MULEFARM_SDNOTIFY_H
#define MULEFARM_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Reads $NOTIFY_SOCKET and $WATCHDOG_USEC (honoured only when
 * $WATCHDOG_PID is unset or this pid). Returns true when notifications
 * go somewhere. Safe to call again (it re-reads). */
bool sdnotify_init(void);

/* Sends <msg> (one or more "KEY=VALUE" lines) as one datagram. Returns 0,
 * or -1 with errno (ENOTCONN without $NOTIFY_SOCKET). */
int sdnotify_send(const char *msg);

/* READY=1 with MAINPID and, if not NULL, STATUS=<status>. */
void sdnotify_ready(const char *status);

/* STOPPING=1. */
void sdnotify_stopping(void);

/* Called from the master's loop with the wait it was about to make (ms,
 * -1: forever): sends WATCHDOG=1 when half of WATCHDOG_USEC has passed
 * since the last one, and STATUS=<status> when it changed (NULL or "":
 * nothing). Returns the wait shortened to the next watchdog ping, and to
 * 5 s while there is a status to follow. */
int sdnotify_tick(int wait_ms, const char *status);

#endif
