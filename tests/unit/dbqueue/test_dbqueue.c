/*
 * test_dbqueue.c - the dbqueue library against a real PostgreSQL.
 *
 * The group setup starts a throwaway cluster with scripts/pgtmp.sh (in a
 * temporary directory, PGTMP_FAST=1: these tests check behaviour, not
 * durability) and the group teardown stops it; an atexit handler and a
 * handler for SIGALRM (a hung test), SIGINT and SIGTERM stop it too, so
 * no server outlives a failing run. Every test gets a fresh database with
 * the schema applied. Concurrency tests fork processes, each with its own
 * connection; children never call cmocka and end with _exit(), reporting
 * through their exit status and a shared mapping.
 *
 * DBQ_TEST_CONNINFO=... runs the tests against an existing cluster instead
 * (a superuser: each test creates a database).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../../dbqueue/internal.h"

#define TEST_TIMEOUT 120 /* seconds; SIGALRM ends a hung test (and stops the cluster) */
#define MAX_KIDS     8
#define NJOBS        10000

static char pg_parent[64];      /* the temporary directory, holding pg/ */
static char pg_dir[96];         /* the cluster (scripts/pgtmp.sh start DIR) */
static pid_t pg_owner;          /* the process that started it */
static char base_conninfo[512]; /* the cluster's conninfo */
static char conninfo[600];      /* the current test's database */
static PGconn *db;              /* the test's own connection, for checks */
static struct dbq *q;           /* the handle under test */
static pid_t kids[MAX_KIDS];
static size_t nkids;
static int ndb;

/* ---- the cluster ---------------------------------------------------------- */

