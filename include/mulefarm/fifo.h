/*
 * fifo.h - the master FIFO: uWSGI's one-letter commands on a named pipe.
 *
 * --master-fifo may repeat: the paths are slots 0-9 and slot 0 is active
 * at start. A digit switches the active slot: the master then reads the
 * FIFO at that slot's path (created if missing) and no longer the old one.
 * The FIFO is opened read-write, so a writer closing it never makes the
 * master spin on end-of-file.
 */
#ifndef MULEFARM_FIFO_H
#define MULEFARM_FIFO_H

#include <stddef.h>

#include "mulefarm/options.h"

#define FIFO_SLOTS 10

struct fifo {
	const char *paths[FIFO_SLOTS];
	int n;
	int slot;
	int fd; /* -1 when no --master-fifo */
};

/* Opens slot 0 (if any --master-fifo). Returns 0, or -1 after logging. */
int fifo_open(struct fifo *f, const struct options *o);

/* Reads pending command bytes into <buf>; returns their count (0 if none). */
size_t fifo_read(struct fifo *f, char *buf, size_t cap);

/* Makes <slot> active. Returns 0, or -1 after logging (the old slot stays). */
int fifo_switch(struct fifo *f, int slot);

void fifo_close(struct fifo *f);

/* In a freshly forked child: closes the master's FIFO, so that a child
 * never holds a slot open (bytes written to an inactive slot would wait
 * there and run when the master switched back to it). */
void fifo_close_inherited(void);

#endif
