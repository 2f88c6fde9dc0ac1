/*
 * stats.c - looking at the queue: counts per farm, one job's state, and
 * pruning the history.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "internal.h"

/* The history counts scan that farm's retained rows: meant for a status
 * line every few seconds, not for every claim. */
static const struct dbq__stmt stats_stmt = {
        DBQ__STATS, "mulefarm_stats",
        "SELECT"
        " count(*) FILTER (WHERE state = 'queued' AND last_error IS NULL),"
        " count(*) FILTER (WHERE state = 'running'),"
        " count(*) FILTER (WHERE state = 'queued' AND last_error IS NOT NULL),"
        " (SELECT count(*) FROM mulefarm.history h"
        "  WHERE h.state = 'discarded' AND ($1::text IS NULL OR h.farm = $1)),"
        " (SELECT count(*) FROM mulefarm.history h"
        "  WHERE h.state = 'done' AND ($1::text IS NULL OR h.farm = $1)),"
        " coalesce(extract(epoch FROM now() - min(run_at)"
        "  FILTER (WHERE state = 'queued' AND run_at <= now())), 0),"
        " count(DISTINCT handler) FILTER (WHERE state = 'running')"
        " FROM mulefarm.jobs WHERE $1::text IS NULL OR farm = $1",
        1, (const Oid[]){DBQ__TEXTOID}};

/* A queued job that failed before (last_error set) is reported as
 * "failed" until it runs again. */
static const struct dbq__stmt job_state_stmt = {
        DBQ__JOB_STATE, "mulefarm_job_state",
        "(SELECT CASE WHEN state = 'queued' AND last_error IS NOT NULL THEN 'failed'"
        "  ELSE state END, attempt FROM mulefarm.jobs WHERE uuid = $1)"
        " UNION ALL"
        " (SELECT state, attempt FROM mulefarm.history WHERE uuid = $1"
        "  ORDER BY finished_at DESC LIMIT 1)"
        " LIMIT 1",
        1, (const Oid[]){DBQ__UUIDOID}};

static const struct dbq__stmt prune_stmt = {
        DBQ__PRUNE, "mulefarm_prune",
        "DELETE FROM mulefarm.history WHERE finished_at < now() - $1 * interval '1 second'", 1,
        (const Oid[]){DBQ__INT4OID}};

int dbq_stats(struct dbq *q, const char *farm, struct dbq_stats *st)
{
	const char *values[1] = {farm};
	PGresult *res;

	memset(st, 0, sizeof *st);
	res = dbq__exec(q, &stats_stmt, values, NULL, NULL, false, "stats");
	if (res == NULL)
		return q->rc;
	st->queued = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	st->running = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	st->failed = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	st->discarded = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	st->done_retained = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	st->oldest_queued_s = strtod(PQgetvalue(res, 0, 5), NULL);
	st->handlers = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
	PQclear(res);
	return DBQ_OK;
}

int dbq_job_state(struct dbq *q, const char *uuid, char *state, int *attempt)
{
	const char *values[1] = {uuid};
	PGresult *res;
	uuid_t u;

	state[0] = '\0';
	if (attempt)
		*attempt = 0;
	if (uuid == NULL || uuid_parse(uuid, u) != 0)
		return dbq__error(q, DBQ_EARG, "job_state: '%.36s' is not a uuid",
		                  uuid ? uuid : "(null)");
	res = dbq__exec(q, &job_state_stmt, values, NULL, NULL, false, "job_state");
	if (res == NULL)
		return q->rc;
	if (PQntuples(res) > 0) {
		snprintf(state, 16, "%s", PQgetvalue(res, 0, 0));
		if (attempt)
			*attempt = atoi(PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return DBQ_OK;
}

int dbq_prune(struct dbq *q, int retention_s, size_t *n)
{
	char retention[16];
	const char *values[1] = {retention};
	PGresult *res;

	*n = 0;
	if (retention_s < 0)
		return dbq__error(q, DBQ_EARG, "prune: a negative retention");
	snprintf(retention, sizeof retention, "%d", retention_s);
	res = dbq__exec(q, &prune_stmt, values, NULL, NULL, false, "prune");
	if (res == NULL)
		return q->rc;
	*n = strtoul(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return DBQ_OK;
}
