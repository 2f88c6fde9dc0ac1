/*
 * dbqueue_bench.c - the load driver of tests/bench/dbqueue.sh: processes
 * (one connection each) driving the dbqueue library, as a handler host
 * would. Not a test: it prints figures.
 *
 *   dbqueue_bench pipeline CONNINFO [-p producers] [-c consumers] [-b batch]
 *                 [-d seconds] [-w warmup] [-n total] [-r report_every] [-H]
 *       producers enqueue_many(batch), consumers claim(batch) and complete
 *       the batch (a no-op handler); the backlog is capped at 20 batches a
 *       producer. Prints the completed jobs/s after the warm-up, and with
 *       -r the rate of every <report_every> jobs (the bloat check). -H:
 *       completions keep no history (dbq_set_history(q, false), mulefarm's
 *       --dbqueue-retention 0).
 *   dbqueue_bench single CONNINFO [-c clients] [-d seconds] [-w warmup]
 *       each client enqueues one job per transaction (dbq_enqueue).
 *   dbqueue_bench latency CONNINFO [-R rate] [-d seconds] [-W window_ms]
 *       one producer enqueues at <rate> jobs/s (open loop) and notifies
 *       after commit (dbq_notify_coalesced, <window_ms>); one consumer
 *       LISTENs, waits, claims. Prints commit-to-claim percentiles.
 *   dbqueue_bench idle CONNINFO [-d seconds]
 *       one consumer waiting on LISTEN with the adaptive safety-net poll
 *       (100 ms doubling to 2 s); prints the claims it made.
 *
 * Output lines are "key value" pairs for the script to pick up.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/dbqueue.h"

#define FARM     "bench"
#define MAX_PROC 64

struct shared {
	atomic_llong enqueued;
	atomic_llong completed;
	atomic_int stop;
	atomic_int failed;
};

static struct shared *sh;
static const char *conninfo;
static int producers = 2, consumers = 2, batch = 100, duration = 10, warmup = 2, rate = 1000,
           window_ms = 1;
static long long total, report_every;
static bool keep_history = true;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct dbq *open_q(void)
{
	struct dbq *q = dbq_connect(conninfo, 60000);

	if (q == NULL || dbq_status(q) != DBQ_OK) {
		fprintf(stderr, "dbqueue_bench: %s\n", dbq_errmsg(q));
		exit(1);
	}
	dbq_set_history(q, keep_history);
	return q;
}

static void die_q(struct dbq *q, const char *what)
{
	fprintf(stderr, "dbqueue_bench: %s: %s\n", what, dbq_errmsg(q));
	atomic_store(&sh->failed, 1);
	atomic_store(&sh->stop, 1);
	_exit(1);
}

/* ---- pipeline ------------------------------------------------------------ */

static void producer(int id)
{
	struct dbq *q = open_q();
	struct dbq_new_job *jobs = calloc((size_t)batch, sizeof *jobs);
	char payload[100];
	int next;

	memset(payload, 'x', sizeof payload);
	while (!atomic_load(&sh->stop)) {
		long long backlog = atomic_load(&sh->enqueued) - atomic_load(&sh->completed);
		if (backlog > 20LL * batch * producers) {
			if (dbq_notify_flush(q, &next) != DBQ_OK)
				die_q(q, "notify");
			usleep(200);
			continue;
		}
		for (int i = 0; i < batch; i++)
			jobs[i] = (struct dbq_new_job){
			        .farm = FARM, .payload = payload, .len = sizeof payload};
		if (dbq_enqueue_many(q, jobs, (size_t)batch) != DBQ_OK)
			die_q(q, "enqueue_many");
		atomic_fetch_add(&sh->enqueued, batch);
		if (dbq_notify_coalesced(q, FARM, 5) != DBQ_OK)
			die_q(q, "notify");
	}
	free(jobs);
	dbq_close(q);
	_exit(0);
}

static void consumer(int id)
{
	struct dbq *q = open_q();
	struct dbq_job *jobs = calloc((size_t)batch, sizeof *jobs);
	const char *farms[1] = {FARM};
	char handler[64];
	size_t n, done;

	snprintf(handler, sizeof handler, "bench%d.%s.1", id, FARM);
	if (dbq_listen(q, farms, 1) != DBQ_OK)
		die_q(q, "listen");
	while (!atomic_load(&sh->stop)) {
		if (dbq_claim(q, FARM, handler, 300, jobs, (size_t)batch, &n) != DBQ_OK)
			die_q(q, "claim");
		if (n == 0) {
			if (dbq_wait(q, 10) < 0)
				die_q(q, "wait");
			continue;
		}
		if (dbq_complete(q, jobs, n, handler, &done) != DBQ_OK)
			die_q(q, "complete");
		for (size_t i = 0; i < n; i++)
			dbq_job_free(&jobs[i]);
		atomic_fetch_add(&sh->completed, (long long)done);
	}
	free(jobs);
	dbq_close(q);
	_exit(0);
}

