/*
 * dbfarm.h - database farms: farms carried by PostgreSQL (dbqueue.h)
 * instead of the master's shared queues.
 *
 * Configuration: --db-farm NAME (repeatable) with --dbqueue CONNINFO.
 * farm_msg(NAME, msg) then inserts a job (committed before it returns);
 * the mules of the --farm entry of the same NAME (if any) claim jobs from
 * the database, as do the mules of mulefarm-handler instances on other
 * hosts with the same configuration. A --db-farm without a --farm entry
 * has no consumer on this host.
 *
 * Handler names: "<prefix>.<farm>.<mule id>", prefix = --handler-name or
 * the host name ('.', '~' and '/' become '-'). Every instance (mulefarm or
 * mulefarm-handler) sharing a database needs its own prefix: leases are
 * renewed by prefix. After a claim whose outcome is unknown (its mule was
 * killed during it, or the reply was lost), new claims use the prefix
 * "<prefix>~E" (E counts such events): the keeper renews only the prefixes
 * of the current epoch and of the jobs mules hold, so a job claimed
 * without anyone knowing is left to its lease.
 *
 * Processes:
 *   - the keeper: a C-only child of the master (never runs Python), the
 *     one database connection per instance that LISTENs for the farms'
 *     channels and wakes the local consumer mules, renews the leases of
 *     the instance in one statement (dbq_renew by prefix) every lease/3,
 *     re-queues expired leases of any host, prunes history past
 *     --dbqueue-retention, refreshes the figures of --stats and the
 *     systemd STATUS, and fails (or, while stopping, releases) the job a
 *     dead mule held. The master respawns it if it dies; it exits when
 *     the master exits or re-executes (EOF on a close-on-exec pipe).
 *   - mules: one connection each for claim/complete/fail, opened on
 *     first use. An idle mule waits on a futex in shared memory, so an
 *     idle instance issues no query beyond the keeper's timers and one
 *     safety-net claim per farm every 2 * nfarms seconds (< 1 query/s).
 *   - any process enqueuing (workers, mules): a small pool of
 *     connections, one per concurrent caller, and a notifier thread that
 *     sends at most one NOTIFY per farm per DBFARM_NOTIFY_GAP_MS, after
 *     the insert committed. Local consumers are woken directly.
 *
 * Mule slots, the keeper's requests and the queue figures live in one
 * MAP_SHARED mapping made by the master before the first fork.
 */
#ifndef MULEFARM_DBFARM_H
#define MULEFARM_DBFARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mulefarm/dbqueue.h"
#include "mulefarm/server.h"

struct farms;

#define DBFARM_NOTIFY_GAP_MS 5
#define DBFARM_NAME_MAX      256 /* a handler name */

/* --- configuration (master, before any fork; read-only afterwards) ---- */

/* Reads --db-farm, --dbqueue and friends against the local farms <fs>
 * (consumers are the mules of a --farm of the same name) and maps the
 * shared state. Without --db-farm it does nothing and every other call
 * is a no-op. Returns 0, or -1 with <err> set (a --db-farm without
 * --dbqueue, a bad value). Call once, before the first fork. */
int dbfarm_setup(const struct server *srv, const struct farms *fs, char *err, size_t errlen);

/* The number of database farms (0: the feature is off). */
size_t dbfarm_count(void);

/* Index of database farm <name>, or -1. */
int dbfarm_find(const char *name);

const char *dbfarm_name(size_t farm);

/* The connection string (--dbqueue), or NULL. */
const char *dbfarm_conninfo(void);

/* --dbqueue-timeout in ms. */
int dbfarm_timeout_ms(void);

/* --mule-msg-size: the largest payload. */
size_t dbfarm_max_msg(void);

/* Whether mule <id> consumes from at least one database farm. */
bool dbfarm_mule_consumes(int id);
/* Whether mule <id> consumes from database farm <farm> (dbfarm_find). */
bool dbfarm_mule_in(int id, size_t farm);

/* Writes the handler name mule <id> claims jobs of <farm> under, in
 * <epoch>, to <buf>. */
