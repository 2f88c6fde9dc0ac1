/*
 * farmq.h - bounded message queues and locks in shared memory, for farms
 * and mules (one host).
 *
 * One region holds every queue (one per farm, one per mule) and every
 * `uwsgi.lock()` lock. The master creates it before any fork; children
 * inherit the mapping. The region lives in a memfd, so a graceful reload
 * (the master re-executes itself) keeps it: the new master attaches to the
 * inherited fd and nothing queued is lost.
 *
 * Guarantees:
 *   - a push that returns FARMQ_OK is in the queue; it stays there until a
 *     pop takes it, whoever dies meanwhile (the mutex is robust, and a
 *     push or pop publishes its change with one final store, so a process
 *     killed inside one leaves the queue as it was before or after it);
 *   - a pop takes each message exactly once: two poppers never get the
 *     same message, and a popper never wakes up empty-handed except on
 *     timeout or interruption;
 *   - a full queue never drops: push waits for room up to its timeout.
 *
 * Waiting is on futexes in the region, so a signal interrupts a wait
 * (FARMQ_EINTR): the caller runs its signal handlers and calls again with
 * the time left. No function logs, exits or allocates in the region.
 * Queue and lock numbers are 0-based indexes given at creation.
 */
#ifndef MULEFARM_FARMQ_H
#define MULEFARM_FARMQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FARMQ_NAME_MAX 64

enum farmq_rc {
	FARMQ_OK = 0,
	FARMQ_TIMEOUT = -1, /* push: still full; pop/lock: nothing came */
	FARMQ_EINTR = -2,   /* a signal arrived while waiting */
	FARMQ_TOOBIG = -3,  /* push: longer than max_msg; never truncated */
	FARMQ_ERROR = -4,   /* a bad argument, or a system call failed (errno) */
};

struct farmq_spec {
	size_t nqueues;
	const char *const *names; /* nqueues names, each < FARMQ_NAME_MAX */
	size_t max_msgs;          /* per queue */
	size_t max_bytes;         /* payload bytes per queue; >= max_msg */
	size_t max_msg;           /* largest message */
	size_t nlocks;
};

struct farmq; /* a mapped region */

/* Creates a region in a new memfd (not close-on-exec: it survives the
 * master's re-exec). Returns NULL with a message in <err>. */
struct farmq *farmq_create(const struct farmq_spec *spec, char *err, size_t errlen);

/* Maps the region in <fd> (inherited across exec). On success the handle
 * owns <fd> (farmq_close closes it); on failure <fd> is left open and
 * NULL is returned with a message if <fd> is not a farmq region of this
 * build's layout. */
struct farmq *farmq_attach(int fd, char *err, size_t errlen);

/* The memfd, to pass to a re-executed master. */
int farmq_fd(const struct farmq *q);

/* Unmaps and closes. A forked child inherits the mapping and may use the
 * parent's handle as is. <q> may be NULL. */
void farmq_close(struct farmq *q);

/* The region's shape (read from the region itself after attach). */
size_t farmq_nqueues(const struct farmq *q);
const char *farmq_name(const struct farmq *q, size_t queue);
size_t farmq_max_msg(const struct farmq *q);
size_t farmq_nlocks(const struct farmq *q);

/* Index of the queue named <name>, or -1. */
int farmq_find(const struct farmq *q, const char *name);

/* Appends <len> bytes to <queue>, waiting up to <timeout_ms> for room
 * (0: do not wait, -1: forever; below -1 is FARMQ_ERROR, EINVAL). On
 * FARMQ_TIMEOUT the queue's rejected count grows (not on FARMQ_TOOBIG or
 * FARMQ_EINTR). A zero-length message is a message. FARMQ_ERROR with
 * EUCLEAN: the queue's shared state is corrupt. */
int farmq_push(struct farmq *q, size_t queue, const void *msg, size_t len, int timeout_ms);

/* Takes the oldest message of the first non-empty queue among <queues>
 * (in the order given), waiting up to <timeout_ms> (0: do not wait, -1:
 * forever). On FARMQ_OK, *msg is a malloc()ed copy (the caller frees it;
 * never NULL, even for length 0), *len its length, and *from (if <from>
 * is not NULL) the index in <queues> it came from. Otherwise *msg, *len
 * and *from are untouched; FARMQ_ERROR with ENOMEM leaves the message
 * queued. A wait on one queue wakes for that queue only; a wait on
 * several wakes for a push to any queue of the region and looks again. */
int farmq_pop(struct farmq *q, const size_t *queues, size_t nq, void **msg, size_t *len,
              size_t *from, int timeout_ms);

/* Moves every message of <from> into the queue of the same name in <to>,
 * oldest first, without waiting. Returns the number moved; *lost (if
 * <lost> is not NULL) counts messages with no queue of that name in <to>,
 * or that did not fit (they stay in <from>). Per queue, moving stops at
 * the first message that does not fit (too long for <to>'s max_msg, or
 * <to>'s queue full), so the order is kept. Moved messages keep their
 * enqueue time and count as delivered in <from>, pushed in <to>. A crash
 * in the middle may duplicate one queue's moved messages, never lose
 * them. Used when a reload changed the queue shape; one caller at a
 * time (it holds a queue of each region at once). */
size_t farmq_migrate(struct farmq *from, struct farmq *to, size_t *lost);

struct farmq_stats {
	size_t depth;       /* messages queued */
	size_t bytes;       /* payload bytes queued */
	int64_t oldest_ms;  /* age of the oldest queued message, 0 if none */
	uint64_t pushed;    /* accepted */
	uint64_t delivered; /* popped */
	uint64_t rejected;  /* push timeouts (full) */
};

/* A consistent snapshot of <queue> (all zeros if there is no such queue). */
void farmq_stats(struct farmq *q, size_t queue, struct farmq_stats *st);

/* Process-shared robust locks 0..nlocks-1. farmq_lock waits up to
 * <timeout_ms> (0: try, -1: forever; measured on CLOCK_MONOTONIC); returns
 * FARMQ_OK, FARMQ_TIMEOUT, or 1 when the previous holder died holding it
 * (the lock is then held and consistent again: what it protected may be
 * half-updated). The owner is the calling thread: taking a lock it
 * already holds is FARMQ_ERROR (EDEADLK), not a deadlock. The wait is
 * not interrupted by signals. farmq_unlock returns FARMQ_ERROR (errno
 * EPERM) if the calling thread does not hold it. */
int farmq_lock(struct farmq *q, size_t n, int timeout_ms);
int farmq_unlock(struct farmq *q, size_t n);

#endif
