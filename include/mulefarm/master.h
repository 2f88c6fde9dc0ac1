/*
 * master.h - the master: binds, loads the app, forks, respawns, stops.
 */
#ifndef MULEFARM_MASTER_H
#define MULEFARM_MASTER_H

#include "mulefarm/server.h"

/* Runs the server; returns the process exit status: 0 after a clean
 * shutdown, non-zero when start-up failed (the reason is logged). */
int master_run(struct server *srv);

#endif
