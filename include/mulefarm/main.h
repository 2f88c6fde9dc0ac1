/*
 * main.h - the binaries' entry points. Each binary's main() calls its
 * function; the wheel's extension module (python/_server.c) calls the same
 * functions from its console scripts, with the interpreter already running
 * (python_init() adopts it). Compiled with -DMULEFARM_NO_MAIN for the
 * extension, where no main() is defined.
 */
#ifndef MULEFARM_MAIN_H
#define MULEFARM_MAIN_H

/* mulefarm (server/main.c): parses <argv>, runs a control command or the
 * master. Returns the exit status; children never return. */
int mulefarm_main(int argc, char **argv);

/* mulefarm-handler (handlers/main.c): the webless handler, likewise. */
int mulefarm_handler_main(int argc, char **argv);

#endif
