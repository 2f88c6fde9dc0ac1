/*
 * master.c - the master process: bind, load the app once, fork the
 * workers, respawn them under the same id, and stop them.
 *
 * Signals (the contract, also in README.md):
 *   SIGTERM          graceful: workers finish in-flight requests (up to
 *                    --worker-reload-mercy), then the master exits 0.
 *   SIGINT, SIGQUIT  immediate: workers exit at once; the master exits 0.
 *   SIGCHLD          a dead worker is respawned with the same id.
 * Handlers only set a flag and write a byte to a self-pipe.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mulefarm/conn.h"
#include "mulefarm/config_load.h"
#include "mulefarm/log.h"
#include "mulefarm/master.h"
#include "mulefarm/proc.h"
#include "mulefarm/pymodule.h"
#include "mulefarm/python.h"
#include "mulefarm/static.h"
#include "mulefarm/wsgi.h"

#define RESPAWN_DELAY_MS  1000 /* for a child that died within its first second */
#define KILL_AFTER_INT_MS 3000

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_term, got_int, got_hup;

static void on_signal(int sig)
{
	int saved = errno;
	if (sig == SIGTERM)
		got_term = 1;
	else if (sig == SIGINT || sig == SIGQUIT)
		got_int = 1;
	else if (sig == SIGHUP)
		got_hup = 1;
	if (write(sig_pipe[1], "", 1) == -1) {
		/* the pipe is full: a wake-up is already pending */
	}
	errno = saved;
}

static int setup_signals(void)
{
	if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		log_err(errno, "pipe2() failed");
		return -1;
	}
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	static const int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static bool is_socket_option(enum opt_id id)
{
	return id == OPT_HTTP_SOCKET || id == OPT_HTTP || id == OPT_SOCKET;
}

static int set_umask(const char *v)
{
	if (v == NULL)
		return 0;
	if (strlen(v) == 0 || strlen(v) > 4 || strspn(v, "01234567") != strlen(v)) {
		log_info("invalid --umask '%s' (want octal, e.g. 022)", v);
		return -1;
	}
	umask((mode_t)strtol(v, NULL, 8));
	return 0;
}

static int open_listeners(struct server *srv)
{
	const struct options *o = srv->cfg.opts;
	const char *mode = opt_given(o, OPT_CHMOD_SOCKET) ? opt_str(o, OPT_CHMOD_SOCKET) : NULL;
	const char *owner = opt_str(o, OPT_CHOWN_SOCKET);
	size_t n = 0;
	for (size_t i = 0; i < o->n; i++)
		n += is_socket_option(o->entries[i].id);
	bool fallback = n == 0; /* the default: HTTP on 127.0.0.1:8080 */
	n += fallback;
	if (set_umask(opt_str(o, OPT_UMASK)) == -1)
		return -1;
	srv->ls.l = calloc(n, sizeof(struct listener));
	if (srv->ls.l == NULL)
		return -1;
	for (size_t i = 0; i < o->n; i++) {
		const struct opt_entry *e = &o->entries[i];
		if (!is_socket_option(e->id))
			continue;
		struct listener *l = &srv->ls.l[srv->ls.n];
		l->proto = e->id == OPT_SOCKET ? PROTO_UWSGI : PROTO_HTTP;
		l->reuse_port = opt_flag(o, OPT_REUSE_PORT);
		if (listener_open(l, e->value, (int)opt_int(o, OPT_LISTEN), mode, owner) == -1 ||
		    (l->reuse_port && listener_per_worker(l, srv->cfg.processes) == -1))
			return -1;
		srv->ls.n++;
		log_info("%s listening on %s (fd %d)", e->key, l->name, l->fd);
	}
	if (fallback) {
		struct listener *l = &srv->ls.l[srv->ls.n];
		l->proto = PROTO_HTTP;
		if (listener_open(l, CONFIG_DEFAULT_SOCKET, (int)opt_int(o, OPT_LISTEN), mode,
		                  owner) == -1)
			return -1;
		srv->ls.n++;
		log_info("no socket given: http-socket listening on %s (fd %d)", l->name, l->fd);
	}
	return 0;
}

/* --mount /prefix=target */
static int mount(const char *spec, const char *callable)
{
	const char *eq = strchr(spec, '=');
	if (spec[0] != '/' || eq == NULL || eq[1] == '\0') {
		log_info("invalid --mount '%s' (want /prefix=pkg.mod:callable or /prefix=file.py)",
		         spec);
		return -1;
	}
	char prefix[1024];
	snprintf(prefix, sizeof(prefix), "%.*s", (int)(eq - spec), spec);
	PyObject *app = python_load_target(eq + 1, callable);
	if (app == NULL)
		return -1;
	int rc = wsgi_mount(prefix, app);
	Py_DECREF(app);
	if (rc == 0)
		log_info("mounted %s at %s", eq + 1, prefix[0] ? prefix : "/");
	return rc;
}

