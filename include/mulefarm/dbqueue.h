/*
 * dbqueue.h - the PostgreSQL job queue behind database farms.
 *
 * A library (libpq, libuuid): it never logs, exits, forks or aborts. Every
 * call returns a dbq_rc; on error the handle keeps a message
 * (dbq_errmsg()). One handle is one connection, used by one thread at a
 * time, in the process that connected it (after a fork, the child
 * connects its own handle and never closes the parent's: that would end
 * the parent's session). Schema: sql/NNN_*.sql, embedded in the library
 * at build time and applied by dbq_migrate().
 *
 * Every call that talks to the database gives up after the handle's
 * timeout (dbq_connect's <timeout_ms>; 0: never): DBQ_ETIMEOUT, the query
 * is cancelled and the connection abandoned. After DBQ_ECONNLOST or
 * DBQ_ETIMEOUT every call returns DBQ_ECONNLOST until dbq_reconnect()
 * succeeds; whether the interrupted statement committed is unknown, which
 * is why enqueue is idempotent by uuid: retry it with the same uuid.
 *
 * Durability: an enqueue is committed and flushed when it returns. The
 * consumer side (claim, complete, fail, release, renew, requeue_expired)
 * commits asynchronously, so it adds no WAL flush per job: after a
 * PostgreSQL crash the last ~0.6 s of those may be forgotten, and such
 * jobs run again (at-least-once; the stale handler is still fenced off).
 * (Inside a transaction opened on the handle's connection, as the unit
 * tests do, that transaction's synchronous_commit stands.) A handle plans its statements once (it
 * sets plan_cache_mode = force_generic_plan on its session), and every dbq_complete VACUUMs the hot
 * table once the handle finished a few thousand jobs (outside a caller's transaction; SKIP_LOCKED,
 * one host at a time): autovacuum's one pass a minute lets the claim index fill with dead entries
 * at thousands of jobs per second.
 *
 * A farm name has 1 to 54 bytes (its NOTIFY channel, "mulefarm:<farm>",
 * must fit PostgreSQL's 63-byte identifiers).
 *
 * The model (see shared/DESIGN.md, "Database queue, in outline"):
 *   - a job row: id (bigint, ordering only: not indexed on its own), uuid
 *     (client-generated: enqueue is idempotent; the primary key), farm, payload (bytea), state
 * (queued, running, done, failed, discarded), priority (lower runs first), run_at, handler (NULL
 * until claimed), attempt, max_attempts, lease_until, unique_key, timestamps, last_error;
 *   - a claim is one statement per batch (a MATERIALIZED CTE selecting
 *     queued rows of the farm whose run_at has come, ORDER BY priority,
 *     run_at, id, LIMIT n, FOR NO KEY UPDATE SKIP LOCKED, then UPDATE ...
 *     RETURNING) through a partial index on queued rows; it stamps handler,
 *     attempt + 1 and lease_until;
 *   - completion and failure are fenced: they count only if the row still
 *     carries this handler and attempt and is running (else DBQ_FENCED);
 *   - leases are renewed by one statement per host; expired leases are
 *     re-queued by any live host (SKIP LOCKED again: no leader);
 *   - wake-up: LISTEN on one channel per farm; enqueuers do not NOTIFY in
 *     every insert transaction (that serialises commits cluster-wide):
 *     dbq_notify() is called by the enqueuer after commit, coalesced
 *     (dbq_notify_coalesced(): at most one per farm per few ms);
 *   - round trips: each call is one statement (batches travel as arrays),
 *     except the first use of a statement on a connection (it is prepared
 *     first); libpq pipeline mode serves the one place where two calls
 *     always follow each other, a mule's completion and its next claim
 *     (dbq_complete_claim);
 *   - done and discarded jobs leave the hot table in the statement that
 *     finishes them (moved to mulefarm.history, kept for the retention
 *     period: dbq_prune), so the hot table and the claim index stay as
 *     small as the backlog.
 */
#ifndef MULEFARM_DBQUEUE_H
#define MULEFARM_DBQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DBQ_ERRORS(X)                                                                              \
	X(DBQ_OK, 0, "ok")                                                                         \
	X(DBQ_ECONNECT, -1, "cannot connect to the database")                                      \
	X(DBQ_ECONNLOST, -2, "the connection to the database was lost")                            \
	X(DBQ_EQUERY, -3, "a query failed")                                                        \
	X(DBQ_ETIMEOUT, -4, "timed out")                                                           \
	X(DBQ_FENCED, -5, "the job is no longer held by this handler (lease moved on)")            \
	X(DBQ_EDUPLICATE, -6, "a job with this unique key is already queued or running")           \
	X(DBQ_EARG, -7, "invalid argument")                                                        \
	X(DBQ_ENOMEM, -8, "out of memory")                                                         \
	X(DBQ_ESCHEMA, -9, "the database schema is newer than this program")

