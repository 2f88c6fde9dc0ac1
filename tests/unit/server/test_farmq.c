/*
 * test_farmq.c - shared-memory queues and locks: shape, FIFO and ring
 * wrap-around, limits, waiting across processes, crashes (SIGKILL) and
 * signals, migration between regions.
 *
 * farmq.c is included to reach the queue headers (waiter counts, the
 * double-buffered state) so tests can wait for a process to be asleep and
 * simulate a crash in the middle of an update. Forked children never call
 * cmocka: they report through their exit status.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "farmq.c"

#define TEST_TIMEOUT 20 /* seconds; SIGALRM ends a hung test */
#define MAX_KIDS     8

static struct farmq *q;
static pid_t kids[MAX_KIDS];
static size_t nkids;

static int setup(void **state)
{
	alarm(TEST_TIMEOUT);
	q = NULL;
	nkids = 0;
	return 0;
}

/* Kills what a failed test left running; a passing test reaped them. */
static int teardown(void **state)
{
	for (size_t i = 0; i < nkids; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	farmq_close(q);
	q = NULL;
	alarm(0);
	return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static struct farmq *make(size_t nqueues, const char *const *names, size_t max_msgs,
                          size_t max_bytes, size_t max_msg, size_t nlocks)
{
	struct farmq_spec spec = {nqueues, names, max_msgs, max_bytes, max_msg, nlocks};
	char err[256] = "";
	struct farmq *r = farmq_create(&spec, err, sizeof(err));
	if (r == NULL)
		fail_msg("farmq_create: %s", err);
	return r;
}

static const char *const abc[] = {"a", "b", "c"};

/* Forks a child running <fn>(<arg>); its return value is the exit status. */
static pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid(), pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		/* Dies with the test binary (SIGALRM) rather than block forever. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
			_exit(99);
		_exit(fn(arg));
	}
	assert_true(nkids < MAX_KIDS);
	kids[nkids++] = pid;
	return pid;
}

static int reap(pid_t pid)
{
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	for (size_t i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = 0;
	return status;
}

static void assert_exit_ok(pid_t pid)
{
	int status = reap(pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("child %d: status %#x", (int)pid, status);
}

static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Polls until *<w> reaches <n> (a process is asleep on the futex). */
static bool wait_count(_Atomic uint32_t *w, uint32_t n, long max_ms)
{
	for (long i = 0; i < max_ms; i++) {
		if (atomic_load(w) >= n)
			return true;
		pause_ms(1);
	}
	return false;
}

static void push_str(size_t queue, const char *s)
{
	assert_int_equal(farmq_push(q, queue, s, strlen(s), 0), FARMQ_OK);
}

/* Pops from <queues> without waiting and checks the message and source. */
static void assert_pop(const size_t *queues, size_t nq, const char *want, size_t want_from)
{
	void *m = NULL;
	size_t len = 0, from = 99;
	assert_int_equal(farmq_pop(q, queues, nq, &m, &len, &from, 0), FARMQ_OK);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(m, want, len);
	assert_int_equal(from, want_from);
	free(m);
}

static void assert_pop1(size_t queue, const char *want)
{
	assert_pop(&queue, 1, want, 0);
}

static void assert_empty(size_t queue)
{
	void *m = NULL;
	size_t len;
	assert_int_equal(farmq_pop(q, &queue, 1, &m, &len, NULL, 0), FARMQ_TIMEOUT);
	assert_null(m);
}

static struct farmq_stats stats(size_t queue)
{
	struct farmq_stats st;
	farmq_stats(q, queue, &st);
	return st;
}

/* ---- create and attach ------------------------------------------------- */

static void test_create_shape(void **state)
{
	const char *const names[] = {"farm1", "mule:1"};
	q = make(2, names, 10, 1000, 100, 3);
	assert_int_equal(farmq_nqueues(q), 2);
	assert_string_equal(farmq_name(q, 0), "farm1");
	assert_string_equal(farmq_name(q, 1), "mule:1");
	assert_null(farmq_name(q, 2));
	assert_int_equal(farmq_max_msg(q), 100);
	assert_int_equal(farmq_nlocks(q), 3);
	assert_int_equal(farmq_find(q, "mule:1"), 1);
	assert_int_equal(farmq_find(q, "farm1"), 0);
	assert_int_equal(farmq_find(q, "farm"), -1);
	/* Survives exec: not close-on-exec. */
	int fl = fcntl(farmq_fd(q), F_GETFD);
	assert_true(fl != -1);
	assert_false(fl & FD_CLOEXEC);
}

static void test_create_rejects_bad_spec(void **state)
{
	const char *const dup[] = {"x", "x"};
	const char *const empty[] = {""};
	char longname[FARMQ_NAME_MAX + 1];
	memset(longname, 'n', FARMQ_NAME_MAX);
	longname[FARMQ_NAME_MAX] = '\0';
	const char *const toolong[] = {longname};
	struct farmq_spec bad[] = {
	        {2, dup, 4, 100, 10, 0},     {1, empty, 4, 100, 10, 0},
	        {1, toolong, 4, 100, 10, 0}, {1, abc, 4, 9, 10, 0}, /* max_bytes < max_msg */
	        {1, abc, 0, 100, 10, 0},     {1, abc, 4, 100, 0, 0},
	        {1, NULL, 4, 100, 10, 0},    {1, abc, SIZE_MAX / 2, 100, 10, 0},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct farmq *r = farmq_create(&bad[i], err, sizeof(err));
		if (r != NULL) {
			farmq_close(r);
			fail_msg("bad spec %zu accepted", i);
		}
		assert_true(strlen(err) > 0);
	}
	/* Locks only, no queue: fine. */
	q = make(0, NULL, 0, 0, 0, 1);
	assert_int_equal(farmq_lock(q, 0, 0), FARMQ_OK);
	assert_int_equal(farmq_unlock(q, 0), FARMQ_OK);
}

static void test_attach_same_process(void **state)
{
	char err[256] = "";
	q = make(3, abc, 8, 256, 64, 2);
	push_str(2, "before attach");
	int fd = dup(farmq_fd(q)); /* the attached handle owns and closes its fd */
	assert_true(fd != -1);
	struct farmq *a = farmq_attach(fd, err, sizeof(err));
	if (a == NULL)
		fail_msg("farmq_attach: %s", err);
	assert_int_equal(farmq_fd(a), fd);
	assert_int_equal(farmq_nqueues(a), 3);
	assert_string_equal(farmq_name(a, 2), "c");
	assert_int_equal(farmq_max_msg(a), 64);
	assert_int_equal(farmq_nlocks(a), 2);

	/* Same queues through either mapping. */
	void *m;
	size_t len, c = 2;
	assert_int_equal(farmq_pop(a, &c, 1, &m, &len, NULL, 0), FARMQ_OK);
	assert_int_equal(len, 13);
	assert_memory_equal(m, "before attach", 13);
	free(m);
	assert_int_equal(farmq_push(a, 0, "via a", 5, 0), FARMQ_OK);
	farmq_close(a);
	assert_pop1(0, "via a");
}

static int child_attach(void *arg)
{
	char err[256];
	struct farmq *a = farmq_attach(*(int *)arg, err, sizeof(err));
	if (a == NULL)
		return 1;
	if (farmq_nqueues(a) != 3 || strcmp(farmq_name(a, 1), "b") != 0 || farmq_find(a, "c") != 2)
		return 2;
	if (farmq_push(a, 1, "from child", 10, 0) != FARMQ_OK)
		return 3;
	farmq_close(a);
	return 0;
}

static void test_attach_forked_child(void **state)
{
	q = make(3, abc, 8, 256, 64, 2);
	int fd = farmq_fd(q);
	assert_exit_ok(spawn(child_attach, &fd));
	assert_pop1(1, "from child");
	assert_int_equal(stats(1).pushed, 1);
}

static void assert_attach_fails(int fd, const char *why)
{
	char err[256] = "";
	struct farmq *a = farmq_attach(fd, err, sizeof(err));
	if (a != NULL) {
		farmq_close(a);
		fail_msg("attached to %s", why);
	}
	if (strlen(err) == 0)
		fail_msg("no message for %s", why);
	assert_true(fcntl(fd, F_GETFD) != -1); /* left open for the caller */
}

static void test_attach_rejects_other_fds(void **state)
{
	unsigned char junk[8192];
	memset(junk, 0xa5, sizeof(junk));

	int devnull = open("/dev/null", O_RDWR);
	assert_true(devnull != -1);
	assert_attach_fails(devnull, "/dev/null");
	close(devnull);

	int fd = memfd_create("junk", MFD_CLOEXEC);
	assert_true(fd != -1);
	assert_attach_fails(fd, "an empty memfd");
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	assert_attach_fails(fd, "a memfd of junk");
	close(fd);

	/* A real header on a region of the wrong size. */
	q = make(3, abc, 8, 256, 64, 2);
	fd = memfd_create("short", MFD_CLOEXEC);
	assert_true(fd != -1);
	assert_int_equal(write(fd, q->base, q->l.size / 2), q->l.size / 2);
	assert_attach_fails(fd, "a truncated region");
	close(fd);

	/* A whole copy is a region; with one byte of the magic changed it is not. */
	fd = memfd_create("copy", MFD_CLOEXEC);
	assert_true(fd != -1);
	assert_int_equal(write(fd, q->base, q->l.size), q->l.size);
	char err[256];
	struct farmq *a = farmq_attach(fd, err, sizeof(err));
	if (a == NULL)
		fail_msg("farmq_attach(copy): %s", err);
	farmq_close(a); /* closes <fd> */
	fd = memfd_create("copy", MFD_CLOEXEC);
	assert_true(fd != -1);
	assert_int_equal(write(fd, q->base, q->l.size), q->l.size);
	assert_int_equal(pwrite(fd, "X", 1, 0), 1);
	assert_attach_fails(fd, "a region with a bad magic");
	close(fd);
}

/* ---- push and pop ------------------------------------------------------ */

static void test_fifo_and_stats(void **state)
{
	char buf[32];
	size_t total = 0;
	q = make(3, abc, 16, 1024, 64, 0);
	for (int i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "message %d", i);
		push_str(1, buf);
		total += strlen(buf);
	}
	struct farmq_stats st = stats(1);
	assert_int_equal(st.depth, 10);
	assert_int_equal(st.bytes, total);
	assert_int_equal(st.pushed, 10);
	assert_int_equal(st.delivered, 0);
	assert_int_equal(st.rejected, 0);
	assert_int_equal(stats(0).depth, 0);
	assert_int_equal(stats(0).oldest_ms, 0);
	for (int i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "message %d", i);
		assert_pop1(1, buf);
	}
	assert_empty(1);
	st = stats(1);
	assert_int_equal(st.depth, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.delivered, 10);
	assert_int_equal(st.oldest_ms, 0);

	/* Empty messages are messages. */
	assert_int_equal(farmq_push(q, 0, NULL, 0, 0), FARMQ_OK);
	assert_int_equal(stats(0).depth, 1);
	assert_pop1(0, "");
}

