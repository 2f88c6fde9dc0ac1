/*
 * dbfarm.c - database farms: configuration, enqueue (a connection pool and
 * a notifier thread per process) and the consuming mule's side (see
 * dbfarm.h). The keeper and the master's side are in dbkeeper.c.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dbfarm_internal.h"
#include "mulefarm/log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

struct dbfarm__config dbfarm__cfg;

/* --- small helpers ------------------------------------------------------- */

int64_t dbfarm__now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dbfarm__nap(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

bool dbfarm__transient(int rc)
{
	return rc == DBQ_ECONNECT || rc == DBQ_ECONNLOST || rc == DBQ_ETIMEOUT || rc == DBQ_EQUERY;
}

static long futex(volatile uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

/* --- configuration -------------------------------------------------------- */

static int add_farm(struct dbfarm__config *c, const struct farms *fs, const struct opt_entry *e,
                    char *err, size_t errlen)
{
	const char *name = e->value ? e->value : "";
	/* sql/: a farm name is 1..54 bytes (its NOTIFY channel must fit) */
	if (name[0] == '\0' || strlen(name) > 54 || strchr(name, ':') != NULL) {
		snprintf(err, errlen, "--db-farm '%s': want a farm name (1 to 54 bytes, no ':')",
		         name);
		return -1;
	}
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->f[i].name, name) == 0) {
			snprintf(err, errlen, "--db-farm '%s' is given twice", name);
			return -1;
		}
	struct dbfarm__farm *f = &c->f[c->n++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	int local = farms_find(fs, name);
	if (local >= 0) {
		f->mules = fs->f[local].mules;
		f->nmules = fs->f[local].nmules;
	}
	return 0;
}

static int map_shared(struct dbfarm__config *c)
{
	size_t fig = c->n * sizeof(struct dbfarm__figures);
	size_t slots = (c->nmules + 1) * sizeof(struct dbfarm__slot);
	size_t total = sizeof(struct dbfarm__shm) + fig + slots;
	void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	c->shm = p;
	c->shm->fig = (struct dbfarm__figures *)((char *)p + sizeof(struct dbfarm__shm));
	c->shm->slots = (struct dbfarm__slot *)((char *)c->shm->fig + fig);
	return 0;
}

/* Leases are renewed by the range of names "PREFIX." .. "PREFIX/": a
 * prefix holding '.' would fall in another instance's range ("web" and
 * "web.example"), hence '-' for '.' (and for '~', which introduces the
 * epoch, and '/'), in --handler-name as in the host name. */
static int handler_prefix(struct dbfarm__config *c, const struct options *o, char *err,
                          size_t errlen)
{
	const char *name = opt_str(o, OPT_HANDLER_NAME);
	char host[sizeof(c->prefix)] = "localhost";
	if (name == NULL && gethostname(host, sizeof(host) - 1) == 0)
		host[sizeof(host) - 1] = '\0';
	if (name != NULL && (name[0] == '\0' || strlen(name) >= sizeof(c->prefix) - 16)) {
		snprintf(err, errlen, "--handler-name '%s': want a name of 1 to %zu bytes", name,
		         sizeof(c->prefix) - 17);
		return -1;
	}
	snprintf(c->prefix, sizeof(c->prefix), "%s", name ? name : host);
	for (char *p = c->prefix; *p; p++)
		if (*p == '.' || *p == '~' || *p == '/')
			*p = '-';
	return 0;
}

void dbfarm__prefix(uint32_t epoch, char *buf, size_t len)
{
	if (epoch == 0)
		snprintf(buf, len, "%s", dbfarm__cfg.prefix);
	else
		snprintf(buf, len, "%s~%u", dbfarm__cfg.prefix, epoch);
}

void dbfarm__new_epoch(const char *why)
{
	if (dbfarm__cfg.shm == NULL)
		return;
	uint32_t e = __atomic_add_fetch(&dbfarm__cfg.shm->epoch, 1, __ATOMIC_SEQ_CST);
	char prefix[DBFARM_NAME_MAX];
	dbfarm__prefix(e, prefix, sizeof(prefix));
	log_info("%s: whether that claim went through is unknown; new claims are made as %s.*, "
	         "so a job claimed then is left to its lease",
	         why, prefix);
}

static void pool_atfork_child(void);

int dbfarm_setup(const struct server *srv, const struct farms *fs, char *err, size_t errlen)
{
	const struct options *o = srv->cfg.opts;
	struct dbfarm__config *c = &dbfarm__cfg;
	size_t n = 0;
	for (size_t i = 0; i < o->n; i++)
		n += o->entries[i].id == OPT_DB_FARM;
	if (n == 0)
		return 0;
	c->conninfo = opt_str(o, OPT_DBQUEUE);
	if (c->conninfo == NULL || c->conninfo[0] == '\0') {
		snprintf(err, errlen, "--db-farm needs --dbqueue CONNINFO (the database to use)");
		return -1;
	}
	long lease = opt_int(o, OPT_DBQUEUE_LEASE), timeout = opt_int(o, OPT_DBQUEUE_TIMEOUT);
	long retention = opt_int(o, OPT_DBQUEUE_RETENTION);
	if (lease < 2 || lease > 86400 || timeout < 0 || timeout > 86400 || retention < 0) {
		snprintf(err, errlen,
		         "--dbqueue-lease must be 2..86400, --dbqueue-timeout 0..86400 and "
		         "--dbqueue-retention >= 0");
		return -1;
	}
	c->f = calloc(n, sizeof(*c->f));
	if (c->f == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < o->n; i++)
		if (o->entries[i].id == OPT_DB_FARM && add_farm(c, fs, &o->entries[i], err, errlen))
			return -1;
	c->nmules = fs->nmules;
	c->lease_s = (int)lease;
	c->timeout_s = (int)timeout;
	c->retention_s = (int)retention;
	c->poll_only = opt_flag(o, OPT_DBQUEUE_POLL_ONLY);
	c->max_msg = fs->max_msg;
	if (handler_prefix(c, o, err, errlen) == -1)
		return -1;
	if (map_shared(c) == -1) {
		snprintf(err, errlen, "cannot map the database farms' shared state: %s",
		         strerror(errno));
		return -1;
	}
	pthread_atfork(NULL, NULL, pool_atfork_child);
	log_info("database farms: %zu (handler names %s.<farm>.<mule>, lease %d s)", c->n,
	         c->prefix, c->lease_s);
	return 0;
}

size_t dbfarm_count(void)
{
	return dbfarm__cfg.n;
}

int dbfarm_find(const char *name)
{
	for (size_t i = 0; i < dbfarm__cfg.n; i++)
		if (strcmp(dbfarm__cfg.f[i].name, name) == 0)
			return (int)i;
	return -1;
}

const char *dbfarm_name(size_t farm)
{
	return farm < dbfarm__cfg.n ? dbfarm__cfg.f[farm].name : "";
}

const char *dbfarm_conninfo(void)
{
	return dbfarm__cfg.conninfo;
}

int dbfarm_timeout_ms(void)
{
	return dbfarm__cfg.timeout_s * 1000;
}

size_t dbfarm_max_msg(void)
{
	return dbfarm__cfg.max_msg;
}

static bool farm_has_mule(size_t farm, int id)
{
	const struct dbfarm__farm *f = &dbfarm__cfg.f[farm];
	for (size_t i = 0; i < f->nmules; i++)
		if (f->mules[i] == id)
			return true;
	return false;
}

bool dbfarm_mule_in(int id, size_t farm)
{
	return farm < dbfarm__cfg.n && farm_has_mule(farm, id);
}

bool dbfarm_mule_consumes(int id)
{
	for (size_t f = 0; f < dbfarm__cfg.n; f++)
		if (farm_has_mule(f, id))
			return true;
	return false;
}

void dbfarm_handler_name(int id, size_t farm, uint32_t epoch, char *buf, size_t len)
{
	char prefix[DBFARM_NAME_MAX];
	dbfarm__prefix(epoch, prefix, sizeof(prefix));
	snprintf(buf, len, "%s.%s.%d", prefix, dbfarm_name(farm), id);
}

static struct dbfarm__slot *slot(int id)
{
	struct dbfarm__config *c = &dbfarm__cfg;
	return c->shm && id >= 1 && (size_t)id <= c->nmules ? &c->shm->slots[id - 1] : NULL;
}

static void bump(struct dbfarm__slot *s)
{
	__atomic_add_fetch(&s->wake, 1, __ATOMIC_SEQ_CST);
	futex(&s->wake, FUTEX_WAKE, 1, NULL);
}

/* A mule reads its counter before claiming and sleeps only while it has
 * not moved, so a mule between those two steps must be bumped too: one
 * that found nothing would otherwise sleep through this wake-up. */
void dbfarm__wake(size_t farm, bool all)
{
	if (dbfarm__cfg.shm == NULL || farm >= dbfarm__cfg.n)
		return;
	const struct dbfarm__farm *f = &dbfarm__cfg.f[farm];
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < f->nmules; i++) {
			struct dbfarm__slot *s = slot(f->mules[i]);
			int state = s ? __atomic_load_n(&s->state, __ATOMIC_SEQ_CST) : SLOT_HELD;
			if (state == SLOT_HELD || (pass == 0 && state != SLOT_WAITING) ||
			    (pass == 1 && state == SLOT_WAITING))
				continue;
			bump(s);
			if (!all)
				return;
		}
}