static pid_t kids[MAX_PROC];
static int nkids;

static void spawn(void (*fn)(int), int id)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the driver */
		if (getppid() == 1)
			_exit(1);
		fn(id);
	}
	kids[nkids++] = pid;
}

static int reap(void)
{
	int bad = 0;

	for (int i = 0; i < nkids; i++) {
		int status;
		waitpid(kids[i], &status, 0);
		bad |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	}
	nkids = 0;
	return bad || atomic_load(&sh->failed);
}

static int run_pipeline(void)
{
	double t0, tw, t_end, last_t;
	long long cw, last_c = 0, next_report = report_every;

	for (int i = 0; i < producers; i++)
		spawn(producer, i);
	for (int i = 0; i < consumers; i++)
		spawn(consumer, i);
	t0 = last_t = now_s();
	tw = t0 + warmup;
	cw = -1;
	for (;;) {
		usleep(2000);
		double t = now_s();
		long long c = atomic_load(&sh->completed);
		if (atomic_load(&sh->failed))
			break;
		if (cw < 0 && t >= tw) {
			cw = c;
			tw = t;
		}
		if (report_every > 0 && c >= next_report) {
			printf("chunk %lld %.0f\n", next_report,
			       (double)(c - last_c) / (t - last_t));
			fflush(stdout);
			last_c = c;
			last_t = t;
			next_report += report_every;
		}
		if (total > 0 ? c >= total : (cw >= 0 && t >= tw + duration)) {
			t_end = t;
			if (cw < 0)
				cw = 0, tw = t0;
			printf("jobs_per_s %.0f\n", (double)(c - cw) / (t_end - tw));
			printf("jobs %lld\n", c);
			printf("seconds %.2f\n", t_end - t0);
			break;
		}
	}
	atomic_store(&sh->stop, 1);
	return reap();
}

/* ---- single -------------------------------------------------------------- */

static void single_client(int id)
{
	struct dbq *q = open_q();
	char payload[100];

	memset(payload, 'x', sizeof payload);
	while (!atomic_load(&sh->stop)) {
		struct dbq_new_job j = {
		        .farm = "single", .payload = payload, .len = sizeof payload};
		if (dbq_enqueue(q, &j) != DBQ_OK)
			die_q(q, "enqueue");
		atomic_fetch_add(&sh->enqueued, 1);
	}
	dbq_close(q);
	_exit(0);
}

static int run_single(void)
{
	double tw;
	long long e0;

	for (int i = 0; i < consumers; i++)
		spawn(single_client, i);
	usleep((useconds_t)warmup * 1000000);
	e0 = atomic_load(&sh->enqueued);
	tw = now_s();
	usleep((useconds_t)duration * 1000000);
	printf("enqueues_per_s %.0f\n", (double)(atomic_load(&sh->enqueued) - e0) / (now_s() - tw));
	atomic_store(&sh->stop, 1);
	return reap();
}

/* ---- latency ------------------------------------------------------------- */

static int64_t *commit_ns, *claim_ns;
static long long njobs;

static void lat_producer(int id)
{
	struct dbq *q = open_q();
	struct timespec next;
	int due;

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (long long seq = 0; seq < njobs && !atomic_load(&sh->stop); seq++) {
		/* open loop: job <seq> is due at start + seq / rate */
		long long ns = next.tv_nsec + 1000000000LL / rate;
		next.tv_sec += ns / 1000000000LL;
		next.tv_nsec = ns % 1000000000LL;
		for (;;) {
			if (dbq_notify_flush(q, &due) != DBQ_OK)
				die_q(q, "notify");
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			int64_t left = (next.tv_sec - now.tv_sec) * 1000000000LL +
			               (next.tv_nsec - now.tv_nsec);
			if (left <= 0)
				break;
			if (due >= 0 && (int64_t)due * 1000000 < left) {
				struct timespec d = {0, (long)due * 1000000 + 1000};
				nanosleep(&d, NULL);
				continue;
			}
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		}
		struct dbq_new_job j = {.farm = FARM, .payload = &seq, .len = sizeof seq};
		if (dbq_enqueue(q, &j) != DBQ_OK)
			die_q(q, "enqueue");
		commit_ns[seq] = real_ns();
		if (dbq_notify_coalesced(q, FARM, window_ms) != DBQ_OK)
			die_q(q, "notify");
	}
	while (dbq_notify_flush(q, &due) == DBQ_OK && due >= 0)
		usleep(1000);
	dbq_close(q);
	_exit(0);
}

