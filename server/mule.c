/*
 * mule.c - the mule process (see mule.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mulefarm/farm.h"
#include "mulefarm/hooks.h"
#include "mulefarm/log.h"
#include "mulefarm/mule.h"
#include "mulefarm/proctitle.h"
#include "mulefarm/pydbfarm.h"
#include "mulefarm/pyfarm.h"
#include "mulefarm/python.h"
#include "mulefarm/scoreboard.h"

volatile sig_atomic_t mule_stop_requested;
static volatile sig_atomic_t asked_for_messages;
static int my_id;

int mule_id(void)
{
	return my_id;
}

static struct sb_mule *entry(void)
{
	return scoreboard && my_id <= scoreboard->nmules ? &scoreboard->mules[my_id - 1] : NULL;
}

void mule_set_waiting(bool waiting)
{
	asked_for_messages = 1;
	if (entry())
		entry()->status = waiting ? SB_IDLE : SB_BUSY;
	proctitle_state(waiting ? "idle" : "busy");
}

void mule_count_message(void)
{
	if (entry())
		entry()->messages++;
}

void mule_exit(void)
{
	log_info("stopping");
	fflush(stdout);
	fflush(stderr);
	_exit(0);
}

/* Mule code that never asks for messages has nothing to finish: it stops
 * at once. A message consumer stops at its next wait. */
static void on_stop(int sig)
{
	mule_stop_requested = 1;
	if (!asked_for_messages) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
}

static void setup_signals(void)
{
	struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: waits see EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
}

/* Without code: hand each message to uwsgi.mule_msg_hook, or log it. */
static void default_loop(void)
{
	for (;;) {
		PyObject *msg = pyfarm_get(my_id, true, true, -1);
		if (msg == NULL) {
			python_print_exception();
			continue;
		}
		PyObject *mod = PyImport_ImportModule("uwsgi");
		PyObject *hook = mod ? PyObject_GetAttrString(mod, "mule_msg_hook") : NULL;
		PyErr_Clear();
		if (hook != NULL && hook != Py_None) {
			PyObject *r = PyObject_CallOneArg(hook, msg);
			if (r == NULL) {
				pydbfarm_mule_raised(); /* fails a database job, traceback kept */
				python_print_exception();
			}
			Py_XDECREF(r);
		} else {
			log_info("received a %zd bytes message (no uwsgi.mule_msg_hook: discarded)",
			         PyBytes_GET_SIZE(msg));
		}
		Py_XDECREF(hook);
		Py_XDECREF(mod);
		Py_DECREF(msg);
	}
}

/* A script runs as __main__; pkg.mod:callable is called. */
static int run_target(const char *target)
{
	size_t len = strlen(target);
	bool script =
	        strchr(target, '/') != NULL || (len > 3 && strcmp(target + len - 3, ".py") == 0);
	PyObject *r = NULL;
	if (script) {
		PyObject *runpy = PyImport_ImportModule("runpy");
		PyObject *fn = runpy ? PyObject_GetAttrString(runpy, "run_path") : NULL;
		PyObject *args = fn ? Py_BuildValue("(s)", target) : NULL;
		PyObject *kw = args ? Py_BuildValue("{ss}", "run_name", "__main__") : NULL;
		r = kw ? PyObject_Call(fn, args, kw) : NULL;
		Py_XDECREF(kw);
		Py_XDECREF(args);
		Py_XDECREF(fn);
		Py_XDECREF(runpy);
	} else {
		const char *colon = strchr(target, ':');
		PyObject *mod = NULL, *fn = NULL;
		if (colon == NULL) {
			PyErr_Format(PyExc_ValueError,
			             "--mule %s: want a script (.py) or pkg.mod:callable", target);
		} else {
			PyObject *name = PyUnicode_FromStringAndSize(target, colon - target);
			mod = name ? PyImport_Import(name) : NULL;
			Py_XDECREF(name);
			fn = mod ? PyObject_GetAttrString(mod, colon + 1) : NULL;
			r = fn ? PyObject_CallNoArgs(fn) : NULL;
		}
		Py_XDECREF(fn);
		Py_XDECREF(mod);
	}
	if (r == NULL) {
		if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
			PyErr_Clear();
			return 0;
		}
		pydbfarm_mule_raised(); /* fails a database job, traceback kept */
		python_print_exception();
		return 1;
	}
	Py_DECREF(r);
	return 0;
}

void mule_main(const struct server *srv, int id)
{
	my_id = id;
	setup_signals();
	if (entry() != NULL)
		entry()->status = SB_BUSY;
	proctitle_state("busy");
	hooks_run(srv->cfg.opts, OPT_HOOK_AS_MULE);
	const char *target = farms->mule_targets[id - 1];
	if (target == NULL)
		default_loop();
	int rc = run_target(target);
	pydbfarm_mule_returned(rc); /* a database job still held is done (or failed) */
	log_info("mule code %s returned: exiting", target);
	fflush(stdout);
	fflush(stderr);
	_exit(rc);
}
