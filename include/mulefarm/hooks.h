/*
 * hooks.h - uWSGI's hooks: actions run at named phases of the life cycle.
 *
 * Phases (one repeatable option each): hook-pre-app and hook-post-app (the
 * master, around loading the app), hook-accepting (each worker as it starts
 * accepting), hook-accepting1 (worker 1 only), their -once variants (once
 * per worker id, or once for worker 1, per instance: not again on
 * respawn), hook-as-mule (each mule before its code), hook-master-start
 * (the master, once workers and mules are spawned).
 *
 * Actions, "name:argument":
 *   exec:CMD           run CMD with /bin/sh; a non-zero exit is logged
 *   print:TEXT         log TEXT
 *   unix_signal:N FN   (master) make signal N do FN: gracefully_kill_them_all,
 *                      kill_them_all, grace_them_all or reap_them_all
 *   writefifo:PATH D   write D to the FIFO at PATH if a reader is there, and
 *                      wait (1 s at most) until it has read them
 *   spinningfifo:PATH D  the same, retrying until a reader appears (30 s)
 *   callpy:[MOD.]FUNC  call a Python function (in __main__ without MOD)
 * A failing action is logged; it never stops the server.
 */
#ifndef MULEFARM_HOOKS_H
#define MULEFARM_HOOKS_H

#include "mulefarm/options.h"

/* Runs the actions of the hook option <phase> in order. The GIL must be
 * held if Python is initialised (callpy). */
void hooks_run(const struct options *o, enum opt_id phase);

/* Runs only the unix_signal actions of hook-master-start: a master whose
 * reload failed to import the app still honours the signal contract. */
void hooks_remap_signals(const struct options *o);

/* Checks every hook's action name (and unix_signal's arguments) before
 * anything starts. Returns 0, or -1 with a message naming the option. */
int hooks_check(const struct options *o, char *err, size_t errlen);

#endif
