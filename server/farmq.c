/*
 * farmq.c - bounded message queues and robust locks in a shared memfd.
 *
 * Layout of the region (every part 64-byte aligned, the whole a multiple
 * of the page size; the memfd is sparse and only the headers are touched
 * at creation, ring pages on first use):
 *
 *   struct region                 magic, version, shape, region-wide futex
 *   struct qhdr  x nqueues        mutex, name, futex words, state[2]
 *   lock slot    x nlocks         one robust mutex each
 *   ring         x nqueues        ring_size bytes each
 *
 * A ring holds records: a 12-byte header (u32 payload length, i64 enqueue
 * time in CLOCK_MONOTONIC ms, both in host order) and the payload, written
 * back to back and wrapping at the end of the ring (a record may be split
 * anywhere, header included). ring_size = max_msgs * 12 + max_bytes, so a
 * queue within its limits always has room for the next record.
 *
 * Crash consistency. Each queue's mutex is robust: if its holder dies, the
 * next locker gets EOWNERDEAD and marks it consistent. What the dead
 * holder left must then be a valid queue, so the queue's state (head,
 * tail, count, bytes and the counters) is double-buffered: an operation
 * copies the live state st[cur] to st[cur ^ 1], writes the payload into
 * free ring space (or copies it out), updates the copy, and publishes it
 * with one release store to <cur>. A process killed before that store
 * left the queue as it was (its payload bytes sit in free space and its
 * half-written state is in the unused slot, which the next operation
 * overwrites); killed after it, the operation is complete. A pop copies
 * the message into a malloc()ed buffer before publishing, so malloc()
 * failing leaves the message queued.
 *
 * Waiting. Four 32-bit futex words per queue and two per region, used
 * with the shared (non-_PRIVATE) futex operations:
 *   - qhdr.pushed_seq / pop_waiters: single-queue poppers sleep on it;
 *   - qhdr.popped_seq / push_waiters: pushers to a full queue sleep on it;
 *   - region.pushed_seq / pop_waiters: poppers on several queues sleep on
 *     it (one word, since a futex waits on one address);
 * A waiter increments the waiter count, reads the sequence word, tries
 * again under the queue mutex, and only then sleeps with FUTEX_WAIT on the
 * value it read. The other side, still holding the mutex after publishing,
 * bumps the sequence only when the count is non-zero, and calls FUTEX_WAKE
 * after unlocking. The mutex orders the two: either the waiter's retry
 * sees the change, or the waker sees the count and bumps the word the
 * waiter is about to sleep on (FUTEX_WAIT then returns at once). A queue
 * word wakes one waiter per push or pop (each waits for the same thing);
 * the region word wakes all (they wait on different queue sets). When
 * nobody waits, push and pop make no system call.
 *
 * A waiter killed while asleep leaves its count one too high: that costs
 * one useless FUTEX_WAKE per push (or pop) on that queue, never a missed
 * wake-up.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/farmq.h"

#define FARMQ_MAGIC   0x71466d4du /* "MmFq" */
#define FARMQ_VERSION 1u
#define REC_HDR       12 /* u32 length + i64 enqueue time */
#define ALIGN         64
#define PAGE          4096

#define BUSY 1 /* internal: queue empty (pop) or full (push); try again */

struct region {
	uint32_t magic;
	uint32_t version;
	uint64_t size; /* bytes, the memfd's size */
	uint64_t nqueues, max_msgs, max_bytes, max_msg, nlocks;
	uint32_t mutex_size; /* sizeof(pthread_mutex_t) of the creator */
	uint32_t qhdr_size;
	alignas(ALIGN) _Atomic uint32_t pushed_seq;
	_Atomic uint32_t pop_waiters;
};

struct qstate {
	uint64_t head;  /* ring offset of the oldest record */
	uint64_t tail;  /* ring offset past the newest record */
	uint64_t count; /* records */
	uint64_t bytes; /* payload bytes */
	uint64_t pushed, delivered, rejected;
};

struct qhdr {
	pthread_mutex_t mu;
	char name[FARMQ_NAME_MAX];
	_Atomic uint32_t cur; /* which st[] is live */
	_Atomic uint32_t pushed_seq;
	_Atomic uint32_t pop_waiters;
	_Atomic uint32_t popped_seq;
	_Atomic uint32_t push_waiters;
	struct qstate st[2];
};

/* Offsets and sizes, computed from the spec numbers alone so that attach
 * can check a region against them. */
