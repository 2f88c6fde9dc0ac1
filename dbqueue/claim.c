/*
 * claim.c - the consumer side: claim a batch, then complete, fail or
 * release it; renew a host's leases; re-queue expired ones.
 *
 * A claim is a lease fenced by (handler, attempt): every later statement
 * about a job matches it only while the row is running with this handler
 * and this attempt, so a handler whose lease expired (and whose job was
 * re-queued, maybe re-claimed) changes nothing.
 *
 * Done and discarded jobs leave mulefarm.jobs in the statement that
 * finishes them (DELETE ... RETURNING into mulefarm.history): the hot
 * table only holds queued and running jobs.
 *
 * Commits: only enqueueing must be durable when it returns. Every
 * statement here commits asynchronously (synchronous_commit = off for its
 * own transaction, set inside the statement: no extra round trip), so
 * claims and completions add no WAL flush per job: they ride on the
 * flushes of the enqueuers' commits (or the WAL writer's, within
 * 3 x wal_writer_delay). A PostgreSQL crash may forget the last of them:
 * such a job is queued again (or still running, until its lease expires)
 * and runs again, which at-least-once allows; fencing still refuses the
 * stale handler. Inside a transaction the caller opened, the caller's
 * setting stands (its transaction is not made asynchronous).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "internal.h"

/* The one-time filter that makes the statement's transaction commit
 * asynchronously when parameter $<n> is true (see above). */
#define ASYNC_COMMIT(n)                                                                            \
	"(SELECT set_config('synchronous_commit', CASE WHEN $" #n " THEN 'off' "                   \
	"ELSE current_setting('synchronous_commit') END, true)) IS NOT NULL"
#define ASYNC_1 ASYNC_COMMIT(1)
#define ASYNC_3 ASYNC_COMMIT(3)
#define ASYNC_4 ASYNC_COMMIT(4)
#define ASYNC_5 ASYNC_COMMIT(5)

/* Each claimed and each finished job leaves a dead row version behind, and
 * a dead entry at the head of the claim index that every claim walks
 * over until VACUUM removes it: at thousands of jobs per second the
 * claim's cost then grows with the jobs done since the last VACUUM, and
 * autovacuum (a pass per minute by default) is far too slow. So handles
 * that complete jobs VACUUM the hot table themselves, every few thousand
 * jobs: a small table, so a pass costs milliseconds; SKIP_LOCKED makes
 * concurrent attempts (other handlers, autovacuum) return at once. It
 * needs the table's owner (the role that ran dbq_migrate); for another
 * role VACUUM only warns, and autovacuum must keep up. */
void dbq__churn(struct dbq *q, size_t n)
{
	q->churn += (int64_t)n;
	if (q->churn < DBQ__VACUUM_EVERY || PQtransactionStatus(q->conn) != PQTRANS_IDLE)
		return;
	q->churn = 0;
	/* One VACUUM at a time, and no server log line ("skipping vacuum")
	 * for the others: a try-lock first. No deadline: abandoning the
	 * connection over a slow VACUUM would do more harm than the wait. A
	 * failure is not the caller's business (the jobs were completed); a
	 * lost connection shows on the next call. */
	PGresult *res = dbq__simple_result(q, "SELECT pg_try_advisory_lock(" DBQ__VACUUM_LOCK ")",
	                                   true, "vacuum");
	if (res == NULL)
		return;
	bool mine = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!mine)
		return;
	dbq__simple(q, "VACUUM (SKIP_LOCKED, TRUNCATE false, INDEX_CLEANUP on) mulefarm.jobs", true,
	            "vacuum");
	dbq__simple(q, "SELECT pg_advisory_unlock(" DBQ__VACUUM_LOCK ")", true, "vacuum");
}