static void lat_consumer(int id)
{
	struct dbq *q = open_q();
	const char *farms[1] = {FARM};
	struct dbq_job jobs[100];
	size_t n, done;
	long long got = 0;

	if (dbq_listen(q, farms, 1) != DBQ_OK)
		die_q(q, "listen");
	while (got < njobs && !atomic_load(&sh->stop)) {
		int r = dbq_wait(q, 1000);
		if (r < 0)
			die_q(q, "wait");
		do {
			if (dbq_claim(q, FARM, "lat.bench.1", 300, jobs, 100, &n) != DBQ_OK)
				die_q(q, "claim");
			int64_t t = real_ns();
			for (size_t i = 0; i < n; i++) {
				long long seq;
				memcpy(&seq, jobs[i].payload, sizeof seq);
				if (seq >= 0 && seq < njobs)
					claim_ns[seq] = t;
			}
			if (n > 0 && dbq_complete(q, jobs, n, "lat.bench.1", &done) != DBQ_OK)
				die_q(q, "complete");
			for (size_t i = 0; i < n; i++)
				dbq_job_free(&jobs[i]);
			got += (long long)n;
		} while (n > 0);
	}
	dbq_close(q);
	_exit(0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int run_latency(void)
{
	double *lat;
	long long k = 0;
	size_t len;

	njobs = (long long)rate * duration;
	len = (size_t)njobs * sizeof(int64_t);
	commit_ns = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	claim_ns = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (commit_ns == MAP_FAILED || claim_ns == MAP_FAILED)
		return perror("mmap"), 1;
	spawn(lat_consumer, 0);
	usleep(200000); /* LISTENing */
	spawn(lat_producer, 0);
	if (reap())
		return 1;
	lat = malloc((size_t)njobs * sizeof *lat);
	/* skip the first second (connections, plans, caches warming up) */
	for (long long i = rate; i < njobs; i++)
		if (commit_ns[i] && claim_ns[i])
			lat[k++] = (double)(claim_ns[i] - commit_ns[i]) / 1e6;
	qsort(lat, (size_t)k, sizeof *lat, cmp_double);
	if (k == 0)
		return fprintf(stderr, "no samples\n"), 1;
	printf("samples %lld\n", k);
	printf("p50_ms %.3f\n", lat[k / 2]);
	printf("p90_ms %.3f\n", lat[k * 9 / 10]);
	printf("p99_ms %.3f\n", lat[k * 99 / 100]);
	printf("max_ms %.3f\n", lat[k - 1]);
	free(lat);
	return 0;
}

/* ---- idle ---------------------------------------------------------------- */

static int run_idle(void)
{
	struct dbq *q = open_q();
	const char *farms[1] = {FARM};
	struct dbq_job jobs[10];
	double end = now_s() + duration;
	int poll_ms = 100;
	long long claims = 0;
	size_t n;

	if (dbq_listen(q, farms, 1) != DBQ_OK)
		die_q(q, "listen");
	while (now_s() < end) {
		int r = dbq_wait(q, poll_ms);
		if (r < 0)
			die_q(q, "wait");
		/* woken, or the safety net's turn: claim; an idle queue stretches
		 * the poll up to 2 s */
		if (dbq_claim(q, FARM, "idle.bench.1", 300, jobs, 10, &n) != DBQ_OK)
			die_q(q, "claim");
		claims++;
		for (size_t i = 0; i < n; i++)
			dbq_job_free(&jobs[i]);
		poll_ms = n > 0 || r == 1 ? 100 : (poll_ms * 2 > 2000 ? 2000 : poll_ms * 2);
	}
	printf("claims %lld\n", claims);
	dbq_close(q);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode;
	int opt;

	if (argc < 3) {
		fprintf(stderr, "usage: %s pipeline|single|latency|idle CONNINFO [options]\n",
		        argv[0]);
		return 2;
	}
	mode = argv[1];
	conninfo = argv[2];
	optind = 3;
	while ((opt = getopt(argc, argv, "p:c:b:d:w:n:r:R:W:H")) != -1) {
		switch (opt) {
		case 'H':
			keep_history = false;
			break;
		case 'p':
			producers = atoi(optarg);
			break;
		case 'c':
			consumers = atoi(optarg);
			break;
		case 'b':
			batch = atoi(optarg);
			break;
		case 'd':
			duration = atoi(optarg);
			break;
		case 'w':
			warmup = atoi(optarg);
			break;
		case 'n':
			total = atoll(optarg);
			break;
		case 'r':
			report_every = atoll(optarg);
			break;
		case 'R':
			rate = atoi(optarg);
			break;
		case 'W':
			window_ms = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (producers + consumers > MAX_PROC || batch <= 0 || rate <= 0)
		return 2;
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return perror("mmap"), 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	{
		struct dbq *q = open_q();
		if (dbq_migrate(q) != DBQ_OK)
			die_q(q, "migrate");
		dbq_close(q);
	}
	if (strcmp(mode, "pipeline") == 0)
		return run_pipeline();
	if (strcmp(mode, "single") == 0)
		return run_single();
	if (strcmp(mode, "latency") == 0)
		return run_latency();
	if (strcmp(mode, "idle") == 0)
		return run_idle();
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