struct layout {
	size_t nqueues, max_msgs, max_bytes, max_msg, nlocks;
	size_t ring_size, qstride, lstride, rstride;
	size_t queues_off, locks_off, rings_off, size;
};

/* The process-local handle; the shape is copied out of the region once
 * validated, so a corrupted region cannot make us index out of it. */
struct farmq {
	int fd;
	unsigned char *base;
	struct region *r;
	struct layout l;
};

/* A waiting side: the futex word to sleep on and its waiter count. */
struct waitq {
	_Atomic uint32_t *seq;
	_Atomic uint32_t *waiters;
};

struct deadline {
	bool forever;
	struct timespec at; /* CLOCK_MONOTONIC */
};

/* ---- layout ------------------------------------------------------------ */

static bool round_up(size_t *n, size_t to)
{
	if (*n > SIZE_MAX - (to - 1))
		return false;
	*n = (*n + to - 1) / to * to;
	return true;
}

/* Fills <l> from the numbers in it; false if they are out of range. */
static bool layout(struct layout *l)
{
	size_t qs, ls, rs, hdrs, t;

	l->ring_size = 0;
	if (l->nqueues > 0) {
		if (l->max_msgs == 0 || l->max_msg == 0 || l->max_msg > UINT32_MAX ||
		    l->max_bytes < l->max_msg)
			return false;
		if (__builtin_mul_overflow(l->max_msgs, (size_t)REC_HDR, &hdrs) ||
		    __builtin_add_overflow(hdrs, l->max_bytes, &l->ring_size))
			return false;
	}
	l->qstride = sizeof(struct qhdr);
	l->lstride = sizeof(pthread_mutex_t);
	l->rstride = l->ring_size;
	if (!round_up(&l->qstride, ALIGN) || !round_up(&l->lstride, ALIGN) ||
	    !round_up(&l->rstride, ALIGN))
		return false;
	l->queues_off = sizeof(struct region);
	if (!round_up(&l->queues_off, ALIGN) ||
	    __builtin_mul_overflow(l->nqueues, l->qstride, &qs) ||
	    __builtin_mul_overflow(l->nlocks, l->lstride, &ls) ||
	    __builtin_mul_overflow(l->nqueues, l->rstride, &rs) ||
	    __builtin_add_overflow(l->queues_off, qs, &l->locks_off) ||
	    __builtin_add_overflow(l->locks_off, ls, &l->rings_off) ||
	    __builtin_add_overflow(l->rings_off, rs, &t) || !round_up(&t, PAGE) ||
	    t > (size_t)INT64_MAX)
		return false;
	l->size = t;
	return true;
}

static struct qhdr *qh(const struct farmq *q, size_t i)
{
	return (struct qhdr *)(q->base + q->l.queues_off + i * q->l.qstride);
}

static pthread_mutex_t *lockp(const struct farmq *q, size_t n)
{
	return (pthread_mutex_t *)(q->base + q->l.locks_off + n * q->l.lstride);
}

static unsigned char *ring(const struct farmq *q, size_t i)
{
	return q->base + q->l.rings_off + i * q->l.rstride;
}

/* ---- the ring ---------------------------------------------------------- */

static uint64_t ring_put(const struct farmq *q, size_t i, uint64_t off, const void *src, size_t n)
{
	unsigned char *rb = ring(q, i);
	size_t first = q->l.ring_size - off < n ? q->l.ring_size - off : n;

	if (n == 0) /* <src> may be NULL */
		return off;
	memcpy(rb + off, src, first);
	memcpy(rb, (const unsigned char *)src + first, n - first);
	off += n;
	return off >= q->l.ring_size ? off - q->l.ring_size : off;
}

static uint64_t ring_get(const struct farmq *q, size_t i, uint64_t off, void *dst, size_t n)
{
	const unsigned char *rb = ring(q, i);
	size_t first = q->l.ring_size - off < n ? q->l.ring_size - off : n;

	memcpy(dst, rb + off, first);
	memcpy((unsigned char *)dst + first, rb, n - first);
	off += n;
	return off >= q->l.ring_size ? off - q->l.ring_size : off;
}

static uint64_t put_rec_hdr(const struct farmq *q, size_t i, uint64_t off, uint32_t len, int64_t t)
{
	unsigned char h[REC_HDR];

	memcpy(h, &len, 4);
	memcpy(h + 4, &t, 8);
	return ring_put(q, i, off, h, REC_HDR);
}

