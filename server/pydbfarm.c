/*
 * pydbfarm.c - database farms for Python (see pydbfarm.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mulefarm/conn.h"
#include "mulefarm/dbfarm.h"
#include "mulefarm/farm.h"
#include "mulefarm/log.h"
#include "mulefarm/mule.h"
#include "mulefarm/pydbfarm.h"

#define WAIT_SLICE_MS   1000
#define MIXED_SLICE_MS  50 /* with local queues too: look at them this often */
#define MAX_WAIT_QUEUES (FARMS_MAX + 2)
#define ERR_MAX         512
#define FOREVER_MS      (1 << 30)

static PyObject *queue_unavailable; /* mulefarm.QueueUnavailable, a QueueFull */

/* --- enqueue ----------------------------------------------------------- */

static int wait_of(int wait_ms)
{
	return wait_ms == -1 ? FOREVER_MS : wait_ms >= 0 ? wait_ms : dbfarm_timeout_ms();
}

static bool transient(int rc)
{
	return rc == DBQ_ECONNECT || rc == DBQ_ECONNLOST || rc == DBQ_ETIMEOUT || rc == DBQ_EQUERY;
}

static bool check_farm(const char *farm)
{
	if (dbfarm_find(farm) >= 0)
		return true;
	PyErr_Format(PyExc_ValueError, "'%s' is not a database farm (--db-farm with --dbqueue)",
	             farm);
	return false;
}

static bool check_size(Py_ssize_t len)
{
	if ((size_t)len <= dbfarm_max_msg())
		return true;
	PyErr_Format(PyExc_ValueError,
	             "message of %zd bytes is bigger than --mule-msg-size (%zu bytes)", len,
	             dbfarm_max_msg());
	return false;
}

static int enqueue(struct dbq_new_job *jobs, size_t n, int wait_ms, char *err)
{
	int rc;
	Py_BEGIN_ALLOW_THREADS rc = dbfarm_enqueue(jobs, n, wait_of(wait_ms), err, ERR_MAX);
	Py_END_ALLOW_THREADS return rc;
}

/* The error for a failed enqueue: QueueUnavailable when the database
 * could not be reached in time, RuntimeError when it refused. */
static PyObject *enqueue_error(const char *farm, int rc, const char *err, int wait_ms)
{
	char msg[ERR_MAX + 256];
	if (transient(rc))
		snprintf(msg, sizeof(msg),
		         "database farm %s: the job was NOT queued: the database failed for %.1f s "
		         "(--dbqueue-timeout): %s",
		         farm, wait_of(wait_ms) / 1000.0, err);
	else
		snprintf(msg, sizeof(msg), "database farm %s: the job was NOT queued: %s", farm,
		         err);
	PyErr_SetString(transient(rc) ? queue_unavailable : PyExc_RuntimeError, msg);
	return NULL;
}

/* Galaxy's mules stop by each sending "__SHUTDOWN__" to their own farm
 * from their SIGTERM handler and breaking out of their loop when
 * farm_get_msg() returns it: with a local farm every mule ends up with one.
 * Through a database farm the message would be a job that any host's
 * mule may claim, stopping a mule elsewhere and leaving this one waiting.
 * So a mule's "__SHUTDOWN__" to a database farm it consumes loops back to
 * that mule: its next farm_get_msg() returns it, and nothing is enqueued. */
#define SHUTDOWN_MSG "__SHUTDOWN__"
static unsigned shutdowns_pending;

static bool loops_back(const char *farm, const char *msg, Py_ssize_t len)
{
	int id = mule_id(), f = dbfarm_find(farm);
	return id > 0 && f >= 0 && dbfarm_mule_in(id, (size_t)f) &&
	       len == (Py_ssize_t)strlen(SHUTDOWN_MSG) &&
	       memcmp(msg, SHUTDOWN_MSG, (size_t)len) == 0;
}

PyObject *pydbfarm_send(const char *farm, const char *msg, Py_ssize_t len, int wait_ms, bool raise)
{
	if (!check_size(len))
		return NULL;
	if (loops_back(farm, msg, len)) {
		shutdowns_pending++;
		Py_RETURN_TRUE;
	}
	struct dbq_new_job job = {.farm = farm, .payload = msg, .len = (size_t)len};
	char err[ERR_MAX];
	int rc = enqueue(&job, 1, wait_ms, err);
	if (rc == DBQ_OK)
		Py_RETURN_TRUE;
	if (raise || !transient(rc))
		return enqueue_error(farm, rc, err, wait_ms);
	log_info("farm_msg(%s): the message was NOT queued: the database failed for %.1f s "
	         "(--dbqueue-timeout): %s",
	         farm, wait_of(wait_ms) / 1000.0, err);
	Py_RETURN_FALSE;
}