/* --- the enqueue pool ------------------------------------------------------- */

/* Connections for enqueue and look-ups, one per concurrent caller; the
 * notifier thread borrows one too. A forked child starts afresh (it must
 * not speak on its parent's sockets). */
#define POOL_MAX 64

static struct {
	pthread_mutex_t lock;
	pthread_cond_t freed, notify;
	struct dbq *idle[POOL_MAX];
	size_t nidle, nopen;
	bool notifier_running;
	bool *pending;    /* [nfarms]: a NOTIFY is due */
	int64_t *sent_ms; /* [nfarms]: when the last one went */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .freed = PTHREAD_COND_INITIALIZER,
          .notify = PTHREAD_COND_INITIALIZER};

static void pool_atfork_child(void)
{
	for (size_t i = 0; i < pool.nidle; i++) {
		int fd = dbq_socket(pool.idle[i]);
		if (fd >= 0)
			close(fd); /* the handle itself is abandoned: it holds the parent's session
			            */
	}
	pthread_mutex_init(&pool.lock, NULL);
	pthread_cond_init(&pool.freed, NULL);
	pthread_cond_init(&pool.notify, NULL);
	pool.nidle = pool.nopen = 0;
	pool.notifier_running = false;
	for (size_t f = 0; pool.pending && f < dbfarm__cfg.n; f++)
		pool.pending[f] = false;
}

