/*
 * usignal.c - uWSGI signals (see usignal.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mulefarm/conn.h"
#include "mulefarm/log.h"
#include "mulefarm/usignal.h"

#define NSIGNALS   256
#define WHO_MAX    32
#define MAX_TIMERS 64

enum { REQ_SIGNAL = 1, REQ_TIMER = 2 };

/* A request from a child to the master. */
struct req {
	uint8_t op;
	uint8_t num;
	uint16_t pad;
	uint32_t seconds;
};

struct target {
	volatile int registered;
	char who[WHO_MAX];
};

static struct target *table;          /* [NSIGNALS], shared */
static int master_chan[2] = {-1, -1}; /* children write [1], the master reads [0] */
static int (*chans)[2];               /* per slot: master writes [0], the child reads [1] */
static int nworkers, nmules;
static PyObject *handlers; /* this process's: num -> callable */
static bool in_master = true;

static struct {
	uint8_t num;
	int64_t every_ms, next_ms;
} timers[MAX_TIMERS];
static int ntimers;

int usignal_setup(int workers, int mules)
{
	nworkers = workers;
	nmules = mules;
	table = mmap(NULL, sizeof(struct target) * NSIGNALS, PROT_READ | PROT_WRITE,
	             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (table == MAP_FAILED) {
		table = NULL;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, master_chan) == -1)
		return -1;
	chans = calloc((size_t)(workers + mules) + 1, sizeof(*chans));
	if (chans == NULL)
		return -1;
	for (int i = 0; i < workers + mules; i++)
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, chans[i]) == -1)
			return -1;
	for (int i = 0; i < workers + mules; i++) /* the master never blocks on a child */
		if (fcntl(chans[i][0], F_SETFL, O_NONBLOCK) == -1)
			return -1;
	return 0;
}

int usignal_master_fd(void)
{
	return master_chan[0];
}

static void deliver(int slot, uint8_t num)
{
	if (write(chans[slot][0], &num, 1) == -1)
		log_err(errno, "signal %u: cannot deliver to %s %d", num,
		        slot < nworkers ? "worker" : "mule",
		        slot < nworkers ? slot + 1 : slot - nworkers + 1);
}

/* Routes <num> to its registered target. */
static void route(const pid_t *pids, uint8_t num)
{
	const char *who = table[num].registered ? table[num].who : NULL;
	if (who == NULL) {
		log_info("signal %u has no handler registered: ignored", num);
		return;
	}
	bool all_w = !strcmp(who, "workers") || !strcmp(who, "active-workers");
	bool all_m = !strcmp(who, "mules");
	int first_w = !strcmp(who, "") || !strcmp(who, "worker") ? 1 : 0;
	int first_m = !strcmp(who, "mule") ? 1 : 0;
	int wid = !strncmp(who, "worker", 6) && who[6] >= '0' && who[6] <= '9' ? atoi(who + 6) : 0;
	int mid = !strncmp(who, "mule", 4) && who[4] >= '0' && who[4] <= '9' ? atoi(who + 4) : 0;
	int sent = 0;
	for (int i = 0; i < nworkers + nmules; i++) {
		bool worker = i < nworkers;
		int id = worker ? i + 1 : i - nworkers + 1;
		bool want = worker ? all_w || (first_w && !sent) || id == wid
		                   : all_m || (first_m && !sent) || id == mid;
		if (want && (pids[i] > 0 || id == wid || id == mid)) {
			deliver(i, num);
			sent++;
		}
	}
	if (sent == 0)
		log_info("signal %u: no process matches target '%s'", num, who);
}

static void add_timer(uint8_t num, uint32_t seconds)
{
	if (ntimers == MAX_TIMERS || seconds == 0) {
		log_info("add_timer(%u, %u): refused (at most %d timers, seconds > 0)", num,
		         seconds, MAX_TIMERS);
		return;
	}
	timers[ntimers].num = num;
	timers[ntimers].every_ms = (int64_t)seconds * 1000;
	timers[ntimers].next_ms = mono_ms() + timers[ntimers].every_ms;
	ntimers++;
}

void usignal_master_read(const pid_t *pids)
{
	struct req r;
	while (read(master_chan[0], &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		if (r.op == REQ_SIGNAL)
			route(pids, r.num);
		else if (r.op == REQ_TIMER)
			add_timer(r.num, r.seconds);
	}
}

int usignal_timers(const pid_t *pids, int64_t now)
{
	int64_t next = -1;
	for (int i = 0; i < ntimers; i++) {
		if (now >= timers[i].next_ms) {
			route(pids, timers[i].num);
			timers[i].next_ms = now + timers[i].every_ms;
		}
		if (next < 0 || timers[i].next_ms < next)
			next = timers[i].next_ms;
	}
	return next < 0 ? -1 : (int)(next - now);
}

/* --- the child's delivery thread ------------------------------------------ */

static void run_handler(uint8_t num)
{
	PyGILState_STATE g = PyGILState_Ensure();
	PyObject *key = PyLong_FromLong(num);
	PyObject *fn = key && handlers ? PyDict_GetItemWithError(handlers, key) : NULL;
	if (fn == NULL && !PyErr_Occurred()) {
		log_info("signal %u arrived but this process has no handler for it", num);
	} else if (fn != NULL) {
		PyObject *r = PyObject_CallOneArg(fn, key);
		Py_XDECREF(r);
	}
	if (PyErr_Occurred()) {
		log_info("signal %u handler raised:", num);
		PyErr_Print();
	}
	Py_XDECREF(key);
	PyGILState_Release(g);
}

static void *delivery_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		uint8_t num;
		ssize_t n = read(fd, &num, 1);
		if (n == 1)
			run_handler(num);
		else if (n == -1 && errno != EINTR)
			return NULL;
	}
}