static uint64_t get_rec_hdr(const struct farmq *q, size_t i, uint64_t off, uint32_t *len,
                            int64_t *t)
{
	unsigned char h[REC_HDR];

	off = ring_get(q, i, off, h, REC_HDR);
	memcpy(len, h, 4);
	memcpy(t, h + 4, 8);
	return off;
}

/* The state's fields agree with each other and the shape. Only memory
 * corruption breaks this; it is checked so that it cannot spread. */
static bool state_ok(const struct farmq *q, const struct qstate *s)
{
	uint64_t rs = q->l.ring_size, used = s->count * REC_HDR + s->bytes;

	if (s->count > q->l.max_msgs || s->bytes > q->l.max_bytes || s->head >= rs || s->tail >= rs)
		return false;
	return (s->tail + rs - s->head) % rs == used % rs;
}

/* ---- queue state and mutexes ------------------------------------------- */

static int qlock(struct qhdr *h)
{
	int e = pthread_mutex_lock(&h->mu);

	if (e == EOWNERDEAD) /* the state is whole: see "Crash consistency" */
		e = pthread_mutex_consistent(&h->mu);
	if (e != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

static void qunlock(struct qhdr *h)
{
	int e = pthread_mutex_unlock(&h->mu);

	assert(e == 0); /* we hold it: cannot fail */
	(void)e;
}

/* The live state, and the spare slot initialised from it for an update. */
static struct qstate *qs_begin(struct qhdr *h, const struct qstate **live)
{
	uint32_t c = atomic_load_explicit(&h->cur, memory_order_relaxed);

	*live = &h->st[c & 1];
	h->st[(c & 1) ^ 1] = **live;
	return &h->st[(c & 1) ^ 1];
}

/* The single store that makes the update in the spare slot live. The
 * release order keeps the compiler and CPU from sinking the payload and
 * state stores below it. */
static void qs_publish(struct qhdr *h, const struct qstate *ns)
{
	atomic_store_explicit(&h->cur, (uint32_t)(ns - h->st), memory_order_release);
}

/* Called with the queue mutex held, after a change the waiters on <w>
 * wait for: true if someone waits and must be woken after unlocking. */
static bool bump_if_waiting(struct waitq w)
{
	if (atomic_load(w.waiters) == 0)
		return false;
	atomic_fetch_add(w.seq, 1);
	return true;
}

/* ---- futexes and time -------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0; /* cannot fail for this clock */
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int deadline_init(struct deadline *d, int timeout_ms)
{
	d->forever = timeout_ms == -1;
	if (d->forever)
		return 0;
	if (clock_gettime(CLOCK_MONOTONIC, &d->at) == -1)
		return -1;
	d->at.tv_sec += timeout_ms / 1000;
	d->at.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (d->at.tv_nsec >= 1000000000) {
		d->at.tv_sec++;
		d->at.tv_nsec -= 1000000000;
	}
	return 0;
}

/* BUSY with the time left in *rel (if <rel>), FARMQ_TIMEOUT if none is
 * left, FARMQ_ERROR. Recomputed before each wait, so a spurious or
 * useless wake-up does not restart the full timeout. */
static int remaining(const struct deadline *d, struct timespec *rel)
{
	struct timespec now;

	if (d->forever)
		return BUSY;
	if (clock_gettime(CLOCK_MONOTONIC, &now) == -1)
		return FARMQ_ERROR;
	if (now.tv_sec > d->at.tv_sec ||
	    (now.tv_sec == d->at.tv_sec && now.tv_nsec >= d->at.tv_nsec))
		return FARMQ_TIMEOUT;
	if (rel != NULL) {
		rel->tv_sec = d->at.tv_sec - now.tv_sec;
		rel->tv_nsec = d->at.tv_nsec - now.tv_nsec;
		if (rel->tv_nsec < 0) {
			rel->tv_sec--;
			rel->tv_nsec += 1000000000;
		}
	}
	return BUSY;
}

static void futex_wake(_Atomic uint32_t *word, int n)
{
	long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);

	/* Fails only for a bad address, which a mapped, aligned word is not;
	 * reporting it would tell the caller its completed push failed. */
	assert(rc != -1);
	(void)rc;
}

/* Sleeps on <w> while it holds <seq>, until <d>. BUSY (try again: woken,
 * the word changed, or time ran out), FARMQ_EINTR or FARMQ_ERROR. */
static int wait_on(struct waitq w, uint32_t seq, const struct deadline *d)
{
	struct timespec rel;
	int rc = remaining(d, &rel);

	if (rc == FARMQ_TIMEOUT)
		return BUSY; /* the caller tries once more, then times out */
	if (rc != BUSY)
		return rc;
	if (syscall(SYS_futex, (uint32_t *)w.seq, FUTEX_WAIT, seq, d->forever ? NULL : &rel, NULL,
	            0) == -1) {
		if (errno == EINTR)
			return FARMQ_EINTR;
		if (errno != EAGAIN && errno != ETIMEDOUT)
			return FARMQ_ERROR;
	}
	return BUSY;
}

/* ---- create, attach, close --------------------------------------------- */

static int init_mutex(pthread_mutex_t *m, int type)
{
	pthread_mutexattr_t a;
	int e = pthread_mutexattr_init(&a);

	if (e != 0)
		return e;
	if ((e = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
	    (e = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0 &&
	    (e = pthread_mutexattr_settype(&a, type)) == 0)
		e = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return e;
}

static bool spec_ok(const struct farmq_spec *spec, char *err, size_t errlen)
{
	for (size_t i = 0; i < spec->nqueues; i++) {
		const char *n = spec->names != NULL ? spec->names[i] : NULL;
		if (n == NULL || n[0] == '\0' || strlen(n) >= FARMQ_NAME_MAX) {
			snprintf(err, errlen, "farmq: queue %zu: the name must have 1 to %d bytes",
			         i, FARMQ_NAME_MAX - 1);
			return false;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(spec->names[j], n) == 0) {
				snprintf(err, errlen, "farmq: two queues named '%s'", n);
				return false;
			}
	}
	return true;
}

/* Initialises the headers of a zeroed region; the magic goes last so that
 * a region whose set-up failed is never taken for a farmq region. */
static int init_region(struct farmq *q, const struct farmq_spec *spec)
{
	struct region *r = q->r;
	int e;

	r->version = FARMQ_VERSION;
	r->size = q->l.size;
	r->nqueues = q->l.nqueues;
	r->max_msgs = q->l.max_msgs;
	r->max_bytes = q->l.max_bytes;
	r->max_msg = q->l.max_msg;
	r->nlocks = q->l.nlocks;
	r->mutex_size = sizeof(pthread_mutex_t);
	r->qhdr_size = sizeof(struct qhdr);
	for (size_t i = 0; i < q->l.nqueues; i++) {
		struct qhdr *h = qh(q, i);
		strcpy(h->name, spec->names[i]);
		if ((e = init_mutex(&h->mu, PTHREAD_MUTEX_NORMAL)) != 0)
			return e;
	}
	for (size_t n = 0; n < q->l.nlocks; n++)
		if ((e = init_mutex(lockp(q, n), PTHREAD_MUTEX_ERRORCHECK)) != 0)
			return e;
	r->magic = FARMQ_MAGIC;
	return 0;
}

struct farmq *farmq_create(const struct farmq_spec *spec, char *err, size_t errlen)
{
	struct farmq *q = calloc(1, sizeof(*q));
	int e;

	if (q == NULL) {
		snprintf(err, errlen, "farmq: out of memory");
		return NULL;
	}
	q->fd = -1;
	q->base = MAP_FAILED;
	q->l = (struct layout){.nqueues = spec->nqueues,
	                       .max_msgs = spec->max_msgs,
	                       .max_bytes = spec->max_bytes,
	                       .max_msg = spec->max_msg,
	                       .nlocks = spec->nlocks};
	if (!layout(&q->l)) {
		snprintf(err, errlen,
		         "farmq: bad sizes (need max_msgs >= 1, 1 <= max_msg <= max_bytes, "
		         "max_msg < 4 GiB, and a region that fits in memory)");
		goto fail;
	}
	if (!spec_ok(spec, err, errlen))
		goto fail;
	if ((q->fd = memfd_create("mulefarm-farmq", 0)) == -1) {
		snprintf(err, errlen, "farmq: memfd_create() failed: %s", strerror(errno));
		goto fail;
	}
	if (ftruncate(q->fd, (off_t)q->l.size) == -1) {
		snprintf(err, errlen, "farmq: ftruncate(%zu) failed: %s", q->l.size,
		         strerror(errno));
		goto fail;
	}
	q->base = mmap(NULL, q->l.size, PROT_READ | PROT_WRITE, MAP_SHARED, q->fd, 0);
	if (q->base == MAP_FAILED) {
		snprintf(err, errlen, "farmq: mmap(%zu) failed: %s", q->l.size, strerror(errno));
		goto fail;
	}
	q->r = (struct region *)q->base;
	if ((e = init_region(q, spec)) != 0) {
		snprintf(err, errlen, "farmq: pthread_mutex_init() failed: %s", strerror(e));
		goto fail;
	}
	return q;
fail:
	farmq_close(q);
	return NULL;
}

/* Checks the header read from a candidate region of <fsize> bytes and
 * fills <l> from it. */
static bool header_ok(const struct region *r, size_t fsize, struct layout *l, char *err,
                      size_t errlen)
{
	if (r->magic != FARMQ_MAGIC) {
		snprintf(err, errlen, "farmq: not a farmq region (bad magic)");
		return false;
	}
	if (r->version != FARMQ_VERSION || r->mutex_size != sizeof(pthread_mutex_t) ||
	    r->qhdr_size != sizeof(struct qhdr)) {
		snprintf(err, errlen, "farmq: region version %u, expected %u (or another ABI)",
		         r->version, FARMQ_VERSION);
		return false;
	}
	if (r->nqueues > SIZE_MAX || r->max_msgs > SIZE_MAX || r->max_bytes > SIZE_MAX ||
	    r->max_msg > SIZE_MAX || r->nlocks > SIZE_MAX)
		goto bad;
	*l = (struct layout){.nqueues = r->nqueues,
	                     .max_msgs = r->max_msgs,
	                     .max_bytes = r->max_bytes,
	                     .max_msg = r->max_msg,
	                     .nlocks = r->nlocks};
	if (!layout(l) || l->size != r->size || l->size != fsize)
		goto bad;
	return true;
bad:
	snprintf(err, errlen, "farmq: region header does not match its size (%zu bytes)", fsize);
	return false;
}

struct farmq *farmq_attach(int fd, char *err, size_t errlen)
{
	struct farmq *q = calloc(1, sizeof(*q));
	struct region hdr;
	struct stat st;
	ssize_t n;

	if (q == NULL) {
		snprintf(err, errlen, "farmq: out of memory");
		return NULL;
	}
	q->fd = -1; /* the caller's <fd> is adopted only on success */
	q->base = MAP_FAILED;
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "farmq: fstat(%d) failed: %s", fd, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || (uintmax_t)st.st_size < sizeof(hdr)) {
		snprintf(err, errlen, "farmq: fd %d is not a farmq region", fd);
		goto fail;
	}
	if ((n = pread(fd, &hdr, sizeof(hdr), 0)) != (ssize_t)sizeof(hdr)) {
		snprintf(err, errlen, "farmq: pread(%d) failed: %s", fd,
		         n == -1 ? strerror(errno) : "short read");
		goto fail;
	}
	if ((uintmax_t)st.st_size > SIZE_MAX ||
	    !header_ok(&hdr, (size_t)st.st_size, &q->l, err, errlen))
		goto fail;
	q->base = mmap(NULL, q->l.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (q->base == MAP_FAILED) {
		snprintf(err, errlen, "farmq: mmap(%zu) failed: %s", q->l.size, strerror(errno));
		goto fail;
	}
	q->r = (struct region *)q->base;
	for (size_t i = 0; i < q->l.nqueues; i++)
		if (memchr(qh(q, i)->name, '\0', FARMQ_NAME_MAX) == NULL) {
			snprintf(err, errlen, "farmq: queue %zu has a corrupt name", i);
			goto fail;
		}
	q->fd = fd;
	return q;
fail:
	farmq_close(q);
	return NULL;
}

int farmq_fd(const struct farmq *q)
{
	return q->fd;
}

void farmq_close(struct farmq *q)
{
	if (q == NULL)
		return;
	if (q->base != MAP_FAILED) {
		int rc = munmap(q->base, q->l.size);
		assert(rc == 0); /* fails only for a range we did not map */
		(void)rc;
	}
	if (q->fd != -1)
		(void)close(q->fd); /* nothing was written through it */
	free(q);
}

/* ---- shape ------------------------------------------------------------- */

size_t farmq_nqueues(const struct farmq *q)
{
	return q->l.nqueues;
}

const char *farmq_name(const struct farmq *q, size_t queue)
{
	return queue < q->l.nqueues ? qh(q, queue)->name : NULL;
}

size_t farmq_max_msg(const struct farmq *q)
{
	return q->l.max_msg;
}

size_t farmq_nlocks(const struct farmq *q)
{
	return q->l.nlocks;
}

int farmq_find(const struct farmq *q, const char *name)
{
	for (size_t i = 0; i < q->l.nqueues && i < INT_MAX; i++)
		if (strcmp(qh(q, i)->name, name) == 0)
			return (int)i;
	return -1;
}

/* ---- push and pop ------------------------------------------------------ */

static struct waitq pop_waitq(const struct farmq *q, const size_t *queues, size_t nq)
{
	if (nq == 1)
		return (struct waitq){&qh(q, queues[0])->pushed_seq,
		                      &qh(q, queues[0])->pop_waiters};
	return (struct waitq){&q->r->pushed_seq, &q->r->pop_waiters};
}

/* After a push (or migration) into queue <i>, mutex held: which poppers
 * to wake once it is released. */
static void pushed(const struct farmq *q, size_t i, bool wake[2])
{
	struct qhdr *h = qh(q, i);

	wake[0] = bump_if_waiting((struct waitq){&h->pushed_seq, &h->pop_waiters});
	wake[1] = bump_if_waiting((struct waitq){&q->r->pushed_seq, &q->r->pop_waiters});
}

static void wake_poppers(const struct farmq *q, size_t i, const bool wake[2])
{
	if (wake[0])
		futex_wake(&qh(q, i)->pushed_seq, 1);
	if (wake[1])
		futex_wake(&q->r->pushed_seq, INT_MAX);
}

/* One attempt: FARMQ_OK, BUSY (full), FARMQ_TIMEOUT (full and <reject>:
 * counted), FARMQ_ERROR. */
static int try_push(struct farmq *q, size_t i, const void *msg, size_t len, bool reject)
{
	struct qhdr *h = qh(q, i);
	const struct qstate *cs;
	struct qstate *ns;
	bool wake[2] = {false, false};
	int rc = BUSY;

	if (qlock(h) == -1)
		return FARMQ_ERROR;
	ns = qs_begin(h, &cs);
	if (!state_ok(q, cs)) {
		errno = EUCLEAN;
		rc = FARMQ_ERROR;
	} else if (cs->count < q->l.max_msgs && cs->bytes + len <= q->l.max_bytes) {
		ns->tail = put_rec_hdr(q, i, ns->tail, (uint32_t)len, now_ms());
		ns->tail = ring_put(q, i, ns->tail, msg, len);
		ns->count++;
		ns->bytes += len;
		ns->pushed++;
		qs_publish(h, ns);
		pushed(q, i, wake);
		rc = FARMQ_OK;
	} else if (reject) {
		ns->rejected++;
		qs_publish(h, ns);
		rc = FARMQ_TIMEOUT;
	}
	qunlock(h);
	wake_poppers(q, i, wake);
	return rc;
}

int farmq_push(struct farmq *q, size_t queue, const void *msg, size_t len, int timeout_ms)
{
	struct deadline d;
	struct waitq w;

	if (queue >= q->l.nqueues || (msg == NULL && len > 0) || timeout_ms < -1) {
		errno = EINVAL;
		return FARMQ_ERROR;
	}
	if (len > q->l.max_msg)
		return FARMQ_TOOBIG;
	if (deadline_init(&d, timeout_ms) == -1)
		return FARMQ_ERROR;
	w = (struct waitq){&qh(q, queue)->popped_seq, &qh(q, queue)->push_waiters};
	for (;;) {
		int rc = remaining(&d, NULL);
		if (rc == FARMQ_ERROR)
			return rc;
		rc = try_push(q, queue, msg, len, rc == FARMQ_TIMEOUT);
		if (rc != BUSY)
			return rc;
		atomic_fetch_add(w.waiters, 1);
		uint32_t seq = atomic_load(w.seq);
		rc = try_push(q, queue, msg, len, false);
		if (rc == BUSY)
			rc = wait_on(w, seq, &d);
		atomic_fetch_sub(w.waiters, 1);
		if (rc != BUSY)
			return rc;
	}
}

/* One attempt on queue <i>: FARMQ_OK, BUSY (empty) or FARMQ_ERROR. */
static int try_pop(struct farmq *q, size_t i, void **msg, size_t *len)
{
	struct qhdr *h = qh(q, i);
	const struct qstate *cs;
	struct qstate *ns;
	bool wake = false;
	uint32_t n;
	int64_t t;
	int rc = BUSY;

	if (qlock(h) == -1)
		return FARMQ_ERROR;
	ns = qs_begin(h, &cs);
	if (!state_ok(q, cs)) {
		errno = EUCLEAN;
		rc = FARMQ_ERROR;
	} else if (cs->count > 0) {
		void *buf = NULL;
		ns->head = get_rec_hdr(q, i, ns->head, &n, &t);
		if (n > q->l.max_msg || n > cs->bytes) {
			errno = EUCLEAN;
			rc = FARMQ_ERROR;
		} else if ((buf = malloc(n > 0 ? n : 1)) == NULL) {
			rc = FARMQ_ERROR;
		} else {
			ns->head = ring_get(q, i, ns->head, buf, n);
			ns->count--;
			ns->bytes -= n;
			ns->delivered++;
			qs_publish(h, ns);
			wake = bump_if_waiting((struct waitq){&h->popped_seq, &h->push_waiters});
			*msg = buf;
			*len = n;
			rc = FARMQ_OK;
		}
	}
	qunlock(h);
	if (wake)
		futex_wake(&h->popped_seq, 1);
	return rc;
}

static int try_pop_any(struct farmq *q, const size_t *queues, size_t nq, void **msg, size_t *len,
                       size_t *from)
{
	for (size_t k = 0; k < nq; k++) {
		int rc = try_pop(q, queues[k], msg, len);
		if (rc == FARMQ_OK && from != NULL)
			*from = k;
		if (rc != BUSY)
			return rc;
	}
	return BUSY;
}

int farmq_pop(struct farmq *q, const size_t *queues, size_t nq, void **msg, size_t *len,
              size_t *from, int timeout_ms)
{
	struct deadline d;
	struct waitq w;

	if (queues == NULL || nq == 0 || msg == NULL || len == NULL || timeout_ms < -1) {
		errno = EINVAL;
		return FARMQ_ERROR;
	}
	for (size_t k = 0; k < nq; k++)
		if (queues[k] >= q->l.nqueues) {
			errno = EINVAL;
			return FARMQ_ERROR;
		}
	if (deadline_init(&d, timeout_ms) == -1)
		return FARMQ_ERROR;
	w = pop_waitq(q, queues, nq);
	for (;;) {
		int rc = try_pop_any(q, queues, nq, msg, len, from);
		if (rc != BUSY)
			return rc;
		if ((rc = remaining(&d, NULL)) != BUSY)
			return rc;
		atomic_fetch_add(w.waiters, 1);
		uint32_t seq = atomic_load(w.seq);
		rc = try_pop_any(q, queues, nq, msg, len, from);
		if (rc == BUSY)
			rc = wait_on(w, seq, &d);
		atomic_fetch_sub(w.waiters, 1);
		if (rc != BUSY)
			return rc;
	}
}

/* ---- migrate ----------------------------------------------------------- */

/* Moves records from the head of <fs> (queue <i> of <from>) to the tail of
 * <ts> (queue <j> of <to>) while they fit. Returns the number moved. */
static size_t move_records(struct farmq *from, size_t i, struct qstate *fs, struct farmq *to,
                           size_t j, struct qstate *ts)
{
	size_t moved = 0;

	while (fs->count > 0) {
		uint32_t n;
		int64_t t;
		uint64_t off = get_rec_hdr(from, i, fs->head, &n, &t);
		if (n > fs->bytes || n > to->l.max_msg || ts->count >= to->l.max_msgs ||
		    ts->bytes + n > to->l.max_bytes)
			break;
		ts->tail = put_rec_hdr(to, j, ts->tail, n, t);
		for (size_t left = n; left > 0;) {
			size_t piece =
			        from->l.ring_size - off < left ? from->l.ring_size - off : left;
			ts->tail = ring_put(to, j, ts->tail, ring(from, i) + off, piece);
			off = off + piece == from->l.ring_size ? 0 : off + piece;
			left -= piece;
		}
		fs->head = off;
		fs->count--;
		fs->bytes -= n;
		fs->delivered++;
		ts->count++;
		ts->bytes += n;
		ts->pushed++;
		moved++;
	}
	return moved;
}

/* Queue <i> of <from> into queue <j> of <to>; adds what stayed to *lost. */
static size_t migrate_queue(struct farmq *from, size_t i, struct farmq *to, size_t j, size_t *lost)
{
	struct qhdr *fh = qh(from, i), *th = qh(to, j);
	const struct qstate *fc, *tc;
	struct qstate *fs, *ts;
	bool wake[2] = {false, false}, wake_pushers = false;
	size_t moved = 0;

	if (qlock(th) == -1) {
		*lost += fh->st[atomic_load(&fh->cur) & 1].count;
		return 0;
	}
	fs = qs_begin(fh, &fc);
	ts = qs_begin(th, &tc);
	if (state_ok(from, fc) && state_ok(to, tc))
		moved = move_records(from, i, fs, to, j, ts);
	*lost += fs->count;
	if (moved > 0) {
		/* <to> first: a crash between the two stores duplicates these
		 * messages rather than losing them. */
		qs_publish(th, ts);
		pushed(to, j, wake);
		qs_publish(fh, fs);
		wake_pushers = bump_if_waiting((struct waitq){&fh->popped_seq, &fh->push_waiters});
	}
	qunlock(th);
	wake_poppers(to, j, wake);
	if (wake_pushers)
		futex_wake(&fh->popped_seq, INT_MAX);
	return moved;
}

size_t farmq_migrate(struct farmq *from, struct farmq *to, size_t *lost)
{
	size_t moved = 0, nlost = 0;

	for (size_t i = 0; i < from->l.nqueues && from != to; i++) {
		struct qhdr *fh = qh(from, i);
		int j = farmq_find(to, fh->name);
		if (qlock(fh) == -1) {
			nlost += fh->st[atomic_load(&fh->cur) & 1].count;
			continue;
		}
		if (j == -1)
			nlost += fh->st[atomic_load(&fh->cur) & 1].count;
		else
			moved += migrate_queue(from, i, to, (size_t)j, &nlost);
		qunlock(fh);
	}
	if (lost != NULL)
		*lost = nlost;
	return moved;
}

/* ---- stats ------------------------------------------------------------- */

void farmq_stats(struct farmq *q, size_t queue, struct farmq_stats *st)
{
	struct qhdr *h;
	struct qstate s;
	int64_t t = 0;
	uint32_t n;

	memset(st, 0, sizeof(*st));
	if (queue >= q->l.nqueues)
		return;
	h = qh(q, queue);
	if (qlock(h) == -1)
		return;
	s = h->st[atomic_load_explicit(&h->cur, memory_order_relaxed) & 1];
	if (state_ok(q, &s) && s.count > 0)
		get_rec_hdr(q, queue, s.head, &n, &t);
	qunlock(h);
	st->depth = s.count;
	st->bytes = s.bytes;
	st->pushed = s.pushed;
	st->delivered = s.delivered;
	st->rejected = s.rejected;
	if (s.count > 0) {
		int64_t age = now_ms() - t;
		st->oldest_ms = age > 0 ? age : 0;
	}
}

/* ---- locks ------------------------------------------------------------- */

int farmq_lock(struct farmq *q, size_t n, int timeout_ms)
{
	struct deadline d;
	int e;

	if (n >= q->l.nlocks || timeout_ms < -1) {
		errno = EINVAL;
		return FARMQ_ERROR;
	}
	if (timeout_ms == -1) {
		e = pthread_mutex_lock(lockp(q, n));
	} else if (timeout_ms == 0) {
		e = pthread_mutex_trylock(lockp(q, n));
	} else {
		if (deadline_init(&d, timeout_ms) == -1)
			return FARMQ_ERROR;
		/* CLOCK_MONOTONIC: a wall-clock step does not stretch the wait. */
		e = pthread_mutex_clocklock(lockp(q, n), CLOCK_MONOTONIC, &d.at);
	}
	switch (e) {
	case 0:
		return FARMQ_OK;
	case EOWNERDEAD:
		/* What the lock protected is the caller's business: it is told. */
		if ((e = pthread_mutex_consistent(lockp(q, n))) != 0)
			break;
		return 1;
	case EBUSY:
	case ETIMEDOUT:
		return FARMQ_TIMEOUT;
	}
	errno = e;
	return FARMQ_ERROR;
}

int farmq_unlock(struct farmq *q, size_t n)
{
	int e;

	if (n >= q->l.nlocks) {
		errno = EINVAL;
		return FARMQ_ERROR;
	}
	if ((e = pthread_mutex_unlock(lockp(q, n))) != 0) {
		errno = e;
		return FARMQ_ERROR;
	}
	return FARMQ_OK;
}