static int payload_of(PyObject *o, const char **p, Py_ssize_t *len)
{
	if (PyUnicode_Check(o)) {
		*p = PyUnicode_AsUTF8AndSize(o, len);
		return *p ? 0 : -1;
	}
	if (PyBytes_Check(o))
		return PyBytes_AsStringAndSize(o, (char **)p, len);
	PyErr_SetString(PyExc_TypeError, "a payload is str or bytes");
	return -1;
}

/* run_at: None, seconds since the epoch, or a datetime. */
static int run_at_of(PyObject *o, int64_t *ms)
{
	*ms = 0;
	if (o == NULL || o == Py_None)
		return 0;
	PyObject *ts = NULL;
	if (PyObject_HasAttrString(o, "timestamp"))
		o = ts = PyObject_CallMethod(o, "timestamp", NULL);
	double s = o ? PyFloat_AsDouble(o) : -1;
	Py_XDECREF(ts);
	if (s == -1 && PyErr_Occurred())
		return -1;
	*ms = (int64_t)(s * 1000);
	return 0;
}

static PyObject *py_enqueue(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"farm",       "payload",      "priority", "run_at",
	                         "unique_key", "max_attempts", "uuid",     NULL};
	const char *farm, *unique = NULL, *uuid = NULL, *p;
	PyObject *payload, *run_at = NULL;
	int priority = 0, max_attempts = 0;
	Py_ssize_t len;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|$iOziz:enqueue", kwlist, &farm, &payload,
	                                 &priority, &run_at, &unique, &max_attempts, &uuid))
		return NULL;
	struct dbq_new_job job = {.farm = farm,
	                          .priority = priority,
	                          .max_attempts = max_attempts,
	                          .unique_key = unique};
	if (!check_farm(farm) || payload_of(payload, &p, &len) == -1 || !check_size(len) ||
	    run_at_of(run_at, &job.run_at_ms) == -1)
		return NULL;
	if (uuid != NULL) {
		if (strlen(uuid) != DBQ_UUID_LEN - 1)
			return PyErr_Format(PyExc_ValueError,
			                    "uuid '%s': want the 36-character form", uuid);
		memcpy(job.uuid, uuid, DBQ_UUID_LEN);
	}
	job.payload = p;
	job.len = (size_t)len;
	char err[ERR_MAX];
	int rc = enqueue(&job, 1, -2, err);
	if (rc == DBQ_EDUPLICATE)
		Py_RETURN_NONE;
	if (rc != DBQ_OK)
		return enqueue_error(farm, rc, err, -2);
	return PyUnicode_FromString(job.uuid);
}

static PyObject *py_enqueue_many(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"farm", "payloads", "priority", "run_at", "max_attempts", NULL};
	const char *farm;
	PyObject *payloads, *run_at = NULL, *seq = NULL, *out = NULL;
	int priority = 0, max_attempts = 0;
	int64_t at = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|$iOi:enqueue_many", kwlist, &farm, &payloads,
	                                 &priority, &run_at, &max_attempts))
		return NULL;
	if (!check_farm(farm) || run_at_of(run_at, &at) == -1)
		return NULL;
	seq = PySequence_Fast(payloads, "payloads must be a sequence of str or bytes");
	if (seq == NULL)
		return NULL;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	struct dbq_new_job *jobs = calloc((size_t)n + 1, sizeof(*jobs));
	if (jobs == NULL) {
		Py_DECREF(seq);
		return PyErr_NoMemory();
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		const char *p;
		Py_ssize_t len;
		if (payload_of(PySequence_Fast_GET_ITEM(seq, i), &p, &len) == -1 ||
		    !check_size(len))
			goto out;
		jobs[i] = (struct dbq_new_job){.farm = farm,
		                               .payload = p,
		                               .len = (size_t)len,
		                               .priority = priority,
		                               .run_at_ms = at,
		                               .max_attempts = max_attempts};
	}
	if (n > 0) {
		char err[ERR_MAX];
		int rc = enqueue(jobs, (size_t)n, -2, err);
		if (rc != DBQ_OK && rc != DBQ_EDUPLICATE) {
			enqueue_error(farm, rc, err, -2);
			goto out;
		}
	}
	out = PyList_New(n);
	for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
		PyObject *u = jobs[i].uuid[0] ? PyUnicode_FromString(jobs[i].uuid)
		                              : Py_NewRef(Py_None); /* unique key taken */
		if (u == NULL)
			Py_CLEAR(out);
		else
			PyList_SET_ITEM(out, i, u);
	}
