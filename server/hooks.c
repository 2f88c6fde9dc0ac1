/*
 * hooks.c - running uWSGI's hook actions (see hooks.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/hooks.h"
#include "mulefarm/log.h"
#include "mulefarm/master.h"

#define SPIN_LIMIT_MS  30000
#define DRAIN_LIMIT_MS 1000

static int run_exec(const char *cmd)
{
	int st = system(cmd);
	if (st == -1)
		log_err(errno, "hook exec:%s failed", cmd);
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		log_info("hook exec:%s exited with status %d", cmd,
		         WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return st == 0 ? 0 : -1;
}

/* "N function" */
static int parse_unix_signal(const char *arg, int *sig, enum master_action *action)
{
	char *end;
	long n = strtol(arg, &end, 10);
	while (*end == ' ')
		end++;
	*sig = (int)n;
	*action = master_action_named(end);
	return end == arg || n < 1 || n >= NSIG || *action == MA_NONE ? -1 : 0;
}

/* "path data": writes <data> to the FIFO at <path>; waits up to <spin_ms>
 * for a reader. */
static int write_fifo(const char *arg, int spin_ms)
{
	const char *sp = strchr(arg, ' ');
	char path[4096];
	snprintf(path, sizeof(path), "%.*s", sp ? (int)(sp - arg) : (int)strlen(arg), arg);
	const char *data = sp ? sp + 1 : "";
	int fd;
	for (int waited = 0;; waited += 100) {
		fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd != -1 || waited >= spin_ms || (errno != ENXIO && errno != ENOENT))
			break;
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (fd == -1) {
		log_err(errno, "hook: cannot write to FIFO %s", path);
		return -1;
	}
	ssize_t n = write(fd, data, strlen(data));
	int saved = errno;
	/* Until the reader has taken the bytes (1 s at most): in the zerg
	 * dance, "2q" must reach the running master before the next hook
	 * makes this instance read that same FIFO. */
	int queued = 1;
	for (int waited = 0; n > 0 && waited < DRAIN_LIMIT_MS; waited += 2) {
		if (ioctl(fd, FIONREAD, &queued) == -1 || queued == 0)
			break;
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	close(fd);
	if (n != (ssize_t)strlen(data)) {
		log_err(saved, "hook: write to FIFO %s failed", path);
		return -1;
	}
	return 0;
}

static int call_python(const char *name)
{
	if (!Py_IsInitialized()) {
		log_info("hook callpy:%s: Python is not running yet", name);
		return -1;
	}
	const char *dot = strrchr(name, '.');
	PyObject *mod = NULL, *fn = NULL, *res = NULL;
	if (dot == NULL) {
		mod = PyImport_AddModule("__main__"); /* borrowed */
		Py_XINCREF(mod);
	} else {
		PyObject *mname = PyUnicode_FromStringAndSize(name, dot - name);
		mod = mname ? PyImport_Import(mname) : NULL;
		Py_XDECREF(mname);
	}
	fn = mod ? PyObject_GetAttrString(mod, dot ? dot + 1 : name) : NULL;
	res = fn ? PyObject_CallNoArgs(fn) : NULL;
	if (res == NULL) {
		log_info("hook callpy:%s failed:", name);
		PyErr_Print();
	}
	Py_XDECREF(res);
	Py_XDECREF(fn);
	Py_XDECREF(mod);
	return res ? 0 : -1;
}

static int run_action(const char *phase, const char *spec, bool in_master)
{
	const char *colon = strchr(spec, ':');
	size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
	const char *arg = colon ? colon + 1 : "";
#define IS(s) (nlen == strlen(s) && strncmp(spec, s, nlen) == 0)
	if (IS("exec"))
		return run_exec(arg);
	if (IS("print")) {
		log_info("%s", arg);
		return 0;
	}
	if (IS("writefifo"))
		return write_fifo(arg, 0);
	if (IS("spinningfifo"))
		return write_fifo(arg, SPIN_LIMIT_MS);
	if (IS("callpy"))
		return call_python(arg);
	if (IS("unix_signal")) {
		int sig;
		enum master_action a;
		if (!in_master || parse_unix_signal(arg, &sig, &a) == -1)
			goto bad;
		return master_remap_signal(sig, a);
	}
#undef IS
bad:
	log_info("%s: cannot run '%s'", phase, spec);
	return -1;
}

void hooks_run(const struct options *o, enum opt_id phase)
{
	bool in_master = phase == OPT_HOOK_PRE_APP || phase == OPT_HOOK_POST_APP ||
	                 phase == OPT_HOOK_MASTER_START;
	for (size_t i = 0; i < o->n; i++) {
		const struct opt_entry *e = &o->entries[i];
		if (e->id == phase && e->value != NULL)
			run_action(opt_table[phase].name, e->value, in_master);
	}
}

void hooks_remap_signals(const struct options *o)
{
	for (size_t i = 0; i < o->n; i++) {
		const struct opt_entry *e = &o->entries[i];
		if (e->id == OPT_HOOK_MASTER_START && e->value != NULL &&
		    strncmp(e->value, "unix_signal:", 12) == 0)
			run_action(opt_table[e->id].name, e->value, true);
	}
}

static const char *const action_names[] = {"exec",         "print",  "unix_signal", "writefifo",
                                           "spinningfifo", "callpy", NULL};

int hooks_check(const struct options *o, char *err, size_t errlen)
{
	for (size_t i = 0; i < o->n; i++) {
		const struct opt_entry *e = &o->entries[i];
		const char *name = opt_table[e->id < OPT__COUNT ? e->id : 0].name;
		if (e->id >= OPT__COUNT || strncmp(name, "hook-", 5) != 0)
			continue;
		const char *v = e->value ? e->value : "";
		const char *colon = strchr(v, ':');
		size_t nlen = colon ? (size_t)(colon - v) : strlen(v);
		bool known = false;
		for (size_t k = 0; action_names[k] && !known; k++)
			known = strlen(action_names[k]) == nlen &&
			        strncmp(v, action_names[k], nlen) == 0;
		int sig;
		enum master_action a;
		const char *why = !known ? "unknown action (want exec:, print:, unix_signal:, "
		                           "writefifo:, spinningfifo: or callpy:)"
		                  : strncmp(v, "unix_signal:", 12) != 0 ? NULL
		                  : e->id != OPT_HOOK_MASTER_START
		                          ? "unix_signal: only works in hook-master-start"
		                  : parse_unix_signal(colon + 1, &sig, &a) == -1
		                          ? "want unix_signal:N gracefully_kill_them_all, "
		                            "kill_them_all, grace_them_all or reap_them_all"
		                          : NULL;
		if (why != NULL) {
			snprintf(err, errlen, "%s%s%s '%s': %s", e->where ? e->where : "",
			         e->where ? ": " : "", e->key, v, why);
			return -1;
		}
	}
	return 0;
}