static void pg_stop(void)
{
	char cmd[256];

	if (pg_dir[0] == '\0' || getpid() != pg_owner)
		return;
	snprintf(cmd, sizeof cmd, "scripts/pgtmp.sh stop '%s'", pg_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_dbqueue: '%s' failed\n", cmd);
	rmdir(pg_parent);
	pg_dir[0] = '\0';
}

/* Not async-signal-safe, knowingly: the process is about to die and the
 * cluster must not outlive it. */
static void on_fatal_signal(int sig)
{
	pg_stop();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int group_setup(void **state)
{
	const char *ext = getenv("DBQ_TEST_CONNINFO");
	char cmd[256];
	FILE *f;
	size_t len;

	if (ext != NULL) {
		snprintf(base_conninfo, sizeof base_conninfo, "%s", ext);
		return 0;
	}
	snprintf(pg_parent, sizeof pg_parent, "/tmp/mulefarm-dbq-XXXXXX");
	if (mkdtemp(pg_parent) == NULL || chmod(pg_parent, 0755) != 0) {
		perror("test_dbqueue: mkdtemp");
		return -1;
	}
	snprintf(pg_dir, sizeof pg_dir, "%s/pg", pg_parent);
	pg_owner = getpid();
	atexit(pg_stop);
	signal(SIGALRM, on_fatal_signal);
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	setenv("PGTMP_FAST", "1", 1);
	snprintf(cmd, sizeof cmd, "scripts/pgtmp.sh start '%s'", pg_dir);
	f = popen(cmd, "r");
	if (f == NULL || fgets(base_conninfo, sizeof base_conninfo, f) == NULL) {
		fprintf(stderr, "test_dbqueue: '%s' failed (run from the repository root)\n", cmd);
		if (f)
			pclose(f);
		return -1;
	}
	if (pclose(f) != 0)
		return -1;
	len = strlen(base_conninfo);
	while (len > 0 && base_conninfo[len - 1] == '\n')
		base_conninfo[--len] = '\0';
	return 0;
}

static int group_teardown(void **state)
{
	pg_stop();
	return 0;
}

/* ---- per test ------------------------------------------------------------- */

__attribute__((format(printf, 1, 0))) static PGresult *sql_res(const char *fmt, va_list ap)
{
	char sql[2048];
	PGresult *res;

	vsnprintf(sql, sizeof sql, fmt, ap);
	res = PQexec(db, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	return res;
}

/* Runs a check query on the test's own connection: the first value as a
 * number (the row count for a command). */
__attribute__((format(printf, 1, 2))) static long long sqlv(const char *fmt, ...)
{
	va_list ap;
	PGresult *res;
	long long v;

	va_start(ap, fmt);
	res = sql_res(fmt, ap);
	va_end(ap);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		v = PQntuples(res) && !PQgetisnull(res, 0, 0) ? atoll(PQgetvalue(res, 0, 0)) : -1;
	else
		v = atoll(PQcmdTuples(res));
	PQclear(res);
	return v;
}

/* The first value as a string ("" for none or NULL), in <buf>. */
__attribute__((format(printf, 3, 4))) static const char *sqls(char *buf, size_t len,
                                                              const char *fmt, ...)
{
	va_list ap;
	PGresult *res;

	va_start(ap, fmt);
	res = sql_res(fmt, ap);
	va_end(ap);
	snprintf(buf, len, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return buf;
}

static PGconn *connect_db(const char *info)
{
	PGconn *c = PQconnectdb(info);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", info, PQerrorMessage(c));
	return c;
}

/* A fresh database; <q> connected to it, the schema applied if <migrate>. */
static int setup_db(bool migrate)
{
	PGconn *admin;
	char sql[64];
	PGresult *res;

	alarm(TEST_TIMEOUT);
	nkids = 0;
	admin = connect_db(base_conninfo);
	snprintf(sql, sizeof sql, "CREATE DATABASE dbq_t%d", ++ndb);
	res = PQexec(admin, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(admin);
	snprintf(conninfo, sizeof conninfo, "%s dbname=dbq_t%d", base_conninfo, ndb);
	db = connect_db(conninfo);
	q = dbq_connect(conninfo, 30000);
	assert_non_null(q);
	assert_int_equal(dbq_status(q), DBQ_OK);
	if (migrate)
		assert_int_equal(dbq_migrate(q), DBQ_OK);
	return 0;
}

static int setup(void **state)
{
	return setup_db(true);
}

static int setup_bare(void **state)
{
	return setup_db(false);
}

static int teardown(void **state)
{
	for (size_t i = 0; i < nkids; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	nkids = 0;
	dbq_close(q);
	q = NULL;
	PQfinish(db);
	db = NULL;
	alarm(0);
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct dbq_new_job job_of(const char *farm, const char *payload)
{
	struct dbq_new_job j = {.farm = farm, .payload = payload, .len = strlen(payload)};
	return j;
}

/* Enqueues <n> jobs "job-<i>" to <farm>, in batches of 500. */
static void enqueue_n(const char *farm, size_t n)
{
	static struct dbq_new_job jobs[500];
	static char payloads[500][24];

	for (size_t done = 0; done < n;) {
		size_t k = n - done < 500 ? n - done : 500;
		for (size_t i = 0; i < k; i++) {
			snprintf(payloads[i], sizeof payloads[i], "job-%zu", done + i);
			jobs[i] = job_of(farm, payloads[i]);
		}
		assert_int_equal(dbq_enqueue_many(q, jobs, k), DBQ_OK);
		done += k;
	}
}

/* Claims exactly one job of <farm> for <handler>. */
static struct dbq_job claim_one(struct dbq *h, const char *farm, const char *handler, int lease_s)
{
	struct dbq_job job;
	size_t n;

	assert_int_equal(dbq_claim(h, farm, handler, lease_s, &job, 1, &n), DBQ_OK);
	assert_int_equal(n, 1);
	return job;
}

static void complete_one(struct dbq *h, struct dbq_job *job, const char *handler)
{
	size_t done;

	assert_int_equal(dbq_complete(h, job, 1, handler, &done), DBQ_OK);
	assert_int_equal(done, 1);
	dbq_job_free(job);
}

static const char *state_of(const char *uuid, int *attempt)
{
	static char state[16];

	assert_int_equal(dbq_job_state(q, uuid, state, attempt), DBQ_OK);
	return state;
}

/* Forks a child running fn(i) with its own connection; a barrier (a pipe
 * closed by release_kids) makes them start together. */
static int barrier[2];

static void spawn_kids(size_t n, int (*fn)(struct dbq *h, int i))
{
	assert_int_equal(pipe(barrier), 0);
	for (size_t i = 0; i < n; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			char c;
			struct dbq *h;
			signal(SIGALRM, SIG_DFL);
			close(barrier[1]);
			h = dbq_connect(conninfo, 30000);
			if (h == NULL || dbq_status(h) != DBQ_OK)
				_exit(100);
			if (read(barrier[0], &c, 1) != 0)
				_exit(101);
			/* The parent's handles belong to the parent: never closed here. */
			int rc = fn(h, (int)i);
			dbq_close(h);
			_exit(rc);
		}
		kids[nkids++] = pid;
	}
	close(barrier[0]);
}

/* Starts the children and waits for them; each must exit 0. */
static void release_and_reap(void)
{
	close(barrier[1]);
	for (size_t i = 0; i < nkids; i++) {
		int status;
		assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
		kids[i] = 0;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("child %zu: %s %d", i, WIFEXITED(status) ? "exit" : "signal",
			         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	}
	nkids = 0;
}

static void *shared_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	memset(p, 0, len);
	return p;
}

/* ---- connect and migrate -------------------------------------------------- */

static void test_connect_refused(void **state)
{
	struct dbq *h = dbq_connect("host=127.0.0.1 port=1 dbname=x user=x", 2000);
	struct dbq_job job;
	size_t n;

	assert_non_null(h);
	assert_int_equal(dbq_status(h), DBQ_ECONNECT);
	assert_non_null(strstr(dbq_errmsg(h), "cannot connect to the database"));
	assert_non_null(strstr(dbq_errmsg(h), "127.0.0.1"));
	assert_non_null(strstr(dbq_errmsg(h), "refused"));
	assert_int_equal(dbq_socket(h), -1);
	assert_int_equal(dbq_claim(h, "f", "h.f.1", 30, &job, 1, &n), DBQ_ECONNLOST);
	assert_int_equal(dbq_reconnect(h), DBQ_ECONNECT);
	dbq_close(h);
	assert_string_equal(dbq_strerror(DBQ_FENCED),
	                    "the job is no longer held by this handler (lease moved on)");
}

static void test_migrate_idempotent(void **state)
{
	char buf[64];

	assert_int_equal(dbq_migrate(q), DBQ_OK);
	assert_int_equal(dbq_migrate(q), DBQ_OK);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.schema_version"), dbq__nmigrations);
	assert_string_equal(sqls(buf, sizeof buf,
	                         "SELECT name FROM mulefarm.schema_version "
	                         "ORDER BY version LIMIT 1"),
	                    "001_init.sql");
	assert_int_equal(sqlv("SELECT count(*) FROM pg_indexes WHERE schemaname = 'mulefarm' "
	                      "AND indexname IN ('jobs_queued', 'jobs_uuid', 'jobs_unique_key')"),
	                 3);
	/* 002: the uuid is the primary key, and nothing indexes id alone. */
	assert_int_equal(sqlv("SELECT count(*) FROM pg_constraint WHERE contype = 'p' "
	                      "AND conrelid = 'mulefarm.jobs'::regclass AND conname = 'jobs_uuid'"),
	                 1);
	assert_int_equal(sqlv("SELECT count(*) FROM pg_indexes WHERE schemaname = 'mulefarm' "
	                      "AND tablename = 'jobs' AND indexdef LIKE '%%(id)%%'"),
	                 0);
	/* A newer database than this program. */
	sqlv("INSERT INTO mulefarm.schema_version (version, name) VALUES (999, '999_future.sql')");
	assert_int_equal(dbq_migrate(q), DBQ_ESCHEMA);
	assert_non_null(strstr(dbq_errmsg(q), "999"));
}

static int kid_migrate(struct dbq *h, int i)
{
	return dbq_migrate(h) == DBQ_OK ? 0 : 1;
}

static void test_migrate_concurrent(void **state)
{
	assert_int_equal(sqlv("SELECT count(*) FROM pg_namespace WHERE nspname = 'mulefarm'"), 0);
	spawn_kids(4, kid_migrate);
	release_and_reap();
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.schema_version"), dbq__nmigrations);
	assert_int_equal(dbq_migrate(q), DBQ_OK);
	/* and the schema works */
	enqueue_n("f", 1);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs"), 1);
}

/* ---- enqueue -------------------------------------------------------------- */

static void test_enqueue_idempotent(void **state)
{
	struct dbq_new_job j = job_of("f", "hello");
	struct dbq_job job;
	char uuid[DBQ_UUID_LEN];

	assert_int_equal(dbq_enqueue(q, &j), DBQ_OK);
	assert_int_equal(strlen(j.uuid), 36);
	assert_int_equal(j.uuid[14], '7'); /* UUIDv7: time-ordered */
	memcpy(uuid, j.uuid, sizeof uuid);
	/* The same uuid again (a retry): nothing more. */
	assert_int_equal(dbq_enqueue(q, &j), DBQ_OK);
	assert_string_equal(j.uuid, uuid);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs"), 1);
	/* Still a no-op once the job is done and in the history. */
	job = claim_one(q, "f", "h.f.1", 30);
	assert_string_equal(job.uuid, uuid);
	assert_memory_equal(job.payload, "hello", 6); /* NUL-terminated */
	complete_one(q, &job, "h.f.1");
	assert_int_equal(dbq_enqueue(q, &j), DBQ_OK);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs"), 0);
	assert_string_equal(state_of(uuid, NULL), "done");
	/* A caller-chosen uuid. */
	struct dbq_new_job k = job_of("f", "mine");
	snprintf(k.uuid, sizeof k.uuid, "0190c2d4-5e6f-7a8b-9c0d-1e2f3a4b5c6d");
	assert_int_equal(dbq_enqueue(q, &k), DBQ_OK);
	assert_string_equal(state_of("0190c2d4-5e6f-7a8b-9c0d-1e2f3a4b5c6d", NULL), "queued");
	/* Bad arguments. */
	struct dbq_new_job bad = job_of("f", "x");
	snprintf(bad.uuid, sizeof bad.uuid, "not-a-uuid");
	assert_int_equal(dbq_enqueue(q, &bad), DBQ_EARG);
	bad = job_of("", "x");
	assert_int_equal(dbq_enqueue(q, &bad), DBQ_EARG);
	bad = job_of("a-farm-name-that-is-longer-than-fifty-four-bytes-really-yes", "x");
	assert_int_equal(dbq_enqueue(q, &bad), DBQ_EARG);
	assert_non_null(strstr(dbq_errmsg(q), "54"));
	assert_int_equal(dbq_status(q), DBQ_EARG);
}

/* Whether handle <h> has prepared statement <name> (which path it took). */
static bool prepared(struct dbq *h, const char *name)
{
	const char *values[1] = {name};
	PGresult *r =
	        PQexecParams(h->conn, "SELECT count(*) FROM pg_prepared_statements WHERE name = $1",
	                     1, NULL, values, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	bool yes = strcmp(PQgetvalue(r, 0, 0), "1") == 0;
	PQclear(r);
	return yes;
}

static void test_enqueue_many(void **state)
{
	struct dbq_new_job jobs[1000];
	static char payloads[1000][16];
	struct dbq_job got[1000];
	size_t n;

	for (size_t i = 0; i < 1000; i++) {
		/* binary payloads: embedded NUL and high bytes */
		snprintf(payloads[i], sizeof payloads[i], "p%zu", i);
		payloads[i][10] = '\0';
		payloads[i][11] = (char)0xff;
		jobs[i] = (struct dbq_new_job){.farm = i % 2 ? "odd" : "even",
		                               .payload = payloads[i],
		                               .len = 12,
		                               .max_attempts = (int)(i % 7)};
	}
	assert_int_equal(dbq_enqueue_many(q, jobs, 1000), DBQ_OK);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs"), 1000);
	/* fresh jobs (generated uuids, no unique key) take the plain INSERT */
	assert_true(prepared(q, "mulefarm_enqueue_fresh"));
	assert_false(prepared(q, "mulefarm_enqueue"));
	/* one statement, one transaction */
	assert_int_equal(sqlv("SELECT count(DISTINCT xmin::text) FROM mulefarm.jobs"), 1);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs WHERE max_attempts = 5"),
	                 sqlv("SELECT count(*) FROM mulefarm.jobs WHERE max_attempts IN (0, 5)"));
	/* again: all already there (their uuids are the caller's now) */
	assert_int_equal(dbq_enqueue_many(q, jobs, 1000), DBQ_OK);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs"), 1000);
	assert_true(prepared(q, "mulefarm_enqueue"));
	/* in order, byte for byte */
	assert_int_equal(dbq_claim(q, "even", "h.even.1", 30, got, 1000, &n), DBQ_OK);
	assert_int_equal(n, 500);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(got[i].len, 12);
		assert_memory_equal(got[i].payload, payloads[2 * i], 12);
		assert_string_equal(got[i].uuid, jobs[2 * i].uuid);
		assert_int_equal(got[i].max_attempts, (int)(2 * i % 7) ? (int)(2 * i % 7) : 5);
		dbq_job_free(&got[i]);
	}
	assert_int_equal(dbq_enqueue_many(q, jobs, 0), DBQ_OK);

	/* unique keys: refused ones are skipped, the rest committed */
	struct dbq_new_job u[3] = {job_of("k", "a"), job_of("k", "b"), job_of("k", "c")};
	u[0].unique_key = "K1";
	u[1].unique_key = "K1"; /* the same key in the batch */
	u[2].unique_key = "K2";
	assert_int_equal(dbq_enqueue_many(q, u, 3), DBQ_EDUPLICATE);
	assert_int_equal(strlen(u[0].uuid), 36);
	assert_string_equal(u[1].uuid, "");
	assert_int_equal(strlen(u[2].uuid), 36);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs WHERE farm = 'k'"), 2);
	struct dbq_new_job d = job_of("k", "d");
	d.unique_key = "K2";
	assert_int_equal(dbq_enqueue(q, &d), DBQ_EDUPLICATE);
	assert_string_equal(d.uuid, "");
	/* the same key in another farm is another key */
	d = job_of("k2", "d");
	d.unique_key = "K2";
	assert_int_equal(dbq_enqueue(q, &d), DBQ_OK);
}

/* mulefarm.enqueue(): apps enqueue inside their own transaction. */
static void test_sql_enqueue(void **state)
{
	char uuid[DBQ_UUID_LEN], buf[64];
	struct dbq_job job;
	size_t n;

	sqlv("BEGIN");
	sqls(uuid, sizeof uuid, "SELECT mulefarm.enqueue('f', 'rolled back')");
	sqlv("ROLLBACK");
	assert_string_equal(state_of(uuid, NULL), "");
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, &job, 1, &n), DBQ_OK);
	assert_int_equal(n, 0);
	/* text payloads are stored as UTF-8; priority and run_at apply */
	sqls(uuid, sizeof uuid, "SELECT mulefarm.enqueue('f', 'h\u00e9', priority => -1)");
	sqls(buf, sizeof buf,
	     "SELECT mulefarm.enqueue('f', '\\x0001'::bytea, run_at => now() + interval '1 hour')");
	assert_string_equal(state_of(uuid, NULL), "queued");
	job = claim_one(q, "f", "h.f.1", 30);
	assert_string_equal(job.uuid, uuid);
	assert_int_equal(job.len, 3);
	assert_memory_equal(job.payload, "h\xc3\xa9", 3);
	assert_int_equal(job.priority, -1);
	complete_one(q, &job, "h.f.1");
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, &job, 1, &n), DBQ_OK);
	assert_int_equal(n, 0); /* the other one waits for its run_at */
	/* a held unique key: NULL, nothing inserted */
	assert_true(strlen(sqls(buf, sizeof buf,
	                        "SELECT mulefarm.enqueue('f', 'a', unique_key => 'k')")) == 36);
	assert_string_equal(
	        sqls(buf, sizeof buf,
	             "SELECT coalesce(mulefarm.enqueue('f', 'b', unique_key => 'k')::text, "
	             "'null')"),
	        "null");
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs WHERE unique_key = 'k'"), 1);
	/* the channel agrees with the library's */
	assert_string_equal(sqls(buf, sizeof buf, "SELECT mulefarm.channel('job-handlers')"),
	                    "mulefarm:job-handlers");
}

static int kid_unique(struct dbq *h, int i)
{
	int ok = 0;

	for (int k = 0; k < 100; k++) {
		char key[16];
		struct dbq_new_job j = job_of("u", "x");
		/* each child walks the keys in its own order */
		snprintf(key, sizeof key, "key-%d", (k * 37 + i * 11) % 100);
		j.unique_key = key;
		int rc = dbq_enqueue(h, &j);
		if (rc == DBQ_OK)
			ok++;
		else if (rc != DBQ_EDUPLICATE)
			return 2;
	}
	return ok > 100 ? 3 : 0;
}

static void test_unique_key_concurrent(void **state)
{
	spawn_kids(4, kid_unique);
	release_and_reap();
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs"), 100);
	assert_int_equal(sqlv("SELECT count(DISTINCT unique_key) FROM mulefarm.jobs"), 100);
	/* the key is free again once its job is done */
	struct dbq_job job = claim_one(q, "u", "h.u.1", 30);
	char key[16];
	sqls(key, sizeof key, "SELECT unique_key FROM mulefarm.jobs WHERE id = %lld",
	     (long long)job.id);
	struct dbq_new_job j = job_of("u", "y");
	j.unique_key = key;
	assert_int_equal(dbq_enqueue(q, &j), DBQ_EDUPLICATE); /* running holds it */
	complete_one(q, &job, "h.u.1");
	j = job_of("u", "y");
	j.unique_key = key;
	assert_int_equal(dbq_enqueue(q, &j), DBQ_OK);
}

/* ---- claim ---------------------------------------------------------------- */

static void test_priority_and_run_at(void **state)
{
	int64_t now = now_ms();
	struct dbq_new_job j[6] = {
	        job_of("f", "p5"), job_of("f", "p1-late"), job_of("f", "p1-early"),
	        job_of("f", "p3"), job_of("f", "future"),  job_of("f", "p1-late-2"),
	};
	struct dbq_job got[6];
	size_t n;

	j[0].priority = 5;
	j[1].priority = 1, j[1].run_at_ms = now - 1000;
	j[2].priority = 1, j[2].run_at_ms = now - 5000;
	j[3].priority = 3;
	j[4].priority = -10, j[4].run_at_ms = now + 3600 * 1000;
	j[5].priority = 1, j[5].run_at_ms = now - 1000; /* ties with p1-late: id order */
	assert_int_equal(dbq_enqueue_many(q, j, 6), DBQ_OK);
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, got, 6, &n), DBQ_OK);
	assert_int_equal(n, 5);
	const char *want[5] = {"p1-early", "p1-late", "p1-late-2", "p3", "p5"};
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(got[i].payload, want[i]);
		assert_int_equal(got[i].attempt, 1);
		dbq_job_free(&got[i]);
	}
	/* the future job waits for its run_at */
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, got, 6, &n), DBQ_OK);
	assert_int_equal(n, 0);
	sqlv("UPDATE mulefarm.jobs SET run_at = now() WHERE state = 'queued'");
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, got, 6, &n), DBQ_OK);
	assert_int_equal(n, 1);
	assert_string_equal(got[0].payload, "future");
	assert_int_equal(got[0].priority, -10);
	dbq_job_free(&got[0]);
	/* other farms are not touched */
	enqueue_n("other", 3);
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, got, 6, &n), DBQ_OK);
	assert_int_equal(n, 0);
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 0, got, 6, &n), DBQ_EARG);
}

