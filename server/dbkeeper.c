/*
 * dbkeeper.c - the keeper of the database farms, and the master's side of
 * them (see dbfarm.h).
 *
 * The keeper is a child of the master that never runs Python: it holds
 * the instance's one LISTEN connection and does the periodic work, so
 * that the master's loop never waits on the database.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dbfarm_internal.h"
#include "mulefarm/log.h"
#include "mulefarm/proctitle.h"

#define CONNECT_TIMEOUT_MS 5000
#define RECONNECT_MAX_MS   10000
#define STATS_EVERY_MS     10000
#define PRUNE_EVERY_MS     600000
#define POLL_EVERY_MS      2000 /* per farm: the safety net for run_at, retries, lost NOTIFYs */

static pid_t keeper_pid;
static int ctl[2] = {-1, -1}; /* master writes, keeper reads; EOF: the master is gone */
static bool forking_keeper;
static volatile sig_atomic_t keeper_stop;

/* --- the keeper ------------------------------------------------------------ */

struct keeper {
	struct dbq *q;
	bool up, migrated, listening;
	int64_t next_connect, next_renew, next_requeue, next_stats, next_prune, next_poll;
	int backoff_ms;
	char last_error[256];
};

static void on_keeper_signal(int sig)
{
	keeper_stop = 1;
}

