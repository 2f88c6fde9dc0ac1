/*
 * pyfarm.c - mules, farms and locks for Python (see pyfarm.h).
 *
 * Waits release the GIL and block on the farm queues' futexes in slices,
 * so that signal handlers (Python's, and the mule's stop request) run
 * within a slice of the signal.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mulefarm/conn.h"
#include "mulefarm/dbfarm.h"
#include "mulefarm/farm.h"
#include "mulefarm/log.h"
#include "mulefarm/mule.h"
#include "mulefarm/pydbfarm.h"
#include "mulefarm/pyfarm.h"

#define WAIT_SLICE_MS   1000
#define MAX_WAIT_QUEUES (FARMS_MAX + 2)

static PyObject *queue_full; /* mulefarm.QueueFull */

/* Names of unknown farms already logged (once per name). */
static char **unknown_logged;
static size_t n_unknown_logged;

static void log_unknown_farm(const char *name)
{
	for (size_t i = 0; i < n_unknown_logged; i++)
		if (strcmp(unknown_logged[i], name) == 0)
			return;
	char **grown = realloc(unknown_logged, (n_unknown_logged + 1) * sizeof(char *));
	if (grown != NULL) {
		unknown_logged = grown;
		unknown_logged[n_unknown_logged] = strdup(name);
		n_unknown_logged += unknown_logged[n_unknown_logged] != NULL;
	}
	log_info("farm_msg(): there is no farm '%s' (messages to it are refused)", name);
}

static bool have_queues(void)
{
	if (farms != NULL && farms->q != NULL)
		return true;
	PyErr_SetString(PyExc_RuntimeError, "mules and farms are not set up in this process");
	return false;
}

/* Pushes with the GIL released, running signal handlers when one arrives.
 * Returns 1 sent, 0 full after <timeout_ms>, -1 with an exception. */
static int push(size_t queue, const char *msg, Py_ssize_t len, int timeout_ms)
{
	/* One wait for the whole timeout (a signal ends it early with
	 * FARMQ_EINTR): each push that times out counts once as rejected. */
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	for (;;) {
		int left = deadline < 0 ? -1 : (int)(deadline - mono_ms());
		left = deadline >= 0 && left < 0 ? 0 : left;
		int rc;
		Py_BEGIN_ALLOW_THREADS rc = farmq_push(farms->q, queue, msg, (size_t)len, left);
		Py_END_ALLOW_THREADS if (rc == FARMQ_OK) return 1;
		if (rc == FARMQ_TOOBIG) {
			PyErr_Format(
			        PyExc_ValueError,
			        "message of %zd bytes is bigger than --mule-msg-size (%zu bytes)",
			        len, farms->max_msg);
			return -1;
		}
		if (rc == FARMQ_ERROR) {
			PyErr_SetFromErrno(PyExc_OSError);
			return -1;
		}
		if (rc == FARMQ_TIMEOUT)
			return 0;
		if (PyErr_CheckSignals() == -1) /* FARMQ_EINTR */
			return -1;
	}
}

/* What a full queue gives the sender: False, or QueueFull when
 * --farm-msg-full=raise (or <always_raise>). */
static PyObject *sent(int rc, const char *where, bool always_raise)
{
	if (rc == -1)
		return NULL;
	if (rc == 1)
		Py_RETURN_TRUE;
	if (farms->raise_full || always_raise) {
		PyErr_Format(queue_full, "%s: the queue stayed full", where);
		return NULL;
	}
	Py_RETURN_FALSE;
}

static PyObject *farm_send(const char *farm, const char *msg, Py_ssize_t len, int timeout_ms,
                           bool always_raise)
{
	if (dbfarm_find(farm) >= 0) /* farm_msg: --dbqueue-timeout; farm_msg_wait: its own */
		return pydbfarm_send(farm, msg, len, always_raise ? timeout_ms : -2,
		                     always_raise || (farms != NULL && farms->raise_full));
	if (!have_queues())
		return NULL;
	int f = farms_find(farms, farm);
	if (f < 0) {
		log_unknown_farm(farm);
		Py_RETURN_FALSE;
	}
	return sent(push((size_t)f, msg, len, timeout_ms), farm, always_raise);
}

static PyObject *py_farm_msg(PyObject *self, PyObject *args)
{
	const char *farm, *msg;
	Py_ssize_t len;
	if (!PyArg_ParseTuple(args, "ss#:farm_msg", &farm, &msg, &len) &&
	    (PyErr_Clear(), !PyArg_ParseTuple(args, "sy#:farm_msg", &farm, &msg, &len)))
		return NULL;
	return farm_send(farm, msg, len, farms ? farms->msg_timeout_ms : 0, false);
}

