/*
 * _server.c - the extension module mulefarm._server: the whole server, run
 * by the interpreter that imports it (the wheel, python/mulefarm/). The
 * console scripts (python/mulefarm/_cli.py) call run(), which calls the
 * main functions the binaries' main() call (main.h); python_init() then
 * adopts this interpreter instead of starting one.
 *
 * The module is not linked with libpython: the interpreter that loads it
 * provides the Python symbols, so one wheel fits whatever build of CPython
 * (static or shared) pip installed it for.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mulefarm/main.h"
#include "mulefarm/proctitle.h"
#include "mulefarm/reload.h"

/* A NULL-terminated copy of a list of str, in the file-system encoding;
 * owned by the process, as main()'s argv is (the options point into it).
 * Returns NULL with an exception set. */
static char **to_argv(PyObject *list, int *argc)
{
	PyObject *seq = PySequence_Fast(list, "want a list of str");
	if (seq == NULL)
		return NULL;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	char **argv = calloc((size_t)n + 1, sizeof(char *));
	for (Py_ssize_t i = 0; argv != NULL && i < n; i++) {
		PyObject *b = NULL;
		if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(seq, i), &b) ||
		    (argv[i] = strdup(PyBytes_AS_STRING(b))) == NULL) {
			for (Py_ssize_t j = 0; j < i; j++)
				free(argv[j]);
			free(argv);
			argv = NULL;
		}
		Py_XDECREF(b);
	}
	Py_DECREF(seq);
	if (argv == NULL && !PyErr_Occurred())
		PyErr_NoMemory();
	*argc = (int)n;
	return argv;
}

/* The interpreter installed handlers of its own at start-up (SIGINT raises
 * KeyboardInterrupt; SIGPIPE and SIGXFSZ are ignored). A binary starts
 * with the defaults and the master installs its own: so here, through the
 * signal module, so that Python's table says what the kernel does. */
static int default_signals(void)
{
	static const int sigs[] = {SIGINT, SIGPIPE, SIGXFSZ};
	PyObject *mod = PyImport_ImportModule("signal");
	PyObject *dfl = mod ? PyObject_GetAttrString(mod, "SIG_DFL") : NULL;
	int rc = dfl ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		PyObject *r = PyObject_CallMethod(mod, "signal", "iO", sigs[i], dfl);
		rc = r ? 0 : -1;
		Py_XDECREF(r);
	}
	Py_XDECREF(dfl);
	Py_XDECREF(mod);
	return rc;
}

/* The process titles go over the interpreter's own argv strings (main()
 * only sees a copy of sys.argv). Linux gives their span in /proc/self/stat
 * (fields 48 and 49, arg_start and arg_end). Without it there are no
 * titles, as when the binaries' argv cannot be claimed. */
static void claim_title_area(void)
{
	char buf[4096];
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f != NULL)
		fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the name (field 2) may hold anything */
	unsigned long start = 0, end = 0;
	for (int field = 3; p != NULL && field <= 49; field++) {
		p = strchr(p + 1, ' ');
		if (p != NULL && field == 48)
			start = strtoul(p + 1, NULL, 10);
		else if (p != NULL && field == 49)
			end = strtoul(p + 1, NULL, 10);
	}
	if (start == 0 || end <= start)
		return;
	char *s, *lim = (char *)end;
	int argc = 0;
	for (s = (char *)start; s < lim; s += strnlen(s, (size_t)(lim - s)) + 1)
		argc++;
	char **argv = calloc((size_t)argc + 1, sizeof(char *));
	if (argv == NULL)
		return;
	argc = 0;
	for (s = (char *)start; s < lim; s += strnlen(s, (size_t)(lim - s)) + 1)
		argv[argc++] = s;
	proctitle_init(argc, argv);
	free(argv); /* proctitle keeps the area, not the array */
}

/* run(program, argv, command): see the module's docstring. */
static PyObject *run(PyObject *self, PyObject *args)
{
	static bool ran;
	const char *program;
	PyObject *argv_list, *cmd_list;
	int argc, ncmd;

	if (!PyArg_ParseTuple(args, "sOO:run", &program, &argv_list, &cmd_list))
		return NULL;
	int (*entry)(int, char **) = strcmp(program, "mulefarm") == 0 ? mulefarm_main
	                             : strcmp(program, "mulefarm-handler") == 0
	                                     ? mulefarm_handler_main
	                                     : NULL;
	if (entry == NULL)
		return PyErr_Format(PyExc_ValueError, "unknown program %s", program);
	if (ran)
		return PyErr_Format(PyExc_RuntimeError, "run() runs once per process");
	char **argv = to_argv(argv_list, &argc);
	char **cmd = argv ? to_argv(cmd_list, &ncmd) : NULL;
	if (cmd == NULL)
		return NULL;
	if (argc < 1 || ncmd < 1)
		return PyErr_Format(PyExc_ValueError, "argv and command may not be empty");
	if (default_signals() == -1)
		return NULL;
	if (reload_set_command(cmd[0], ncmd, cmd) == -1)
		return PyErr_Format(PyExc_ValueError, "cannot re-execute %s", cmd[0]);
	claim_title_area();
	ran = true;
	int rc = entry(argc, argv);
	/* The master logs its own errors; the stub exits as main() returns. */
	PyErr_Clear();
	fflush(NULL);
	return PyLong_FromLong(rc);
}

static PyMethodDef methods[] = {
        {"run", run, METH_VARARGS,
         "run(program, argv, command) -> exit status\n\n"
         "Runs the main of <program> ('mulefarm' or 'mulefarm-handler'), the\n"
         "function the binary of that name runs, with <argv> (a list of str,\n"
         "argv[0] first) in this interpreter. <command> is what a reload\n"
         "re-executes: this interpreter and the arguments that run the stub\n"
         "again. Once per process; the children it forks never return."},
        {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
        PyModuleDef_HEAD_INIT,
        .m_name = "mulefarm._server",
        .m_doc = "mulefarm's server (C), run by this interpreter: see run().",
        .m_size = -1,
        .m_methods = methods,
};

PyMODINIT_FUNC PyInit__server(void)
{
	return PyModule_Create(&moduledef);
}