static void keeper_signals(void)
{
	sigset_t none;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	struct sigaction sa = {.sa_handler = on_keeper_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void keeper_error(struct keeper *k, const char *what, int rc)
{
	const char *msg = k->q ? dbq_errmsg(k->q) : NULL;
	char text[sizeof(k->last_error)];
	snprintf(text, sizeof(text), "%s: %s", what, msg && msg[0] ? msg : dbq_strerror(rc));
	for (char *p = text; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	if (strcmp(text, k->last_error) != 0)
		log_info("database queue: %s", text);
	snprintf(k->last_error, sizeof(k->last_error), "%s", text);
	struct dbfarm__shm *shm = dbfarm__cfg.shm;
	snprintf(shm->keeper_error, sizeof(shm->keeper_error), "%s", text);
	if (dbfarm__transient(rc) && rc != DBQ_EQUERY) {
		k->up = false;
		k->listening = false;
		shm->keeper_connected = 0;
	}
}

static void wake_all(void)
{
	for (size_t f = 0; f < dbfarm__cfg.n; f++)
		dbfarm__wake(f, true);
}

static void keeper_connect(struct keeper *k, int64_t now)
{
	struct dbfarm__config *c = &dbfarm__cfg;
	int rc = k->q == NULL ? DBQ_ENOMEM : dbq_reconnect(k->q);
	if (k->q == NULL) {
		k->q = dbq_connect(c->conninfo, CONNECT_TIMEOUT_MS);
		rc = k->q ? dbq_status(k->q) : DBQ_ENOMEM;
	}
	if (rc == DBQ_OK && !k->migrated) {
		rc = dbq_migrate(k->q);
		k->migrated = rc == DBQ_OK;
		if (rc == DBQ_ESCHEMA) {
			keeper_error(k, "migrations", rc);
			k->next_connect = now + RECONNECT_MAX_MS;
			return;
		}
	}
	if (rc == DBQ_OK && !c->poll_only) {
		const char *names[FARMS_MAX];
		for (size_t f = 0; f < c->n && f < FARMS_MAX; f++)
			names[f] = c->f[f].name;
		rc = dbq_listen(k->q, names, c->n < FARMS_MAX ? c->n : FARMS_MAX);
		k->listening = rc == DBQ_OK;
	}
	if (rc != DBQ_OK) {
		keeper_error(k, "connecting", rc == DBQ_EQUERY ? DBQ_ECONNECT : rc);
		k->next_connect = now + k->backoff_ms;
		k->backoff_ms =
		        k->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : k->backoff_ms * 2;
		return;
	}
	if (k->last_error[0] != '\0')
		log_info("database queue: connected again");
	k->last_error[0] = '\0';
	c->shm->keeper_error[0] = '\0';
	c->shm->keeper_connected = 1;
	k->up = true;
	k->backoff_ms = 250;
	k->next_renew = k->next_requeue = k->next_stats = now;
	wake_all(); /* notifications may have been missed while away */
}

/* Fails or releases the jobs of dead mules, oldest request first. */
static void keeper_requests(struct keeper *k)
{
	struct dbfarm__shm *shm = dbfarm__cfg.shm;
	while (k->up && shm->req_head != __atomic_load_n(&shm->req_tail, __ATOMIC_ACQUIRE)) {
		struct dbfarm__request *r = &shm->req[shm->req_head % DBFARM_REQUESTS];
		struct dbq_job job = {.id = r->job_id, .attempt = r->attempt};
		memcpy(job.uuid, r->uuid, sizeof(job.uuid));
		char handler[DBFARM_NAME_MAX];
		dbfarm_handler_name(r->mule, (size_t)r->farm, r->epoch, handler, sizeof(handler));
		int rc = r->release ? dbq_release(k->q, &job, handler)
		                    : dbq_fail(k->q, &job, handler, r->reason);
		if (dbfarm__transient(rc) && rc != DBQ_EQUERY) {
			keeper_error(k, "recording a dead mule's job", rc);
			return; /* retried once connected again */
		}
		if (rc == DBQ_OK)
			log_info("job %s of mule %d %s: %s", r->uuid, r->mule,
			         r->release ? "released" : "failed", r->reason);
		else
			log_info("job %s of mule %d could not be %s (%s)", r->uuid, r->mule,
			         r->release ? "released" : "failed",
			         rc == DBQ_FENCED ? "its lease had moved on" : dbq_errmsg(k->q));
		__atomic_store_n(&shm->req_head, shm->req_head + 1, __ATOMIC_RELEASE);
	}
}

static bool has_consumers(void)
{
	for (size_t f = 0; f < dbfarm__cfg.n; f++)
		if (dbfarm__cfg.f[f].nmules > 0)
			return true;
	return false;
}

static void refresh_figures(struct keeper *k)
{
	for (size_t f = 0; k->up && f < dbfarm__cfg.n; f++) {
		struct dbq_stats st;
		int rc = dbq_stats(k->q, dbfarm__cfg.f[f].name, &st);
		if (rc != DBQ_OK) {
			keeper_error(k, "queue figures", rc);
			return;
		}
		struct dbfarm__figures *g = &dbfarm__cfg.shm->fig[f];
		__atomic_add_fetch(&g->seq, 1, __ATOMIC_SEQ_CST);
		g->st = st;
		g->valid = true;
		g->at = (int64_t)time(NULL);
		__atomic_add_fetch(&g->seq, 1, __ATOMIC_SEQ_CST);
	}
}

/* One statement for the current epoch, and one more per older epoch
 * that a live mule still holds a job of (none, but after an unknown
 * claim outcome). */
static void renew(struct keeper *k)
{
	struct dbfarm__config *c = &dbfarm__cfg;
	uint32_t current = __atomic_load_n(&c->shm->epoch, __ATOMIC_SEQ_CST);
	uint32_t done[8];
	size_t ndone = 0;
	for (size_t i = 0; i <= c->nmules && k->up; i++) {
		uint32_t e = current;
		if (i < c->nmules) {
			struct dbfarm__slot *s = &c->shm->slots[i];
			if (__atomic_load_n(&s->state, __ATOMIC_SEQ_CST) != SLOT_HELD)
				continue;
			e = s->epoch;
		}
		bool seen = false;
		for (size_t j = 0; j < ndone; j++)
			seen = seen || done[j] == e;
		if (seen)
			continue;
		if (ndone < sizeof(done) / sizeof(done[0]))
			done[ndone++] = e;
		char prefix[DBFARM_NAME_MAX];
		size_t n;
		dbfarm__prefix(e, prefix, sizeof(prefix));
		int rc = dbq_renew(k->q, prefix, c->lease_s, &n);
		if (rc != DBQ_OK)
			keeper_error(k, "renewing leases", rc);
	}
}

static void keeper_timers(struct keeper *k, int64_t now)
{
	struct dbfarm__config *c = &dbfarm__cfg;
	int period = c->lease_s * 1000 / 3;
	size_t n;
	int rc;
	if (k->up && now >= k->next_renew) {
		k->next_renew = now + period;
		if (has_consumers())
			renew(k);
	}
	if (k->up && now >= k->next_requeue) {
		k->next_requeue = now + period;
		if ((rc = dbq_requeue_expired(k->q, &n)) != DBQ_OK)
			keeper_error(k, "re-queueing expired leases", rc);
		else if (n > 0)
			log_info("database queue: %zu jobs whose lease expired are queued again",
			         n);
	}
	if (k->up && now >= k->next_stats) {
		k->next_stats = now + STATS_EVERY_MS;
		refresh_figures(k);
	}
	if (k->up && now >= k->next_prune) {
		k->next_prune = now + PRUNE_EVERY_MS;
		if ((rc = dbq_prune(k->q, c->retention_s, &n)) != DBQ_OK)
			keeper_error(k, "pruning history", rc);
	}
	if (now >= k->next_poll) {
		k->next_poll = now + POLL_EVERY_MS * (int64_t)(c->n > 0 ? c->n : 1);
		for (size_t f = 0; f < c->n; f++)
			dbfarm__wake(f, false);
	}
}

static int64_t next_due(const struct keeper *k)
{
	int64_t t = k->next_poll;
	if (!k->up)
		return k->next_connect < t ? k->next_connect : t;
	const int64_t ts[] = {k->next_renew, k->next_requeue, k->next_stats, k->next_prune};
	for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
		t = ts[i] < t ? ts[i] : t;
	return t;
}

/* Stopping: the requests still pending get a few seconds. */
static void keeper_exit(struct keeper *k) __attribute__((noreturn));
static void keeper_exit(struct keeper *k)
{
	int64_t until = dbfarm__now_ms() + 5000;
	struct dbfarm__shm *shm = dbfarm__cfg.shm;
	while (shm->req_head != shm->req_tail && dbfarm__now_ms() < until) {
		if (!k->up)
			keeper_connect(k, dbfarm__now_ms());
		keeper_requests(k);
		if (shm->req_head != shm->req_tail)
			dbfarm__nap(200);
	}
	if (k->q != NULL)
		dbq_close(k->q);
	_exit(0);
}

static void keeper_wait(struct keeper *k, int64_t now)
{
	/* Notifications read while other statements ran are already here. */
	if (k->listening && k->up) {
		int rc = dbq_wait(k->q, 0);
		if (rc == 1)
			wake_all();
		else if (rc < 0)
			keeper_error(k, "listening", rc);
	}
	struct pollfd pfd[2] = {{.fd = ctl[0], .events = POLLIN},
	                        {.fd = k->listening ? dbq_socket(k->q) : -1, .events = POLLIN}};
	int64_t due = next_due(k) - now;
	int timeout = due < 0 ? 0 : due > 60000 ? 60000 : (int)due;
	if (poll(pfd, 2, timeout) == -1)
		return;
	if (pfd[0].revents & (POLLIN | POLLHUP)) {
		char buf[64];
		ssize_t r = read(ctl[0], buf, sizeof(buf));
		if (r == 0 || (r > 0 && memchr(buf, 'q', (size_t)r) != NULL))
			keeper_stop = 1;
	}
	if (k->listening && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
		int rc = dbq_wait(k->q, 0);
		if (rc == 1)
			wake_all();
		else if (rc < 0)
			keeper_error(k, "listening", rc);
	}
}

static void keeper_main(void) __attribute__((noreturn));
static void keeper_main(void)
{
	pid_t master = getppid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != master)
		_exit(1);
	keeper_signals();
	log_set_identity("keeper", 0);
	proctitle_set("dbqueue keeper", 0, NULL);
	/* Nothing of the master's but the log and the control pipe. */
	if (ctl[0] > 3)
		close_range(3, (unsigned)ctl[0] - 1, 0);
	close_range((unsigned)ctl[0] + 1, ~0U, 0);
	struct keeper k = {.backoff_ms = 250};
	int64_t now = dbfarm__now_ms();
	k.next_prune = now + 60000;
	k.next_poll = now + POLL_EVERY_MS;
	for (;;) {
		now = dbfarm__now_ms();
		if (keeper_stop)
			keeper_exit(&k);
		if (!k.up && now >= k.next_connect)
			keeper_connect(&k, now);
		keeper_requests(&k);
		keeper_timers(&k, dbfarm__now_ms());
		keeper_wait(&k, dbfarm__now_ms());
	}
}

/* --- the master's side ---------------------------------------------------- */

/* Children other than the keeper must not hold the pipe, or the keeper
 * would not see the master go. */
static void ctl_atfork_child(void)
{
	if (ctl[1] != -1)
		close(ctl[1]);
	ctl[1] = -1;
	if (!forking_keeper && ctl[0] != -1) {
		close(ctl[0]);
		ctl[0] = -1;
	}
}

void dbfarm_keeper_start(void)
{
	if (dbfarm__cfg.n == 0)
		return;
	if (ctl[0] == -1) {
		if (pipe2(ctl, O_CLOEXEC) == -1) {
			log_err(errno, "pipe2() failed for the database keeper");
			return;
		}
		fcntl(ctl[1], F_SETFL, O_NONBLOCK);
		pthread_atfork(NULL, NULL, ctl_atfork_child);
	}
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	forking_keeper = true;
	pid_t pid = fork();
	if (pid == 0)
		keeper_main();
	forking_keeper = false;
	int saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid == -1) {
		log_err(saved, "fork() failed for the database keeper");
		return;
	}
	keeper_pid = pid;
	log_info("spawned the database keeper (pid %d)", (int)pid);
}

bool dbfarm_reaped(pid_t pid, int status, bool respawn)
{
	if (keeper_pid <= 0 || pid != keeper_pid)
		return false;
	keeper_pid = 0;
	if (!respawn) { /* the master is stopping */
		log_info("database keeper (pid %d) exited", (int)pid);
		return true;
	}
	if (WIFSIGNALED(status))
		log_info("database keeper (pid %d) killed by signal %d: respawning it", (int)pid,
		         WTERMSIG(status));
	else
		log_info("database keeper (pid %d) exited with status %d: respawning it", (int)pid,
		         WEXITSTATUS(status));
	dbfarm_keeper_start();
	return true;
}

void dbfarm_mule_gone(int id, pid_t pid, int status, bool stopping)
{
	struct dbfarm__config *c = &dbfarm__cfg;
	if (c->n == 0 || id < 1 || (size_t)id > c->nmules)
		return;
	struct dbfarm__slot *s = &c->shm->slots[id - 1];
	int state = __atomic_load_n(&s->state, __ATOMIC_SEQ_CST);
	s->state = SLOT_BUSY;
	if (state == SLOT_CLAIMING) {
		char why[64];
		snprintf(why, sizeof(why), "mule %d died while claiming a job", id);
		dbfarm__new_epoch(why);
	}
	if (state != SLOT_HELD)
		return;
	struct dbfarm__shm *shm = c->shm;
	if (shm->req_tail - __atomic_load_n(&shm->req_head, __ATOMIC_ACQUIRE) >= DBFARM_REQUESTS) {
		log_info("database keeper is behind: job %s of mule %d waits for its lease",
		         s->uuid, id);
		return;
	}
	struct dbfarm__request *r = &shm->req[shm->req_tail % DBFARM_REQUESTS];
	*r = (struct dbfarm__request){.release = stopping,
	                              .mule = id,
	                              .farm = s->farm,
	                              .attempt = s->attempt,
	                              .epoch = s->epoch,
	                              .job_id = s->job_id};
	memcpy(r->uuid, s->uuid, sizeof(r->uuid));
	if (WIFSIGNALED(status))
		snprintf(r->reason, sizeof(r->reason),
		         "mule %d (pid %d) was killed by signal %d while running the job%s", id,
		         (int)pid, WTERMSIG(status), stopping ? " (stopping)" : "");
	else
		snprintf(r->reason, sizeof(r->reason),
		         "mule %d (pid %d) exited with status %d while running the job", id,
		         (int)pid, WEXITSTATUS(status));
	__atomic_store_n(&shm->req_tail, shm->req_tail + 1, __ATOMIC_RELEASE);
	if (ctl[1] != -1 && write(ctl[1], "r", 1) == -1) {
		/* full: the keeper has wake-ups pending already */
	}
}

void dbfarm_shutdown(int timeout_ms)
{
	if (keeper_pid <= 0)
		return;
	if (ctl[1] != -1 && write(ctl[1], "q", 1) == -1) {
		/* the keeper also stops on SIGTERM */
	}
	kill(keeper_pid, SIGTERM);
	int64_t until = dbfarm__now_ms() + timeout_ms;
	int status;
	while (waitpid(keeper_pid, &status, WNOHANG) == 0) {
		if (dbfarm__now_ms() >= until) {
			log_info("database keeper did not stop in time: killing it");
			kill(keeper_pid, SIGKILL);
			waitpid(keeper_pid, &status, 0);
			break;
		}
		dbfarm__nap(20);
	}
	keeper_pid = 0;
}

static bool read_figures(size_t f, struct dbq_stats *st, int64_t *at)
{
	struct dbfarm__figures *g = &dbfarm__cfg.shm->fig[f];
	for (int tries = 0; tries < 100; tries++) {
		uint32_t s1 = __atomic_load_n(&g->seq, __ATOMIC_SEQ_CST);
		if (s1 & 1)
			continue;
		bool valid = g->valid;
		*st = g->st;
		*at = g->at;
		if (__atomic_load_n(&g->seq, __ATOMIC_SEQ_CST) == s1)
			return valid;
	}
	return false;
}

const char *dbfarm_status_text(void)
{
	static char buf[512];
	struct dbfarm__config *c = &dbfarm__cfg;
	buf[0] = '\0';
	if (c->n == 0)
		return buf;
	size_t len = 0;
	if (!c->shm->keeper_connected && c->shm->keeper_error[0] != '\0')
		len += (size_t)snprintf(buf, sizeof(buf), "database unreachable (%.200s); ",
		                        c->shm->keeper_error);
	for (size_t f = 0; f < c->n && len < sizeof(buf); f++) {
		struct dbq_stats st;
		int64_t at;
		if (!read_figures(f, &st, &at))
			continue;
		int n = snprintf(buf + len, sizeof(buf) - len,
		                 "%s%s: %lld queued, %lld running, %lld failed, oldest %.0f s",
		                 len ? "; " : "", c->f[f].name, (long long)st.queued,
		                 (long long)st.running, (long long)st.failed, st.oldest_queued_s);
		len += n > 0 ? (size_t)n : 0;
	}
	return buf;
}

static void json_name(char *out, size_t size, const char *s)
{
	size_t o = 0;
	for (; *s && o + 7 < size; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			o += (size_t)snprintf(out + o, size - o, "\\u%04x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
}

char *dbfarm_stats_json(void)
{
	struct dbfarm__config *c = &dbfarm__cfg;
	if (c->n == 0)
		return NULL;
	size_t cap = 256 + c->n * (FARMQ_NAME_MAX * 6 + 512) + c->nmules * 12;
	char *buf = malloc(cap);
	if (buf == NULL)
		return NULL;
	size_t len = (size_t)snprintf(buf, cap, "[");
	for (size_t f = 0; f < c->n; f++) {
		struct dbq_stats st = {0};
		int64_t at = 0;
		bool valid = read_figures(f, &st, &at);
		char name[FARMQ_NAME_MAX * 6 + 1];
		json_name(name, sizeof(name), c->f[f].name);
		len += (size_t)snprintf(
		        buf + len, cap - len,
		        "%s{\"name\":\"%s\",\"database\":true,\"connected\":%s,\"valid\":%s,"
		        "\"queued\":%lld,\"running\":%lld,\"failed\":%lld,\"discarded\":%lld,"
		        "\"done_retained\":%lld,\"oldest_queued_s\":%.3f,\"handlers\":%lld,"
		        "\"updated\":%lld,\"mules\":[",
		        f ? "," : "", name, c->shm->keeper_connected ? "true" : "false",
		        valid ? "true" : "false", (long long)st.queued, (long long)st.running,
		        (long long)st.failed, (long long)st.discarded, (long long)st.done_retained,
		        st.oldest_queued_s, (long long)st.handlers, (long long)at);
		for (size_t i = 0; i < c->f[f].nmules; i++)
			len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "",
			                        c->f[f].mules[i]);
		len += (size_t)snprintf(buf + len, cap - len, "]}");
	}
	snprintf(buf + len, cap - len, "]");
	return buf;
}