static PyObject *py_farm_msg_wait(PyObject *self, PyObject *args)
{
	const char *farm, *msg;
	Py_ssize_t len;
	double timeout;
	if (!PyArg_ParseTuple(args, "ss#d:farm_msg_wait", &farm, &msg, &len, &timeout) &&
	    (PyErr_Clear(),
	     !PyArg_ParseTuple(args, "sy#d:farm_msg_wait", &farm, &msg, &len, &timeout)))
		return NULL;
	return farm_send(farm, msg, len, timeout < 0 ? -1 : (int)(timeout * 1000), true);
}

static PyObject *py_mule_msg(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"msg", "mule_id", NULL};
	const char *msg;
	Py_ssize_t len;
	PyObject *idobj = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s#|O:mule_msg", kwlist, &msg, &len, &idobj) &&
	    (PyErr_Clear(),
	     !PyArg_ParseTupleAndKeywords(args, kw, "y#|O:mule_msg", kwlist, &msg, &len, &idobj)))
		return NULL;
	if (!have_queues())
		return NULL;
	size_t queue = farms_any_mule_queue(farms);
	if (idobj != Py_None) {
		long id = PyLong_AsLong(idobj);
		if (id == -1 && PyErr_Occurred())
			return NULL;
		if (id < 1 || (size_t)id > farms->nmules) {
			PyErr_Format(PyExc_ValueError, "there is no mule %ld (%zu mules)", id,
			             farms->nmules);
			return NULL;
		}
		queue = farms_mule_queue(farms, (int)id);
	} else if (farms->nmules == 0) {
		PyErr_SetString(PyExc_ValueError, "there are no mules");
		return NULL;
	}
	return sent(push(queue, msg, len, farms->msg_timeout_ms), "mule_msg", false);
}

PyObject *pyfarm_get(int id, bool any_mule, bool with_farms, int timeout_ms)
{
	size_t qs[MAX_WAIT_QUEUES];
	size_t nq = 0;
	if (!have_queues())
		return NULL;
	if (with_farms && dbfarm_mule_consumes(id))
		return pydbfarm_get(id, any_mule, timeout_ms);
	if (any_mule) {
		qs[nq++] = farms_mule_queue(farms, id);
		qs[nq++] = farms_any_mule_queue(farms);
	}
	for (size_t f = 0; with_farms && f < farms->n && nq < MAX_WAIT_QUEUES; f++)
		if (farms_has_mule(farms, f, id))
			qs[nq++] = f;
	if (nq == 0) {
		PyErr_Format(PyExc_ValueError, "mule %d is in no farm", id);
		return NULL;
	}
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	for (;;) {
		if (mule_stop_requested)
			mule_exit();
		int left = deadline < 0 ? WAIT_SLICE_MS : (int)(deadline - mono_ms());
		left = left < 0 ? 0 : left > WAIT_SLICE_MS ? WAIT_SLICE_MS : left;
		void *msg = NULL;
		size_t len = 0, from = 0;
		int rc;
		mule_set_waiting(true);
		Py_BEGIN_ALLOW_THREADS rc = farmq_pop(farms->q, qs, nq, &msg, &len, &from, left);
		Py_END_ALLOW_THREADS mule_set_waiting(false);
		if (rc == FARMQ_OK) {
			mule_count_message();
			PyObject *b = PyBytes_FromStringAndSize(msg, (Py_ssize_t)len);
			free(msg);
			return b;
		}
		if (rc == FARMQ_ERROR)
			return PyErr_SetFromErrno(PyExc_OSError);
		if (PyErr_CheckSignals() == -1)
			return NULL;
		if (deadline >= 0 && mono_ms() >= deadline)
			Py_RETURN_NONE;
	}
}

static int need_mule(const char *fn)
{
	if (mule_id() > 0)
		return mule_id();
	PyErr_Format(PyExc_ValueError, "%s() only works in a mule", fn);
	return 0;
}

static PyObject *py_farm_get_msg(PyObject *self, PyObject *unused)
{
	int id = need_mule("farm_get_msg");
	return id ? pyfarm_get(id, false, true, -1) : NULL;
}

static PyObject *py_mule_get_msg(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"signals", "farms", "buffer_size", "timeout", NULL};
	int signals = 1, with_farms = 1, timeout = -1;
	Py_ssize_t buffer_size = 65536;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|ppni:mule_get_msg", kwlist, &signals,
	                                 &with_farms, &buffer_size, &timeout))
		return NULL;
	int id = need_mule("mule_get_msg");
	/* buffer_size is accepted; messages are never truncated. */
	return id ? pyfarm_get(id, true, with_farms, timeout < 0 ? -1 : timeout * 1000) : NULL;
}