static uint32_t rng = 12345;

static uint32_t next_rand(void)
{
	rng = rng * 1103515245u + 12345u;
	return rng >> 8;
}

/* Random sizes through a small ring, against a model FIFO: every message
 * comes out whole and in order though records wrap at any byte. */
static void test_wraparound_varied_sizes(void **state)
{
	enum { MAXM = 8, MAXB = 100, MAXMSG = 50, N = 5000 };
	size_t sizes[N];
	unsigned char buf[MAXMSG];
	size_t in = 0, out = 0, bytes = 0;
	q = make(1, abc, MAXM, MAXB, MAXMSG, 0);

	while (out < N) {
		if (in < N && next_rand() % 3 != 0) {
			size_t n = next_rand() % (MAXMSG + 1);
			for (size_t k = 0; k < n; k++)
				buf[k] = (unsigned char)(in * 7 + k);
			int rc = farmq_push(q, 0, buf, n, 0);
			bool fits = in - out < MAXM && bytes + n <= MAXB;
			assert_int_equal(rc, fits ? FARMQ_OK : FARMQ_TIMEOUT);
			if (fits) {
				sizes[in++] = n;
				bytes += n;
			}
		} else if (out < in) {
			void *m;
			size_t len, zero = 0;
			assert_int_equal(farmq_pop(q, &zero, 1, &m, &len, NULL, 0), FARMQ_OK);
			assert_int_equal(len, sizes[out]);
			for (size_t k = 0; k < len; k++)
				if (((unsigned char *)m)[k] != (unsigned char)(out * 7 + k))
					fail_msg("message %zu byte %zu corrupt", out, k);
			free(m);
			bytes -= len;
			out++;
		}
		assert_int_equal(stats(0).depth, in - out);
		assert_int_equal(stats(0).bytes, bytes);
	}
	assert_true(stats(0).rejected > 0); /* the full path was taken */
	assert_int_equal(stats(0).delivered, N);
}

