/*
 * worker.h - a web worker: one event-loop thread that accepts connections
 * and reads request heads (and small bodies) without Python, and
 * --threads Python threads that run the app. Idle keep-alive connections
 * and slow clients therefore wait in the loop, never in a Python thread.
 */
#ifndef MULEFARM_WORKER_H
#define MULEFARM_WORKER_H

#include "mulefarm/server.h"

/* Runs worker <id> (1..N) in a freshly forked child, GIL held on entry.
 * Never returns: exits 0 after a graceful stop (SIGTERM), at once on
 * SIGINT/SIGQUIT. */
void worker_main(const struct server *srv, int id) __attribute__((noreturn));

#endif
