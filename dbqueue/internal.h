/*
 * internal.h - what the dbqueue/ modules share: the handle's body, the
 * prepared-statement table, query execution with a deadline, errors, and
 * the binary encoding of array parameters. Not installed; unit tests
 * include it to reach the connection.
 */
#ifndef DBQUEUE_INTERNAL_H
#define DBQUEUE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "mulefarm/dbqueue.h"

/* One bit of dbq.prepared each: a statement is prepared on first use on
 * each connection (and again after a reconnect). */
enum dbq__stmt_id {
	DBQ__ENQUEUE,
	DBQ__ENQUEUE1,
	DBQ__ENQUEUE_FRESH,
	DBQ__ENQUEUE1_FRESH,
	DBQ__KNOWN,
	DBQ__CLAIM,
	DBQ__COMPLETE,
	DBQ__COMPLETE_DROP,
	DBQ__FAIL,
	DBQ__RELEASE,
	DBQ__RENEW,
	DBQ__REQUEUE,
	DBQ__NOTIFY,
	DBQ__STATS,
	DBQ__JOB_STATE,
	DBQ__PRUNE,
	DBQ__NSTMT
};

struct dbq__stmt {
	enum dbq__stmt_id id;
	const char *name; /* server-side name */
	const char *sql;
	int nparams;
	const Oid *types; /* NULL: inferred by the server */
};

/* A growable byte buffer (array parameters), reused across calls. */
struct dbq__buf {
	char *p;
	size_t len, cap;
};

#define DBQ__NARRAYS 7

/* A farm's coalesced NOTIFY state (dbq_notify_coalesced). */
struct dbq__note {
	char *farm;
	int64_t last_ms; /* monotonic time of the last NOTIFY sent */
	int window_ms;
	bool pending;
};

struct dbq {
	PGconn *conn;      /* NULL when the last connect ran out of memory */
	char *conninfo;    /* what dbq_reconnect connects with */
	int timeout_ms;    /* connect and per-call deadline; 0: none */
	int rc;            /* dbq_status() */
	bool broken;       /* lost or abandoned: only dbq_reconnect helps */
	bool no_history;   /* dbq_set_history(q, false): completions delete */
	int64_t churn;     /* jobs finished through this handle since its last VACUUM */
	uint32_t prepared; /* bit (1 << dbq__stmt_id) */
	char **listen;     /* farms LISTENed to, re-LISTENed on reconnect */
	size_t nlisten;
	struct dbq__note *notes;
	size_t nnotes;
	struct dbq__buf arr[DBQ__NARRAYS];
	char errmsg[512];
};

/* Type oids (pg_type.h is server-side only). */
#define DBQ__BOOLOID    16
#define DBQ__INT4OID    23
#define DBQ__INT8OID    20
#define DBQ__TEXTOID    25
#define DBQ__BYTEAOID   17
#define DBQ__UUIDOID    2950
#define DBQ__INT4ARRAY  1007
#define DBQ__INT8ARRAY  1016
#define DBQ__TEXTARRAY  1009
#define DBQ__BYTEAARRAY 1001
#define DBQ__UUIDARRAY  2951

/* Records <rc> and a message "<fmt ...>" on <q>; returns <rc>. */
int dbq__error(struct dbq *q, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records success; returns DBQ_OK. */
int dbq__ok(struct dbq *q);

/* DBQ_OK when <q> has a usable connection, else the error (recorded). */
int dbq__usable(struct dbq *q, const char *what);

/* Runs prepared statement <s> (preparing it first on this connection if
 * needed) with the call's deadline. <values>/<lengths>/<formats> as for
 * PQexecPrepared; <binary>: results in binary format. Returns the result
 * (PQclear() it) when it is a success, else NULL with the error recorded
 * as "<what>: <server message>". */
PGresult *dbq__exec(struct dbq *q, const struct dbq__stmt *s, const char *const *values,
                    const int *lengths, const int *formats, bool binary, const char *what);

/* One statement of a pipeline (dbq__exec_pipeline), with dbq__exec's
 * arguments. */
struct dbq__call {
	const struct dbq__stmt *s;
	const char *const *values;
	const int *lengths;
	const int *formats;
	bool binary;
};

/* Runs <n> prepared statements in one round trip (libpq pipeline mode)
 * and one transaction: a single Sync ends them, so either all of them
 * commit or none does. res[i] gets each statement's result (PQclear()
 * them) when all succeeded; else every res[i] is NULL, the first error is
 * recorded and returned, and nothing was done (unless the connection was
 * lost: then the outcome is unknown, as for any statement). */
int dbq__exec_pipeline(struct dbq *q, size_t n, const struct dbq__call *calls, PGresult **res,
                       const char *what);

/* Runs <sql> (simple protocol, several statements allowed) with the
 * call's deadline, or without one if <no_deadline>. Returns DBQ_OK or the
 * error (recorded). */
int dbq__simple(struct dbq *q, const char *sql, bool no_deadline, const char *what);

/* Like dbq__simple for one statement whose result is wanted: the last
 * result (PQclear() it), or NULL with the error recorded. */
PGresult *dbq__simple_result(struct dbq *q, const char *sql, bool no_deadline, const char *what);

/* Counts <n> jobs leaving the hot table; VACUUMs it (SKIP_LOCKED, outside
 * any transaction of the caller's) once this handle has finished
 * DBQ__VACUUM_EVERY since the last time. */
#define DBQ__VACUUM_EVERY 5000
#define DBQ__VACUUM_LOCK  "30809880879592046" /* the migration lock + 1 */
void dbq__churn(struct dbq *q, size_t n);

/* Monotonic milliseconds. */
int64_t dbq__now_ms(void);

/* Binary array parameters (PostgreSQL's array_recv format, one dimension).
 * dbq__arr_begin starts <b> with <n> elements of type <elem_oid>;
 * dbq__arr_put appends one (<data> NULL: SQL NULL). DBQ_OK or DBQ_ENOMEM. */
int dbq__arr_begin(struct dbq__buf *b, uint32_t elem_oid, size_t n, bool has_null);
int dbq__arr_put(struct dbq__buf *b, const void *data, size_t len);
int dbq__arr_put_i32(struct dbq__buf *b, int32_t v);
int dbq__arr_put_i64(struct dbq__buf *b, int64_t v);
void dbq__buf_free(struct dbq__buf *b);

/* Big-endian loads of binary results. */
int64_t dbq__load_i64(const char *p);
int32_t dbq__load_i32(const char *p);

/* The NOTIFY channel of <farm> ("mulefarm:<farm>", as SQL's
 * mulefarm.channel()); <out> has room for DBQ__CHANNEL_MAX + 1 bytes.
 * DBQ_EARG (recorded) when <farm> is empty or longer than 54 bytes. */
#define DBQ__FARM_MAX    54
#define DBQ__CHANNEL_MAX 63
int dbq__channel(struct dbq *q, const char *farm, char *out, const char *what);

/* The embedded sql/NNN_*.sql files, in order (generated at build time). */
struct dbq__migration {
	int version;
	const char *name;
	const char *sql;
};
extern const struct dbq__migration dbq__migrations[];
extern const size_t dbq__nmigrations;

#endif