/* The MATERIALIZED CTE stops the planner from running the LIMITed
 * subquery once per row of the UPDATE; SKIP LOCKED lets concurrent
 * claimers take disjoint rows without waiting; FOR NO KEY UPDATE does not
 * block inserts referencing the row. The UPDATE finds the rows by their
 * ctids, through an array (an InitPlan): a TID scan, no index probe, and
 * no join the planner could turn into a sequential scan of the table. The
 * ctids are stable: the CTE holds the rows locked until the statement's
 * transaction ends. (Should a row have been updated after this statement's
 * snapshot but before its lock, the lock finds the newer version, which
 * the UPDATE's snapshot does not see: that row is left queued, unclaimed,
 * for the next claim.) The result is ordered as claimed. */
static const struct dbq__stmt claim_stmt = {
        DBQ__CLAIM, "mulefarm_claim",
        "WITH c AS MATERIALIZED ("
        " SELECT ctid FROM mulefarm.jobs"
        " WHERE state = 'queued' AND farm = $1 AND run_at <= now() AND " ASYNC_5
        " ORDER BY priority, run_at, id"
        " LIMIT $2"
        " FOR NO KEY UPDATE SKIP LOCKED"
        "), u AS ("
        " UPDATE mulefarm.jobs j"
        " SET state = 'running', handler = $3, attempt = j.attempt + 1,"
        "  lease_until = now() + $4 * interval '1 second', claimed_at = now()"
        " WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM c))"
        " RETURNING j.id, j.uuid, j.attempt, j.max_attempts, j.priority, j.run_at, j.payload"
        ")"
        " SELECT id, uuid, attempt, max_attempts, priority, payload FROM u"
        " ORDER BY priority, run_at, id",
        5, (const Oid[]){DBQ__TEXTOID, DBQ__INT4OID, DBQ__TEXTOID, DBQ__INT4OID, DBQ__BOOLOID}};

#define HISTORY_COLUMNS                                                                            \
	"id, uuid, farm, state, priority, handler, attempt, max_attempts, created_at, payload, "   \
	"last_error"

/* The fence is a filter, not a join: a join with unnest() lets the planner
 * rescan the arrays once per row (a nested loop with the function as the
 * inner side), and costs O(n^2) detoasting. */
static const struct dbq__stmt complete_stmt = {
        DBQ__COMPLETE, "mulefarm_complete",
        "WITH d AS ("
        " DELETE FROM mulefarm.jobs j"
        " WHERE j.uuid = ANY ($1) AND j.handler = $3 AND j.state = 'running'"
        "  AND j.attempt = ($2)[array_position($1, j.uuid)] AND " ASYNC_4 " RETURNING j.*"
        ")"
        " INSERT INTO mulefarm.history (" HISTORY_COLUMNS ")"
        " SELECT id, uuid, farm, 'done', priority, handler, attempt, max_attempts, created_at,"
        "  NULL, last_error FROM d",
        4, (const Oid[]){DBQ__UUIDARRAY, DBQ__INT4ARRAY, DBQ__TEXTOID, DBQ__BOOLOID}};

/* dbq_set_history(q, false): the same fence, no history row. */
static const struct dbq__stmt complete_drop_stmt = {
        DBQ__COMPLETE_DROP, "mulefarm_complete_drop",
        "DELETE FROM mulefarm.jobs j"
        " WHERE j.uuid = ANY ($1) AND j.handler = $3 AND j.state = 'running'"
        "  AND j.attempt = ($2)[array_position($1, j.uuid)] AND " ASYNC_4,
        4, (const Oid[]){DBQ__UUIDARRAY, DBQ__INT4ARRAY, DBQ__TEXTOID, DBQ__BOOLOID}};

void dbq_set_history(struct dbq *q, bool keep)
{
	q->no_history = !keep;
}

/* A failed attempt: back to the queue after mulefarm.retry_delay(), or
 * into the history as discarded when it was the last one. The two arms
 * match disjoint rows. Returns how many rows it handled (0: fenced). */