static int *claims; /* shared: claims per job (id - first id) */
static int64_t first_id;

static int kid_claim(struct dbq *h, int i)
{
	struct dbq_job jobs[50];
	char handler[32];
	size_t n;

	snprintf(handler, sizeof handler, "host%d.f.1", i);
	do {
		if (dbq_claim(h, "f", handler, 300, jobs, 50, &n) != DBQ_OK)
			return 2;
		for (size_t k = 0; k < n; k++) {
			int64_t idx = jobs[k].id - first_id;
			if (idx < 0 || idx >= NJOBS)
				return 3;
			__atomic_fetch_add(&claims[idx], 1, __ATOMIC_RELAXED);
			dbq_job_free(&jobs[k]);
		}
	} while (n > 0);
	return 0;
}

static void test_claim_partitions(void **state)
{
	enqueue_n("f", NJOBS);
	first_id = sqlv("SELECT min(id) FROM mulefarm.jobs");
	assert_int_equal(sqlv("SELECT max(id) - min(id) + 1 FROM mulefarm.jobs"), NJOBS);
	claims = shared_map(NJOBS * sizeof *claims);
	spawn_kids(4, kid_claim);
	release_and_reap();
	size_t missed = 0, twice = 0;
	for (int i = 0; i < NJOBS; i++) {
		missed += claims[i] == 0;
		twice += claims[i] > 1;
	}
	assert_int_equal(missed, 0);
	assert_int_equal(twice, 0);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs WHERE state = 'running'"), NJOBS);
	/* all four took part (no claimer starved behind the others' locks) */
	assert_int_equal(sqlv("SELECT count(DISTINCT handler) FROM mulefarm.jobs"), 4);
	munmap(claims, NJOBS * sizeof *claims);
}

