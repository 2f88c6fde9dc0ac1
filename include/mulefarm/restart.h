/*
 * restart.h - transparent restart: a running master starts a new instance
 * of itself that takes over through zerg mode, then stops gracefully.
 *
 * Asked by `mulefarm --transparent-restart PIDFILE` (which sends SIGUSR2
 * to the master and prints the outcome), SIGUSR2, or master FIFO 'T':
 *   1. The master starts its own binary again, with its original argv and
 *      directory and its environment, as a child (so under systemd it
 *      stays in the service's cgroup), with two fds:
 *        fd 3  one end of a socketpair: the master first writes both zerg
 *              messages there (its listening sockets, farm queues, stats
 *              socket, its pidfd); the new instance later writes "R\n"
 *              there once every one of its workers accepts;
 *        fd 4  the master's stderr. The new instance's stderr is a pipe to
 *              the master until its app has loaded: the master passes the
 *              text on to its own stderr and keeps the tail, so that the
 *              command can show why a start failed; then the new master
 *              puts fd 4 back as its stderr, before forking.
 *      MULEFARM_RESTART=3:4 tells the new instance. It attaches as a zerg
 *      client would (zerg.h), so the old workers serve while it imports.
 *   2. Its pidfile, master FIFO and READY=1 (with MAINPID: systemd needs
 *      NotifyAccess=all) wait until it takes over: when its workers accept
 *      it writes the pidfile, opens the FIFO and says "R".
 *   3. On "R" the old master closes its FIFO and stops gracefully: its
 *      workers finish their requests, its mules their current message; it
 *      exits once its children are gone. The new instance's mules start
 *      then (zerg.h), so no mule id runs twice, and the farm queues are
 *      the same: nothing queued is lost.
 *   4. If the new instance exits first, or does not accept within
 *      --transparent-restart-timeout seconds (then it gets SIGTERM), the old
 *      one keeps serving and the command exits 1 with the new instance's
 *      start-up output.
 * Only one restart at a time; none while stopping or reloading.
 */
#ifndef MULEFARM_RESTART_H
#define MULEFARM_RESTART_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mulefarm/zerg.h"

/* --- the running master ----------------------------------------------- */

/* Starts the new instance, sharing <share>. <requester>: the pid of the
 * `--transparent-restart` command that asked (0: none), told how it went.
 * Returns 0, or -1 after logging (and telling the requester). */
int restart_begin(const struct zerg_share *share, pid_t requester, int timeout_s);

/* Logs that a restart cannot happen now, and tells <requester> (if it is
 * the command listening, see restart.c). */
void restart_refuse(pid_t requester, const char *why);

/* Whether a restart is under way (a new instance not yet accepting). */
bool restart_busy(void);

/* This master is stopping for another reason: a new instance still
 * starting is stopped (SIGTERM), and the requester told. */
void restart_abort(void);

/* Whether this master handed over to a new instance. */
bool restart_handed_over(void);

/* For zerg.c's share of the master loop (see zerg_poll_prepare()). */
size_t restart_poll_prepare(struct pollfd *pfd, int *timeout_ms);
enum zerg_event restart_poll_done(const struct pollfd *pfd, size_t n);
bool restart_reaped(pid_t pid, int status);

/* --- the new instance ------------------------------------------------- */

/* The channel fd if this process was started by a transparent restart
 * (reads and removes MULEFARM_RESTART), else -1. Call once, early. */
int restart_channel(void);

/* Whether this instance was started by a restart and has not taken over. */
bool restart_pending(void);

/* The app has loaded: stderr goes back to the log it came from. Before
 * the first fork. */
void restart_loaded(void);

/* Every worker accepts: tells the old master, which stops. */
void restart_took_over(void);

/* --- the command ------------------------------------------------------ */

/* `mulefarm --transparent-restart PIDFILE`: asks the master in <pidfile>
 * and waits for the outcome. Returns the exit status (0: the new instance
 * took over; 1: it did not, with its output on stderr). */
int restart_command(const char *pidfile);

#endif
