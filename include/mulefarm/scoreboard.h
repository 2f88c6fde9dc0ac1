/*
 * scoreboard.h - what every child publishes for the master to see: the
 * stats server, harakiri and recycling read it.
 *
 * One anonymous shared mapping, made by the master before the first fork.
 * Each worker and mule writes only its own entry (plain stores of aligned
 * words; readers tolerate a torn average). The master writes pid, respawn
 * count and last spawn when it forks a child.
 */
#ifndef MULEFARM_SCOREBOARD_H
#define MULEFARM_SCOREBOARD_H

#include <stdint.h>
#include <sys/types.h>

#define SB_METHOD_MAX 16
#define SB_URI_MAX    240
#define SB_FARMS_MAX  256 /* comma-separated farm names of a mule */

/* One request thread of a worker. started_ms is CLOCK_MONOTONIC in ms,
 * 0 when the thread is idle. */
struct sb_slot {
	volatile int64_t started_ms;
	char method[SB_METHOD_MAX];
	char uri[SB_URI_MAX];
};

enum sb_status { SB_IDLE, SB_BUSY, SB_STOPPING, SB_DEAD };

struct sb_worker {
	int id;
	volatile pid_t pid;     /* 0 when not running */
	volatile int status;    /* enum sb_status */
	volatile int accepting; /* 1 once the worker's loop polls its listeners */
	volatile int once_done; /* the -once accepting hooks ran (kept across respawns) */
	volatile uint64_t requests;
	volatile uint64_t exceptions; /* app raised or returned an error */
	volatile uint64_t harakiri_count;
	volatile uint64_t respawn_count;
	volatile uint64_t avg_rt_us; /* running average response time */
	volatile uint64_t rss_bytes; /* sampled by the worker */
	volatile int64_t last_spawn; /* unix time */
	volatile uint64_t tx_bytes;
};

struct sb_mule {
	int id;
	volatile pid_t pid;
	volatile int status;        /* enum sb_status */
	volatile uint64_t messages; /* received */
	volatile uint64_t respawn_count;
	volatile int64_t last_spawn;
	char farms[SB_FARMS_MAX];
};

struct scoreboard {
	pid_t master_pid;
	int64_t start_time; /* unix time the master started */
	int nworkers, nthreads, nmules;
	struct sb_worker *workers; /* [nworkers] */
	struct sb_mule *mules;     /* [nmules] */
	struct sb_slot *slots;     /* [nworkers * nthreads] */
};

/* Maps the shared tables (one MAP_SHARED | MAP_ANONYMOUS region, kept
 * until exit): entries zeroed (pid 0: not running), ids 1..N, master_pid
 * the caller and start_time now (the caller may overwrite both). Needs
 * <nworkers> >= 0, <nthreads> >= 1, <nmules> >= 0. Returns 0 or -1
 * (errno: EINVAL, ENOMEM). Master, before the first fork. */
int scoreboard_create(struct scoreboard *sb, int nworkers, int nthreads, int nmules);

/* Slot <thread> (0-based) of worker <id> (1-based); NULL when either is
 * out of range. */
struct sb_slot *scoreboard_slot(const struct scoreboard *sb, int id, int thread);

/* The process's scoreboard (set by the master before forking). */
extern struct scoreboard *scoreboard;

#endif
