/*
 * pymodule.c - the `uwsgi` Python module, with uWSGI's names and types.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <signal.h>
#include <unistd.h>

#include "mulefarm/pydbfarm.h"
#include "mulefarm/pyfarm.h"
#include "mulefarm/pymodule.h"
#include "mulefarm/scoreboard.h"
#include "mulefarm/usignal.h"

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

/* The master's pid now (--daemonize2 forks after the module is set up). */
static pid_t current_master(void)
{
	return scoreboard && scoreboard->master_pid ? scoreboard->master_pid : master_pid;
}

static PyObject *py_masterpid(PyObject *self, PyObject *unused)
{
	return PyLong_FromLong((long)current_master());
}

/* uwsgi.reload(): a graceful reload of the whole server. */
static PyObject *py_reload(PyObject *self, PyObject *unused)
{
	if (kill(current_master(), SIGHUP) == -1)
		Py_RETURN_FALSE;
	Py_RETURN_TRUE;
}

/* uwsgi.stop(): a graceful shutdown (mulefarm: uWSGI's is brutal). */
static PyObject *py_stop(PyObject *self, PyObject *unused)
{
	if (kill(current_master(), SIGTERM) == -1)
		Py_RETURN_FALSE;
	Py_RETURN_TRUE;
}

static int set_u64(PyObject *d, const char *key, uint64_t v)
{
	PyObject *o = PyLong_FromUnsignedLongLong(v);
	int rc = o ? PyDict_SetItemString(d, key, o) : -1;
	Py_XDECREF(o);
	return rc;
}

/* uwsgi.workers(): a tuple of dicts with the stats server's field names. */
static PyObject *py_workers(PyObject *self, PyObject *unused)
{
	int n = scoreboard ? scoreboard->nworkers : 0;
	PyObject *t = PyTuple_New(n);
	static const char *const status[] = {"idle", "busy", "stopping", "cheap"};
	for (int i = 0; t != NULL && i < n; i++) {
		const struct sb_worker *w = &scoreboard->workers[i];
		PyObject *d = PyDict_New();
		PyObject *st = PyBytes_FromString(
		        w->pid == 0 ? "cheap"
		                    : status[w->status >= 0 && w->status <= 3 ? w->status : 0]);
		int rc = d && st ? PyDict_SetItemString(d, "status", st) : -1;
		Py_XDECREF(st);
		if (rc == 0)
			rc = set_u64(d, "id", (uint64_t)w->id) |
			     set_u64(d, "pid", (uint64_t)w->pid) |
			     set_u64(d, "requests", w->requests) |
			     set_u64(d, "exceptions", w->exceptions) |
			     set_u64(d, "harakiri_count", w->harakiri_count) |
			     set_u64(d, "respawn_count", w->respawn_count) |
			     set_u64(d, "avg_rt", w->avg_rt_us) | set_u64(d, "rss", w->rss_bytes) |
			     set_u64(d, "tx", w->tx_bytes) |
			     set_u64(d, "last_spawn", (uint64_t)w->last_spawn) |
			     set_u64(d, "accepting", (uint64_t)w->accepting);
		if (rc != 0) {
			Py_XDECREF(d);
			Py_CLEAR(t);
			break;
		}
		PyTuple_SET_ITEM(t, i, d);
	}
	return t;
}

static PyMethodDef methods[] = {
        {"reload", py_reload, METH_NOARGS, "reload the server gracefully (SIGHUP to the master)"},
        {"stop", py_stop, METH_NOARGS, "stop the server gracefully (SIGTERM to the master)"},
        {"workers", py_workers, METH_NOARGS, "the stats of every worker, as dicts"},
        {"worker_id", py_worker_id, METH_NOARGS, "id of this worker (1..N), 0 outside workers"},
        {"masterpid", py_masterpid, METH_NOARGS, "pid of the master process"},
        {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
        PyModuleDef_HEAD_INIT,
        .m_name = "uwsgi",
        .m_doc = "mulefarm's implementation of uWSGI's uwsgi module.",
        .m_size = -1,
        .m_methods = methods,
};

static struct PyModuleDef mulefarm_def = {
        PyModuleDef_HEAD_INIT,
        .m_name = "mulefarm",
        .m_doc = "mulefarm's own name for the uwsgi module's API, with mulefarm's additions.",
        .m_size = -1,
        .m_methods = methods,
};

static PyObject *create(struct PyModuleDef *def)
{
	PyObject *m = PyModule_Create(def);
	if (m != NULL &&
	    (pyfarm_add(m) == -1 || pydbfarm_add(m) == -1 || usignal_add_functions(m) == -1))
		Py_CLEAR(m);
	return m;
}

PyObject *pymodule_init(void)
{
	return create(&moduledef);
}

PyObject *pymodule_init_mulefarm(void)
{
	return create(&mulefarm_def);
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