static size_t *done_by; /* shared: jobs completed per child */

/* Claim 25, write the side effect and complete in one transaction. */
static int kid_work(struct dbq *h, int i)
{
	struct dbq_job jobs[25];
	char handler[32], ids[25 * 24], *p;
	size_t n, done;

	snprintf(handler, sizeof handler, "host%d.f.1", i);
	for (;;) {
		if (dbq_claim(h, "f", handler, 300, jobs, 25, &n) != DBQ_OK)
			return 2;
		if (n == 0)
			return 0;
		p = ids;
		p += sprintf(p, "{");
		for (size_t k = 0; k < n; k++)
			p += sprintf(p, "%s%lld", k ? "," : "", (long long)jobs[k].id);
		sprintf(p, "}");
		const char *v[2] = {ids, handler};
		PQclear(PQexec(h->conn, "BEGIN"));
		PGresult *r = PQexecParams(h->conn,
		                           "INSERT INTO side (job_id, handler) "
		                           "SELECT unnest($1::int8[]), $2",
		                           2, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			return 4;
		PQclear(r);
		if (dbq_complete(h, jobs, n, handler, &done) != DBQ_OK || done != n)
			return 5;
		r = PQexec(h->conn, "COMMIT");
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			return 6;
		PQclear(r);
		done_by[i] += done;
		for (size_t k = 0; k < n; k++)
			dbq_job_free(&jobs[k]);
	}
}

static void test_exactly_once(void **state)
{
	sqlv("CREATE TABLE side (job_id bigint NOT NULL, handler text NOT NULL)");
	enqueue_n("f", NJOBS);
	done_by = shared_map(4 * sizeof *done_by);
	spawn_kids(4, kid_work);
	release_and_reap();
	assert_int_equal(done_by[0] + done_by[1] + done_by[2] + done_by[3], NJOBS);
	assert_int_equal(sqlv("SELECT count(*) FROM side"), NJOBS);
	assert_int_equal(sqlv("SELECT count(DISTINCT job_id) FROM side"), NJOBS);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.history WHERE state = 'done'"), NJOBS);
	assert_int_equal(sqlv("SELECT count(DISTINCT uuid) FROM mulefarm.history"), NJOBS);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs"), 0);
	/* each side effect was written by the handler that completed the job */
	assert_int_equal(sqlv("SELECT count(*) FROM side s JOIN mulefarm.history h "
	                      "ON h.id = s.job_id AND h.handler = s.handler"),
	                 NJOBS);
	munmap(done_by, 4 * sizeof *done_by);
}

/* Completing through a handle VACUUMs the hot table every few thousand
 * jobs (outside the caller's transactions); completions commit
 * asynchronously, except inside a transaction of the caller's. */
static void test_vacuum_and_commit_mode(void **state)
{
	struct dbq_job jobs[500];
	char buf[16];
	size_t n, done, total = 0;

	enqueue_n("f", DBQ__VACUUM_EVERY + 500);
	assert_int_equal(sqlv("SELECT vacuum_count FROM pg_stat_user_tables "
	                      "WHERE relid = 'mulefarm.jobs'::regclass"),
	                 0);
	while (total < DBQ__VACUUM_EVERY) {
		assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, jobs, 500, &n), DBQ_OK);
		assert_int_equal(dbq_complete(q, jobs, n, "h.f.1", &done), DBQ_OK);
		for (size_t i = 0; i < n; i++)
			dbq_job_free(&jobs[i]);
		total += done;
	}
	assert_int_equal(sqlv("SELECT vacuum_count FROM pg_stat_user_tables "
	                      "WHERE relid = 'mulefarm.jobs'::regclass"),
	                 1);
	assert_int_equal(sqlv("SELECT n_dead_tup FROM pg_stat_user_tables "
	                      "WHERE relid = 'mulefarm.jobs'::regclass"),
	                 0);
	/* the session's setting is untouched after an asynchronous commit */
	char want[16];
	sqls(want, sizeof want, "SHOW synchronous_commit");
	PGresult *r = PQexec(q->conn, "SHOW synchronous_commit");
	assert_string_equal(PQgetvalue(r, 0, 0), want);
	PQclear(r);
	/* inside the caller's transaction the caller's setting stands */
	PQclear(PQexec(q->conn, "BEGIN"));
	PQclear(PQexec(q->conn, "SET LOCAL synchronous_commit = remote_apply"));
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, jobs, 1, &n), DBQ_OK);
	assert_int_equal(dbq_complete(q, jobs, n, "h.f.1", &done), DBQ_OK);
	dbq_job_free(&jobs[0]);
	r = PQexec(q->conn, "SHOW synchronous_commit");
	assert_string_equal(PQgetvalue(r, 0, 0), "remote_apply");
	PQclear(r);
	PQclear(PQexec(q->conn, "COMMIT"));
	/* the handle plans its statements once (generic plans); other
	 * sessions keep the default */
	r = PQexec(q->conn, "SHOW plan_cache_mode");
	assert_string_equal(PQgetvalue(r, 0, 0), "force_generic_plan");
	PQclear(r);
	assert_string_equal(sqls(buf, sizeof buf, "SHOW plan_cache_mode"), "auto");
}