out:
	free(jobs);
	Py_DECREF(seq);
	return out;
}

static PyObject *py_job(PyObject *self, PyObject *args)
{
	const char *uuid;
	if (!PyArg_ParseTuple(args, "s:job", &uuid))
		return NULL;
	if (dbfarm_count() == 0)
		return PyErr_Format(PyExc_RuntimeError, "no database farms (--db-farm, --dbqueue)");
	char state[16] = "", err[ERR_MAX];
	int attempt = 0, rc;
	Py_BEGIN_ALLOW_THREADS rc =
	        dbfarm_job_state(uuid, state, &attempt, dbfarm_timeout_ms(), err, sizeof(err));
	Py_END_ALLOW_THREADS if (rc != DBQ_OK) return transient(rc)
	        ? PyErr_Format(queue_unavailable, "job(%s): %s", uuid, err)
	        : PyErr_Format(PyExc_RuntimeError, "job(%s): %s", uuid, err);
	if (state[0] == '\0')
		Py_RETURN_NONE;
	return Py_BuildValue("{ss,ss,si}", "uuid", uuid, "state", state, "attempt", attempt);
}

/* --- the consuming mule -------------------------------------------------- */

/* Settles the held job; logs what did not go as asked. Returns 1, 0
 * (fenced), -1 (not recorded) or -2 (none held). Without the GIL. */
static int settle(int id, enum dbfarm_outcome how, const char *error)
{
	size_t farm;
	const struct dbq_job *job = dbfarm_mule_job(&farm);
	if (job == NULL)
		return -2;
	char uuid[DBQ_UUID_LEN], err[ERR_MAX] = "";
	memcpy(uuid, job->uuid, sizeof(uuid));
	int rc = dbfarm_mule_finish(id, how, error, err, sizeof(err));
	if (rc == 0)
		log_info("job %s of database farm %s: not recorded as %s: %s", uuid,
		         dbfarm_name(farm), how == DBF_DONE ? "done" : "failed", err);
	else if (rc == -1)
		log_info("job %s of database farm %s: could not be recorded as %s (%s): it runs "
		         "again after its lease",
		         uuid, dbfarm_name(farm), how == DBF_DONE ? "done" : "failed", err);
	return rc;
}

/* dbfarm_mule_done_claim, with settle()'s log line for a fenced job.
 * Without the GIL. */
static int done_claim(int id)
{
	size_t farm;
	const struct dbq_job *job = dbfarm_mule_job(&farm);
	char uuid[DBQ_UUID_LEN];
	memcpy(uuid, job->uuid, sizeof(uuid));
	bool fenced;
	int rc = dbfarm_mule_done_claim(id, &fenced);
	if (rc >= 0 && fenced)
		log_info("job %s of database farm %s: not recorded as done: %s", uuid,
		         dbfarm_name(farm), dbq_strerror(DBQ_FENCED));
	return rc;
}

static int settle_py(int id, enum dbfarm_outcome how, const char *error)
{
	int rc;
	Py_BEGIN_ALLOW_THREADS rc = settle(id, how, error);
	Py_END_ALLOW_THREADS return rc;
}

/* The traceback of the pending exception, which stays pending. */
static char *format_exception(void)
{
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	char *text = NULL;
	PyObject *mod = PyImport_ImportModule("traceback");
	PyObject *lines = mod ? PyObject_CallMethod(mod, "format_exception", "OOO", type,
	                                            value ? value : Py_None, tb ? tb : Py_None)
	                      : NULL;
	PyObject *sep = lines ? PyUnicode_FromString("") : NULL;
	PyObject *joined = sep ? PyUnicode_Join(sep, lines) : NULL;
	const char *s = joined ? PyUnicode_AsUTF8(joined) : NULL;
	text = strdup(s ? s : "the mule raised (no traceback could be formatted)");
	Py_XDECREF(joined);
	Py_XDECREF(sep);
	Py_XDECREF(lines);
	Py_XDECREF(mod);
	PyErr_Clear();
	PyErr_Restore(type, value, tb);
	return text;
}

