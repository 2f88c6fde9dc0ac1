/*
 * front.h - what both binaries (mulefarm, mulefarm-handler) do before the
 * master starts: read the options, answer --help/--version/--options-md/
 * --print-config, act on a running master through its pidfile (--stop,
 * --graceful-stop, --reload), and, once the configuration is settled,
 * hand over to the master with the process title set.
 */
#ifndef MULEFARM_FRONT_H
#define MULEFARM_FRONT_H

#include "mulefarm/server.h"

/* Loads the options of <argc>/<argv> into <o> for program <prog>. Returns
 * -1 when the caller should go on, else the exit status (an error was
 * printed, or a one-shot command ran). */
int front_begin(const char *prog, const char *version, int argc, char **argv, struct options *o);

/* Runs the master for <srv> (its cfg settled), titled "mulefarm <title>".
 * Returns the exit status. */
int front_launch(const char *version, const char *title, int argc, char **argv, struct options *o,
                 struct server *srv);

#endif
