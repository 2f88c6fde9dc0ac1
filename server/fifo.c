/*
 * fifo.c - the master FIFO (see fifo.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mulefarm/fifo.h"
#include "mulefarm/log.h"

static int active_fd = -1; /* for fifo_close_inherited() */

static int open_path(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISFIFO(st.st_mode)) {
		log_info("--master-fifo %s exists and is not a FIFO", path);
		return -1;
	}
	if (mkfifo(path, 0600) == -1 && errno != EEXIST) {
		log_err(errno, "mkfifo(%s) failed", path);
		return -1;
	}
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		log_err(errno, "open(%s) failed", path);
	return fd;
}

int fifo_open(struct fifo *f, const struct options *o)
{
	f->n = 0;
	f->slot = 0;
	f->fd = -1;
	for (size_t i = 0; i < o->n; i++) {
		if (o->entries[i].id != OPT_MASTER_FIFO)
			continue;
		if (f->n == FIFO_SLOTS) {
			log_info("--master-fifo: only %d slots; %s ignored", FIFO_SLOTS,
			         o->entries[i].value);
			continue;
		}
		f->paths[f->n++] = o->entries[i].value;
	}
	if (f->n == 0)
		return 0;
	f->fd = active_fd = open_path(f->paths[0]);
	if (f->fd == -1)
		return -1;
	log_info("master FIFO %s (slot 0)", f->paths[0]);
	return 0;
}

size_t fifo_read(struct fifo *f, char *buf, size_t cap)
{
	if (f->fd == -1)
		return 0;
	ssize_t n = read(f->fd, buf, cap);
	return n > 0 ? (size_t)n : 0;
}

int fifo_switch(struct fifo *f, int slot)
{
	if (slot < 0 || slot >= f->n) {
		log_info("master FIFO: no slot %d (%d configured)", slot, f->n);
		return -1;
	}
	int fd = open_path(f->paths[slot]);
	if (fd == -1)
		return -1;
	close(f->fd);
	f->fd = active_fd = fd;
	f->slot = slot;
	log_info("master FIFO switched to slot %d: %s", slot, f->paths[slot]);
	return 0;
}

void fifo_close(struct fifo *f)
{
	if (f->fd != -1)
		close(f->fd);
	f->fd = active_fd = -1;
}

void fifo_close_inherited(void)
{
	if (active_fd != -1)
		close(active_fd);
	active_fd = -1;
}