enum dbq_rc {
#define X(name, value, text) name = value,
	DBQ_ERRORS(X)
#undef X
};

/* The generic text of a code. */
const char *dbq_strerror(int rc);

struct dbq;

/* Connects (timeout in ms, 0: libpq's default). Returns a handle, NULL only
 * on ENOMEM; check dbq_status() for the connection's outcome (DBQ_ECONNECT:
 * dbq_errmsg() has libpq's reason; dbq_reconnect() retries). <conninfo>:
 * a libpq conninfo string or URI. <timeout_ms> also bounds every later call
 * (see above). Free with dbq_close(), whatever the outcome. */
struct dbq *dbq_connect(const char *conninfo, int timeout_ms);
int dbq_status(const struct dbq *q);         /* the outcome of the last call */
const char *dbq_errmsg(const struct dbq *q); /* the last error, with the server's text
                                                (kept by later successful calls) */
int dbq_reconnect(struct dbq *q);            /* new connection; re-LISTENs what was listened
                                                to; statements are prepared again */
int dbq_socket(const struct dbq *q);         /* for poll(); -1 when not connected */
void dbq_close(struct dbq *q);

/* Applies sql/ migrations not yet applied, under an advisory lock (safe
 * when several hosts start at once), each in its own transaction with its
 * row in mulefarm.schema_version. When nothing is missing it only reads
 * the version (no lock, no DDL). DBQ_ESCHEMA if the database is newer.
 * Not bounded by the handle's timeout (it may wait for another host's
 * migration). */
int dbq_migrate(struct dbq *q);

/* --- enqueue ---------------------------------------------------------- */

#define DBQ_UUID_LEN 37 /* text form with NUL */

struct dbq_new_job {
	const char *farm;
	const void *payload;
	size_t len;
	int priority;      /* lower runs first; default 0 */
	int64_t run_at_ms; /* unix ms; 0: now */
	int max_attempts;  /* 0: default 5 */
	/* NULL: none; else at most one queued or running job per key and farm */
	const char *unique_key;
	char uuid[DBQ_UUID_LEN]; /* in: "" to generate; out: the job's uuid */
};

/* Inserts one job in its own transaction (committed when it returns
 * DBQ_OK). Enqueueing a uuid that exists (queued, running, or finished and
 * still in the history) is a no-op returning DBQ_OK. A generated uuid is
 * written into <job->uuid> before anything is sent, so a call that failed
 * (DBQ_ECONNLOST, DBQ_ETIMEOUT) can be retried with the same struct.
 * DBQ_EDUPLICATE when <unique_key> is held by a queued or running job of
 * the farm (nothing inserted; <job->uuid> is set to ""). No NOTIFY. */
int dbq_enqueue(struct dbq *q, struct dbq_new_job *job);

/* Inserts <n> jobs in one statement, so one transaction. Same rules per
 * job as dbq_enqueue, except that a job refused for its unique key does
 * not fail the batch: it is skipped and its uuid set to "", the others are
 * committed, and the call returns DBQ_EDUPLICATE (DBQ_OK: all inserted or
 * already there). */
int dbq_enqueue_many(struct dbq *q, struct dbq_new_job *jobs, size_t n);

/* NOTIFY the farm's channel (after the enqueue committed). Its own tiny
 * transaction: no WAL, no flush. */
int dbq_notify(struct dbq *q, const char *farm);

/* Coalesced NOTIFY, for producers that enqueue often: sends at once if no
 * NOTIFY for <farm> went out on this handle in the last <window_ms>, else
 * records it as pending, for dbq_notify_flush(). */
int dbq_notify_coalesced(struct dbq *q, const char *farm, int window_ms);

/* Sends the pending NOTIFYs whose window has passed. *next_ms: ms until the
 * next pending one is due (a poll timeout for the caller), -1 if none. */
int dbq_notify_flush(struct dbq *q, int *next_ms);

/* --- consume ---------------------------------------------------------- */

struct dbq_job {
	int64_t id;
	char uuid[DBQ_UUID_LEN];
	int attempt; /* 1 on the first run */
	int max_attempts;
	int priority;
	void *payload; /* malloc()ed, owned by the job: dbq_job_free(); NUL after <len> bytes */
	size_t len;
};

void dbq_job_free(struct dbq_job *job);

/* Claims up to <max> queued jobs of <farm> whose run_at has come, in
 * (priority, run_at, id) order, for <handler> with a lease of <lease_s>
 * seconds, in one statement (its own transaction). Fills jobs[0 .. *n-1]
 * (in claim order); *n gets the number claimed (0 is not an error).
 * <handler>: "host.farm.N" (dbq_renew renews by host). */
int dbq_claim(struct dbq *q, const char *farm, const char *handler, int lease_s,
              struct dbq_job *jobs, size_t max, size_t *n);

