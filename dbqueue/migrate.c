/*
 * migrate.c - applies the embedded sql/NNN_*.sql files.
 *
 * The common case (every host starting with an up-to-date schema) reads
 * the version table and takes no lock. Otherwise the migrations run under
 * a session advisory lock, so hosts starting together apply them one at a
 * time: each re-reads the versions once it holds the lock, and applies
 * what is still missing, each file in its own transaction together with
 * its row in mulefarm.schema_version. A crash mid-way rolls that file back
 * (and the lock goes with the session).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* "mulefrm" in ASCII: the advisory lock of schema changes. */
#define MIGRATE_LOCK "30809880879592045"

/* The highest applied version (0: none; the table may not exist yet),
 * or -1 with the error recorded. */
static int applied_version(struct dbq *q)
{
	PGresult *res;
	int v = 0;

	res = dbq__simple_result(q, "SELECT to_regclass('mulefarm.schema_version') IS NOT NULL",
	                         true, "migrate");
	if (res == NULL)
		return -1;
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		PQclear(res);
		res = dbq__simple_result(q, "SELECT max(version) FROM mulefarm.schema_version",
		                         true, "migrate");
		if (res == NULL)
			return -1;
		v = PQgetisnull(res, 0, 0) ? 0 : atoi(PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return v;
}

static bool is_applied(PGresult *versions, int version)
{
	for (int i = 0; i < PQntuples(versions); i++)
		if (atoi(PQgetvalue(versions, i, 0)) == version)
			return true;
	return false;
}

/* Applies migration <m> in one transaction. */
static int apply(struct dbq *q, const struct dbq__migration *m)
{
	char what[128], sql[256];
	int rc;

	snprintf(what, sizeof what, "migrate %s", m->name);
	rc = dbq__simple(q, "BEGIN", true, what);
	if (rc == DBQ_OK)
		rc = dbq__simple(q, m->sql, true, what);
	if (rc == DBQ_OK) {
		snprintf(sql, sizeof sql,
		         "INSERT INTO mulefarm.schema_version (version, name) VALUES (%d, '%s')",
		         m->version, m->name);
		rc = dbq__simple(q, sql, true, what);
	}
	if (rc == DBQ_OK)
		rc = dbq__simple(q, "COMMIT", true, what);
	if (rc != DBQ_OK && !q->broken) {
		char msg[sizeof q->errmsg];
		memcpy(msg, q->errmsg, sizeof msg);
		dbq__simple(q, "ROLLBACK", true, what);
		dbq__error(q, rc, "%s", msg);
	}
	return rc;
}

static int migrate_locked(struct dbq *q)
{
	const int latest = dbq__migrations[dbq__nmigrations - 1].version;
	PGresult *versions;
	int rc;

	rc = dbq__simple(q,
	                 "CREATE SCHEMA IF NOT EXISTS mulefarm; "
	                 "CREATE TABLE IF NOT EXISTS mulefarm.schema_version ("
	                 "version integer PRIMARY KEY, name text NOT NULL, "
	                 "applied_at timestamptz NOT NULL DEFAULT now())",
	                 true, "migrate");
	if (rc != DBQ_OK)
		return rc;
	versions = dbq__simple_result(q, "SELECT version FROM mulefarm.schema_version", true,
	                              "migrate");
	if (versions == NULL)
		return q->rc;
	for (int i = 0; i < PQntuples(versions); i++)
		if (atoi(PQgetvalue(versions, i, 0)) > latest) {
			PQclear(versions);
			return dbq__error(
			        q, DBQ_ESCHEMA,
			        "migrate: %s (it has version %s, this program knows up to %d)",
			        dbq_strerror(DBQ_ESCHEMA), PQgetvalue(versions, i, 0), latest);
		}
	for (size_t i = 0; i < dbq__nmigrations && rc == DBQ_OK; i++)
		if (!is_applied(versions, dbq__migrations[i].version))
			rc = apply(q, &dbq__migrations[i]);
	PQclear(versions);
	return rc;
}

int dbq_migrate(struct dbq *q)
{
	const int latest = dbq__migrations[dbq__nmigrations - 1].version;
	int v, rc;

	v = applied_version(q);
	if (v < 0)
		return q->rc;
	if (v > latest)
		return dbq__error(q, DBQ_ESCHEMA,
		                  "migrate: %s (it has version %d, this program knows up to %d)",
		                  dbq_strerror(DBQ_ESCHEMA), v, latest);
	if (v == latest)
		return dbq__ok(q);

	rc = dbq__simple(q, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", true, "migrate");
	if (rc != DBQ_OK)
		return rc;
	rc = migrate_locked(q);
	if (q->broken)
		return rc; /* the session, and the lock with it, is gone */
	if (rc == DBQ_OK)
		return dbq__simple(q, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", true,
		                   "migrate");
	{
		char msg[sizeof q->errmsg];
		memcpy(msg, q->errmsg, sizeof msg);
		dbq__simple(q, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", true, "migrate");
		dbq__error(q, rc, "%s", msg);
	}
	return rc;
}