static void test_toobig(void **state)
{
	char big[65] = {0};
	q = make(1, abc, 4, 100, 64, 0);
	assert_int_equal(farmq_push(q, 0, big, 65, -1), FARMQ_TOOBIG);
	assert_int_equal(stats(0).depth, 0);
	assert_int_equal(stats(0).rejected, 0);
	assert_int_equal(farmq_push(q, 0, big, 64, 0), FARMQ_OK);
	assert_int_equal(stats(0).bytes, 64);
}

static void test_full_times_out(void **state)
{
	q = make(1, abc, 2, 100, 50, 0);
	/* Full by count. */
	push_str(0, "one");
	push_str(0, "two");
	assert_int_equal(farmq_push(q, 0, "x", 1, 0), FARMQ_TIMEOUT);
	assert_int_equal(farmq_push(q, 0, "x", 1, 30), FARMQ_TIMEOUT);
	struct farmq_stats st = stats(0);
	assert_int_equal(st.rejected, 2);
	assert_int_equal(st.pushed, 2);
	assert_int_equal(st.depth, 2);
	assert_pop1(0, "one");
	assert_int_equal(farmq_push(q, 0, "three", 5, 30), FARMQ_OK);
	assert_pop1(0, "two");
	assert_pop1(0, "three");
}

