/*
 * enqueue.c - one statement inserts a whole batch (seven array parameters
 * unnested in order), so dbq_enqueue_many costs one round trip and one
 * commit however many jobs it carries.
 *
 * Idempotence: a job's uuid is unique among queued and running jobs (ON
 * CONFLICT DO NOTHING) and the insert skips uuids already in the history.
 * Uuids are generated here as UUIDv7 (time first, then random), so that
 * the uuid indexes of both tables grow at their right edge, like the ids.
 *
 * Fresh jobs: a uuid generated here a moment ago cannot be in the history
 * nor queued, so a batch of such jobs without unique keys (what farm_msg
 * and enqueue_many send) takes a plain INSERT: no history probe, no ON
 * CONFLICT, nothing to report back. Should a generated uuid ever collide
 * all the same (48 bits of time, 74 random), the unique index refuses the
 * statement and the caller gets the error: nothing is dropped silently.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "internal.h"

/* The history checks are scalar subqueries, so that each is an index
 * probe whatever the planner believes of the history's size when it makes
 * the generic plan (a NOT EXISTS may become a hash anti-join over a
 * sequential scan, which a million retained jobs later is a disaster).
 * The statement's result: the ordinals (1-based) of the jobs that were
 * not inserted because their unique key is held, the only case of a job
 * that is neither inserted nor already there. */
static const Oid enqueue_types[] = {DBQ__UUIDARRAY, DBQ__TEXTARRAY, DBQ__BYTEAARRAY, DBQ__INT4ARRAY,
                                    DBQ__INT8ARRAY, DBQ__INT4ARRAY, DBQ__TEXTARRAY};
static const struct dbq__stmt enqueue_stmt = {
        DBQ__ENQUEUE, "mulefarm_enqueue",
        "WITH input AS ("
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::int4[], $5::int8[],"
        "  $6::int4[], $7::text[]) WITH ORDINALITY"
        "  AS t(uuid, farm, payload, priority, run_at_ms, max_attempts, unique_key, n)"
        "), ins AS ("
        " INSERT INTO mulefarm.jobs (uuid, farm, payload, priority, run_at, max_attempts,"
        "  unique_key)"
        " SELECT i.uuid, i.farm, i.payload, i.priority,"
        "  CASE WHEN i.run_at_ms = 0 THEN now() ELSE to_timestamp(i.run_at_ms / 1000.0) END,"
        "  i.max_attempts, i.unique_key"
        " FROM input i"
        " WHERE (SELECT 1 FROM mulefarm.history h WHERE h.uuid = i.uuid LIMIT 1) IS NULL"
        " ORDER BY i.n"
        " ON CONFLICT DO NOTHING"
        " RETURNING uuid"
        ")"
        " SELECT i.n FROM input i"
        " WHERE i.unique_key IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.uuid = i.uuid)"
        " AND NOT EXISTS (SELECT 1 FROM mulefarm.jobs j WHERE j.uuid = i.uuid)"
        " AND (SELECT 1 FROM mulefarm.history h WHERE h.uuid = i.uuid LIMIT 1) IS NULL",
        7, enqueue_types};

/* A batch of fresh jobs (see the top): the first six arrays. */
static const struct dbq__stmt enqueue_fresh_stmt = {
        DBQ__ENQUEUE_FRESH, "mulefarm_enqueue_fresh",
        "INSERT INTO mulefarm.jobs (uuid, farm, payload, priority, run_at, max_attempts)"
        " SELECT u, f, p, pr, CASE WHEN r = 0 THEN now() ELSE to_timestamp(r / 1000.0) END, m"
        " FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::int4[], $5::int8[], $6::int4[])"
        "  AS t(u, f, p, pr, r, m)",
        6, enqueue_types};

/* One fresh job (exec_one's parameters; $7, the unique key, is NULL). */
static const struct dbq__stmt enqueue1_fresh_stmt = {
        DBQ__ENQUEUE1_FRESH, "mulefarm_enqueue1_fresh",
        "INSERT INTO mulefarm.jobs (uuid, farm, payload, priority, run_at, max_attempts)"
        " VALUES ($1, $2, $3, $4, CASE WHEN $5 = 0 THEN now() ELSE to_timestamp($5 / 1000.0) END,"
        "  $6)",
        7,
        (const Oid[]){DBQ__UUIDOID, DBQ__TEXTOID, DBQ__BYTEAOID, DBQ__INT4OID, DBQ__INT8OID,
                      DBQ__INT4OID, DBQ__TEXTOID}};

/* One job, the common case of a web worker's farm_msg: a plain INSERT,
 * whose command tag says whether it inserted. When it did not, and the
 * job has a unique key, known_stmt tells a retry (the uuid is there) from
 * a held key. */