/* Takes a pooled connection into *q (NULL: the caller connects a new
 * one). Returns false when none came free before <deadline>. */
static bool pool_take(struct dbq **q, int64_t deadline)
{
	pthread_mutex_lock(&pool.lock);
	while (pool.nidle == 0 && pool.nopen >= POOL_MAX) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&pool.freed, &pool.lock, &ts);
		if (dbfarm__now_ms() > deadline) {
			pthread_mutex_unlock(&pool.lock);
			return false;
		}
	}
	*q = NULL;
	if (pool.nidle > 0)
		*q = pool.idle[--pool.nidle];
	else
		pool.nopen++;
	pthread_mutex_unlock(&pool.lock);
	return true;
}

static void pool_give(struct dbq *q)
{
	pthread_mutex_lock(&pool.lock);
	if (q != NULL && pool.nidle < POOL_MAX)
		pool.idle[pool.nidle++] = q;
	else
		pool.nopen--;
	pthread_cond_signal(&pool.freed);
	pthread_mutex_unlock(&pool.lock);
}

/* Makes sure *q is connected, within <deadline>. */
static int ensure_connected(struct dbq **q, int64_t deadline)
{
	int64_t left = deadline - dbfarm__now_ms();
	int ms = left < 2000 ? 2000 : left > 10000 ? 10000 : (int)left;
	if (*q == NULL) {
		*q = dbq_connect(dbfarm__cfg.conninfo, ms);
		if (*q == NULL)
			return DBQ_ENOMEM;
		dbq_set_history(*q, dbfarm__cfg.retention_s > 0); /* --dbqueue-retention 0 */
		return dbq_status(*q);
	}
	int st = dbq_status(*q); /* after a timeout the session is in an unknown state */
	if (st == DBQ_ECONNLOST || st == DBQ_ECONNECT || st == DBQ_ETIMEOUT || dbq_socket(*q) < 0)
		return dbq_reconnect(*q);
	return DBQ_OK;
}