void pydbfarm_mule_raised(void)
{
	int id = mule_id();
	if (id <= 0 || dbfarm_mule_job(NULL) == NULL)
		return;
	char *tb = format_exception();
	settle_py(id, DBF_FAILED, tb);
	free(tb);
}

void pydbfarm_mule_returned(int rc)
{
	int id = mule_id();
	if (id > 0 && dbfarm_mule_job(NULL) != NULL)
		settle_py(id, rc == 0 ? DBF_DONE : DBF_FAILED,
		          rc == 0 ? NULL : "the mule's code ended with an error");
}

static size_t local_queues(int id, bool any_mule, size_t *qs)
{
	size_t nq = 0;
	if (farms == NULL || farms->q == NULL)
		return 0;
	if (any_mule) {
		qs[nq++] = farms_mule_queue(farms, id);
		qs[nq++] = farms_any_mule_queue(farms);
	}
	for (size_t f = 0; f < farms->n && nq < MAX_WAIT_QUEUES; f++)
		if (farms_has_mule(farms, f, id) && dbfarm_find(farms->f[f].name) < 0)
			qs[nq++] = f;
	return nq;
}

/* Logs a database problem once, and when it is over. */
static void claim_trouble(const char *err)
{
	static char last[ERR_MAX];
	if (err == NULL) {
		if (last[0] != '\0')
			log_info("database farms: claiming works again");
		last[0] = '\0';
		return;
	}
	if (strcmp(err, last) != 0)
		log_info("database farms: cannot claim jobs (retrying): %s", err);
	snprintf(last, sizeof(last), "%s", err);
}

static PyObject *take_job(void)
{
	const struct dbq_job *job = dbfarm_mule_job(NULL);
	mule_count_message();
	return PyBytes_FromStringAndSize(job->payload ? job->payload : "", (Py_ssize_t)job->len);
}

PyObject *pydbfarm_get(int id, bool any_mule, int timeout_ms)
{
	size_t qs[MAX_WAIT_QUEUES];
	size_t nq = local_queues(id, any_mule, qs);
	mule_set_waiting(false); /* a message consumer: a stop request waits for its next ask */
	/* Asking for the next one settles this one. A mule of database farms
	 * only does both in one round trip. */
	int fast = -1;
	if (nq == 0 && dbfarm_mule_job(NULL) != NULL && !mule_stop_requested &&
	    shutdowns_pending == 0) {
		Py_BEGIN_ALLOW_THREADS fast = done_claim(id);
		Py_END_ALLOW_THREADS
	}
	if (fast < 0)
		settle_py(id, DBF_DONE, NULL);
	else if (fast == 1)
		return take_job();
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	bool look = true; /* claim: first, then whenever woken */
	int backoff = 0;
	for (;;) {
		if (mule_stop_requested)
			mule_exit();
		if (shutdowns_pending > 0) {
			shutdowns_pending--;
			mule_count_message();
			return PyBytes_FromString(SHUTDOWN_MSG);
		}
		if (nq > 0) {
			void *msg = NULL;
			size_t len = 0;
			if (farmq_pop(farms->q, qs, nq, &msg, &len, NULL, 0) == FARMQ_OK) {
				mule_count_message();
				PyObject *b = PyBytes_FromStringAndSize(msg, (Py_ssize_t)len);
				free(msg);
				return b;
			}
		}
		uint32_t seq = dbfarm_mule_seq(id);
		if (look) {
			char err[ERR_MAX];
			int rc;
			Py_BEGIN_ALLOW_THREADS rc = dbfarm_mule_claim(id, err, sizeof(err));
			Py_END_ALLOW_THREADS if (rc == 1)
			{
				claim_trouble(NULL);
				return take_job();
			}
			claim_trouble(rc == -1 ? err : NULL);
			backoff = rc == -1 ? (backoff ? backoff * 2 : 250) : 0;
			backoff = backoff > 5000 ? 5000 : backoff;
		}
		int left = deadline < 0 ? WAIT_SLICE_MS : (int)(deadline - mono_ms());
		int slice = backoff ? backoff : nq > 0 ? MIXED_SLICE_MS : WAIT_SLICE_MS;
		left = left < 0 ? 0 : left > slice ? slice : left;
		bool woken;
		mule_set_waiting(true);
		Py_BEGIN_ALLOW_THREADS woken = dbfarm_mule_sleep(id, seq, left);
		Py_END_ALLOW_THREADS mule_set_waiting(false);
		look = woken || backoff > 0;
		if (PyErr_CheckSignals() == -1)
			return NULL;
		if (deadline >= 0 && mono_ms() >= deadline)
			Py_RETURN_NONE;
	}
}

