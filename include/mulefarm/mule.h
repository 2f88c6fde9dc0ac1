/*
 * mule.h - a mule: a job-handler process forked from the master after the
 * app is loaded. It runs its --mule code (a script as __main__, a
 * pkg.mod:callable, or the default message loop) and exits when that code
 * returns; the master respawns it under the same id.
 *
 * Stopping (SIGTERM, SIGHUP): a mule blocked waiting for a message exits
 * at once; one handling a message exits when it next asks for one; mule
 * code that never asks for messages is stopped at once. Code that installs
 * its own Python handler for the signal decides for itself (Galaxy's
 * pattern). The master SIGKILLs a mule still alive after
 * --mule-reload-mercy.
 */
#ifndef MULEFARM_MULE_H
#define MULEFARM_MULE_H

#include <signal.h>
#include <stdbool.h>

#include "mulefarm/server.h"

/* Runs mule <id> (1..M) in a freshly forked child, GIL held. Never
 * returns. */
void mule_main(const struct server *srv, int id) __attribute__((noreturn));

/* The mule id of this process (0 outside mules). */
int mule_id(void);

/* Set by the mule's SIGTERM/SIGHUP handler; read by the message waits. */
extern volatile sig_atomic_t mule_stop_requested;

/* The message waits mark the mule as waiting, so a stop request can end
 * it at once. */
void mule_set_waiting(bool waiting);

/* Ends the mule after a stop request (flushes stdio, exit status 0). */
void mule_exit(void) __attribute__((noreturn));

/* Counts a received message in the stats. */
void mule_count_message(void);

#endif