static void copy_err(char *err, size_t errlen, struct dbq *q, int rc)
{
	const char *msg = q ? dbq_errmsg(q) : NULL;
	snprintf(err, errlen, "%s", msg && msg[0] ? msg : dbq_strerror(rc));
	size_t n = strlen(err);
	while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	for (char *p = err; *p; p++) /* libpq's messages span lines: one log line */
		if (*p == '\n' || *p == '\t')
			*p = ' ';
}

/* Runs <op> on a pooled connection, retrying transient failures with
 * backoff until <timeout_ms> has passed. */
typedef int (*pool_op)(struct dbq *q, void *arg);

static int with_connection(pool_op op, void *arg, int timeout_ms, char *err, size_t errlen)
{
	int64_t deadline = dbfarm__now_ms() + timeout_ms;
	int backoff = BACKOFF_MIN_MS, rc = DBQ_ETIMEOUT;
	snprintf(err, errlen, "%s", "no database connection could be had in time");
	for (;;) {
		struct dbq *q;
		if (!pool_take(&q, deadline))
			return rc;
		rc = ensure_connected(&q, deadline);
		if (rc == DBQ_OK)
			rc = op(q, arg);
		if (rc != DBQ_OK)
			copy_err(err, errlen, q, rc);
		pool_give(q);
		int64_t left = deadline - dbfarm__now_ms();
		if (!dbfarm__transient(rc) || left <= 0)
			return rc;
		dbfarm__nap(backoff < left ? backoff : (int)left);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

/* The notifier: one NOTIFY per farm per DBFARM_NOTIFY_GAP_MS at most. */
static int notify_op(struct dbq *q, void *arg)
{
	return dbq_notify(q, dbfarm_name(*(size_t *)arg));
}

static void *notifier(void *unused)
{
	pthread_mutex_lock(&pool.lock);
	for (;;) {
		int64_t now = dbfarm__now_ms(), wait = -1;
		for (size_t f = 0; f < dbfarm__cfg.n; f++) {
			if (!pool.pending[f])
				continue;
			int64_t due = pool.sent_ms[f] + DBFARM_NOTIFY_GAP_MS;
			if (due > now) {
				wait = wait < 0 || due - now < wait ? due - now : wait;
				continue;
			}
			pool.pending[f] = false;
			pool.sent_ms[f] = now;
			pthread_mutex_unlock(&pool.lock);
			char err[256];
			int rc = with_connection(notify_op, &f, 2000, err, sizeof(err));
			if (rc != DBQ_OK)
				log_info("NOTIFY for database farm %s failed (%s): its handlers "
				         "find "
				         "the job at their next poll",
				         dbfarm_name(f), err);
			pthread_mutex_lock(&pool.lock);
			now = dbfarm__now_ms();
		}
		if (wait < 0) {
			pthread_cond_wait(&pool.notify, &pool.lock);
		} else {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)wait * 1000000;
			ts.tv_sec += ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&pool.notify, &pool.lock, &ts);
		}
	}
	return NULL;
}

