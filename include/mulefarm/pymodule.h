/*
 * pymodule.h - the `uwsgi` module the app imports (only inside the server).
 */
#ifndef MULEFARM_PYMODULE_H
#define MULEFARM_PYMODULE_H

#include <Python.h>

#include "mulefarm/server.h"

/* For PyImport_AppendInittab("uwsgi", ...), before Py_Initialize. */
PyObject *pymodule_init(void);
PyObject *pymodule_init_mulefarm(void); /* the same API as "mulefarm" */

/* Fills numproc, opt and the master pid. After Py_Initialize, GIL held. */
int pymodule_setup(const struct server *srv);

/* Sets what uwsgi.worker_id() returns in this process (0 outside workers). */
void pymodule_set_worker_id(int id);

#endif