static int load(struct server *srv)
{
	const struct options *o = srv->cfg.opts;
	bool default_app = opt_str(o, OPT_WSGI_FILE) != NULL || opt_str(o, OPT_MODULE) != NULL;
	if (!default_app && !opt_given(o, OPT_MOUNT)) {
		log_info("no app to serve: give --wsgi-file FILE, --module pkg.mod:callable or "
		         "--mount /prefix=app");
		return -1;
	}
	if (python_init(srv) == -1)
		return -1;
	PyObject *app = default_app ? python_load_app(o) : NULL;
	if (default_app && app == NULL)
		return -1;
	int rc = wsgi_setup(app, &srv->cfg);
	Py_XDECREF(app);
	for (size_t i = 0; rc == 0 && i < o->n; i++)
		if (o->entries[i].id == OPT_MOUNT)
			rc = mount(o->entries[i].value, opt_str(o, OPT_CALLABLE));
	if (rc == -1 && PyErr_Occurred())
		python_print_exception();
	if (rc == 0)
		python_freeze();
	return rc;
}

/* Reaps every dead child; schedules the respawn unless stopping. */
static void reap(struct proc_table *t, bool stopping)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct proc *p = proc_find(t, pid);
		if (p == NULL)
			continue;
		if (WIFSIGNALED(status))
			log_info("%s %d (pid %d) killed by signal %d", proc_role_name(p->role),
			         p->id, (int)pid, WTERMSIG(status));
		else
			log_info("%s %d (pid %d) exited with status %d", proc_role_name(p->role),
			         p->id, (int)pid, WEXITSTATUS(status));
		p->pid = 0;
		int64_t now = mono_ms();
		p->respawn_ms = now;
		if (!stopping && now - p->started_ms < 1000) {
			p->respawn_ms = now + RESPAWN_DELAY_MS;
			log_info("%s %d is dying too fast: respawning in %d ms",
			         proc_role_name(p->role), p->id, RESPAWN_DELAY_MS);
		}
	}
}

static size_t signal_all(struct proc_table *t, int sig)
{
	size_t alive = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->p[i].pid > 0) {
			kill(t->p[i].pid, sig);
			alive++;
		}
	return alive;
}

static int supervise(struct server *srv, struct proc_table *t)
{
	bool stopping = false, killed = false;
	int64_t deadline = 0;
	for (;;) {
		struct pollfd pfd = {.fd = sig_pipe[0], .events = POLLIN};
		char drain[64];
		poll(&pfd, 1, 200);
		while (read(sig_pipe[0], drain, sizeof(drain)) > 0)
			;
		if (got_int && !(stopping && killed)) {
			got_int = 0;
			log_info("SIGINT/SIGQUIT: stopping now");
			signal_all(t, SIGINT);
			stopping = killed = true;
			deadline = mono_ms() + KILL_AFTER_INT_MS;
		}
		if (got_term && !stopping) {
			got_term = 0;
			log_info("SIGTERM: stopping gracefully (mercy %d s)",
			         srv->cfg.worker_reload_mercy);
			signal_all(t, SIGTERM);
			stopping = true;
			deadline = mono_ms() + (int64_t)srv->cfg.worker_reload_mercy * 1000;
		}
		if (got_hup) {
			got_hup = 0;
			log_info("SIGHUP: graceful reload is not implemented yet; ignored");
		}
		reap(t, stopping);
		int64_t now = mono_ms();
		if (stopping) {
			if (signal_all(t, 0) == 0) {
				log_info("all children gone: bye");
				return 0;
			}
			if (now >= deadline) {
				log_info("mercy expired: killing the remaining children");
				signal_all(t, SIGKILL);
				deadline = now + 60000;
			}
			continue;
		}
		for (size_t i = 0; i < t->n; i++)
			if (t->p[i].pid == 0 && t->p[i].respawn_ms <= now)
				proc_spawn(srv, &t->p[i]);
	}
}

int master_run(struct server *srv)
{
	srv->master_pid = getpid();
	log_set_identity("master", 0);
	const char *dir = opt_str(srv->cfg.opts, OPT_CHDIR);
	if (dir != NULL && chdir(dir) == -1) {
		log_err(errno, "chdir(%s) failed", dir);
		return 1;
	}
	static struct static_config statics;
	char err[512];
	if (static_setup(&statics, srv->cfg.opts, err, sizeof(err)) == -1) {
		log_info("%s", err);
		return 1;
	}
	srv->statics = &statics;
	if (setup_signals() == -1 || open_listeners(srv) == -1 || load(srv) == -1)
		return 1;

	struct proc_table t = {.n = (size_t)srv->cfg.processes};
	t.p = calloc(t.n, sizeof(struct proc));
	if (t.p == NULL)
		return 1;
	for (size_t i = 0; i < t.n; i++) {
		t.p[i].role = ROLE_WORKER;
		t.p[i].id = (int)i + 1;
		if (proc_spawn(srv, &t.p[i]) == -1)
			t.p[i].respawn_ms = mono_ms() + RESPAWN_DELAY_MS;
	}
	int rc = supervise(srv, &t);
	free(t.p);
	return rc;
}
