/*
 * notify.c - wake-ups: NOTIFY after an enqueue committed, and waiting for
 * one on the LISTEN channels (dbq_listen is in conn.c, with reconnect).
 *
 * A NOTIFY is sent in a transaction of its own, after the jobs' commit:
 * it writes no WAL, so it never waits for a flush, and enqueueing
 * transactions do not take the cluster-wide notify lock at all. Producers
 * that enqueue often coalesce: dbq_notify_coalesced() sends at most one
 * NOTIFY per farm per window and defers the rest to dbq_notify_flush(),
 * so a burst of enqueues costs one leading and one trailing NOTIFY.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const struct dbq__stmt notify_stmt = {
        DBQ__NOTIFY, "mulefarm_notify", "SELECT pg_notify($1, '')", 1, (const Oid[]){DBQ__TEXTOID}};

int dbq_notify(struct dbq *q, const char *farm)
{
	char channel[DBQ__CHANNEL_MAX + 1];
	const char *values[1] = {channel};
	PGresult *res;

	if (dbq__channel(q, farm, channel, "notify") != DBQ_OK)
		return q->rc;
	res = dbq__exec(q, &notify_stmt, values, NULL, NULL, false, "notify");
	if (res == NULL)
		return q->rc;
	PQclear(res);
	return DBQ_OK;
}

static struct dbq__note *note_of(struct dbq *q, const char *farm)
{
	struct dbq__note *n;

	for (size_t i = 0; i < q->nnotes; i++)
		if (strcmp(q->notes[i].farm, farm) == 0)
			return &q->notes[i];
	n = realloc(q->notes, (q->nnotes + 1) * sizeof *n);
	if (n == NULL)
		return NULL;
	q->notes = n;
	n = &q->notes[q->nnotes];
	n->farm = strdup(farm);
	if (n->farm == NULL)
		return NULL;
	n->last_ms = INT64_MIN / 2;
	n->pending = false;
	q->nnotes++;
	return n;
}

int dbq_notify_coalesced(struct dbq *q, const char *farm, int window_ms)
{
	char channel[DBQ__CHANNEL_MAX + 1];
	struct dbq__note *n;
	int64_t now = dbq__now_ms();
	int rc;

	if (dbq__channel(q, farm, channel, "notify") != DBQ_OK)
		return q->rc;
	n = note_of(q, farm);
	if (n == NULL)
		return dbq__error(q, DBQ_ENOMEM, "notify: out of memory");
	n->window_ms = window_ms;
	if (now - n->last_ms < window_ms) {
		n->pending = true;
		return dbq__ok(q);
	}
	rc = dbq_notify(q, farm);
	if (rc == DBQ_OK) {
		n->last_ms = now;
		n->pending = false;
	} else {
		n->pending = true; /* flushed after a reconnect */
	}
	return rc;
}

int dbq_notify_flush(struct dbq *q, int *next_ms)
{
	int64_t now = dbq__now_ms(), next = -1;

	*next_ms = -1;
	for (size_t i = 0; i < q->nnotes; i++) {
		struct dbq__note *n = &q->notes[i];
		if (!n->pending)
			continue;
		if (now - n->last_ms >= n->window_ms) {
			int rc = dbq_notify(q, n->farm);
			if (rc != DBQ_OK)
				return rc;
			n->last_ms = now;
			n->pending = false;
		} else {
			int64_t due = n->last_ms + n->window_ms - now;
			if (next < 0 || due < next)
				next = due;
		}
	}
	*next_ms = (int)next;
	return dbq__ok(q);
}

/* Takes every notification libpq has buffered; returns how many. */
static int drain(struct dbq *q)
{
	PGnotify *n;
	int count = 0;

	while ((n = PQnotifies(q->conn)) != NULL) {
		PQfreemem(n);
		count++;
	}
	return count;
}

int dbq_wait(struct dbq *q, int timeout_ms)
{
	int64_t deadline = dbq__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct pollfd p;
	int r;

	if (dbq__usable(q, "wait") != DBQ_OK)
		return q->rc;
	/* Notifications that arrived during earlier calls count too. */
	if (drain(q) > 0) {
		dbq__ok(q);
		return 1;
	}
	p.fd = PQsocket(q->conn);
	p.events = POLLIN;
	for (;;) {
		int64_t left = deadline - dbq__now_ms();
		if (left < 0)
			left = 0;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR) {
			dbq__ok(q); /* let the caller look at its signal flags */
			return 0;
		}
		if (r < 0)
			return dbq__error(q, DBQ_ECONNLOST, "wait: poll() failed: %s",
			                  strerror(errno));
		if (r > 0) {
			if (PQconsumeInput(q->conn) == 0 || PQstatus(q->conn) != CONNECTION_OK) {
				q->broken = true;
				return dbq__error(q, DBQ_ECONNLOST, "wait: %s: %s",
				                  dbq_strerror(DBQ_ECONNLOST),
				                  PQerrorMessage(q->conn));
			}
			if (drain(q) > 0) {
				dbq__ok(q);
				return 1;
			}
		}
		if (left == 0) {
			dbq__ok(q);
			return 0;
		}
	}
}