static PyObject *py_mule_id(PyObject *self, PyObject *unused)
{
	return PyLong_FromLong(mule_id());
}

static PyObject *py_in_farm(PyObject *self, PyObject *args)
{
	const char *name = NULL;
	if (!PyArg_ParseTuple(args, "|z:in_farm", &name))
		return NULL;
	int id = mule_id();
	for (size_t f = 0; id > 0 && farms != NULL && f < farms->n; f++)
		if ((name == NULL || strcmp(name, farms->f[f].name) == 0) &&
		    farms_has_mule(farms, f, id))
			Py_RETURN_TRUE;
	Py_RETURN_NONE;
}

static int lock_number(PyObject *args, const char *fn, size_t *n)
{
	int i = 0;
	if (!PyArg_ParseTuple(args, fn, &i) || !have_queues())
		return -1;
	if (i < 0 || (size_t)i >= farms->nlocks) {
		PyErr_Format(PyExc_ValueError, "no lock %d: locks are 0..%zu (--locks)", i,
		             farms->nlocks - 1);
		return -1;
	}
	*n = (size_t)i;
	return 0;
}

static PyObject *py_lock(PyObject *self, PyObject *args)
{
	size_t n;
	if (lock_number(args, "|i:lock", &n) == -1)
		return NULL;
	for (;;) {
		int rc;
		Py_BEGIN_ALLOW_THREADS rc = farmq_lock(farms->q, n, WAIT_SLICE_MS);
		Py_END_ALLOW_THREADS if (rc == 1)
		        log_info("[deadlock-detector] lock %zu: its holder died; recovered", n);
		if (rc == FARMQ_OK || rc == 1)
			Py_RETURN_NONE;
		if (rc == FARMQ_ERROR)
			return PyErr_SetFromErrno(PyExc_OSError);
		if (PyErr_CheckSignals() == -1)
			return NULL;
	}
}

static PyObject *py_unlock(PyObject *self, PyObject *args)
{
	size_t n;
	if (lock_number(args, "|i:unlock", &n) == -1)
		return NULL;
	if (farmq_unlock(farms->q, n) != FARMQ_OK) {
		PyErr_Format(PyExc_RuntimeError, "lock %zu is not held by this thread", n);
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
        {"mule_id", py_mule_id, METH_NOARGS, "id of this mule (1..M), 0 outside mules"},
        {"in_farm", py_in_farm, METH_VARARGS,
         "True if this mule is in farm <name> (any farm without a name), else None"},
        {"farm_msg", py_farm_msg, METH_VARARGS,
         "farm_msg(farm, msg): queue msg for the next free mule of the farm; True once queued. "
         "A full queue waits --farm-msg-timeout, then False or QueueFull (never dropped)"},
        {"farm_msg_wait", py_farm_msg_wait, METH_VARARGS,
         "farm_msg_wait(farm, msg, timeout): like farm_msg, waiting up to timeout seconds; "
         "raises QueueFull"},
        {"mule_msg", (PyCFunction)(void (*)(void))py_mule_msg, METH_VARARGS | METH_KEYWORDS,
         "mule_msg(msg, mule_id=None): queue msg for that mule, or for any mule"},
        {"farm_get_msg", py_farm_get_msg, METH_NOARGS,
         "next message of this mule's farms (bytes); blocks with the GIL released"},
        {"mule_get_msg", (PyCFunction)(void (*)(void))py_mule_get_msg, METH_VARARGS | METH_KEYWORDS,
         "mule_get_msg(signals=True, farms=True, buffer_size=65536, timeout=-1): next message "
         "(bytes), or None on timeout; messages are never truncated"},
        {"lock", py_lock, METH_VARARGS, "lock(n=0): take process-shared lock n (GIL released)"},
        {"unlock", py_unlock, METH_VARARGS, "unlock(n=0): release lock n"},
        {NULL, NULL, 0, NULL},
};

int pyfarm_add(PyObject *m)
{
	if (queue_full == NULL)
		queue_full = PyErr_NewExceptionWithDoc(
		        "mulefarm.QueueFull", "a farm or mule queue stayed full", NULL, NULL);
	if (queue_full == NULL || PyModule_AddFunctions(m, methods) == -1)
		return -1;
	return PyModule_AddObject(m, "QueueFull", Py_NewRef(queue_full)) == -1 ? -1 : 0;
}