static const struct dbq__stmt fail_stmt = {
        DBQ__FAIL, "mulefarm_fail",
        "WITH r AS ("
        " UPDATE mulefarm.jobs j"
        " SET state = 'queued', handler = NULL, lease_until = NULL, claimed_at = NULL,"
        "  last_error = $4, run_at = now() + mulefarm.retry_delay(j.attempt)"
        " WHERE j.uuid = $1 AND j.attempt = $2 AND j.handler = $3 AND j.state = 'running'"
        "  AND j.attempt < j.max_attempts AND " ASYNC_5 " RETURNING 1"
        "), d AS ("
        " DELETE FROM mulefarm.jobs j"
        " WHERE j.uuid = $1 AND j.attempt = $2 AND j.handler = $3 AND j.state = 'running'"
        "  AND j.attempt >= j.max_attempts AND " ASYNC_5 " RETURNING j.*"
        "), h AS ("
        " INSERT INTO mulefarm.history (" HISTORY_COLUMNS ")"
        " SELECT id, uuid, farm, 'discarded', priority, handler, attempt, max_attempts,"
        "  created_at, payload, $4 FROM d"
        " RETURNING 1"
        ")"
        " SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM h)",
        5, (const Oid[]){DBQ__UUIDOID, DBQ__INT4OID, DBQ__TEXTOID, DBQ__TEXTOID, DBQ__BOOLOID}};

/* $4 is unused (the parameters are one_job()'s). */
static const struct dbq__stmt release_stmt = {
        DBQ__RELEASE, "mulefarm_release",
        "UPDATE mulefarm.jobs"
        " SET state = 'queued', handler = NULL, lease_until = NULL, claimed_at = NULL,"
        "  attempt = attempt - 1"
        " WHERE uuid = $1 AND attempt = $2 AND handler = $3 AND state = 'running' AND " ASYNC_5,
        5, (const Oid[]){DBQ__UUIDOID, DBQ__INT4OID, DBQ__TEXTOID, DBQ__TEXTOID, DBQ__BOOLOID}};

/* Handlers are named host.farm.N: the host's rows are the range
 * ['host.', 'host/') of the "C"-collated handler column ('/' follows '.'),
 * which the jobs_running index serves. Rows locked by a completion in
 * flight are skipped (they are leaving), which also rules out deadlocks
 * with it. The rows locked are then updated by ctid, as in the claim. */
static const struct dbq__stmt renew_stmt = {
        DBQ__RENEW, "mulefarm_renew",
        "WITH r AS MATERIALIZED ("
        " SELECT ctid FROM mulefarm.jobs"
        " WHERE state = 'running' AND handler >= ($1 || '.') COLLATE \"C\""
        "  AND handler < ($1 || '/') COLLATE \"C\" AND " ASYNC_3 " FOR NO KEY UPDATE SKIP LOCKED"
        ")"
        " UPDATE mulefarm.jobs j SET lease_until = now() + $2 * interval '1 second'"
        " WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM r))",
        3, (const Oid[]){DBQ__TEXTOID, DBQ__INT4OID, DBQ__BOOLOID}};

/* An expired lease counts as a failed attempt: re-queued (at its old
 * place: run_at is unchanged), or discarded after the last attempt, so a
 * job that kills its handler every time does not circulate forever. */
static const struct dbq__stmt requeue_stmt = {
        DBQ__REQUEUE, "mulefarm_requeue_expired",
        "WITH e AS MATERIALIZED ("
        " SELECT ctid FROM mulefarm.jobs WHERE state = 'running' AND lease_until < now()"
        "  AND " ASYNC_1 " FOR NO KEY UPDATE SKIP LOCKED"
        "), r AS ("
        " UPDATE mulefarm.jobs j"
        " SET state = 'queued', handler = NULL, lease_until = NULL, claimed_at = NULL,"
        "  last_error = 'lease expired (handler ' || j.handler || ')'"
        " WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM e)) AND j.attempt < j.max_attempts"
        " RETURNING 1"
        "), d AS ("
        " DELETE FROM mulefarm.jobs j"
        " WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM e)) AND j.attempt >= j.max_attempts"
        " RETURNING j.*"
        "), h AS ("
        " INSERT INTO mulefarm.history (" HISTORY_COLUMNS ")"
        " SELECT id, uuid, farm, 'discarded', priority, handler, attempt, max_attempts,"
        "  created_at, payload, 'lease expired (handler ' || handler || ')' FROM d"
        " RETURNING 1"
        ")"
        " SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM h)",
        1, (const Oid[]){DBQ__BOOLOID}};