/* Completes <n> jobs held by <handler> in one statement: each one only if
 * it is still running with this handler and attempt. *done counts those;
 * the others were fenced off (their lease expired and they moved on) and
 * are left untouched. DBQ_OK when all <n> were done, DBQ_FENCED when some
 * were not. Completed jobs move to the history. The caller still frees
 * the jobs (dbq_job_free). */
int dbq_complete(struct dbq *q, const struct dbq_job *jobs, size_t n, const char *handler,
                 size_t *done);

/* dbq_complete() of one <job> held by <done_handler>, then dbq_claim() of
 * up to <max> jobs of <farm> for <handler>: both statements in one round
 * trip (libpq pipeline mode) and one transaction, so both happen or
 * neither does. *done: 1 completed, 0 fenced off (not an error here: the
 * claim happens all the same). *n: jobs claimed into jobs[]. The caller
 * still frees <job>. A mule that asks for its next job after finishing one
 * saves a round trip per job, which is most of a short job's cost when
 * the database is on another host. */
int dbq_complete_claim(struct dbq *q, const struct dbq_job *job, const char *done_handler,
                       size_t *done, const char *farm, const char *handler, int lease_s,
                       struct dbq_job *jobs, size_t max, size_t *n);

/* Whether dbq_complete keeps done jobs in the history (<keep>, the
 * default) or only deletes them: no retention (mulefarm's
 * --dbqueue-retention 0). Without it a completion writes a third less
 * (no history row, no history index entry); dbq_job_state then forgets a
 * done job at once, and a re-sent uuid (a retry of an enqueue whose job
 * already ran) is a new job. Discarded jobs are kept in the history
 * either way. */
void dbq_set_history(struct dbq *q, bool keep);

/* Fails a job held by <handler>: it is queued again with run_at = now +
 * mulefarm.retry_delay(attempt) (2^attempt s, +-25% jitter, at most 1 h),
 * or discarded (moved to the history, payload kept) once attempt ==
 * max_attempts. <error> is recorded. DBQ_FENCED if it is no longer held. */
int dbq_fail(struct dbq *q, const struct dbq_job *job, const char *handler, const char *error);

/* Gives a job back without counting the attempt (a draining handler): it
 * is queued again at its old place. DBQ_FENCED if it is no longer held. */
int dbq_release(struct dbq *q, const struct dbq_job *job, const char *handler);

/* Extends to now + <lease_s> the lease of every running job whose handler
 * starts with "<host>." (one statement). *n: how many. Rows locked at that
 * instant by a completion of the same host are skipped (they are leaving):
 * call it a few times per lease. */
int dbq_renew(struct dbq *q, const char *host, int lease_s, size_t *n);

/* Re-queues running jobs whose lease expired (any host may call it, at
 * once: SKIP LOCKED). An expired lease counts as a failed attempt
 * (last_error says so); after the last attempt the job is discarded.
 * *n: how many re-queued or discarded. */
int dbq_requeue_expired(struct dbq *q, size_t *n);

/* LISTENs on the channel of each farm (remembered: dbq_reconnect LISTENs
 * again). After a reconnect, claim once before waiting: notifications sent
 * while the connection was down are lost. */
int dbq_listen(struct dbq *q, const char *const *farms, size_t n);

/* Waits up to <timeout_ms> for a notification on a listened channel
 * (notifications that arrived during earlier calls count: it returns at
 * once). Returns 1 notified (all pending ones are consumed), 0 timed out
 * or interrupted by a signal, or an error code (DBQ_ECONNLOST). */
int dbq_wait(struct dbq *q, int timeout_ms);

/* --- look ------------------------------------------------------------- */

/* Disjoint counts: <queued> waits for a first or a released run, <failed>
 * is queued for a retry after a failure (or an expired lease); discarded
 * and done count the retained history. */
struct dbq_stats {
	int64_t queued, running, failed, discarded, done_retained;
	double oldest_queued_s; /* age of the oldest queued job whose run_at has come */
	int64_t handlers;       /* distinct handlers holding running jobs */
};

/* The figures of <farm> (NULL: all farms). Scans the farm's retained
 * history: for a status line every few seconds, not for every claim. */
int dbq_stats(struct dbq *q, const char *farm, struct dbq_stats *st);

/* The state of job <uuid>: "queued", "running", "done", "failed" (queued
 * again for a retry), "discarded", or "" if unknown (done jobs stay known
 * for the retention period). <state> has room for 16 bytes; *attempt (if
 * not NULL) gets the attempts started. DBQ_EARG if <uuid> is not one. */
int dbq_job_state(struct dbq *q, const char *uuid, char *state, int *attempt);

/* Deletes history older than <retention_s>. *n: rows deleted. */
int dbq_prune(struct dbq *q, int retention_s, size_t *n);

#endif