static void test_full_by_bytes(void **state)
{
	char m40[40] = {0};
	const char *const one[] = {"q"};
	q = make(1, one, 10, 100, 50, 0);
	assert_int_equal(farmq_push(q, 0, m40, 40, 0), FARMQ_OK);
	assert_int_equal(farmq_push(q, 0, m40, 40, 0), FARMQ_OK);
	assert_int_equal(farmq_push(q, 0, m40, 40, 0), FARMQ_TIMEOUT);
	assert_int_equal(farmq_push(q, 0, m40, 20, 0), FARMQ_OK);
	assert_int_equal(farmq_push(q, 0, m40, 1, 10), FARMQ_TIMEOUT);
	assert_int_equal(stats(0).bytes, 100);
	assert_int_equal(stats(0).rejected, 2);
}

static void test_oldest_ms(void **state)
{
	q = make(1, abc, 4, 100, 50, 0);
	push_str(0, "old");
	while (stats(0).oldest_ms < 50) /* the alarm bounds this */
		pause_ms(1);
	int64_t t0 = now_ms();
	push_str(0, "new");
	assert_true(stats(0).oldest_ms >= 50); /* still the first one's age */
	assert_pop1(0, "old");
	int64_t age = stats(0).oldest_ms;
	assert_true(age >= 0 && age <= now_ms() - t0);
	assert_pop1(0, "new");
	assert_int_equal(stats(0).oldest_ms, 0);
}

static void test_pop_order_and_from(void **state)
{
	q = make(3, abc, 8, 256, 64, 0);
	push_str(0, "a1");
	push_str(2, "c1");
	push_str(2, "c2");
	assert_pop((size_t[]){2, 0}, 2, "c1", 0);
	assert_pop((size_t[]){1, 0, 2}, 3, "a1", 1);
	assert_pop((size_t[]){1, 0, 2}, 3, "c2", 2);
	void *m = NULL;
	size_t len;
	assert_int_equal(farmq_pop(q, (size_t[]){0, 1, 2}, 3, &m, &len, NULL, 0), FARMQ_TIMEOUT);
	assert_int_equal(stats(0).delivered, 1);
	assert_int_equal(stats(2).delivered, 2);
}

static void test_pop_timeout(void **state)
{
	void *m = NULL;
	size_t len, from;
	q = make(3, abc, 8, 256, 64, 0);
	assert_int_equal(farmq_pop(q, (size_t[]){1}, 1, &m, &len, &from, 0), FARMQ_TIMEOUT);
	assert_int_equal(farmq_pop(q, (size_t[]){1}, 1, &m, &len, &from, 30), FARMQ_TIMEOUT);
	assert_int_equal(farmq_pop(q, (size_t[]){0, 2}, 2, &m, &len, &from, 30), FARMQ_TIMEOUT);
	assert_null(m);
	/* No waiter left registered. */
	assert_int_equal(atomic_load(&qh(q, 1)->pop_waiters), 0);
	assert_int_equal(atomic_load(&q->r->pop_waiters), 0);
}

static void test_bad_arguments(void **state)
{
	void *m;
	size_t len;
	q = make(2, abc, 8, 256, 64, 1);
	errno = 0;
	assert_int_equal(farmq_push(q, 2, "x", 1, 0), FARMQ_ERROR);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(farmq_push(q, 0, "x", 1, -2), FARMQ_ERROR);
	assert_int_equal(farmq_pop(q, (size_t[]){0, 2}, 2, &m, &len, NULL, 0), FARMQ_ERROR);
	assert_int_equal(farmq_pop(q, (size_t[]){0}, 0, &m, &len, NULL, 0), FARMQ_ERROR);
	assert_int_equal(farmq_lock(q, 1, 0), FARMQ_ERROR);
	assert_int_equal(farmq_unlock(q, 1), FARMQ_ERROR);
	struct farmq_stats st;
	memset(&st, 0xff, sizeof(st));
	farmq_stats(q, 5, &st);
	assert_int_equal(st.depth, 0);
}