void dbq_job_free(struct dbq_job *job)
{
	if (job == NULL)
		return;
	free(job->payload);
	job->payload = NULL;
	job->len = 0;
}

/* "t" when the handle is outside any transaction of the caller's: its
 * statement may then commit asynchronously. */
static const char *async_ok(struct dbq *q)
{
	return PQtransactionStatus(q->conn) == PQTRANS_IDLE ? "t" : "f";
}

static int check_handler(struct dbq *q, const char *handler, const char *what)
{
	if (handler == NULL || *handler == '\0')
		return dbq__error(q, DBQ_EARG, "%s: a handler name is required", what);
	return DBQ_OK;
}

/* Fills <job> from row <r> of a binary claim result. */
static int take_row(struct dbq *q, PGresult *res, int r, struct dbq_job *job)
{
	const char *payload = PQgetvalue(res, r, 5);
	size_t len = (size_t)PQgetlength(res, r, 5);

	job->id = dbq__load_i64(PQgetvalue(res, r, 0));
	uuid_unparse_lower((const unsigned char *)PQgetvalue(res, r, 1), job->uuid);
	job->attempt = dbq__load_i32(PQgetvalue(res, r, 2));
	job->max_attempts = dbq__load_i32(PQgetvalue(res, r, 3));
	job->priority = dbq__load_i32(PQgetvalue(res, r, 4));
	/* One byte more, NUL, so that text payloads can be used as strings. */
	job->payload = malloc(len + 1);
	if (job->payload == NULL)
		return DBQ_ENOMEM;
	memcpy(job->payload, payload, len);
	((char *)job->payload)[len] = '\0';
	job->len = len;
	return DBQ_OK;
}

/* The claim's parameters, checked: values[0..4] point into <limit> and
 * <lease> (16 bytes each). */
static int claim_params(struct dbq *q, const char *farm, const char *handler, int lease_s,
                        size_t max, char *limit, char *lease, const char **values)
{
	char channel[DBQ__CHANNEL_MAX + 1];

	if (dbq__channel(q, farm, channel, "claim") != DBQ_OK ||
	    check_handler(q, handler, "claim") != DBQ_OK)
		return q->rc;
	if (lease_s <= 0 || max == 0)
		return dbq__error(q, DBQ_EARG, "claim: <lease_s> and <max> must be positive");
	snprintf(limit, 16, "%zu", max > INT32_MAX ? (size_t)INT32_MAX : max);
	snprintf(lease, 16, "%d", lease_s);
	values[0] = farm, values[1] = limit, values[2] = handler, values[3] = lease;
	values[4] = async_ok(q);
	return DBQ_OK;
}

/* Takes the claimed rows of <res> (and clears it). */
static int take_rows(struct dbq *q, PGresult *res, struct dbq_job *jobs, size_t *n)
{
	int rows = PQntuples(res);

	for (int r = 0; r < rows; r++) {
		if (take_row(q, res, r, &jobs[r]) != DBQ_OK) {
			/* The rows stay claimed: their leases will expire. */
			for (int k = 0; k < r; k++)
				dbq_job_free(&jobs[k]);
			PQclear(res);
			return dbq__error(q, DBQ_ENOMEM, "claim: out of memory");
		}
	}
	*n = (size_t)rows;
	PQclear(res);
	return DBQ_OK;
}