/* ---- fencing, failure, release, leases ------------------------------------ */

/* dbq_set_history(q, false): done jobs are deleted, fenced all the same;
 * discarded ones are still kept. */
static void test_complete_without_history(void **state)
{
	struct dbq_job a, b;
	size_t n, done;

	dbq_set_history(q, false);
	enqueue_n("f", 2);
	a = claim_one(q, "f", "hostA.f.1", 30);
	complete_one(q, &a, "hostA.f.1");
	assert_true(prepared(q, "mulefarm_complete_drop"));
	assert_false(prepared(q, "mulefarm_complete"));
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.history"), 0);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs"), 1);
	assert_string_equal(state_of(a.uuid, NULL), ""); /* forgotten at once */
	/* the fence holds: a stale attempt deletes nothing */
	b = claim_one(q, "f", "hostA.f.1", 30);
	b.attempt++;
	assert_int_equal(dbq_complete(q, &b, 1, "hostA.f.1", &done), DBQ_FENCED);
	assert_int_equal(done, 0);
	b.attempt--;
	assert_int_equal(dbq_complete(q, &b, 1, "hostB.f.1", &done), DBQ_FENCED);
	/* a discarded job is kept */
	sqlv("UPDATE mulefarm.jobs SET max_attempts = 1");
	assert_int_equal(dbq_fail(q, &b, "hostA.f.1", "boom"), DBQ_OK);
	assert_string_equal(state_of(b.uuid, NULL), "discarded");
	/* and back to the default */
	dbq_set_history(q, true);
	enqueue_n("f", 1);
	assert_int_equal(dbq_claim(q, "f", "hostA.f.1", 30, &a, 1, &n), DBQ_OK);
	complete_one(q, &a, "hostA.f.1");
	assert_string_equal(state_of(a.uuid, NULL), "done");
	dbq_job_free(&b);
}

static void expire_leases(void)
{
	sqlv("UPDATE mulefarm.jobs SET lease_until = now() - interval '1 second' "
	     "WHERE state = 'running'");
}

static void test_fencing(void **state)
{
	struct dbq *b = dbq_connect(conninfo, 30000);
	struct dbq_job stale, fresh, two[2];
	size_t n, done;

	enqueue_n("f", 1);
	stale = claim_one(q, "f", "hostA.f.1", 30);
	expire_leases(); /* hostA stalled past its lease */
	assert_int_equal(dbq_requeue_expired(b, &n), DBQ_OK);
	assert_int_equal(n, 1);
	fresh = claim_one(b, "f", "hostB.f.1", 30);
	assert_int_equal(fresh.id, stale.id);
	assert_int_equal(fresh.attempt, 2);
	/* the stale handler changes nothing */
	assert_int_equal(dbq_complete(q, &stale, 1, "hostA.f.1", &done), DBQ_FENCED);
	assert_int_equal(done, 0);
	assert_int_equal(dbq_fail(q, &stale, "hostA.f.1", "late"), DBQ_FENCED);
	assert_int_equal(dbq_release(q, &stale, "hostA.f.1"), DBQ_FENCED);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs WHERE handler = 'hostB.f.1' "
	                      "AND attempt = 2 AND state = 'running' AND last_error LIKE "
	                      "'lease expired (handler hostA.f.1)'"),
	                 1);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.history"), 0);
	/* the same handler name with the old attempt is stale too */
	stale.attempt = 2;
	assert_int_equal(dbq_complete(q, &stale, 1, "hostA.f.1", &done), DBQ_FENCED);
	stale.attempt = 1;
	assert_int_equal(dbq_complete(b, &stale, 1, "hostB.f.1", &done), DBQ_FENCED);
	complete_one(b, &fresh, "hostB.f.1");
	dbq_job_free(&stale);
	assert_string_equal(state_of(fresh.uuid, NULL), "done");

	/* a batch where one job moved on: the other is completed */
	enqueue_n("f", 2);
	assert_int_equal(dbq_claim(q, "f", "hostA.f.1", 30, two, 2, &n), DBQ_OK);
	assert_int_equal(n, 2);
	sqlv("UPDATE mulefarm.jobs SET lease_until = now() - interval '1 second' WHERE id = %lld",
	     (long long)two[1].id);
	assert_int_equal(dbq_requeue_expired(b, &n), DBQ_OK);
	assert_int_equal(n, 1);
	assert_int_equal(dbq_complete(q, two, 2, "hostA.f.1", &done), DBQ_FENCED);
	assert_int_equal(done, 1);
	assert_non_null(strstr(dbq_errmsg(q), "1 of 2 jobs"));
	assert_string_equal(state_of(two[0].uuid, NULL), "done");
	assert_string_equal(state_of(two[1].uuid, NULL), "failed"); /* queued for a retry */
	dbq_job_free(&two[0]);
	dbq_job_free(&two[1]);

	/* jobs are found by uuid: a mangled one is the caller's error */
	fresh = (struct dbq_job){.attempt = 1};
	strcpy(fresh.uuid, "not-a-uuid");
	assert_int_equal(dbq_complete(q, &fresh, 1, "hostA.f.1", &done), DBQ_EARG);
	assert_non_null(strstr(dbq_errmsg(q), "not-a-uuid"));
	assert_int_equal(dbq_fail(q, &fresh, "hostA.f.1", "x"), DBQ_EARG);
	assert_int_equal(dbq_release(q, &fresh, "hostA.f.1"), DBQ_EARG);
	memset(fresh.uuid, 'a', sizeof fresh.uuid); /* no NUL */
	assert_int_equal(dbq_release(q, &fresh, "hostA.f.1"), DBQ_EARG);
	dbq_close(b);
}

