/*
 * python.h - the embedded interpreter: start-up, loading the app, and the
 * fork hooks. All of it runs in the master before any fork, except
 * python_after_fork_child() which every child runs right after fork.
 */
#ifndef MULEFARM_PYTHON_H
#define MULEFARM_PYTHON_H

#include <Python.h>

#include "mulefarm/server.h"

/* Starts CPython (no Python signal handlers: the C loops own signals),
 * registers the `uwsgi` module, applies --virtualenv and --pythonpath.
 * In the wheel, where the interpreter already runs (Py_IsInitialized()),
 * adopts it instead: sys.argv, __main__ and the `uwsgi` and `mulefarm`
 * modules are made as the embedded start makes them, the GIL stays held
 * as there. Returns 0, or -1 after printing the error. */
int python_init(const struct server *srv);

/* Imports the app named by --wsgi-file or --module (--callable). Returns a
 * new reference, or NULL after printing the traceback. */
PyObject *python_load_app(const struct options *o);

/* Imports a --mount target: a file (ends in .py or holds a '/') or
 * pkg.mod[:callable]. Returns a new reference, or NULL after printing the
 * traceback. */
PyObject *python_load_target(const char *target, const char *callable);

/* After the app is loaded and before the first fork: gc.freeze() moves
 * every object to a permanent generation, so the collector in the
 * workers neither walks (nor writes to, breaking copy-on-write) the app's
 * import-time objects. */
void python_freeze(void);

/* Around fork(): the interpreter's own before/after hooks. The child hook
 * also sets the worker id and calls uwsgi.post_fork_hook if the app set it. */
void python_before_fork(void);
void python_after_fork_parent(void);
void python_after_fork_child(int worker_id);

/* Prints the pending exception with its traceback on stderr, without the
 * SystemExit special case of PyErr_Print(). GIL held. */
void python_print_exception(void);

#endif
