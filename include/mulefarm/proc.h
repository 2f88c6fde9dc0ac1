/*
 * proc.h - the process table and the one function that forks.
 *
 * Only the master forks. A child keeps its role and id across respawns.
 */
#ifndef MULEFARM_PROC_H
#define MULEFARM_PROC_H

#include <stdint.h>
#include <sys/types.h>

#include "mulefarm/server.h"

enum proc_role { ROLE_WORKER, ROLE_MULE };

struct proc {
	enum proc_role role;
	int id;             /* 1..N within the role */
	pid_t pid;          /* 0 when not running */
	int64_t started_ms; /* monotonic */
	int64_t respawn_ms; /* when a dead child may be spawned again */
	int64_t kill_at_ms; /* SIGKILL it then, if still alive (0: not asked to stop) */
	int fast_deaths;    /* consecutive deaths within a second of spawning */
	uint64_t spawns;
	uint64_t requests_at_spawn; /* the worker's scoreboard count when forked */
};

struct proc_table {
	struct proc *p;
	size_t n;
};

/* Forks <p>'s process. In the child: fork hooks, identity, death signal,
 * then the role's main, which never returns. In the master: returns 0, or
 * -1 after logging. Master only, GIL held. */
int proc_spawn(const struct server *srv, struct proc *p);

/* Registers a master-only fd (the stats socket): every child closes it
 * right after fork, so that only the master holds it. */
void proc_close_in_children(int fd);

/* The entry of <t> whose pid is <pid>, or NULL. */
struct proc *proc_find(struct proc_table *t, pid_t pid);

const char *proc_role_name(enum proc_role role);

#endif
