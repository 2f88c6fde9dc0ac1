/*
 * pymodule.c - the `uwsgi` Python module, with uWSGI's names and types.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <unistd.h>

#include "mulefarm/pymodule.h"

static int worker_id;
static pid_t master_pid;

void pymodule_set_worker_id(int id)
{
	worker_id = id;
}

static PyObject *py_worker_id(PyObject *self, PyObject *unused)
{
	return PyLong_FromLong(worker_id);
}

static PyObject *py_masterpid(PyObject *self, PyObject *unused)
{
	return PyLong_FromLong((long)master_pid);
}

static PyMethodDef methods[] = {
        {"worker_id", py_worker_id, METH_NOARGS, "id of this worker (1..N), 0 outside workers"},
        {"masterpid", py_masterpid, METH_NOARGS, "pid of the master process"},
        {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
        PyModuleDef_HEAD_INIT,
        "uwsgi",
        "mulefarm's implementation of uWSGI's uwsgi module.",
        -1,
        methods,
        NULL,
        NULL,
        NULL,
        NULL,
};

PyObject *pymodule_init(void)
{
	return PyModule_Create(&moduledef);
}

/* uwsgi.opt: str keys as typed, bytes values, True for bare flags, and a
 * list once a key repeats. */
static PyObject *build_opt(const struct options *o)
{
	PyObject *opt = PyDict_New();
	for (size_t i = 0; opt != NULL && i < o->n; i++) {
		const struct opt_entry *e = &o->entries[i];
		PyObject *v = e->value ? PyBytes_FromString(e->value) : Py_NewRef(Py_True);
		PyObject *old = v ? PyDict_GetItemString(opt, e->key) : NULL;
		int rc;
		if (v == NULL) {
			rc = -1;
		} else if (old == NULL) {
			rc = PyDict_SetItemString(opt, e->key, v);
		} else if (PyList_Check(old)) {
			rc = PyList_Append(old, v);
		} else {
			PyObject *list = PyList_New(2);
			rc = list ? 0 : -1;
			if (list) {
				PyList_SET_ITEM(list, 0, Py_NewRef(old));
				PyList_SET_ITEM(list, 1, Py_NewRef(v));
				rc = PyDict_SetItemString(opt, e->key, list);
				Py_DECREF(list);
			}
		}
		Py_XDECREF(v);
		if (rc == -1)
			Py_CLEAR(opt);
	}
	return opt;
}

int pymodule_setup(const struct server *srv)
{
	PyObject *m = PyImport_ImportModule("uwsgi");
	if (m == NULL)
		return -1;
	master_pid = srv->master_pid;
	int rc = PyModule_AddIntConstant(m, "numproc", srv->cfg.processes);
	PyObject *opt = rc == 0 ? build_opt(srv->cfg.opts) : NULL;
	if (opt == NULL || PyModule_AddObject(m, "opt", opt) == -1) {
		Py_XDECREF(opt);
		rc = -1;
	}
	Py_DECREF(m);
	return rc;
}
