/*
 * farm.h - mules and farms as configured: which mule runs what, which
 * mules make up each farm, and the shared queues (farmq) that carry their
 * messages.
 *
 * Queue layout in the farmq region: queue i (0 <= i < nfarms) is farm i,
 * named as the farm; queue nfarms + k - 1 is mule k's own queue, named
 * "mule:k"; the last, "mule:*", is the queue any mule takes from
 * (mule_msg() without an id). Locks: --locks N gives N + 1 locks, 0..N.
 *
 * The master fills this before any fork; children read it. The region
 * crosses a graceful reload (re-exec): farms_open() attaches to the
 * inherited memfd, and moves the messages into a new region if the shape
 * changed.
 */
#ifndef MULEFARM_FARM_H
#define MULEFARM_FARM_H

#include <stdbool.h>
#include <stddef.h>

#include "mulefarm/farmq.h"
#include "mulefarm/options.h"

#define FARMS_MAX 256

struct farm {
	char name[FARMQ_NAME_MAX];
	int *mules; /* member mule ids, 1-based */
	size_t nmules;
};

struct farms {
	struct farm *f;
	size_t n;
	const char **mule_targets; /* [nmules]: --mule value, NULL for a bare mule */
	size_t nmules;
	size_t nlocks;
	size_t max_msg;     /* --mule-msg-size */
	int msg_timeout_ms; /* --farm-msg-timeout */
	bool raise_full;    /* --farm-msg-full=raise */
	struct farmq *q;    /* NULL until farms_open() */
};

/* Reads --mule, --mules, --farm, --locks and the queue options. An
 * unknown mule id or a malformed --farm is an error naming the option and
 * where it was given. Returns 0 or -1 with <err> set. */
int farms_setup(struct farms *fs, const struct options *o, char *err, size_t errlen);

/* Creates the region, or attaches to <inherited_fd> (>= 0) from before a
 * reload. Returns 0 or -1 with <err> set. Master only. */
int farms_open(struct farms *fs, const struct options *o, int inherited_fd, char *err,
               size_t errlen);

/* The farm named <name>, or -1. */
int farms_find(const struct farms *fs, const char *name);

/* The queue of mule <id> (1-based). */
size_t farms_mule_queue(const struct farms *fs, int id);

/* The queue any mule takes from. */
size_t farms_any_mule_queue(const struct farms *fs);

/* Whether mule <id> belongs to farm <farm>. */
bool farms_has_mule(const struct farms *fs, size_t farm, int id);

/* Writes the names of mule <id>'s farms, comma-separated, into <buf>. */
void farms_describe_mule(const struct farms *fs, int id, char *buf, size_t len);

/* The farms and mules of this process (set by the master). */
extern struct farms *farms;

#endif