void dbfarm_handler_name(int id, size_t farm, uint32_t epoch, char *buf, size_t len);

/* The handler name of the job this mule holds ("" if none). */
void dbfarm_mule_handler(int id, char *buf, size_t len);

/* --- enqueue: any process, any thread, without the GIL ---------------- */

/* Inserts <jobs> (one transaction; a job's uuid is generated here when
 * empty, so that a retry after a lost connection cannot insert twice),
 * retrying connection failures with backoff for up to <timeout_ms>, then
 * schedules the farms' NOTIFY and wakes local consumers. Returns DBQ_OK
 * (committed), DBQ_EDUPLICATE (a unique key was taken: that job is not
 * inserted and its uuid is "", the others are committed),
 * or another code with the database's message in <err>. */
int dbfarm_enqueue(struct dbq_new_job *jobs, size_t n, int timeout_ms, char *err, size_t errlen);

/* Looks up job <uuid> (dbq_job_state), with the same retries. */
int dbfarm_job_state(const char *uuid, char *state, int *attempt, int timeout_ms, char *err,
                     size_t errlen);

/* --- the consuming mule (its own connection, one thread) -------------- */

enum dbfarm_outcome { DBF_DONE, DBF_FAILED, DBF_RELEASED };

/* The job this mule holds, or NULL; <farm> gets its database farm. */
const struct dbq_job *dbfarm_mule_job(size_t *farm);

/* Claims one job from the mule's database farms (in turn). Returns 1
 * with the job held (dbfarm_mule_job()), 0 when none is queued, or -1
 * with the reason in <err> (the database is unreachable: wait and try
 * again). */
int dbfarm_mule_claim(int id, char *err, size_t errlen);

/* Records the outcome of the held job (<error> for DBF_FAILED), retrying
 * a lost connection for up to the lease. Returns 1 recorded, 0 fenced
 * off (the lease had moved on: another handler has it), -1 not recorded
 * (<err>; the job runs again after its lease). The job is no longer held
 * either way. */
int dbfarm_mule_finish(int id, enum dbfarm_outcome how, const char *error, char *err,
                       size_t errlen);

/* Records the held job as done and claims one job of the mule's next
 * database farm, in one round trip and one transaction
 * (dbq_complete_claim). Returns 1 (done, and the next job held), 0 (done,
 * none queued in that farm), or -1: nothing was recorded for certain, so
 * the job is still held: settle it with dbfarm_mule_finish() and claim
 * with dbfarm_mule_claim(), which report any error. *fenced: the
 * completion was fenced off (the lease had moved on). */
int dbfarm_mule_done_claim(int id, bool *fenced);

/* The mule's wake-up counter: read it before claiming, then sleep on it,
 * so a wake-up in between is not lost. */
uint32_t dbfarm_mule_seq(int id);

/* Waits up to <timeout_ms> until the counter moves past <seq> (a job may
 * be there), a signal arrives, or the time runs out. Returns true when
 * woken by the counter. */
bool dbfarm_mule_sleep(int id, uint32_t seq, int timeout_ms);

/* --- the master ------------------------------------------------------- */

/* Starts the keeper (after the app is loaded and any detaching). */
void dbfarm_keeper_start(void);

/* A child was reaped: if it was the keeper, respawns it (unless
 * <respawn> is false: the master is stopping) and returns true. */
bool dbfarm_reaped(pid_t pid, int status, bool respawn);

/* Mule <id> (pid <pid>) is gone with <status>: the job it held is failed
 * with the reason, or released when <stopping> (the master stopped it). */
void dbfarm_mule_gone(int id, pid_t pid, int status, bool stopping);

/* After the last child: lets the keeper finish its requests (at most
 * <timeout_ms>) and stops it. */
void dbfarm_shutdown(int timeout_ms);

/* "farm: N queued, N running, ..." for systemd's STATUS ("" without
 * database farms or figures yet). Master only; a static buffer. */
const char *dbfarm_status_text(void);

/* The "dbfarms" stats array ("[...]", malloc()ed; NULL on ENOMEM or
 * without database farms). */
char *dbfarm_stats_json(void);

#endif