/* A state that disagrees with itself (memory corruption) is refused, not
 * followed into the ring. */
static void test_corrupt_state_refused(void **state)
{
	void *m = NULL;
	size_t len;
	q = make(1, abc, 4, 64, 32, 0);
	push_str(0, "x");
	struct qhdr *h = qh(q, 0);
	struct qstate *live = &h->st[atomic_load(&h->cur)];
	live->tail = (live->tail + 5) % q->l.ring_size;
	errno = 0;
	assert_int_equal(farmq_push(q, 0, "y", 1, 0), FARMQ_ERROR);
	assert_int_equal(errno, EUCLEAN);
	assert_int_equal(farmq_pop(q, (size_t[]){0}, 1, &m, &len, NULL, 0), FARMQ_ERROR);
	assert_null(m);
	live->tail = (live->tail + q->l.ring_size - 5) % q->l.ring_size;
	assert_pop1(0, "x");
}

/* ---- waiting across processes ------------------------------------------ */

struct popper {
	size_t queues[3];
	size_t nq;
	const char *want;
	size_t want_from;
};

static int child_pop(void *arg)
{
	struct popper *p = arg;
	void *m;
	size_t len, from;
	int rc = farmq_pop(q, p->queues, p->nq, &m, &len, &from, -1);
	if (rc != FARMQ_OK)
		return 10 - rc;
	if (len != strlen(p->want) || memcmp(m, p->want, len) != 0 || from != p->want_from)
		return 20;
	free(m);
	return 0;
}

static void test_push_wakes_popper(void **state)
{
	q = make(3, abc, 8, 256, 64, 0);
	/* One queue: sleeps on the queue's word. */
	struct popper one = {{1}, 1, "for one", 0};
	pid_t pid = spawn(child_pop, &one);
	assert_true(wait_count(&qh(q, 1)->pop_waiters, 1, 5000));
	push_str(0, "elsewhere");
	push_str(1, "for one");
	assert_exit_ok(pid);

	/* Several queues: sleeps on the region's word. */
	struct popper many = {{1, 2}, 2, "for many", 1};
	pid = spawn(child_pop, &many);
	assert_true(wait_count(&q->r->pop_waiters, 1, 5000));
	push_str(2, "for many");
	assert_exit_ok(pid);
	assert_pop1(0, "elsewhere");
	assert_int_equal(atomic_load(&q->r->pop_waiters), 0);
}

static int child_push_blocked(void *arg)
{
	return farmq_push(q, 0, "waited", 6, -1) == FARMQ_OK ? 0 : 1;
}

static void test_pop_wakes_pusher(void **state)
{
	q = make(1, abc, 1, 64, 64, 0);
	push_str(0, "first");
	pid_t pid = spawn(child_push_blocked, NULL);
	assert_true(wait_count(&qh(q, 0)->push_waiters, 1, 5000));
	assert_pop1(0, "first");
	assert_exit_ok(pid);
	assert_pop1(0, "waited");
	assert_int_equal(stats(0).rejected, 0);
}

enum { NMSG = 100000, NCONS = 3, PAD = 29 };

struct consumer {
	unsigned char *seen; /* NMSG counters in a shared mapping */
};

/* Pops until an empty message; checks each payload and that sequence
 * numbers increase (one producer, so FIFO per consumer). */
static int consumer(void *arg)
{
	struct consumer *c = arg;
	int64_t last = -1;
	for (;;) {
		void *m;
		size_t len;
		if (farmq_pop(q, (size_t[]){0}, 1, &m, &len, NULL, -1) != FARMQ_OK)
			return 1;
		if (len == 0) {
			free(m);
			return 0;
		}
		uint32_t seq;
		memcpy(&seq, m, 4);
		if (seq >= NMSG || (int64_t)seq <= last || len != 4 + seq % PAD)
			return 2;
		for (size_t k = 4; k < len; k++)
			if (((unsigned char *)m)[k] != (unsigned char)(seq + k))
				return 3;
		__atomic_fetch_add(&c->seen[seq], 1, __ATOMIC_RELAXED);
		last = seq;
		free(m);
	}
}

