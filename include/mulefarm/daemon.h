/*
 * daemon.h - process controls around the master: pidfiles, detaching,
 * log files, and signalling a running master through its pidfile
 * (--stop, --graceful-stop, --reload).
 */
#ifndef MULEFARM_DAEMON_H
#define MULEFARM_DAEMON_H

#include <sys/types.h>

/* The pid in <pidfile>, or -1 after printing why (no file, no pid). */
pid_t daemon_read_pidfile(const char *pidfile);

/* Removes <path> if it holds this process's pid: a pidfile another master
 * wrote since (a transparent restart, the zerg dance) stays. */
void daemon_remove_pidfile(const char *path);

/* Sends <sig> to the pid in <pidfile>. Returns the exit status for main:
 * 0, or 1 after printing why (no file, no pid, no such process). */
int daemon_signal_pidfile(const char *pidfile, int sig);

/* Appends stdout and stderr to <path> (created 0640). Returns 0 or -1
 * after logging. */
int daemon_logto(const char *path);

/* Detaches: forks (the parent exits 0), starts a session, points stdin at
 * /dev/null and the logs at <logfile>. Before Python starts, or with the
 * fork hooks run by the caller. Returns 0 in the detached child, -1 on
 * failure. */
int daemon_detach(const char *logfile);

/* Writes getpid() to <path>. Returns 0 or -1 after logging. */
int daemon_write_pidfile(const char *path);

#endif