static void schedule_notify(size_t farm)
{
	if (dbfarm__cfg.poll_only)
		return;
	pthread_mutex_lock(&pool.lock);
	if (pool.pending == NULL) {
		pool.pending = calloc(dbfarm__cfg.n, sizeof(bool));
		pool.sent_ms = calloc(dbfarm__cfg.n, sizeof(int64_t));
	}
	if (pool.pending != NULL && pool.sent_ms != NULL) {
		pool.pending[farm] = true;
		if (!pool.notifier_running) {
			pthread_t t;
			pthread_attr_t a;
			pthread_attr_init(&a);
			pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
			pool.notifier_running = pthread_create(&t, &a, notifier, NULL) == 0;
			pthread_attr_destroy(&a);
		}
		pthread_cond_signal(&pool.notify);
	}
	pthread_mutex_unlock(&pool.lock);
}

struct enqueue_arg {
	struct dbq_new_job *jobs;
	size_t n;
};

static int enqueue_op(struct dbq *q, void *arg)
{
	struct enqueue_arg *a = arg;
	return a->n == 1 ? dbq_enqueue(q, a->jobs) : dbq_enqueue_many(q, a->jobs, a->n);
}

int dbfarm_enqueue(struct dbq_new_job *jobs, size_t n, int timeout_ms, char *err, size_t errlen)
{
	if (dbfarm__cfg.n == 0) {
		snprintf(err, errlen, "no database farms are configured (--db-farm)");
		return DBQ_EARG;
	}
	/* Jobs without a uuid get one from the library (UUIDv7) on the first
	 * attempt, written into jobs[i].uuid: a retry after a lost connection
	 * sends the same uuids and cannot enqueue a job twice. */
	struct enqueue_arg a = {jobs, n};
	int rc = with_connection(enqueue_op, &a, timeout_ms, err, errlen);
	if (rc != DBQ_OK && rc != DBQ_EDUPLICATE)
		return rc;
	for (size_t i = 0; i < n; i++) {
		int f = dbfarm_find(jobs[i].farm);
		if (f < 0 || jobs[i].uuid[0] == '\0' ||
		    (i > 0 && strcmp(jobs[i].farm, jobs[i - 1].farm) == 0))
			continue;
		dbfarm__wake((size_t)f, n > 1);
		schedule_notify((size_t)f);
	}
	return rc;
}

struct state_arg {
	const char *uuid;
	char *state;
	int *attempt;
};

static int state_op(struct dbq *q, void *arg)
{
	struct state_arg *a = arg;
	return dbq_job_state(q, a->uuid, a->state, a->attempt);
}

int dbfarm_job_state(const char *uuid, char *state, int *attempt, int timeout_ms, char *err,
                     size_t errlen)
{
	struct state_arg a = {uuid, state, attempt};
	return with_connection(state_op, &a, timeout_ms, err, errlen);
}

/* --- the consuming mule ------------------------------------------------------ */

static struct {
	struct dbq *q;
	struct dbq_job job;
	bool held;
	size_t farm;
	uint32_t epoch;   /* of the held job's handler name */
	size_t next_farm; /* round robin over the mule's farms */
	bool maybe_done;  /* a completion of the held job may have committed */
} me;

const struct dbq_job *dbfarm_mule_job(size_t *farm)
{
	if (farm != NULL)
		*farm = me.farm;
	return me.held ? &me.job : NULL;
}

static int mule_connect(int64_t deadline)
{
	return ensure_connected(&me.q, deadline);
}