static const struct dbq__stmt enqueue1_stmt = {
        DBQ__ENQUEUE1, "mulefarm_enqueue1",
        "INSERT INTO mulefarm.jobs (uuid, farm, payload, priority, run_at, max_attempts,"
        " unique_key)"
        " SELECT $1, $2, $3, $4,"
        "  CASE WHEN $5 = 0 THEN now() ELSE to_timestamp($5 / 1000.0) END, $6, $7"
        " WHERE (SELECT 1 FROM mulefarm.history h WHERE h.uuid = $1 LIMIT 1) IS NULL"
        " ON CONFLICT DO NOTHING",
        7,
        (const Oid[]){DBQ__UUIDOID, DBQ__TEXTOID, DBQ__BYTEAOID, DBQ__INT4OID, DBQ__INT8OID,
                      DBQ__INT4OID, DBQ__TEXTOID}};

static const struct dbq__stmt known_stmt = {
        DBQ__KNOWN, "mulefarm_known",
        "SELECT EXISTS (SELECT 1 FROM mulefarm.jobs WHERE uuid = $1)"
        " OR EXISTS (SELECT 1 FROM mulefarm.history WHERE uuid = $1)",
        1, (const Oid[]){DBQ__UUIDOID}};

/* A UUIDv7 (RFC 9562): 48 bits of unix milliseconds, then random bits. */
static void uuid_v7(uuid_t u)
{
	struct timespec ts;
	uint64_t ms;

	uuid_generate_random(u);
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (int i = 0; i < 6; i++)
		u[i] = (unsigned char)(ms >> (40 - 8 * i));
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x70);
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
}

/* Checks job <i> and gives it its binary uuid (generating one if its
 * uuid is ""). *fresh becomes false unless the uuid was generated here and
 * the job has no unique key. */
static int check_job(struct dbq *q, struct dbq_new_job *job, size_t i, uuid_t u, bool *fresh,
                     const char *what)
{
	char channel[DBQ__CHANNEL_MAX + 1];

	if (dbq__channel(q, job->farm, channel, what) != DBQ_OK)
		return q->rc;
	if (job->payload == NULL && job->len > 0)
		return dbq__error(q, DBQ_EARG, "%s: job %zu: a payload of %zu bytes at NULL", what,
		                  i, job->len);
	if (job->len > INT32_MAX)
		return dbq__error(q, DBQ_EARG, "%s: job %zu: payload too large", what, i);
	if (job->run_at_ms < 0 || job->max_attempts < 0)
		return dbq__error(q, DBQ_EARG, "%s: job %zu: negative run_at_ms or max_attempts",
		                  what, i);
	if (job->uuid[0] != '\0' || job->unique_key != NULL)
		*fresh = false;
	if (job->uuid[0] == '\0') {
		uuid_v7(u);
		uuid_unparse_lower(u, job->uuid);
	} else if (uuid_parse(job->uuid, u) != 0) {
		return dbq__error(q, DBQ_EARG, "%s: job %zu: '%.36s' is not a uuid", what, i,
		                  job->uuid);
	}
	return DBQ_OK;
}

/* Encodes the batch into the handle's seven array buffers; *fresh: see
 * check_job. */
static int encode(struct dbq *q, struct dbq_new_job *jobs, size_t n, bool *fresh, const char *what)
{
	struct dbq__buf *a = q->arr;
	bool has_null = false;
	uuid_t u;
	int rc = DBQ_OK;

	for (size_t i = 0; i < n; i++)
		has_null = has_null || jobs[i].unique_key == NULL;
	rc |= dbq__arr_begin(&a[0], DBQ__UUIDOID, n, false);
	rc |= dbq__arr_begin(&a[1], DBQ__TEXTOID, n, false);
	rc |= dbq__arr_begin(&a[2], DBQ__BYTEAOID, n, false);
	rc |= dbq__arr_begin(&a[3], DBQ__INT4OID, n, false);
	rc |= dbq__arr_begin(&a[4], DBQ__INT8OID, n, false);
	rc |= dbq__arr_begin(&a[5], DBQ__INT4OID, n, false);
	rc |= dbq__arr_begin(&a[6], DBQ__TEXTOID, n, has_null);
	for (size_t i = 0; i < n && rc == DBQ_OK; i++) {
		struct dbq_new_job *j = &jobs[i];
		if (check_job(q, j, i, u, fresh, what) != DBQ_OK)
			return q->rc;
		rc |= dbq__arr_put(&a[0], u, sizeof(uuid_t));
		rc |= dbq__arr_put(&a[1], j->farm, strlen(j->farm));
		rc |= dbq__arr_put(&a[2], j->len ? j->payload : "", j->len);
		rc |= dbq__arr_put_i32(&a[3], j->priority);
		rc |= dbq__arr_put_i64(&a[4], j->run_at_ms);
		rc |= dbq__arr_put_i32(&a[5], j->max_attempts > 0 ? j->max_attempts : 5);
		rc |= dbq__arr_put(&a[6], j->unique_key, j->unique_key ? strlen(j->unique_key) : 0);
	}
	if (rc != DBQ_OK)
		return dbq__error(q, DBQ_ENOMEM, "%s: out of memory", what);
	return DBQ_OK;
}