static void test_many_consumers_exactly_once(void **state)
{
	unsigned char buf[4 + PAD];
	alarm(120); /* 100,000 messages under ASan on a shared machine */
	q = make(1, abc, 16, 256, sizeof(buf), 0);
	struct consumer c = {
	        mmap(NULL, NMSG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)};
	assert_true(c.seen != MAP_FAILED);
	pid_t pids[NCONS];
	for (int i = 0; i < NCONS; i++)
		pids[i] = spawn(consumer, &c);
	for (uint32_t seq = 0; seq < NMSG; seq++) {
		size_t len = 4 + seq % PAD;
		memcpy(buf, &seq, 4);
		for (size_t k = 4; k < len; k++)
			buf[k] = (unsigned char)(seq + k);
		assert_int_equal(farmq_push(q, 0, buf, len, -1), FARMQ_OK);
	}
	for (int i = 0; i < NCONS; i++)
		assert_int_equal(farmq_push(q, 0, NULL, 0, -1), FARMQ_OK);
	for (int i = 0; i < NCONS; i++)
		assert_exit_ok(pids[i]);
	for (uint32_t seq = 0; seq < NMSG; seq++)
		if (c.seen[seq] != 1)
			fail_msg("message %u delivered %u times", seq, c.seen[seq]);
	struct farmq_stats st = stats(0);
	assert_int_equal(st.depth, 0);
	assert_int_equal(st.pushed, NMSG + NCONS);
	assert_int_equal(st.delivered, NMSG + NCONS);
	assert_int_equal(st.rejected, 0);
	munmap(c.seen, NMSG);
}

/* ---- crashes ----------------------------------------------------------- */

static void test_popper_killed_while_waiting(void **state)
{
	q = make(1, abc, 8, 256, 64, 0);
	struct popper p = {{0}, 1, "for the second", 0};
	pid_t dead = spawn(child_pop, &p);
	assert_true(wait_count(&qh(q, 0)->pop_waiters, 1, 5000));
	assert_int_equal(kill(dead, SIGKILL), 0);
	int status = reap(dead);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	/* The dead one's count stays; the next waiter is still woken. */
	pid_t live = spawn(child_pop, &p);
	assert_true(wait_count(&qh(q, 0)->pop_waiters, 2, 5000));
	push_str(0, "for the second");
	assert_exit_ok(live);
	push_str(0, "and then");
	assert_pop1(0, "and then");
	assert_int_equal(stats(0).delivered, 2);
}

/* Dies in the middle of a push: the payload is in the ring and the
 * spare state slot is updated, but it is not published. */
static int child_die_mid_push(void *arg)
{
	struct qhdr *h = qh(q, 0);
	const struct qstate *cs;
	if (qlock(h) == -1)
		return 1;
	struct qstate *ns = qs_begin(h, &cs);
	ns->tail = put_rec_hdr(q, 0, ns->tail, 5, 0);
	ns->tail = ring_put(q, 0, ns->tail, "ghost", 5);
	ns->count += 1;
	ns->bytes += 5;
	ns->head = 12345; /* half-written garbage */
	raise(SIGKILL);
	return 2;
}

/* Dies holding the queue mutex after a complete push. */
static int child_die_after_push(void *arg)
{
	if (farmq_push(q, 0, "kept", 4, 0) != FARMQ_OK || qlock(qh(q, 0)) == -1)
		return 1;
	raise(SIGKILL);
	return 2;
}

static void test_queue_owner_killed(void **state)
{
	q = make(1, abc, 4, 64, 32, 0);
	push_str(0, "x");
	assert_pop1(0, "x"); /* head and tail away from 0 */
	push_str(0, "queued");
	int status = reap(spawn(child_die_mid_push, NULL));
	assert_true(WIFSIGNALED(status));
	struct farmq_stats st = stats(0); /* locks: EOWNERDEAD, recovered */
	assert_int_equal(st.depth, 1);
	assert_int_equal(st.bytes, 6);
	assert_int_equal(st.pushed, 2);
	assert_pop1(0, "queued");
	assert_empty(0);

	status = reap(spawn(child_die_after_push, NULL));
	assert_true(WIFSIGNALED(status));
	assert_pop1(0, "kept");
	for (int i = 0; i < 20; i++) { /* and it goes on working, wrapping */
		push_str(0, "after the crash");
		assert_pop1(0, "after the crash");
	}
	assert_int_equal(stats(0).pushed, 23);
}

static int child_hold_lock(void *arg)
{
	int *pipefd = arg;
	if (farmq_lock(q, 1, -1) != FARMQ_OK)
		return 1;
	if (write(pipefd[1], "L", 1) != 1)
		return 2;
	for (;;)
		pause();
}