static void publish(int id)
{
	struct dbfarm__slot *s = slot(id);
	if (s == NULL)
		return;
	if (me.held) {
		s->farm = (int)me.farm;
		s->epoch = me.epoch;
		s->job_id = me.job.id;
		s->attempt = me.job.attempt;
		memcpy(s->uuid, me.job.uuid, sizeof(s->uuid));
		__atomic_store_n(&s->state, SLOT_HELD, __ATOMIC_SEQ_CST);
	} else {
		__atomic_store_n(&s->state, SLOT_BUSY, __ATOMIC_SEQ_CST);
	}
}

int dbfarm_mule_claim(int id, char *err, size_t errlen)
{
	struct dbfarm__config *c = &dbfarm__cfg;
	struct dbfarm__slot *s = slot(id);
	if (me.held)
		return 1;
	int rc = mule_connect(dbfarm__now_ms() + 5000);
	if (rc != DBQ_OK) {
		copy_err(err, errlen, me.q, rc);
		return -1;
	}
	for (size_t k = 0; k < c->n; k++) {
		size_t f = (me.next_farm + k) % c->n;
		if (!farm_has_mule(f, id))
			continue;
		char handler[DBFARM_NAME_MAX];
		uint32_t epoch = c->shm ? __atomic_load_n(&c->shm->epoch, __ATOMIC_SEQ_CST) : 0;
		dbfarm_handler_name(id, f, epoch, handler, sizeof(handler));
		size_t n = 0;
		if (s != NULL)
			__atomic_store_n(&s->state, SLOT_CLAIMING, __ATOMIC_SEQ_CST);
		rc = dbq_claim(me.q, c->f[f].name, handler, c->lease_s, &me.job, 1, &n);
		if (rc == DBQ_ECONNLOST || rc == DBQ_ETIMEOUT) {
			char why[64];
			snprintf(why, sizeof(why), "mule %d lost its claim's reply", id);
			dbfarm__new_epoch(why);
		}
		if (rc == DBQ_OK && n == 1) {
			me.held = true;
			me.epoch = epoch;
			me.farm = f;
			me.next_farm = f + 1;
			publish(id);
			return 1;
		}
		publish(id);
		if (rc != DBQ_OK) {
			copy_err(err, errlen, me.q, rc);
			return -1;
		}
	}
	return 0;
}

/* The mule's first farm in turn, or c->n when it has none. */
static size_t next_farm_of(int id)
{
	const struct dbfarm__config *c = &dbfarm__cfg;
	for (size_t k = 0; k < c->n; k++) {
		size_t f = (me.next_farm + k) % c->n;
		if (farm_has_mule(f, id))
			return f;
	}
	return c->n;
}

int dbfarm_mule_done_claim(int id, bool *fenced)
{
	struct dbfarm__config *c = &dbfarm__cfg;
	struct dbfarm__slot *s = slot(id);
	size_t f = next_farm_of(id);
	*fenced = false;
	if (!me.held || f == c->n || mule_connect(dbfarm__now_ms() + 5000) != DBQ_OK)
		return -1;
	char done_handler[DBFARM_NAME_MAX], handler[DBFARM_NAME_MAX];
	dbfarm_handler_name(id, me.farm, me.epoch, done_handler, sizeof(done_handler));
	uint32_t epoch = c->shm ? __atomic_load_n(&c->shm->epoch, __ATOMIC_SEQ_CST) : 0;
	dbfarm_handler_name(id, f, epoch, handler, sizeof(handler));
	struct dbq_job next;
	size_t done = 0, n = 0;
	if (s != NULL)
		__atomic_store_n(&s->state, SLOT_CLAIMING, __ATOMIC_SEQ_CST);
	int rc = dbq_complete_claim(me.q, &me.job, done_handler, &done, c->f[f].name, handler,
	                            c->lease_s, &next, 1, &n);
	if (rc != DBQ_OK) {
		if (rc == DBQ_ECONNLOST || rc == DBQ_ETIMEOUT) {
			/* Both or neither happened: claim as in dbfarm_mule_claim,
			 * and the completion's retry may find itself fenced by
			 * its own first try. */
			char why[64];
			snprintf(why, sizeof(why), "mule %d lost its claim's reply", id);
			dbfarm__new_epoch(why);
			me.maybe_done = true;
		}
		publish(id); /* still held */
		return -1;
	}
	*fenced = done == 0;
	dbq_job_free(&me.job);
	me.held = n == 1;
	me.job = n == 1 ? next : (struct dbq_job){0};
	if (n == 1) {
		me.epoch = epoch;
		me.farm = f;
	}
	me.next_farm = f + 1;
	publish(id);
	return n == 1;
}