void usignal_child_start(bool is_mule, int id)
{
	in_master = false;
	if (chans == NULL)
		return;
	int slot = is_mule ? nworkers + id - 1 : id - 1;
	for (int i = 0; i < nworkers + nmules; i++) {
		close(chans[i][0]);
		if (i != slot)
			close(chans[i][1]);
	}
	close(master_chan[0]);
	pthread_t t;
	if (pthread_create(&t, NULL, delivery_thread, (void *)(intptr_t)chans[slot][1]) == 0)
		pthread_detach(t);
}

/* --- Python --------------------------------------------------------------- */

static int signal_number(PyObject *o, uint8_t *num)
{
	long n = PyLong_AsLong(o);
	if (n == -1 && PyErr_Occurred())
		return -1;
	if (n < 0 || n >= NSIGNALS) {
		PyErr_Format(PyExc_ValueError, "signal %ld: want 0..255", n);
		return -1;
	}
	*num = (uint8_t)n;
	return 0;
}

static PyObject *send_req(uint8_t op, uint8_t num, uint32_t seconds)
{
	if (table == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "uWSGI signals are not set up");
		return NULL;
	}
	if (in_master && op == REQ_TIMER) {
		add_timer(num, seconds);
		Py_RETURN_NONE;
	}
	struct req r = {.op = op, .num = num, .seconds = seconds};
	if (write(master_chan[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
		return PyErr_SetFromErrno(PyExc_OSError);
	Py_RETURN_NONE;
}

static PyObject *py_register_signal(PyObject *self, PyObject *args)
{
	PyObject *numo, *fn;
	const char *who;
	uint8_t num;
	if (!PyArg_ParseTuple(args, "OsO:register_signal", &numo, &who, &fn) ||
	    signal_number(numo, &num) == -1)
		return NULL;
	if (!PyCallable_Check(fn) || strlen(who) >= WHO_MAX || table == NULL) {
		PyErr_SetString(PyExc_ValueError,
		                "register_signal(num, who, handler): handler must be callable, who "
		                "a target such as 'workers' or 'mule1'");
		return NULL;
	}
	if (handlers == NULL && (handlers = PyDict_New()) == NULL)
		return NULL;
	PyObject *key = PyLong_FromLong(num);
	int rc = key ? PyDict_SetItem(handlers, key, fn) : -1;
	Py_XDECREF(key);
	if (rc == -1)
		return NULL;
	snprintf(table[num].who, WHO_MAX, "%s", who);
	table[num].registered = 1;
	Py_RETURN_NONE;
}

static PyObject *py_signal(PyObject *self, PyObject *args)
{
	PyObject *numo;
	const char *unused = NULL;
	uint8_t num;
	if (!PyArg_ParseTuple(args, "O|z:signal", &numo, &unused) ||
	    signal_number(numo, &num) == -1)
		return NULL;
	return send_req(REQ_SIGNAL, num, 0);
}

static PyObject *py_signal_registered(PyObject *self, PyObject *args)
{
	PyObject *numo;
	uint8_t num;
	if (!PyArg_ParseTuple(args, "O:signal_registered", &numo) ||
	    signal_number(numo, &num) == -1)
		return NULL;
	return PyBool_FromLong(table != NULL && table[num].registered);
}

static PyObject *py_add_timer(PyObject *self, PyObject *args)
{
	PyObject *numo;
	int seconds;
	uint8_t num;
	if (!PyArg_ParseTuple(args, "Oi:add_timer", &numo, &seconds) ||
	    signal_number(numo, &num) == -1)
		return NULL;
	if (seconds < 1) {
		PyErr_SetString(PyExc_ValueError, "add_timer: seconds must be >= 1");
		return NULL;
	}
	return send_req(REQ_TIMER, num, (uint32_t)seconds);
}

static PyMethodDef methods[] = {
        {"register_signal", py_register_signal, METH_VARARGS,
         "register_signal(num, who, handler): run handler(num) in <who> when signal num is raised"},
        {"signal", py_signal, METH_VARARGS, "signal(num): raise uWSGI signal num (0-255)"},
        {"signal_registered", py_signal_registered, METH_VARARGS,
         "whether signal num has a handler"},
        {"add_timer", py_add_timer, METH_VARARGS,
         "add_timer(num, seconds): the master raises signal num every <seconds>"},
        {NULL, NULL, 0, NULL},
};

int usignal_add_functions(PyObject *m)
{
	return PyModule_AddFunctions(m, methods);
}
