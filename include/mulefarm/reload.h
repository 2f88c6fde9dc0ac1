/*
 * reload.h - a graceful reload re-executes the master.
 *
 * The master execs its own binary (the path it started from) with its
 * original argv from its original directory. What must survive crosses
 * the exec in one environment variable, MULEFARM_HANDOFF:
 *   - the listening sockets, keyed by the address as configured, so the
 *     new master adopts them instead of binding (no refused connection);
 *   - the farm queues' memfd, so no queued message is lost;
 *   - the stats socket (the old children still hold it: binding again
 *     would fail);
 *   - the pids, roles and ids of the children still running. They stay
 *     children of the same pid across exec; the new master stops them
 *     once its own workers accept (graceful), or at once (brutal).
 */
#ifndef MULEFARM_RELOAD_H
#define MULEFARM_RELOAD_H

#include <stdbool.h>
#include <sys/types.h>

#include "mulefarm/server.h"

struct handoff_child {
	pid_t pid;
	int role; /* enum proc_role */
	int id;
};

struct handoff {
	char *text;   /* the variable's value, owned */
	int farmq_fd; /* -1 when none */
	int stats_fd; /* the --stats listening socket, -1 when none */
	struct handoff_child *children;
	size_t nchildren;
	bool brutal; /* stop the old children at once */
	bool present;
};

/* Saves what a re-exec needs (the binary's path, a copy of argv, the
 * working directory). Call first thing in main(), before anything changes
 * the directory or overwrites argv (process titles). Returns 0 or -1. */
int reload_prepare(int argc, char **argv);

/* The command a reload runs instead of this binary with its own argv: the
 * wheel's extension module runs inside an interpreter, so a reload runs
 * that interpreter (<exe>) with the stub's command line (<argv>). Call
 * before reload_prepare(), which then keeps it. Returns 0 or -1. */
int reload_set_command(const char *exe, int argc, char **argv);

/* Reads and removes MULEFARM_HANDOFF from the environment. */
int handoff_read(struct handoff *h);

/* The inherited fds of the listener configured as <name>: returns their
 * count (0 if none) and points *fds at them; each is taken only once. */
int handoff_listener(struct handoff *h, const char *name, int *fds, int maxfds);

/* Closes inherited listener fds no listener took. */
void handoff_close_unused(struct handoff *h);

/* Re-executes the master. <children>: the live children to hand over.
 * Only returns on failure (-1, logged). */
int reload_exec(const struct server *srv, int farmq_fd, int stats_fd,
                const struct handoff_child *children, size_t nchildren, bool brutal);

/* Starts this binary again as a child (the path, argv and directory saved
 * by reload_prepare()), for a transparent restart: fd map[i][0] becomes
 * map[i][1] in the child (at most 8), every other fd
 * above the highest target is closed, signals are default and unblocked,
 * and the environment is this process's plus <env> ("NAME=value"). No
 * fork: posix_spawn(), so no Python runs in the child. Returns its pid, or
 * -1 after logging. */
pid_t reload_spawn(const int (*map)[2], size_t n, const char *env);

#endif
