/*
 * master.h - the master: binds, loads the app, forks, respawns, reloads
 * and stops.
 */
#ifndef MULEFARM_MASTER_H
#define MULEFARM_MASTER_H

#include "mulefarm/server.h"

/* What a signal, a FIFO command or a hook asks the master to do. The
 * names are uWSGI's. */
enum master_action {
	MA_NONE,
	MA_GRACEFUL_STOP,   /* gracefully_kill_them_all: drain, then exit 0 */
	MA_STOP_NOW,        /* kill_them_all: children stop at once, exit 0 */
	MA_GRACEFUL_RELOAD, /* grace_them_all: re-exec, swap without dropping */
	MA_BRUTAL_RELOAD,   /* reap_them_all: stop children at once, re-exec */
	MA_RELOAD_WORKERS,  /* re-fork the workers from the master (no re-import) */
	MA_LOG_STATS,
	MA_TRANSPARENT_RESTART, /* start a new instance that takes over (restart.h) */
};

/* The action named <name> (uWSGI's function names), or MA_NONE. */
enum master_action master_action_named(const char *name);

/* Makes signal <sig> do <action> in the master (hook-master-start
 * unix_signal). Returns 0, or -1 for a signal that cannot be caught. */
int master_remap_signal(int sig, enum master_action action);

/* Runs the server; returns the process exit status: 0 after a clean
 * shutdown, non-zero when start-up failed (the reason is logged). */
int master_run(struct server *srv);

#endif