int dbq_claim(struct dbq *q, const char *farm, const char *handler, int lease_s,
              struct dbq_job *jobs, size_t max, size_t *n)
{
	char limit[16], lease[16];
	const char *values[5];
	PGresult *res;

	*n = 0;
	if (dbq__usable(q, "claim") != DBQ_OK ||
	    claim_params(q, farm, handler, lease_s, max, limit, lease, values) != DBQ_OK)
		return q->rc;
	res = dbq__exec(q, &claim_stmt, values, NULL, NULL, true, "claim");
	if (res == NULL)
		return q->rc;
	return take_rows(q, res, jobs, n);
}

/* The completion's parameters: the uuid and attempt arrays, in the
 * handle's buffers. */
static int complete_params(struct dbq *q, const struct dbq_job *jobs, size_t n, const char *handler,
                           const char **values, int *lengths)
{
	struct dbq__buf *a = q->arr;
	int rc = DBQ_OK;

	if (check_handler(q, handler, "complete") != DBQ_OK)
		return q->rc;
	if (n > INT32_MAX)
		return dbq__error(q, DBQ_EARG, "complete: too many jobs");
	rc |= dbq__arr_begin(&a[0], DBQ__UUIDOID, n, false);
	rc |= dbq__arr_begin(&a[1], DBQ__INT4OID, n, false);
	for (size_t i = 0; i < n && rc == DBQ_OK; i++) {
		uuid_t u;
		if (memchr(jobs[i].uuid, '\0', sizeof jobs[i].uuid) == NULL ||
		    uuid_parse(jobs[i].uuid, u) != 0)
			return dbq__error(q, DBQ_EARG, "complete: job %zu: '%.36s' is not a uuid",
			                  i, jobs[i].uuid);
		rc |= dbq__arr_put(&a[0], u, sizeof u);
		rc |= dbq__arr_put_i32(&a[1], jobs[i].attempt);
	}
	if (rc != DBQ_OK)
		return dbq__error(q, DBQ_ENOMEM, "complete: out of memory");
	values[0] = a[0].p, lengths[0] = (int)a[0].len;
	values[1] = a[1].p, lengths[1] = (int)a[1].len;
	values[2] = handler, lengths[2] = 0;
	values[3] = async_ok(q), lengths[3] = 0;
	return DBQ_OK;
}

static const int complete_formats[4] = {1, 1, 0, 0};