static void kill_holder(int *pipefd)
{
	char c;
	pid_t pid = spawn(child_hold_lock, pipefd);
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	assert_int_equal(farmq_lock(q, 1, 0), FARMQ_TIMEOUT);
	assert_int_equal(kill(pid, SIGKILL), 0);
	reap(pid);
}

static void test_lock_holder_killed(void **state)
{
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	q = make(0, NULL, 0, 0, 0, 2);

	kill_holder(pipefd);
	assert_int_equal(farmq_lock(q, 1, -1), 1);
	assert_int_equal(farmq_unlock(q, 1), FARMQ_OK);
	assert_int_equal(farmq_lock(q, 1, -1), FARMQ_OK);
	assert_int_equal(farmq_unlock(q, 1), FARMQ_OK);

	kill_holder(pipefd); /* the timed and the non-blocking paths too */
	assert_int_equal(farmq_lock(q, 1, 1000), 1);
	assert_int_equal(farmq_unlock(q, 1), FARMQ_OK);
	kill_holder(pipefd);
	assert_int_equal(farmq_lock(q, 1, 0), 1);
	assert_int_equal(farmq_unlock(q, 1), FARMQ_OK);
	assert_int_equal(farmq_lock(q, 1, 0), FARMQ_OK);
	assert_int_equal(farmq_unlock(q, 1), FARMQ_OK);
	close(pipefd[0]);
	close(pipefd[1]);
}

