/*
 * conn.c - the handle: connect and reconnect, errors (codes from the
 * DBQ_ERRORS X-macro, the message kept on the handle), and running
 * statements with a deadline.
 *
 * Every statement is sent asynchronously and awaited with poll(), so that
 * a database that stops answering costs at most the handle's timeout
 * (DBQ_ETIMEOUT) instead of hanging a handler: the query is cancelled and
 * the connection abandoned (its state is unknown), and the caller
 * reconnects. Enqueue stays safe to retry after that: it is idempotent by
 * uuid.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

const char *dbq_strerror(int rc)
{
	switch (rc) {
#define X(name, value, text)                                                                       \
	case value:                                                                                \
		return text;
		DBQ_ERRORS(X)
#undef X
	}
	return "unknown error";
}

int64_t dbq__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int dbq__error(struct dbq *q, int rc, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	q->rc = rc;
	va_start(ap, fmt);
	vsnprintf(q->errmsg, sizeof q->errmsg, fmt, ap);
	va_end(ap);
	/* Server and libpq messages end with newlines and may hold several
	 * lines (DETAIL, HINT): one line reads better in a log. */
	len = strlen(q->errmsg);
	while (len > 0 && (q->errmsg[len - 1] == '\n' || q->errmsg[len - 1] == ' '))
		q->errmsg[--len] = '\0';
	for (char *p = q->errmsg; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return rc;
}

int dbq__ok(struct dbq *q)
{
	q->rc = DBQ_OK;
	return DBQ_OK;
}

int dbq_status(const struct dbq *q)
{
	return q ? q->rc : DBQ_ENOMEM;
}

const char *dbq_errmsg(const struct dbq *q)
{
	if (q == NULL)
		return dbq_strerror(DBQ_ENOMEM);
	return q->errmsg[0] ? q->errmsg : dbq_strerror(q->rc);
}

int dbq_socket(const struct dbq *q)
{
	if (q == NULL || q->conn == NULL || q->broken || PQstatus(q->conn) != CONNECTION_OK)
		return -1;
	return PQsocket(q->conn);
}

/* The library never writes to stderr: notices (e.g. "schema already
 * exists, skipping") are dropped. */
static void ignore_notice(void *arg, const char *message)
{
}

/* Opens q->conn from q->conninfo. Our defaults come before the caller's
 * conninfo so that it may override them; <timeout_ms> comes after. */
static int open_conn(struct dbq *q)
{
	char timeout[16];
	const char *keys[8], *vals[8];
	int n = 0;

	keys[n] = "fallback_application_name", vals[n++] = "mulefarm";
	/* Notice a dead peer in about 25 s rather than the kernel's 2 h. */
	keys[n] = "keepalives_idle", vals[n++] = "10";
	keys[n] = "keepalives_interval", vals[n++] = "5";
	keys[n] = "keepalives_count", vals[n++] = "3";
	keys[n] = "dbname", vals[n++] = q->conninfo;
	if (q->timeout_ms > 0) {
		/* libpq counts whole seconds (and takes 1 as 2). */
		snprintf(timeout, sizeof timeout, "%d", (q->timeout_ms + 999) / 1000);
		keys[n] = "connect_timeout", vals[n++] = timeout;
	}
	keys[n] = NULL, vals[n] = NULL;

	PQfinish(q->conn);
	q->prepared = 0;
	q->broken = false;
	q->conn = PQconnectdbParams(keys, vals, 1);
	if (q->conn == NULL)
		return dbq__error(q, DBQ_ENOMEM, "connect: out of memory");
	if (PQstatus(q->conn) != CONNECTION_OK) {
		q->broken = true;
		return dbq__error(q, DBQ_ECONNECT, "%s: %s", dbq_strerror(DBQ_ECONNECT),
		                  PQerrorMessage(q->conn));
	}
	PQsetNoticeProcessor(q->conn, ignore_notice, NULL);
	if (PQsetnonblocking(q->conn, 1) != 0) {
		q->broken = true;
		return dbq__error(q, DBQ_ECONNECT, "%s: %s", dbq_strerror(DBQ_ECONNECT),
		                  PQerrorMessage(q->conn));
	}
	/* The statements are written to plan well whatever the parameters
	 * (arrays through InitPlans, history probes as scalar subqueries), so
	 * the generic plan is always right, while PostgreSQL would otherwise
	 * re-plan some of them on every call (planning the single-job
	 * enqueue costs more than running it). */
	if (dbq__simple(q, "SET plan_cache_mode = force_generic_plan", false, "connect") !=
	    DBQ_OK) {
		q->broken = true;
		return dbq__error(q, DBQ_ECONNECT, "%s: %s", dbq_strerror(DBQ_ECONNECT), q->errmsg);
	}
	return dbq__ok(q);
}