static PyObject *py_current_job(PyObject *self, PyObject *unused)
{
	size_t farm;
	const struct dbq_job *job = dbfarm_mule_job(&farm);
	if (job == NULL)
		Py_RETURN_NONE;
	char handler[DBFARM_NAME_MAX];
	dbfarm_mule_handler(mule_id(), handler, sizeof(handler));
	return Py_BuildValue("{ss,ss,ss,si,si,si,sL}", "uuid", job->uuid, "farm", dbfarm_name(farm),
	                     "handler", handler, "attempt", job->attempt, "max_attempts",
	                     job->max_attempts, "priority", job->priority, "id",
	                     (long long)job->id);
}

static PyObject *settle_now(enum dbfarm_outcome how, const char *reason)
{
	if (mule_id() <= 0 || dbfarm_mule_job(NULL) == NULL)
		return PyErr_Format(PyExc_RuntimeError,
		                    "this process holds no database job (only a mule of a "
		                    "--db-farm does, between farm_get_msg() calls)");
	int rc = settle_py(mule_id(), how, reason);
	if (rc == -1)
		return PyErr_Format(queue_unavailable,
		                    "the outcome could not be recorded (the database failed): the "
		                    "job runs again after its lease");
	return PyBool_FromLong(rc == 1);
}

static PyObject *py_job_done(PyObject *self, PyObject *unused)
{
	return settle_now(DBF_DONE, NULL);
}

static PyObject *py_job_failed(PyObject *self, PyObject *args)
{
	const char *reason = "failed (mulefarm.job_failed)";
	if (!PyArg_ParseTuple(args, "|s:job_failed", &reason))
		return NULL;
	return settle_now(DBF_FAILED, reason);
}

static PyMethodDef methods[] = {
        {"enqueue", (PyCFunction)(void (*)(void))py_enqueue, METH_VARARGS | METH_KEYWORDS,
         "enqueue(farm, payload, *, priority=0, run_at=None, unique_key=None, max_attempts=0, "
         "uuid=None): insert a job in database farm <farm> (committed on return); returns its "
         "uuid, or None when a job with <unique_key> is already queued or running"},
        {"enqueue_many", (PyCFunction)(void (*)(void))py_enqueue_many, METH_VARARGS | METH_KEYWORDS,
         "enqueue_many(farm, payloads, *, priority=0, run_at=None, max_attempts=0): insert "
         "the jobs in one transaction; returns their uuids (None for a job whose unique key "
         "was taken)"},
        {"job", py_job, METH_VARARGS,
         "job(uuid): {'uuid', 'state', 'attempt'} of a job (done ones for "
         "--dbqueue-retention), or None"},
        {"current_job", py_current_job, METH_NOARGS,
         "the database job this mule holds: {'uuid', 'farm', 'handler', 'attempt', ...}, or "
         "None"},
        {"job_done", py_job_done, METH_NOARGS,
         "record the held job as done now; True, or False if its lease had moved on"},
        {"job_failed", py_job_failed, METH_VARARGS,
         "job_failed(reason): record the held job as failed (retried with backoff, discarded "
         "after max_attempts); True, or False if its lease had moved on"},
        {NULL, NULL, 0, NULL},
};

int pydbfarm_add(PyObject *m)
{
	if (queue_unavailable == NULL) {
		PyObject *full = PyObject_GetAttrString(m, "QueueFull");
		if (full == NULL)
			return -1;
		queue_unavailable = PyErr_NewExceptionWithDoc(
		        "mulefarm.QueueUnavailable",
		        "the database of a database farm stayed unreachable (--dbqueue-timeout)",
		        full, NULL);
		Py_DECREF(full);
	}
	if (queue_unavailable == NULL || PyModule_AddFunctions(m, methods) == -1)
		return -1;
	return PyModule_AddObject(m, "QueueUnavailable", Py_NewRef(queue_unavailable)) == -1 ? -1
	                                                                                     : 0;
}