/* The pipelined completion + claim: one round trip, one transaction. */
static void test_complete_claim(void **state)
{
	struct dbq_job first, next[2], stale;
	size_t done, n;

	enqueue_n("f", 3);
	first = claim_one(q, "f", "h.f.1", 30);
	assert_int_equal(
	        dbq_complete_claim(q, &first, "h.f.1", &done, "f", "h.f.1", 30, next, 2, &n),
	        DBQ_OK);
	assert_int_equal(done, 1);
	assert_int_equal(n, 2);
	assert_string_equal(state_of(first.uuid, NULL), "done");
	assert_string_equal(state_of(next[0].uuid, NULL), "running");
	assert_string_equal(state_of(next[1].uuid, NULL), "running");
	assert_true(next[0].id < next[1].id); /* claim order */
	assert_string_equal(next[1].payload, "job-2");
	dbq_job_free(&first);

	/* a fenced completion is no error: the claim happens all the same */
	stale = next[0];
	stale.attempt = 7;
	enqueue_n("f", 1);
	assert_int_equal(
	        dbq_complete_claim(q, &stale, "h.f.1", &done, "f", "h.f.2", 30, &first, 1, &n),
	        DBQ_OK);
	assert_int_equal(done, 0);
	assert_int_equal(n, 1);
	assert_string_equal(state_of(next[0].uuid, NULL), "running");
	complete_one(q, &first, "h.f.2");

	/* nothing queued: completed, none claimed */
	assert_int_equal(
	        dbq_complete_claim(q, &next[0], "h.f.1", &done, "f", "h.f.1", 30, &first, 1, &n),
	        DBQ_OK);
	assert_int_equal(done, 1);
	assert_int_equal(n, 0);
	dbq_job_free(&next[0]);

	/* A failing claim undoes the completion (one transaction), the first
	 * error is reported, and the handle leaves pipeline mode usable. */
	sqlv("CREATE FUNCTION public.mf_boom() RETURNS trigger LANGUAGE plpgsql AS "
	     "$$ BEGIN RAISE EXCEPTION 'boom claim'; END $$");
	sqlv("CREATE TRIGGER boom BEFORE UPDATE ON mulefarm.jobs FOR EACH ROW "
	     "WHEN (NEW.farm = 'boom' AND NEW.state = 'running') EXECUTE FUNCTION "
	     "public.mf_boom()");
	enqueue_n("boom", 1);
	assert_int_equal(dbq_complete_claim(q, &next[1], "h.f.1", &done, "boom", "h.boom.1", 30,
	                                    &first, 1, &n),
	                 DBQ_EQUERY);
	assert_non_null(strstr(dbq_errmsg(q), "boom claim"));
	assert_int_equal(done, 0);
	assert_int_equal(n, 0);
	assert_string_equal(state_of(next[1].uuid, NULL), "running");
	sqlv("DROP TRIGGER boom ON mulefarm.jobs");
	sqlv("DROP FUNCTION public.mf_boom()");
	complete_one(q, &next[1], "h.f.1");
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs WHERE farm = 'f'"), 0);

	/* argument errors before anything is sent */
	assert_int_equal(dbq_complete_claim(q, &stale, "h.f.1", &done, "f", "", 30, &first, 1, &n),
	                 DBQ_EARG);
	strcpy(stale.uuid, "x");
	assert_int_equal(
	        dbq_complete_claim(q, &stale, "h.f.1", &done, "f", "h.f.1", 30, &first, 1, &n),
	        DBQ_EARG);
}

static void test_fail_retry_discard(void **state)
{
	struct dbq_new_job j = job_of("f", "doomed");
	struct dbq_job job;
	int attempt;
	size_t n;

	j.max_attempts = 3;
	assert_int_equal(dbq_enqueue(q, &j), DBQ_OK);
	for (int a = 1; a <= 3; a++) {
		job = claim_one(q, "f", "h.f.1", 30);
		assert_int_equal(job.attempt, a);
		assert_int_equal(job.max_attempts, 3);
		assert_int_equal(dbq_fail(q, &job, "h.f.1", "boom"), DBQ_OK);
		dbq_job_free(&job);
		if (a == 3)
			break;
		assert_string_equal(state_of(j.uuid, &attempt), "failed");
		assert_int_equal(attempt, a);
		/* exponential backoff with jitter: 2^a s +-25% */
		long long ms = sqlv("SELECT (extract(epoch FROM run_at - now()) * 1000)::bigint "
		                    "FROM mulefarm.jobs");
		assert_in_range(ms, (1000 << a) * 3 / 4 - 200, (1000 << a) * 5 / 4 + 50);
		assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, &job, 1, &n), DBQ_OK);
		assert_int_equal(n, 0);                          /* not before its run_at */
		sqlv("UPDATE mulefarm.jobs SET run_at = now()"); /* time passes */
	}
	assert_string_equal(state_of(j.uuid, &attempt), "discarded");
	assert_int_equal(attempt, 3);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs"), 0);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.history WHERE state = 'discarded' "
	                      "AND last_error = 'boom' AND payload = 'doomed'"),
	                 1);
	/* the retry delays of many jobs spread out (jitter) */
	assert_true(
	        sqlv("SELECT count(DISTINCT mulefarm.retry_delay(3)) FROM generate_series(1, 20)") >
	        10);
}

static void test_release(void **state)
{
	struct dbq_job job, again;
	int attempt;

	enqueue_n("f", 1);
	job = claim_one(q, "f", "h.f.1", 30);
	assert_int_equal(dbq_release(q, &job, "h.f.2"), DBQ_FENCED);
	assert_int_equal(dbq_release(q, &job, "h.f.1"), DBQ_OK);
	assert_string_equal(state_of(job.uuid, &attempt), "queued");
	assert_int_equal(attempt, 0); /* not counted */
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs WHERE handler IS NULL "
	                      "AND lease_until IS NULL"),
	                 1);
	assert_int_equal(dbq_release(q, &job, "h.f.1"), DBQ_FENCED);
	again = claim_one(q, "f", "h.f.2", 30);
	assert_int_equal(again.id, job.id);
	assert_int_equal(again.attempt, 1);
	complete_one(q, &again, "h.f.2");
	dbq_job_free(&job);
}

static void test_renew(void **state)
{
	const char *handlers[5] = {"hostA.f.1", "hostA.f.2", "hostAB.f.1", "hostB.f.1", "hostA"};
	struct dbq_job jobs[5];
	size_t n;

	enqueue_n("f", 5);
	for (int i = 0; i < 5; i++)
		jobs[i] = claim_one(q, "f", handlers[i], 5);
	assert_int_equal(dbq_renew(q, "hostA", 600, &n), DBQ_OK);
	assert_int_equal(n, 2);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs "
	                      "WHERE lease_until > now() + interval '500 seconds'"),
	                 2);
	assert_int_equal(sqlv("SELECT count(*) FROM mulefarm.jobs WHERE lease_until > now() + "
	                      "interval '500 seconds' AND handler LIKE 'hostA.f.%%'"),
	                 2);
	assert_int_equal(dbq_renew(q, "hostC", 600, &n), DBQ_OK);
	assert_int_equal(n, 0);
	assert_int_equal(dbq_renew(q, "", 600, &n), DBQ_EARG);
	for (int i = 0; i < 5; i++)
		dbq_job_free(&jobs[i]);
}