static int finish_once(int id, enum dbfarm_outcome how, const char *error, const char *handler)
{
	size_t done = 0;
	int rc;
	switch (how) {
	case DBF_DONE:
		rc = dbq_complete(me.q, &me.job, 1, handler, &done);
		return rc == DBQ_OK && done == 0 ? DBQ_FENCED : rc;
	case DBF_FAILED:
		return dbq_fail(me.q, &me.job, handler, error ? error : "failed");
	case DBF_RELEASED:
		return dbq_release(me.q, &me.job, handler);
	}
	return DBQ_EARG;
}

int dbfarm_mule_finish(int id, enum dbfarm_outcome how, const char *error, char *err, size_t errlen)
{
	if (!me.held) {
		snprintf(err, errlen, "no job is held");
		return -1;
	}
	char handler[DBFARM_NAME_MAX];
	dbfarm_handler_name(id, me.farm, me.epoch, handler, sizeof(handler));
	int64_t deadline = dbfarm__now_ms() + (int64_t)dbfarm__cfg.lease_s * 1000;
	int backoff = BACKOFF_MIN_MS, rc;
	bool retried = me.maybe_done && how == DBF_DONE;
	me.maybe_done = false;
	for (;;) {
		rc = mule_connect(deadline);
		if (rc == DBQ_OK)
			rc = finish_once(id, how, error, handler);
		if (!dbfarm__transient(rc) || dbfarm__now_ms() + backoff > deadline)
			break;
		retried = true;
		dbfarm__nap(backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	if (rc != DBQ_OK && rc != DBQ_FENCED)
		copy_err(err, errlen, me.q, rc);
	/* A fenced retry after a lost connection most likely means the first
	 * try committed: report it as recorded. */
	int result = rc == DBQ_OK || (rc == DBQ_FENCED && retried) ? 1 : rc == DBQ_FENCED ? 0 : -1;
	if (rc == DBQ_FENCED && !retried)
		snprintf(err, errlen, "%s", dbq_strerror(DBQ_FENCED));
	dbq_job_free(&me.job);
	memset(&me.job, 0, sizeof(me.job));
	me.held = false;
	publish(id);
	return result;
}

void dbfarm_mule_handler(int id, char *buf, size_t len)
{
	if (me.held)
		dbfarm_handler_name(id, me.farm, me.epoch, buf, len);
	else
		snprintf(buf, len, "%s", "");
}

uint32_t dbfarm_mule_seq(int id)
{
	struct dbfarm__slot *s = slot(id);
	return s ? __atomic_load_n(&s->wake, __ATOMIC_SEQ_CST) : 0;
}

bool dbfarm_mule_sleep(int id, uint32_t seq, int timeout_ms)
{
	struct dbfarm__slot *s = slot(id);
	if (s == NULL) {
		dbfarm__nap(timeout_ms);
		return false;
	}
	__atomic_store_n(&s->state, SLOT_WAITING, __ATOMIC_SEQ_CST);
	struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
	if (__atomic_load_n(&s->wake, __ATOMIC_SEQ_CST) == seq)
		futex(&s->wake, FUTEX_WAIT, seq, &ts);
	__atomic_store_n(&s->state, me.held ? SLOT_HELD : SLOT_BUSY, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&s->wake, __ATOMIC_SEQ_CST) != seq;
}