int dbq_complete(struct dbq *q, const struct dbq_job *jobs, size_t n, const char *handler,
                 size_t *done)
{
	const char *values[4];
	int lengths[4];
	PGresult *res;

	*done = 0;
	if (check_handler(q, handler, "complete") != DBQ_OK)
		return q->rc;
	if (n == 0)
		return dbq__ok(q);
	if (dbq__usable(q, "complete") != DBQ_OK ||
	    complete_params(q, jobs, n, handler, values, lengths) != DBQ_OK)
		return q->rc;
	res = dbq__exec(q, q->no_history ? &complete_drop_stmt : &complete_stmt, values, lengths,
	                complete_formats, false, "complete");
	if (res == NULL)
		return q->rc;
	*done = strtoul(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	dbq__churn(q, *done);
	if (*done < n)
		return dbq__error(q, DBQ_FENCED, "complete: %zu of %zu jobs: %s", n - *done, n,
		                  dbq_strerror(DBQ_FENCED));
	return dbq__ok(q);
}

int dbq_complete_claim(struct dbq *q, const struct dbq_job *job, const char *done_handler,
                       size_t *done, const char *farm, const char *handler, int lease_s,
                       struct dbq_job *jobs, size_t max, size_t *n)
{
	const char *cvalues[4], *values[5];
	int clengths[4];
	char limit[16], lease[16];
	PGresult *res[2];

	*done = 0;
	*n = 0;
	if (dbq__usable(q, "complete_claim") != DBQ_OK ||
	    complete_params(q, job, 1, done_handler, cvalues, clengths) != DBQ_OK ||
	    claim_params(q, farm, handler, lease_s, max, limit, lease, values) != DBQ_OK)
		return q->rc;
	const struct dbq__call calls[2] = {
	        {q->no_history ? &complete_drop_stmt : &complete_stmt, cvalues, clengths,
	         complete_formats, false},
	        {&claim_stmt, values, NULL, NULL, true},
	};
	if (dbq__exec_pipeline(q, 2, calls, res, "complete_claim") != DBQ_OK)
		return q->rc;
	*done = strtoul(PQcmdTuples(res[0]), NULL, 10);
	PQclear(res[0]);
	if (take_rows(q, res[1], jobs, n) != DBQ_OK)
		return q->rc;
	dbq__churn(q, *done);
	return dbq__ok(q);
}

/* Runs a statement about one job held by <handler>; DBQ_FENCED when it
 * matched nothing. <count_col>: the count is in the result's first column
 * (else in the command tag). */
static int one_job(struct dbq *q, const struct dbq__stmt *s, const struct dbq_job *job,
                   const char *handler, const char *extra, bool count_col, const char *what)
{
	char attempt[16];
	const char *values[5] = {job->uuid, attempt, handler, extra, NULL};
	PGresult *res;
	unsigned long count;

	uuid_t u;

	if (check_handler(q, handler, what) != DBQ_OK)
		return q->rc;
	if (memchr(job->uuid, '\0', sizeof job->uuid) == NULL || uuid_parse(job->uuid, u) != 0)
		return dbq__error(q, DBQ_EARG, "%s: '%.36s' is not a uuid", what, job->uuid);
	snprintf(attempt, sizeof attempt, "%d", job->attempt);
	if (dbq__usable(q, what) != DBQ_OK)
		return q->rc;
	values[4] = async_ok(q);
	res = dbq__exec(q, s, values, NULL, NULL, false, what);
	if (res == NULL)
		return q->rc;
	count = strtoul(count_col ? PQgetvalue(res, 0, 0) : PQcmdTuples(res), NULL, 10);
	PQclear(res);
	if (count == 0)
		return dbq__error(q, DBQ_FENCED, "%s: job %s (attempt %d): %s", what, job->uuid,
		                  job->attempt, dbq_strerror(DBQ_FENCED));
	return DBQ_OK;
}

int dbq_fail(struct dbq *q, const struct dbq_job *job, const char *handler, const char *error)
{
	return one_job(q, &fail_stmt, job, handler, error ? error : "failed", true, "fail");
}

int dbq_release(struct dbq *q, const struct dbq_job *job, const char *handler)
{
	return one_job(q, &release_stmt, job, handler, NULL, false, "release");
}

int dbq_renew(struct dbq *q, const char *host, int lease_s, size_t *n)
{
	char lease[16];
	const char *values[3] = {host, lease, NULL};
	PGresult *res;

	*n = 0;
	if (host == NULL || *host == '\0' || lease_s <= 0)
		return dbq__error(q, DBQ_EARG,
		                  "renew: a host name and a positive lease are required");
	snprintf(lease, sizeof lease, "%d", lease_s);
	if (dbq__usable(q, "renew") != DBQ_OK)
		return q->rc;
	values[2] = async_ok(q);
	res = dbq__exec(q, &renew_stmt, values, NULL, NULL, false, "renew");
	if (res == NULL)
		return q->rc;
	*n = strtoul(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return DBQ_OK;
}

int dbq_requeue_expired(struct dbq *q, size_t *n)
{
	PGresult *res;

	*n = 0;
	if (dbq__usable(q, "requeue_expired") != DBQ_OK)
		return q->rc;
	const char *values[1] = {async_ok(q)};
	res = dbq__exec(q, &requeue_stmt, values, NULL, NULL, false, "requeue_expired");
	if (res == NULL)
		return q->rc;
	*n = strtoul(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return DBQ_OK;
}