static void test_requeue_expired(void **state)
{
	struct dbq_new_job j[3] = {job_of("f", "a"), job_of("f", "b"), job_of("f", "c")};
	struct dbq_job jobs[3];
	size_t n;

	j[2].max_attempts = 1;
	assert_int_equal(dbq_enqueue_many(q, j, 3), DBQ_OK);
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 300, jobs, 3, &n), DBQ_OK);
	assert_int_equal(n, 3);
	assert_int_equal(dbq_requeue_expired(q, &n), DBQ_OK);
	assert_int_equal(n, 0); /* leases still valid */
	expire_leases();
	assert_int_equal(dbq_requeue_expired(q, &n), DBQ_OK);
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++)
		dbq_job_free(&jobs[i]);
	assert_string_equal(state_of(j[0].uuid, NULL), "failed");
	assert_string_equal(state_of(j[1].uuid, NULL), "failed");
	assert_string_equal(state_of(j[2].uuid, NULL), "discarded"); /* its only attempt */
	/* back at the front of the queue, claimable at once */
	assert_int_equal(dbq_claim(q, "f", "h.f.2", 300, jobs, 3, &n), DBQ_OK);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		dbq_job_free(&jobs[i]);
}

/* ---- wake-up ------------------------------------------------------------- */

static int64_t mono_ms(void)
{
	return dbq__now_ms();
}

static void test_listen_wait_notify(void **state)
{
	const char *farms[2] = {"f", "g"};
	struct dbq *p = dbq_connect(conninfo, 30000);
	int64_t t0;
	int next;

	assert_int_equal(dbq_listen(q, farms, 2), DBQ_OK);
	/* nothing: a timeout */
	t0 = mono_ms();
	assert_int_equal(dbq_wait(q, 100), 0);
	assert_true(mono_ms() - t0 >= 95);
	assert_int_equal(dbq_status(q), DBQ_OK);
	/* a NOTIFY from another connection wakes it */
	assert_int_equal(dbq_notify(p, "g"), DBQ_OK);
	t0 = mono_ms();
	assert_int_equal(dbq_wait(q, 5000), 1);
	assert_true(mono_ms() - t0 < 1000);
	assert_int_equal(dbq_wait(q, 50), 0); /* consumed */
	/* a farm not listened to does not */
	assert_int_equal(dbq_notify(p, "h"), DBQ_OK);
	assert_int_equal(dbq_wait(q, 100), 0);
	/* SQL enqueue in the app's transaction: delivered at commit only */
	PQclear(PQexec(p->conn, "BEGIN"));
	PGresult *r = PQexec(p->conn, "SELECT mulefarm.enqueue('f', 'from sql')");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	assert_int_equal(dbq_wait(q, 200), 0);
	PQclear(PQexec(p->conn, "COMMIT"));
	assert_int_equal(dbq_wait(q, 5000), 1);
	struct dbq_job job = claim_one(q, "f", "h.f.1", 30);
	assert_string_equal(job.payload, "from sql");
	complete_one(q, &job, "h.f.1");
	/* without notify => false there is nothing to wake up to */
	PQclear(PQexec(p->conn, "SELECT mulefarm.enqueue('f', 'quiet', notify => false)"));
	assert_int_equal(dbq_wait(q, 100), 0);
	/* notifications that arrive during another call count */
	assert_int_equal(dbq_notify(p, "f"), DBQ_OK);
	assert_int_equal(sqlv("SELECT 1 FROM pg_sleep(0.2)"), 1);
	size_t n;
	assert_int_equal(dbq_renew(q, "nobody", 5, &n), DBQ_OK);
	assert_int_equal(dbq_wait(q, 0), 1);
	/* coalesced: a leading NOTIFY, then one trailing NOTIFY per window */
	assert_int_equal(dbq_notify_coalesced(p, "f", 300), DBQ_OK);
	assert_int_equal(dbq_notify_coalesced(p, "f", 300), DBQ_OK);
	assert_int_equal(dbq_notify_coalesced(p, "f", 300), DBQ_OK);
	assert_int_equal(dbq_wait(q, 2000), 1);
	assert_int_equal(dbq_wait(q, 100), 0); /* only one was sent */
	assert_int_equal(dbq_notify_flush(p, &next), DBQ_OK);
	assert_in_range(next, 1, 300); /* pending, not due yet */
	assert_int_equal(dbq_wait(q, 50), 0);
	while (next >= 0) {
		usleep((useconds_t)next * 1000);
		assert_int_equal(dbq_notify_flush(p, &next), DBQ_OK);
	}
	assert_int_equal(dbq_wait(q, 2000), 1);
	assert_int_equal(dbq_notify_flush(p, &next), DBQ_OK);
	assert_int_equal(next, -1);
	dbq_close(p);
}

/* ---- look ----------------------------------------------------------------- */

static void test_stats_and_job_state(void **state)
{
	struct dbq_new_job j[8];
	struct dbq_job jobs[8];
	struct dbq_stats st;
	size_t n;
	int attempt;

	for (int i = 0; i < 8; i++)
		j[i] = job_of(i == 7 ? "b" : "a", "x");
	j[0].run_at_ms = now_ms() - 10000; /* waiting for 10 s */
	j[6].max_attempts = 1;
	assert_int_equal(dbq_enqueue_many(q, j, 8), DBQ_OK);
	assert_string_equal(state_of(j[0].uuid, &attempt), "queued");
	assert_int_equal(attempt, 0);
	/* jobs 0..3: 2 done, 1 failed (retrying), 1 running; 6 discarded */
	assert_int_equal(dbq_claim(q, "a", "h.a.1", 30, jobs, 4, &n), DBQ_OK);
	assert_int_equal(n, 4);
	assert_string_equal(state_of(j[0].uuid, &attempt), "running");
	assert_int_equal(attempt, 1);
	assert_int_equal(dbq_complete(q, jobs, 2, "h.a.1", &n), DBQ_OK);
	assert_int_equal(dbq_fail(q, &jobs[2], "h.a.2", "no"), DBQ_FENCED);
	assert_int_equal(dbq_fail(q, &jobs[2], "h.a.1", "no"), DBQ_OK);
	sqlv("UPDATE mulefarm.jobs SET priority = -1 WHERE uuid = '%s'", j[6].uuid);
	struct dbq_job six = claim_one(q, "a", "h.a.2", 30);
	assert_string_equal(six.uuid, j[6].uuid);
	assert_int_equal(dbq_fail(q, &six, "h.a.2", "fatal"), DBQ_OK);
	dbq_job_free(&six);

	assert_int_equal(dbq_stats(q, "a", &st), DBQ_OK);
	assert_int_equal(st.queued, 2); /* 4, 5 */
	assert_int_equal(st.running, 1);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.discarded, 1);
	assert_int_equal(st.done_retained, 2);
	assert_int_equal(st.handlers, 1);
	assert_true(st.oldest_queued_s >= 0 && st.oldest_queued_s < 5); /* 0 was done */
	assert_int_equal(dbq_stats(q, NULL, &st), DBQ_OK);
	assert_int_equal(st.queued, 3);
	sqlv("UPDATE mulefarm.jobs SET run_at = now() - interval '10 seconds' WHERE farm = 'b'");
	assert_int_equal(dbq_stats(q, "b", &st), DBQ_OK);
	assert_true(st.oldest_queued_s >= 9.9 && st.oldest_queued_s < 15);
	assert_int_equal(dbq_stats(q, "nothing", &st), DBQ_OK);
	assert_int_equal(st.queued + st.running + st.done_retained, 0);

	assert_string_equal(state_of(j[0].uuid, &attempt), "done");
	assert_int_equal(attempt, 1);
	assert_string_equal(state_of(j[2].uuid, NULL), "failed");
	assert_string_equal(state_of(j[3].uuid, NULL), "running");
	assert_string_equal(state_of(j[6].uuid, NULL), "discarded");
	assert_string_equal(state_of("01234567-89ab-7def-8123-456789abcdef", &attempt), "");
	char s[16];
	assert_int_equal(dbq_job_state(q, "nope", s, NULL), DBQ_EARG);
	for (int i = 0; i < 4; i++)
		dbq_job_free(&jobs[i]);
}