/* Runs the statement; *skipped gets the number of jobs refused for their
 * unique key, whose uuid is set to "". */
static int insert(struct dbq *q, struct dbq_new_job *jobs, size_t n, size_t *skipped,
                  const char *what)
{
	const char *values[DBQ__NARRAYS];
	int lengths[DBQ__NARRAYS], formats[DBQ__NARRAYS];
	PGresult *res;
	bool fresh = true;

	*skipped = 0;
	if (encode(q, jobs, n, &fresh, what) != DBQ_OK)
		return q->rc;
	for (int i = 0; i < DBQ__NARRAYS; i++) {
		values[i] = q->arr[i].p;
		lengths[i] = (int)q->arr[i].len;
		formats[i] = 1;
	}
	res = dbq__exec(q, fresh ? &enqueue_fresh_stmt : &enqueue_stmt, values, lengths, formats,
	                false, what);
	if (res == NULL)
		return q->rc;
	for (int r = 0; r < PQntuples(res); r++) {
		long k = strtol(PQgetvalue(res, r, 0), NULL, 10);
		if (k >= 1 && (size_t)k <= n) {
			jobs[k - 1].uuid[0] = '\0';
			(*skipped)++;
		}
	}
	PQclear(res);
	return DBQ_OK;
}

/* Runs <s> with job <j> (binary uuid <u>) as its parameters; returns the
 * result, or NULL with the error recorded. */
static PGresult *exec_one(struct dbq *q, const struct dbq__stmt *s, const struct dbq_new_job *j,
                          const uuid_t u, const char *what)
{
	char priority[16], run_at[24], max_attempts[16];
	const char *values[7] = {(const char *)u, j->farm, j->len ? j->payload : "",
	                         priority,        run_at,  max_attempts,
	                         j->unique_key};
	int lengths[7] = {sizeof(uuid_t), 0, (int)j->len, 0, 0, 0, 0};
	int formats[7] = {1, 0, 1, 0, 0, 0, 0};

	snprintf(priority, sizeof priority, "%d", j->priority);
	snprintf(run_at, sizeof run_at, "%lld", (long long)j->run_at_ms);
	snprintf(max_attempts, sizeof max_attempts, "%d",
	         j->max_attempts > 0 ? j->max_attempts : 5);
	return dbq__exec(q, s, values, lengths, formats, false, what);
}

int dbq_enqueue(struct dbq *q, struct dbq_new_job *job)
{
	PGresult *res;
	uuid_t u;
	bool inserted, known, fresh = true;

	if (check_job(q, job, 0, u, &fresh, "enqueue") != DBQ_OK)
		return q->rc;
	res = exec_one(q, fresh ? &enqueue1_fresh_stmt : &enqueue1_stmt, job, u, "enqueue");
	if (res == NULL)
		return q->rc;
	inserted = strcmp(PQcmdTuples(res), "1") == 0;
	PQclear(res);
	if (inserted || job->unique_key == NULL)
		return DBQ_OK; /* without a key, only an existing uuid stops the insert */
	res = exec_one(q, &known_stmt, job, u, "enqueue");
	if (res == NULL)
		return q->rc;
	known = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (known)
		return DBQ_OK;
	job->uuid[0] = '\0';
	return dbq__error(q, DBQ_EDUPLICATE, "enqueue: %s (farm %s, key %s)",
	                  dbq_strerror(DBQ_EDUPLICATE), job->farm, job->unique_key);
}

int dbq_enqueue_many(struct dbq *q, struct dbq_new_job *jobs, size_t n)
{
	size_t skipped;

	if (n == 0)
		return dbq__ok(q);
	if (n > INT32_MAX)
		return dbq__error(q, DBQ_EARG, "enqueue_many: too many jobs");
	if (insert(q, jobs, n, &skipped, "enqueue_many") != DBQ_OK)
		return q->rc;
	if (skipped)
		return dbq__error(
		        q, DBQ_EDUPLICATE,
		        "enqueue_many: %zu of %zu jobs refused (their uuid is now \"\"): %s",
		        skipped, n, dbq_strerror(DBQ_EDUPLICATE));
	return DBQ_OK;
}