struct dbq *dbq_connect(const char *conninfo, int timeout_ms)
{
	struct dbq *q = calloc(1, sizeof *q);

	if (q == NULL)
		return NULL;
	q->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
	q->conninfo = strdup(conninfo ? conninfo : "");
	if (q->conninfo == NULL) {
		free(q);
		return NULL;
	}
	open_conn(q);
	return q;
}

static int relisten(struct dbq *q);

int dbq_reconnect(struct dbq *q)
{
	int rc = open_conn(q);

	if (rc != DBQ_OK)
		return rc;
	return relisten(q);
}

void dbq_close(struct dbq *q)
{
	if (q == NULL)
		return;
	PQfinish(q->conn);
	for (size_t i = 0; i < q->nlisten; i++)
		free(q->listen[i]);
	free(q->listen);
	for (size_t i = 0; i < q->nnotes; i++)
		free(q->notes[i].farm);
	free(q->notes);
	for (size_t i = 0; i < DBQ__NARRAYS; i++)
		dbq__buf_free(&q->arr[i]);
	free(q->conninfo);
	free(q);
}

int dbq__usable(struct dbq *q, const char *what)
{
	if (q->conn == NULL)
		return dbq__error(q, DBQ_ECONNLOST, "%s: not connected (out of memory at connect)",
		                  what);
	if (q->broken || PQstatus(q->conn) != CONNECTION_OK)
		return dbq__error(q, DBQ_ECONNLOST, "%s: %s (call dbq_reconnect)", what,
		                  dbq_strerror(DBQ_ECONNLOST));
	return DBQ_OK;
}

/* The connection is gone or in an unknown state: record <rc>, and keep
 * the handle refusing work until dbq_reconnect(). */
static int lost(struct dbq *q, int rc, const char *what, const char *msg)
{
	q->broken = true;
	return dbq__error(q, rc, "%s: %s: %s", what, dbq_strerror(rc), msg);
}

/* Waits until the socket is readable (or writable too if <out>), or the
 * deadline passes (-1: none). 1 ready, 0 timed out, -1 poll() failed. */
