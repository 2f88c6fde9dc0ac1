/*
 * dbfarm_internal.h - what dbfarm.c (config, enqueue, mules) and
 * dbkeeper.c (the keeper and the master's side) share: the configuration
 * and the shared mapping. Not for other modules: they use dbfarm.h.
 */
#ifndef MULEFARM_DBFARM_INTERNAL_H
#define MULEFARM_DBFARM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "mulefarm/dbfarm.h"
#include "mulefarm/farm.h"

/* A mule's slot, written by that mule (state, job) and by whoever wakes
 * it (wake). The master reads it when the mule dies. */
enum dbfarm_slot_state { SLOT_BUSY, SLOT_WAITING, SLOT_CLAIMING, SLOT_HELD };

struct dbfarm__slot {
	volatile uint32_t wake; /* futex word: bumped to wake the mule */
	volatile int state;     /* enum dbfarm_slot_state */
	int farm;               /* database farm of the held job */
	uint32_t epoch;         /* of the handler name it was claimed under */
	int64_t job_id;
	int attempt;
	char uuid[DBQ_UUID_LEN];
};

/* The master asks the keeper to fail or release a dead mule's job. */
struct dbfarm__request {
	bool release;
	int mule, farm, attempt;
	uint32_t epoch;
	int64_t job_id;
	char uuid[DBQ_UUID_LEN];
	char reason[200];
};

#define DBFARM_REQUESTS 256

/* Queue figures, refreshed by the keeper; readers retry while <seq> is
 * odd or moves (a seqlock). */
struct dbfarm__figures {
	volatile uint32_t seq;
	bool valid;
	struct dbq_stats st;
	int64_t at; /* unix time of the refresh */
};

struct dbfarm__shm {
	volatile uint32_t req_head, req_tail; /* tail: the master's, head: the keeper's */
	struct dbfarm__request req[DBFARM_REQUESTS];
	/* Handler names carry it once it is not 0 (PREFIX~E.farm.N): bumped
	 * when a claim's outcome is unknown (its mule died or lost the reply),
	 * so that the keeper stops renewing a job nobody knows it holds. */
	volatile uint32_t epoch;
	volatile int keeper_connected;
	char keeper_error[256];
	struct dbfarm__figures *fig; /* [nfarms], in the same mapping */
	struct dbfarm__slot *slots;  /* [nmules] */
};

struct dbfarm__farm {
	char name[FARMQ_NAME_MAX];
	int *mules; /* local consumers: mule ids */
	size_t nmules;
};

struct dbfarm__config {
	struct dbfarm__farm *f;
	size_t n;
	size_t nmules;        /* all mules of the instance (slots) */
	const char *conninfo; /* --dbqueue */
	char prefix[DBFARM_NAME_MAX / 2];
	int lease_s, timeout_s, retention_s;
	bool poll_only;
	size_t max_msg;
	struct dbfarm__shm *shm;
};

extern struct dbfarm__config dbfarm__cfg;

/* The prefix of handler names of <epoch> ("PREFIX" or "PREFIX~E"). */
void dbfarm__prefix(uint32_t epoch, char *buf, size_t len);

/* A claim's outcome is unknown: new claims take new names. */
void dbfarm__new_epoch(const char *why);

/* Bumps the wake counter of local consumers of <farm> that wait: all of
 * them, or the first one. */
void dbfarm__wake(size_t farm, bool all);

/* Whether <rc> is worth retrying (the connection, not the request). */
bool dbfarm__transient(int rc);

/* Sleeps <ms> (for backoff). */
void dbfarm__nap(int ms);

int64_t dbfarm__now_ms(void);

#endif