static void test_prune(void **state)
{
	struct dbq_job jobs[3];
	size_t n;

	enqueue_n("f", 3);
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, jobs, 3, &n), DBQ_OK);
	assert_int_equal(dbq_complete(q, jobs, 3, "h.f.1", &n), DBQ_OK);
	sqlv("UPDATE mulefarm.history SET finished_at = now() - interval '2 hours' "
	     "WHERE id <> %lld",
	     (long long)jobs[2].id);
	assert_int_equal(dbq_prune(q, 3600, &n), DBQ_OK);
	assert_int_equal(n, 2);
	assert_string_equal(state_of(jobs[0].uuid, NULL), "");
	assert_string_equal(state_of(jobs[2].uuid, NULL), "done");
	assert_int_equal(dbq_prune(q, 3600, &n), DBQ_OK);
	assert_int_equal(n, 0);
	assert_int_equal(dbq_prune(q, 0, &n), DBQ_OK);
	assert_int_equal(n, 1);
	for (int i = 0; i < 3; i++)
		dbq_job_free(&jobs[i]);
}

/* ---- failures -------------------------------------------------------------- */

/* Terminates <h>'s backend and waits until it is gone. */
static void kill_backend(struct dbq *h)
{
	int pid = PQbackendPID(h->conn);

	assert_int_equal(sqlv("SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid), 1);
	sqlv("SELECT pg_terminate_backend(%d)", pid);
	while (sqlv("SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid) != 0)
		usleep(10000);
}

static void test_connection_lost(void **state)
{
	const char *farms[1] = {"f"};
	struct dbq *p = dbq_connect(conninfo, 30000);
	struct dbq_job job;
	size_t n;

	assert_int_equal(dbq_listen(q, farms, 1), DBQ_OK);
	enqueue_n("f", 2);
	kill_backend(q);
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, &job, 1, &n), DBQ_ECONNLOST);
	assert_int_equal(dbq_status(q), DBQ_ECONNLOST);
	assert_non_null(strstr(dbq_errmsg(q), "claim: the connection to the database was lost"));
	/* it stays refused until a reconnect */
	assert_int_equal(dbq_claim(q, "f", "h.f.1", 30, &job, 1, &n), DBQ_ECONNLOST);
	assert_int_equal(dbq_socket(q), -1);
	assert_int_equal(dbq_reconnect(q), DBQ_OK);
	assert_true(dbq_socket(q) >= 0);
	/* prepared statements again, and LISTEN again */
	job = claim_one(q, "f", "h.f.1", 30);
	complete_one(q, &job, "h.f.1");
	assert_int_equal(dbq_notify(p, "f"), DBQ_OK);
	assert_int_equal(dbq_wait(q, 5000), 1);
	/* a waiting handle notices the loss */
	kill_backend(q);
	assert_int_equal(dbq_wait(q, 5000), DBQ_ECONNLOST);
	assert_int_equal(dbq_reconnect(q), DBQ_OK);
	assert_int_equal(dbq_notify(p, "f"), DBQ_OK);
	assert_int_equal(dbq_wait(q, 5000), 1);
	/* in the pipeline too; after a reconnect it works again */
	job = claim_one(q, "f", "h.f.1", 30);
	struct dbq_job next;
	size_t done;
	kill_backend(q);
	assert_int_equal(
	        dbq_complete_claim(q, &job, "h.f.1", &done, "f", "h.f.1", 30, &next, 1, &n),
	        DBQ_ECONNLOST);
	assert_int_equal(dbq_reconnect(q), DBQ_OK);
	assert_int_equal(
	        dbq_complete_claim(q, &job, "h.f.1", &done, "f", "h.f.1", 30, &next, 1, &n),
	        DBQ_OK);
	assert_int_equal(done, 1);
	assert_int_equal(n, 0);
	dbq_job_free(&job);
	dbq_close(p);
}

static void test_timeout(void **state)
{
	struct dbq *h = dbq_connect(conninfo, 500);
	PGconn *locker = connect_db(conninfo);
	struct dbq_job job;
	size_t n;
	int64_t t0;

	enqueue_n("f", 1);
	assert_int_equal(dbq_claim(h, "f", "h.f.1", 30, &job, 1, &n), DBQ_OK);
	dbq_job_free(&job);
	PQclear(PQexec(locker, "BEGIN"));
	PQclear(PQexec(locker, "LOCK mulefarm.jobs IN ACCESS EXCLUSIVE MODE"));
	t0 = mono_ms();
	assert_int_equal(dbq_requeue_expired(h, &n), DBQ_ETIMEOUT);
	assert_in_range(mono_ms() - t0, 450, 3000);
	assert_non_null(strstr(dbq_errmsg(h), "timed out"));
	assert_int_equal(dbq_requeue_expired(h, &n), DBQ_ECONNLOST);
	PQclear(PQexec(locker, "ROLLBACK"));
	assert_int_equal(dbq_reconnect(h), DBQ_OK);
	assert_int_equal(dbq_requeue_expired(h, &n), DBQ_OK);
	PQfinish(locker);
	dbq_close(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_connect_refused),
	        cmocka_unit_test_setup_teardown(test_migrate_idempotent, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_migrate_concurrent, setup_bare, teardown),
	        cmocka_unit_test_setup_teardown(test_enqueue_idempotent, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_enqueue_many, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_complete_without_history, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sql_enqueue, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unique_key_concurrent, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_priority_and_run_at, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_claim_partitions, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_exactly_once, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_vacuum_and_commit_mode, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_fencing, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_complete_claim, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_fail_retry_discard, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_release, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_renew, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_requeue_expired, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_listen_wait_notify, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stats_and_job_state, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_connection_lost, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	};
	return cmocka_run_group_tests_name("dbqueue", tests, group_setup, group_teardown);
}