static int wait_socket(struct dbq *q, bool out, int64_t deadline)
{
	struct pollfd p = {.fd = PQsocket(q->conn), .events = POLLIN | (out ? POLLOUT : 0)};
	int timeout, r;

	for (;;) {
		timeout = -1;
		if (deadline >= 0) {
			int64_t left = deadline - dbq__now_ms();
			if (left <= 0)
				return 0;
			timeout = left > INT_MAX ? INT_MAX : (int)left;
		}
		r = poll(&p, 1, timeout);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Cancels the running query (best effort) and abandons the connection. */
static int timed_out(struct dbq *q, const char *what)
{
	PGcancel *c = PQgetCancel(q->conn);
	char buf[256];

	if (c != NULL) {
		PQcancel(c, buf, sizeof buf);
		PQfreeCancel(c);
	}
	return lost(q, DBQ_ETIMEOUT, what, "no answer within the handle's timeout");
}

/* Classifies a failed result: the connection's loss (or the server
 * shutting down: SQLSTATE class 08, 57P0x) versus a failed query. */
static int failed(struct dbq *q, PGresult *res, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(q->conn);

	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(q->conn);
	if (PQstatus(q->conn) != CONNECTION_OK ||
	    (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)))
		return lost(q, DBQ_ECONNLOST, what, msg);
	if (state && strcmp(state, "23505") == 0)
		return dbq__error(q, DBQ_EDUPLICATE, "%s: %s", what, msg);
	return dbq__error(q, DBQ_EQUERY, "%s: %s", what, msg);
}

/* Flushes what was sent and collects the results of one command: returns
 * the last result, or NULL with the error recorded (the first failing
 * result wins). */
static PGresult *await(struct dbq *q, int64_t deadline, const char *what)
{
	PGresult *res, *last = NULL, *bad = NULL;
	int r;

	while ((r = PQflush(q->conn)) == 1) {
		int w = wait_socket(q, true, deadline);
		if (w == 0)
			return timed_out(q, what), NULL;
		if (w < 0)
			return lost(q, DBQ_ECONNLOST, what, strerror(errno)), NULL;
		if (PQconsumeInput(q->conn) == 0)
			return failed(q, NULL, what), NULL;
	}
	if (r == -1)
		return failed(q, NULL, what), NULL;
	for (;;) {
		while (PQisBusy(q->conn)) {
			int w = wait_socket(q, false, deadline);
			if (w == 0) {
				PQclear(last);
				PQclear(bad);
				return timed_out(q, what), NULL;
			}
			if (w < 0 || PQconsumeInput(q->conn) == 0) {
				PQclear(last);
				PQclear(bad);
				if (w < 0)
					return lost(q, DBQ_ECONNLOST, what, strerror(errno)), NULL;
				return failed(q, NULL, what), NULL;
			}
		}
		res = PQgetResult(q->conn);
		if (res == NULL)
			break;
		switch (PQresultStatus(res)) {
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
		case PGRES_EMPTY_QUERY:
			PQclear(last);
			last = res;
			break;
		default:
			if (bad == NULL)
				bad = res;
			else
				PQclear(res);
		}
		if (PQstatus(q->conn) != CONNECTION_OK)
			break;
	}
	if (bad != NULL) {
		PQclear(last);
		failed(q, bad, what);
		PQclear(bad);
		return NULL;
	}
	if (last == NULL)
		failed(q, NULL, what);
	return last;
}

static int64_t deadline_of(struct dbq *q, bool none)
{
	return none || q->timeout_ms <= 0 ? -1 : dbq__now_ms() + q->timeout_ms;
}

static int prepare(struct dbq *q, const struct dbq__stmt *s, int64_t deadline, const char *what)
{
	PGresult *res;

	if (!PQsendPrepare(q->conn, s->name, s->sql, s->nparams, s->types))
		return failed(q, NULL, what);
	res = await(q, deadline, what);
	if (res == NULL)
		return q->rc;
	PQclear(res);
	q->prepared |= 1u << s->id;
	return DBQ_OK;
}

PGresult *dbq__exec(struct dbq *q, const struct dbq__stmt *s, const char *const *values,
                    const int *lengths, const int *formats, bool binary, const char *what)
{
	int64_t deadline = deadline_of(q, false);
	PGresult *res;

	if (dbq__usable(q, what) != DBQ_OK)
		return NULL;
	if (!(q->prepared & (1u << s->id)) && prepare(q, s, deadline, what) != DBQ_OK)
		return NULL;
	if (!PQsendQueryPrepared(q->conn, s->name, s->nparams, values, lengths, formats, binary)) {
		failed(q, NULL, what);
		return NULL;
	}
	res = await(q, deadline, what);
	if (res != NULL)
		dbq__ok(q);
	return res;
}

/* Reads a pipeline's results up to its Sync, discarding them. */
static int drain_to_sync(struct dbq *q, int64_t deadline, const char *what)
{
	int nulls = 0;

	for (;;) {
		while (PQisBusy(q->conn)) {
			int w = wait_socket(q, false, deadline);
			if (w == 0)
				return timed_out(q, what);
			if (w < 0)
				return lost(q, DBQ_ECONNLOST, what, strerror(errno));
			if (PQconsumeInput(q->conn) == 0)
				return failed(q, NULL, what);
		}
		PGresult *res = PQgetResult(q->conn);
		if (res == NULL) {
			if (PQstatus(q->conn) != CONNECTION_OK)
				return failed(q, NULL, what);
			/* One NULL ends a statement's results; two in a row:
			 * nothing more is coming, the Sync was lost. */
			if (++nulls == 2)
				return lost(q, DBQ_ECONNLOST, what, "pipeline out of step");
			continue;
		}
		nulls = 0;
		ExecStatusType st = PQresultStatus(res);
		PQclear(res);
		if (st == PGRES_PIPELINE_SYNC)
			return DBQ_OK;
	}
}

int dbq__exec_pipeline(struct dbq *q, size_t n, const struct dbq__call *calls, PGresult **res,
                       const char *what)
{
	int64_t deadline = deadline_of(q, false);
	int rc = DBQ_OK;
	size_t got = 0;

	for (size_t i = 0; i < n; i++)
		res[i] = NULL;
	if (dbq__usable(q, what) != DBQ_OK)
		return q->rc;
	/* Preparing is a round trip of its own, once per connection. */
	for (size_t i = 0; i < n; i++) {
		const struct dbq__stmt *s = calls[i].s;
		if (!(q->prepared & (1u << s->id)) && prepare(q, s, deadline, what) != DBQ_OK)
			return q->rc;
	}
	if (!PQenterPipelineMode(q->conn))
		return failed(q, NULL, what);
	for (size_t i = 0; i < n; i++) {
		const struct dbq__call *c = &calls[i];
		if (!PQsendQueryPrepared(q->conn, c->s->name, c->s->nparams, c->values, c->lengths,
		                         c->formats, c->binary))
			return lost(q, DBQ_ECONNLOST, what, PQerrorMessage(q->conn));
	}
	if (!PQpipelineSync(q->conn))
		return lost(q, DBQ_ECONNLOST, what, PQerrorMessage(q->conn));
	/* await() flushes, and returns one statement's result: in pipeline
	 * mode PQgetResult() gives NULL after each. After a failure the rest
	 * are PGRES_PIPELINE_ABORTED: drained, so that the first error stands. */
	for (; got < n; got++) {
		res[got] = await(q, deadline, what);
		if (res[got] == NULL) {
			rc = q->rc;
			break;
		}
	}
	if (!q->broken) {
		int drc = drain_to_sync(q, deadline, what);
		if (drc != DBQ_OK)
			rc = drc;
	}
	if (!q->broken && !PQexitPipelineMode(q->conn))
		rc = lost(q, DBQ_ECONNLOST, what, PQerrorMessage(q->conn));
	if (rc != DBQ_OK) {
		for (size_t i = 0; i < got; i++) {
			PQclear(res[i]);
			res[i] = NULL;
		}
		return rc;
	}
	return dbq__ok(q);
}

PGresult *dbq__simple_result(struct dbq *q, const char *sql, bool no_deadline, const char *what)
{
	PGresult *res;

	if (dbq__usable(q, what) != DBQ_OK)
		return NULL;
	if (!PQsendQuery(q->conn, sql)) {
		failed(q, NULL, what);
		return NULL;
	}
	res = await(q, deadline_of(q, no_deadline), what);
	if (res != NULL)
		dbq__ok(q);
	return res;
}

int dbq__simple(struct dbq *q, const char *sql, bool no_deadline, const char *what)
{
	PGresult *res = dbq__simple_result(q, sql, no_deadline, what);

	if (res == NULL)
		return q->rc;
	PQclear(res);
	return DBQ_OK;
}

int dbq__channel(struct dbq *q, const char *farm, char *out, const char *what)
{
	size_t len = farm ? strlen(farm) : 0;

	if (len == 0 || len > DBQ__FARM_MAX)
		return dbq__error(q, DBQ_EARG, "%s: a farm name has 1 to %d bytes", what,
		                  DBQ__FARM_MAX);
	memcpy(out, "mulefarm:", 9);
	memcpy(out + 9, farm, len + 1);
	return DBQ_OK;
}

/* LISTENs again on every farm of q->listen (after a reconnect). */
static int relisten(struct dbq *q)
{
	char channel[DBQ__CHANNEL_MAX + 1];
	char *sql = NULL, *id;
	size_t len = 0, cap = 0;
	int rc = DBQ_OK;

	if (q->nlisten == 0)
		return DBQ_OK;
	for (size_t i = 0; i < q->nlisten; i++) {
		if (dbq__channel(q, q->listen[i], channel, "listen") != DBQ_OK)
			goto fail;
		id = PQescapeIdentifier(q->conn, channel, strlen(channel));
		if (id == NULL) {
			rc = dbq__error(q, DBQ_ENOMEM, "listen: out of memory");
			goto fail;
		}
		size_t need = len + strlen(id) + 10;
		if (need > cap) {
			char *p = realloc(sql, need * 2);
			if (p == NULL) {
				PQfreemem(id);
				rc = dbq__error(q, DBQ_ENOMEM, "listen: out of memory");
				goto fail;
			}
			sql = p;
			cap = need * 2;
		}
		len += (size_t)sprintf(sql + len, "LISTEN %s;", id);
		PQfreemem(id);
	}
	rc = dbq__simple(q, sql, false, "listen");
fail:
	free(sql);
	return rc == DBQ_OK ? q->rc : rc;
}

/* dbq_listen lives here because reconnect shares relisten(). */
int dbq_listen(struct dbq *q, const char *const *farms, size_t n)
{
	char channel[DBQ__CHANNEL_MAX + 1];
	size_t old = q->nlisten;
	char **l;

	for (size_t i = 0; i < n; i++)
		if (dbq__channel(q, farms[i], channel, "listen") != DBQ_OK)
			return q->rc;
	l = realloc(q->listen, (q->nlisten + n) * sizeof *l);
	if (l == NULL && q->nlisten + n > 0)
		return dbq__error(q, DBQ_ENOMEM, "listen: out of memory");
	q->listen = l;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < q->nlisten; j++)
			dup = dup || strcmp(q->listen[j], farms[i]) == 0;
		if (dup)
			continue;
		q->listen[q->nlisten] = strdup(farms[i]);
		if (q->listen[q->nlisten] == NULL)
			return dbq__error(q, DBQ_ENOMEM, "listen: out of memory");
		q->nlisten++;
	}
	if (q->nlisten == old)
		return dbq__usable(q, "listen") == DBQ_OK ? dbq__ok(q) : q->rc;
	return relisten(q);
}