static void test_lock_ownership(void **state)
{
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	q = make(0, NULL, 0, 0, 0, 2);

	assert_int_equal(farmq_lock(q, 0, -1), FARMQ_OK);
	assert_int_equal(farmq_lock(q, 0, 0), FARMQ_ERROR); /* already ours */
	assert_int_equal(errno, EDEADLK);
	assert_int_equal(farmq_lock(q, 1, 20), FARMQ_OK); /* independent */
	assert_int_equal(farmq_unlock(q, 0), FARMQ_OK);
	assert_int_equal(farmq_unlock(q, 1), FARMQ_OK);
	errno = 0;
	assert_int_equal(farmq_unlock(q, 0), FARMQ_ERROR); /* not held */
	assert_int_equal(errno, EPERM);

	/* Held by another process: we can neither take nor release it. */
	char c;
	pid_t pid = spawn(child_hold_lock, pipefd);
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	assert_int_equal(farmq_lock(q, 1, 30), FARMQ_TIMEOUT);
	errno = 0;
	assert_int_equal(farmq_unlock(q, 1), FARMQ_ERROR);
	assert_int_equal(errno, EPERM);
	assert_int_equal(kill(pid, SIGKILL), 0);
	reap(pid);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* ---- signals ----------------------------------------------------------- */

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

struct nudge {
	_Atomic uint32_t *waiters;
	pid_t target;
};

/* Signals the parent once it sleeps on the futex. */
static int child_nudge(void *arg)
{
	struct nudge *n = arg;
	if (!wait_count(n->waiters, 1, 10000))
		return 1;
	return kill(n->target, SIGUSR1) == 0 ? 0 : 2;
}

static void test_signal_interrupts_waits(void **state)
{
	struct sigaction sa = {.sa_handler = on_signal}, old;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART */
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	q = make(2, abc, 1, 64, 64, 0);

	void *m = NULL;
	size_t len;
	got_signal = 0;
	struct nudge n = {&qh(q, 0)->pop_waiters, getpid()};
	pid_t pid = spawn(child_nudge, &n);
	assert_int_equal(farmq_pop(q, (size_t[]){0}, 1, &m, &len, NULL, -1), FARMQ_EINTR);
	assert_int_equal(got_signal, SIGUSR1);
	assert_exit_ok(pid);

	got_signal = 0;
	n.waiters = &q->r->pop_waiters;
	pid = spawn(child_nudge, &n);
	assert_int_equal(farmq_pop(q, (size_t[]){0, 1}, 2, &m, &len, NULL, 10000), FARMQ_EINTR);
	assert_int_equal(got_signal, SIGUSR1);
	assert_exit_ok(pid);
	assert_null(m);

	push_str(1, "full");
	got_signal = 0;
	n.waiters = &qh(q, 1)->push_waiters;
	pid = spawn(child_nudge, &n);
	assert_int_equal(farmq_push(q, 1, "more", 4, -1), FARMQ_EINTR);
	assert_int_equal(got_signal, SIGUSR1);
	assert_exit_ok(pid);
	assert_int_equal(stats(1).rejected, 0); /* interrupted, not rejected */
	assert_int_equal(atomic_load(&qh(q, 1)->push_waiters), 0);

	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
}

/* ---- migrate ----------------------------------------------------------- */

static void push_to(struct farmq *r, size_t queue, const char *s)
{
	assert_int_equal(farmq_push(r, queue, s, strlen(s), 0), FARMQ_OK);
}

static void assert_pop_from(struct farmq *r, size_t queue, const char *want)
{
	void *m;
	size_t len;
	assert_int_equal(farmq_pop(r, &queue, 1, &m, &len, NULL, 0), FARMQ_OK);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(m, want, len);
	free(m);
}

static void test_migrate(void **state)
{
	const char *const new_names[] = {"c", "a", "d"};
	char buf[40];
	q = make(3, abc, 8, 256, 64, 1); /* a, b, c */
	struct farmq *to = make(3, new_names, 4, 64, 16, 0);

	for (int i = 0; i < 5; i++) { /* a's records wrap the ring end */
		memset(buf, 'w', 30);
		assert_int_equal(farmq_push(q, 0, buf, 30, 0), FARMQ_OK);
		assert_pop1(0, "wwwwwwwwwwwwwwwwwwwwwwwwwwwwww");
	}
	for (int i = 0; i < 6; i++) { /* 4 fit in the new a */
		snprintf(buf, sizeof(buf), "a%d", i);
		push_str(0, buf);
	}
	push_str(1, "b0"); /* no b in <to> */
	push_str(1, "b1");
	push_str(2, "c0");
	push_str(2, "c1 is longer than sixteen bytes"); /* stops c here */
	push_str(2, "c2");
	push_to(to, 0, "old c");

	size_t lost = 99;
	assert_int_equal(farmq_migrate(q, to, &lost), 5);
	assert_int_equal(lost, 6);

	assert_pop_from(to, 0, "old c");
	assert_pop_from(to, 0, "c0");
	for (int i = 0; i < 4; i++) {
		snprintf(buf, sizeof(buf), "a%d", i);
		assert_pop_from(to, 1, buf);
	}
	assert_int_equal(
	        farmq_pop(to, (size_t[]){0, 1, 2}, 3, &(void *){NULL}, &(size_t){0}, NULL, 0),
	        FARMQ_TIMEOUT);
	/* What did not move stays, in order. */
	assert_pop1(0, "a4");
	assert_pop1(0, "a5");
	assert_pop1(1, "b0");
	assert_pop1(1, "b1");
	assert_pop1(2, "c1 is longer than sixteen bytes");
	assert_pop1(2, "c2");

	/* Nothing left: nothing moves, nothing lost. */
	assert_int_equal(farmq_migrate(q, to, &lost), 0);
	assert_int_equal(lost, 0);
	farmq_close(to);
}

static int child_pop_new(void *arg)
{
	struct farmq *to = arg;
	void *m;
	size_t len;
	if (farmq_pop(to, (size_t[]){1}, 1, &m, &len, NULL, -1) != FARMQ_OK)
		return 1;
	return len == 5 && memcmp(m, "moved", 5) == 0 ? 0 : 2;
}

static void test_migrate_wakes_poppers(void **state)
{
	const char *const new_names[] = {"x", "b"};
	q = make(2, abc, 8, 256, 64, 0);
	struct farmq *to = make(2, new_names, 8, 256, 64, 0);
	push_str(1, "moved");
	pid_t pid = spawn(child_pop_new, to);
	assert_true(wait_count(&qh(to, 1)->pop_waiters, 1, 5000));
	size_t lost;
	assert_int_equal(farmq_migrate(q, to, &lost), 1);
	assert_int_equal(lost, 0);
	assert_exit_ok(pid);
	assert_int_equal(stats(1).delivered, 1);
	farmq_close(to);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_create_shape),
	        T(test_create_rejects_bad_spec),
	        T(test_attach_same_process),
	        T(test_attach_forked_child),
	        T(test_attach_rejects_other_fds),
	        T(test_fifo_and_stats),
	        T(test_wraparound_varied_sizes),
	        T(test_toobig),
	        T(test_full_times_out),
	        T(test_full_by_bytes),
	        T(test_oldest_ms),
	        T(test_pop_order_and_from),
	        T(test_pop_timeout),
	        T(test_bad_arguments),
	        T(test_corrupt_state_refused),
	        T(test_push_wakes_popper),
	        T(test_pop_wakes_pusher),
	        T(test_many_consumers_exactly_once),
	        T(test_popper_killed_while_waiting),
	        T(test_queue_owner_killed),
	        T(test_lock_holder_killed),
	        T(test_lock_ownership),
	        T(test_signal_interrupts_waits),
	        T(test_migrate),
	        T(test_migrate_wakes_poppers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
