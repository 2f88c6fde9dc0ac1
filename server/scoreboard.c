/*
 * scoreboard.c - the shared tables children publish their state in.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/scoreboard.h"

struct scoreboard *scoreboard = NULL;

/* Each table starts on its own cache line: a worker storing into its entry
 * does not invalidate the line the mules' table starts on. */
#define SB_ALIGN 64

static size_t align_up(size_t n)
{
	return (n + SB_ALIGN - 1) & ~(size_t)(SB_ALIGN - 1);
}

/* <n> entries of <size> bytes, rounded up; 0 on overflow. */
static size_t table_size(size_t n, size_t size)
{
	if (size != 0 && n > (SIZE_MAX - SB_ALIGN) / size)
		return 0;
	return align_up(n * size);
}

int scoreboard_create(struct scoreboard *sb, int nworkers, int nthreads, int nmules)
{
	if (nworkers < 0 || nthreads < 1 || nmules < 0) {
		errno = EINVAL;
		return -1;
	}
	size_t nslots = (size_t)nworkers * (size_t)nthreads;
	size_t wsize = table_size((size_t)nworkers, sizeof(struct sb_worker));
	size_t msize = table_size((size_t)nmules, sizeof(struct sb_mule));
	size_t ssize = table_size(nslots, sizeof(struct sb_slot));
	if ((wsize == 0 && nworkers > 0) || (msize == 0 && nmules > 0) ||
	    (ssize == 0 && nslots > 0) || wsize > SIZE_MAX - msize - ssize) {
		errno = ENOMEM;
		return -1;
	}
	size_t total = wsize + msize + ssize;
	/* mmap() refuses a zero length: a master without children still gets
	 * a (tiny) region, so that every pointer below is valid. */
	char *base = mmap(NULL, total ? total : 1, PROT_READ | PROT_WRITE,
	                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -1;

	/* An anonymous mapping is zero-filled: every entry starts with pid 0
	 * (not running), status SB_IDLE, counters 0 and idle slots. */
	sb->master_pid = getpid();
	sb->start_time = (int64_t)time(NULL);
	sb->nworkers = nworkers;
	sb->nthreads = nthreads;
	sb->nmules = nmules;
	sb->workers = (struct sb_worker *)base;
	sb->mules = (struct sb_mule *)(base + wsize);
	sb->slots = (struct sb_slot *)(base + wsize + msize);
	for (int i = 0; i < nworkers; i++)
		sb->workers[i].id = i + 1;
	for (int i = 0; i < nmules; i++)
		sb->mules[i].id = i + 1;
	return 0;
}

struct sb_slot *scoreboard_slot(const struct scoreboard *sb, int id, int thread)
{
	if (id < 1 || id > sb->nworkers || thread < 0 || thread >= sb->nthreads)
		return NULL;
	return &sb->slots[(size_t)(id - 1) * (size_t)sb->nthreads + (size_t)thread];
}
