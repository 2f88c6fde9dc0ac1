/*
 * master.c - the master process: bind, load the app once, fork workers
 * and mules, respawn them under the same id, reload and stop.
 *
 * Signals (the contract, also in README.md), remappable with
 * hook-master-start unix_signal:N:
 *   SIGHUP           graceful reload (grace_them_all)
 *   SIGTERM          graceful shutdown (gracefully_kill_them_all)
 *   SIGINT, SIGQUIT  immediate shutdown (kill_them_all)
 *   SIGUSR1          log the stats
 *   SIGCHLD          a dead child is respawned with the same id
 * Handlers only record the signal and write a byte to a self-pipe.
 *
 * A graceful reload re-executes the master (reload.h). The old children
 * stay: the new master adopts the listening sockets, loads the app and
 * forks its workers while the old workers keep serving; once every new
 * worker accepts, the old workers and mules are told to finish and go.
 * So clients never wait for the import, and a new version that fails to
 * import leaves the old one serving.
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
#include <time.h>
#include <unistd.h>

#include "mulefarm/conn.h"
#include "mulefarm/dbfarm.h"
#include "mulefarm/sdnotify.h"
#include "mulefarm/daemon.h"
#include "mulefarm/farm.h"
#include "mulefarm/fifo.h"
#include "mulefarm/hooks.h"
#include "mulefarm/reload.h"
#include "mulefarm/scoreboard.h"
#include "mulefarm/stats.h"
#include "mulefarm/usignal.h"
#include "mulefarm/config_load.h"
#include "mulefarm/log.h"
#include "mulefarm/master.h"
#include "mulefarm/proc.h"
#include "mulefarm/pymodule.h"
#include "mulefarm/python.h"
#include "mulefarm/static.h"
#include "mulefarm/wsgi.h"
#include "mulefarm/restart.h"
#include "mulefarm/zerg.h"

#define RESPAWN_BASE_MS   1000  /* first delay for a child dying at start-up */
#define RESPAWN_MAX_MS    30000 /* the delay doubles up to this */
#define KILL_AFTER_INT_MS 3000
#define HARAKIRI_DUMP_MS  500 /* time for the stack dump before SIGKILL */

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_pending[NSIG];
static volatile sig_atomic_t sig_sender[NSIG]; /* the pid that sent it (transparent restart) */
static enum master_action sig_action[NSIG];

enum master_state { RUNNING, STOPPING, DEGRADED };

struct master {
	struct server *srv;
	struct proc_table t; /* workers 1..N, then mules 1..M */
	struct proc *old;    /* children of a previous generation, draining */
	size_t nold;
	bool retire_pending; /* stop the old ones once the new workers accept */
	enum master_state state;
	bool stop_now;
	struct fifo fifo;
	int stats_fd;
	struct zerg_share share;      /* what --zerg-server and a transparent restart hand over */
	pid_t requester;              /* the command that asked for a transparent restart */
	struct timespec *touch_mtime; /* per --touch-reload */
	pid_t *pids;                  /* of t, for routing uWSGI signals */
	const char *version;
};

static const struct {
	const char *name;
	enum master_action action;
} action_names[] = {
        {"gracefully_kill_them_all", MA_GRACEFUL_STOP},
        {"kill_them_all", MA_STOP_NOW},
        {"grace_them_all", MA_GRACEFUL_RELOAD},
        {"reap_them_all", MA_BRUTAL_RELOAD},
};

enum master_action master_action_named(const char *name)
{
	for (size_t i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++)
		if (strcmp(name, action_names[i].name) == 0)
			return action_names[i].action;
	return MA_NONE;
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	sig_sender[sig] = si != NULL ? si->si_pid : 0;
	sig_pending[sig] = 1;
	if (write(sig_pipe[1], "", 1) == -1) {
		/* the pipe is full: a wake-up is already pending */
	}
	errno = saved;
}

static int catch_signal(int sig)
{
	struct sigaction sa = {.sa_sigaction = on_signal, .sa_flags = SA_RESTART | SA_SIGINFO};
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

int master_remap_signal(int sig, enum master_action action)
{
	if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD ||
	    catch_signal(sig) == -1) {
		log_info("hook-master-start: signal %d cannot be remapped", sig);
		return -1;
	}
	sig_action[sig] = action;
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, sig);
	sigprocmask(SIG_UNBLOCK, &one, NULL); /* blocked across a re-exec (reexec()) */
	log_info("signal %d now means %s", sig,
	         action == MA_GRACEFUL_STOP     ? "graceful shutdown"
	         : action == MA_STOP_NOW        ? "immediate shutdown"
	         : action == MA_GRACEFUL_RELOAD ? "graceful reload"
	                                        : "brutal reload");
	return 0;
}

static int setup_signals(void)
{
	if (sig_pipe[0] == -1 && pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		log_err(errno, "pipe2() failed");
		return -1;
	}
	sig_action[SIGHUP] = MA_GRACEFUL_RELOAD;
	sig_action[SIGTERM] = MA_GRACEFUL_STOP;
	sig_action[SIGINT] = MA_STOP_NOW;
	sig_action[SIGQUIT] = MA_STOP_NOW;
	sig_action[SIGUSR1] = MA_LOG_STATS;           /* as uWSGI: print the stats */
	sig_action[SIGUSR2] = MA_TRANSPARENT_RESTART; /* mulefarm --transparent-restart */
	static const int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD};
	sigset_t caught;
	sigemptyset(&caught);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		catch_signal(sigs[i]);
		sigaddset(&caught, sigs[i]);
	}
	sigprocmask(SIG_UNBLOCK, &caught, NULL); /* blocked across a re-exec (reexec()) */
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

/* Binds <addr>, or adopts the sockets a previous master handed over. */
static int listener_take(struct listener *l, struct handoff *h, const char *addr, int backlog,
                         const char *mode, const char *owner)
{
	int fds[256];
	int n = handoff_listener(h, addr, fds, 256);
	if (n <= 0)
		n = zerg_listener(addr, fds, 256);
	if (n > 0 && n <= 256)
		return listener_adopt(l, addr, fds, n);
	return listener_open(l, addr, backlog, mode, owner);
}

static int open_listeners(struct server *srv, struct handoff *h)
{
	if (srv->webless)
		return 0; /* mulefarm-handler */
	const struct options *o = srv->cfg.opts;
	const char *mode = opt_given(o, OPT_CHMOD_SOCKET) ? opt_str(o, OPT_CHMOD_SOCKET) : NULL;
	const char *owner = opt_str(o, OPT_CHOWN_SOCKET);
	size_t n = 0;
	for (size_t i = 0; i < o->n; i++)
		n += is_socket_option(o->entries[i].id);
	bool fallback = n == 0 && !zerg_attached(); /* the default: HTTP on 127.0.0.1:8080 */
	n += fallback + zerg_unclaimed();
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
		if (listener_take(l, h, e->value, (int)opt_int(o, OPT_LISTEN), mode, owner) == -1 ||
		    (l->reuse_port && l->worker_fds == NULL &&
		     listener_per_worker(l, srv->cfg.processes) == -1))
			return -1;
		srv->ls.n++;
		log_info("%s listening on %s (fd %d)", e->key, l->name, l->fd);
	}
	if (fallback) {
		struct listener *l = &srv->ls.l[srv->ls.n];
		l->proto = PROTO_HTTP;
		if (listener_take(l, h, CONFIG_DEFAULT_SOCKET, (int)opt_int(o, OPT_LISTEN), mode,
		                  owner) == -1)
			return -1;
		srv->ls.n++;
		log_info("no socket given: http-socket listening on %s (fd %d)", l->name, l->fd);
	}
	while (zerg_take_unclaimed(&srv->ls.l[srv->ls.n]) == 0)
		srv->ls.n++;
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
	if (!default_app && !opt_given(o, OPT_MOUNT) && !srv->webless) {
		log_info("no app to serve: give --wsgi-file FILE, --module pkg.mod:callable or "
		         "--mount /prefix=app");
		return -1;
	}
	if (python_init(srv) == -1)
		return -1;
	hooks_run(o, OPT_HOOK_PRE_APP);
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
	return rc;
}

/* --- the process table ------------------------------------------------- */

static int mercy_ms(const struct master *m, enum proc_role role)
{
	const struct options *o = m->srv->cfg.opts;
	long s = role == ROLE_MULE ? opt_int(o, OPT_MULE_RELOAD_MERCY)
	                           : m->srv->cfg.worker_reload_mercy;
	long cap = opt_int(o, OPT_RELOAD_MERCY);
	return (int)((s < cap ? s : cap) * 1000);
}

/* Asks <p> to stop: gracefully (SIGTERM, SIGKILL after its mercy) or at
 * once (SIGINT, SIGKILL after a few seconds). */
static void stop_proc(struct master *m, struct proc *p, bool now)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, now ? SIGINT : SIGTERM);
	int64_t at = mono_ms() + (now ? KILL_AFTER_INT_MS : mercy_ms(m, p->role));
	if (p->kill_at_ms == 0 || at < p->kill_at_ms)
		p->kill_at_ms = at;
}

static size_t alive(const struct master *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->t.n; i++)
		n += m->t.p[i].pid > 0;
	return n + m->nold;
}

static void describe_exit(const struct proc *p, pid_t pid, int status, const char *gen)
{
	if (WIFSIGNALED(status))
		log_info("%s%s %d (pid %d) killed by signal %d", gen, proc_role_name(p->role),
		         p->id, (int)pid, WTERMSIG(status));
	else
		log_info("%s%s %d (pid %d) exited with status %d", gen, proc_role_name(p->role),
		         p->id, (int)pid, WEXITSTATUS(status));
}

/* A child that keeps dying at start-up is respawned ever more slowly. A
 * worker that served requests did not die at start-up: --max-requests
 * recycles it within the second under load. */
static void schedule_respawn(struct master *m, struct proc *p)
{
	int64_t now = mono_ms();
	p->respawn_ms = now;
	bool served = p->role == ROLE_WORKER && scoreboard != NULL &&
	              scoreboard->workers[p->id - 1].requests != p->requests_at_spawn;
	if (now - p->started_ms >= 1000 || served) {
		p->fast_deaths = 0;
		return;
	}
	int64_t delay = RESPAWN_BASE_MS;
	for (int i = 0; i < p->fast_deaths && delay < RESPAWN_MAX_MS; i++)
		delay *= 2;
	p->fast_deaths++;
	delay = delay < RESPAWN_MAX_MS ? delay : RESPAWN_MAX_MS;
	p->respawn_ms = now + delay;
	if (m->state == RUNNING)
		log_info("%s %d is dying at start-up: respawning in %lld ms",
		         proc_role_name(p->role), p->id, (long long)delay);
}

static void reap(struct master *m)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (dbfarm_reaped(pid, status, m->state == RUNNING) || zerg_reaped(pid, status))
			continue;
		struct proc *p = proc_find(&m->t, pid);
		if (p != NULL) {
			describe_exit(p, pid, status, "");
			if (p->role == ROLE_MULE)
				dbfarm_mule_gone(p->id, pid, status,
				                 m->state != RUNNING || p->kill_at_ms != 0);
			p->pid = 0;
			p->kill_at_ms = 0;
			if (scoreboard != NULL && p->role == ROLE_WORKER)
				scoreboard->workers[p->id - 1].pid = 0;
			else if (scoreboard != NULL)
				scoreboard->mules[p->id - 1].pid = 0;
			schedule_respawn(m, p);
			continue;
		}
		for (size_t i = 0; i < m->nold; i++)
			if (m->old[i].pid == pid) {
				describe_exit(&m->old[i], pid, status, "previous ");
				if (m->old[i].role == ROLE_MULE)
					dbfarm_mule_gone(m->old[i].id, pid, status, true);
				m->old[i] = m->old[--m->nold];
				break;
			}
	}
}

/* Whether a mule with <id> of the previous generation still runs: the
 * new one waits for it, so two mules never share an id. */
static bool old_mule_alive(const struct master *m, int id)
{
	for (size_t i = 0; i < m->nold; i++)
		if (m->old[i].role == ROLE_MULE && m->old[i].id == id)
			return true;
	return false;
}

static void spawn_due(struct master *m)
{
	int64_t now = mono_ms();
	for (size_t i = 0; i < m->t.n; i++) {
		struct proc *p = &m->t.p[i];
		if (p->pid != 0 || p->respawn_ms > now)
			continue;
		if (p->role == ROLE_MULE && (old_mule_alive(m, p->id) || zerg_mules_held()))
			continue;
		if (proc_spawn(m->srv, p) == -1)
			schedule_respawn(m, p);
	}
}

static bool workers_accepting(const struct master *m)
{
	for (int i = 0; i < m->srv->cfg.processes; i++)
		if (m->t.p[i].pid <= 0 || !scoreboard->workers[i].accepting)
			return false;
	return true;
}

/* The old generation goes once every new worker accepts. */
static void retire_old(struct master *m)
{
	if (!m->retire_pending || !workers_accepting(m))
		return;
	m->retire_pending = false;
	log_info("new workers accepting: stopping %zu children of the previous generation",
	         m->nold);
	for (size_t i = 0; i < m->nold; i++)
		stop_proc(m, &m->old[i], false);
}

static void kill_overdue(struct master *m)
{
	int64_t now = mono_ms();
	for (size_t i = 0; i < m->t.n + m->nold; i++) {
		struct proc *p = i < m->t.n ? &m->t.p[i] : &m->old[i - m->t.n];
		if (p->pid > 0 && p->kill_at_ms != 0 && now >= p->kill_at_ms) {
			log_info("%s %d (pid %d) did not stop in time: killing it",
			         proc_role_name(p->role), p->id, (int)p->pid);
			kill(p->pid, SIGKILL);
			p->kill_at_ms = now + 60000;
		}
	}
}

/* --- harakiri ----------------------------------------------------------- */

static void harakiri_check(struct master *m)
{
	long limit = opt_int(m->srv->cfg.opts, OPT_HARAKIRI);
	if (limit <= 0 || m->state != RUNNING)
		return;
	int64_t now = mono_ms();
	for (int i = 0; i < m->srv->cfg.processes; i++) {
		struct proc *p = &m->t.p[i];
		if (p->pid <= 0 || p->kill_at_ms != 0)
			continue;
		for (int th = 0; th < scoreboard->nthreads; th++) {
			struct sb_slot *s = scoreboard_slot(scoreboard, p->id, th);
			int64_t started = s->started_ms;
			if (started == 0 || now - started < limit * 1000)
				continue;
			log_info("HARAKIRI: worker %d (pid %d) has run %.*s %.*s for %lld s "
			         "(--harakiri %ld): killing it; its Python stacks follow",
			         p->id, (int)p->pid, SB_METHOD_MAX, s->method, SB_URI_MAX, s->uri,
			         (long long)((now - started) / 1000), limit);
			scoreboard->workers[i].harakiri_count++;
			kill(p->pid, SIGUSR2); /* the worker's faulthandler dumps every stack */
			p->kill_at_ms = now + HARAKIRI_DUMP_MS;
			break;
		}
	}
}

/* --- actions ------------------------------------------------------------ */

static void begin_stop(struct master *m, bool now)
{
	if (m->state == STOPPING && (m->stop_now || !now))
		return;
	if (now)
		log_info("stopping now");
	else
		log_info("stopping gracefully (worker mercy %d s, mule mercy %ld s)",
		         m->srv->cfg.worker_reload_mercy,
		         opt_int(m->srv->cfg.opts, OPT_MULE_RELOAD_MERCY));
	m->state = STOPPING;
	m->stop_now = now;
	restart_abort();
	if (!restart_handed_over()) /* else the new master is the service now */
		sdnotify_stopping();
	for (size_t i = 0; i < m->t.n + m->nold; i++) {
		struct proc *p = i < m->t.n ? &m->t.p[i] : &m->old[i - m->t.n];
		p->kill_at_ms = 0;
		stop_proc(m, p, now);
	}
}

static void reexec(struct master *m, bool brutal)
{
	if (m->state == STOPPING)
		return;
	if (restart_busy() || restart_pending()) {
		log_info("reload refused: a transparent restart is under way");
		return;
	}
	log_info("%s reload: re-executing the master", brutal ? "brutal" : "graceful");
	size_t n = alive(m);
	struct handoff_child *c = calloc(n + 1, sizeof(*c));
	size_t k = 0;
	for (size_t i = 0; c != NULL && i < m->t.n + m->nold; i++) {
		struct proc *p = i < m->t.n ? &m->t.p[i] : &m->old[i - m->t.n];
		if (p->pid > 0)
			c[k++] =
			        (struct handoff_child){.pid = p->pid, .role = p->role, .id = p->id};
	}
	fifo_close(&m->fifo);
	/* The master's signals stay blocked (pending, not lost) until the new
	 * master catches them: between execv() and that, their default action
	 * (SIGHUP: terminate) would take the whole server down. */
	sigset_t caught, old;
	sigemptyset(&caught);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig_action[sig] != MA_NONE || sig == SIGCHLD)
			sigaddset(&caught, sig);
	sigprocmask(SIG_BLOCK, &caught, &old);
	if (c != NULL)
		reload_exec(m->srv, farms->q ? farmq_fd(farms->q) : -1, m->stats_fd, c, k, brutal);
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(c);
	log_info("reload failed: carrying on with the running children");
	fifo_open(&m->fifo, m->srv->cfg.opts);
}

/* FIFO 'w': new workers fork from this master; the old ones finish. */
static void reload_workers(struct master *m)
{
	if (m->state != RUNNING)
		return;
	log_info("reloading the workers");
	for (int i = 0; i < m->srv->cfg.processes; i++) {
		struct proc *p = &m->t.p[i];
		if (p->pid <= 0)
			continue;
		struct proc *grown = realloc(m->old, (m->nold + 1) * sizeof(*grown));
		if (grown == NULL)
			return;
		m->old = grown;
		m->old[m->nold++] = *p;
		p->pid = 0;
		p->kill_at_ms = 0;
		p->respawn_ms = 0;
	}
	m->retire_pending = true;
}

/* SIGUSR2, FIFO 'T', `mulefarm --transparent-restart` (restart.h). */
static void transparent_restart(struct master *m)
{
	long timeout = opt_int(m->srv->cfg.opts, OPT_TRANSPARENT_RESTART_TIMEOUT);
	if (m->state != RUNNING)
		restart_refuse(m->requester, "this master is stopping, or its code did not load");
	else if (restart_pending())
		restart_refuse(m->requester, "this master has not taken over yet");
	else
		restart_begin(&m->share, m->requester, (int)timeout);
	m->requester = 0;
}

static void log_stats(struct master *m)
{
	char *json = stats_json(scoreboard, farms->q, &m->srv->ls, m->version);
	if (json != NULL)
		log_info("stats: %s", json);
	free(json);
}

static void act(struct master *m, enum master_action a)
{
	switch (a) {
	case MA_GRACEFUL_STOP:
		begin_stop(m, false);
		break;
	case MA_STOP_NOW:
		begin_stop(m, true);
		break;
	case MA_GRACEFUL_RELOAD:
		reexec(m, false);
		break;
	case MA_BRUTAL_RELOAD:
		reexec(m, true);
		break;
	case MA_RELOAD_WORKERS:
		reload_workers(m);
		break;
	case MA_LOG_STATS:
		log_stats(m);
		break;
	case MA_TRANSPARENT_RESTART:
		transparent_restart(m);
		break;
	case MA_NONE:
		break;
	}
}

static void fifo_commands(struct master *m)
{
	char buf[64];
	size_t n;
	while ((n = fifo_read(&m->fifo, buf, sizeof(buf))) > 0)
		for (size_t i = 0; i < n; i++) {
			char c = buf[i];
			if (c >= '0' && c <= '9')
				fifo_switch(&m->fifo, c - '0');
			else if (c == 'T')
				act(m, MA_TRANSPARENT_RESTART);
			else if (strchr("qQrRws", c) != NULL)
				act(m, c == 'q'   ? MA_GRACEFUL_STOP
				       : c == 'Q' ? MA_STOP_NOW
				       : c == 'r' ? MA_GRACEFUL_RELOAD
				       : c == 'R' ? MA_BRUTAL_RELOAD
				       : c == 'w' ? MA_RELOAD_WORKERS
				                  : MA_LOG_STATS);
			else if (c != '\n' && c != '\r' && c != ' ')
				log_info("master FIFO: unknown command '%c'", c);
		}
}

/* --touch-reload: a changed modification time means reload. */
static bool touched(struct master *m)
{
	const struct options *o = m->srv->cfg.opts;
	bool changed = false;
	size_t k = 0;
	for (size_t i = 0; i < o->n; i++) {
		if (o->entries[i].id != OPT_TOUCH_RELOAD)
			continue;
		struct stat st;
		struct timespec now = {0, 0};
		if (stat(o->entries[i].value, &st) == 0)
			now = st.st_mtim;
		struct timespec *was = &m->touch_mtime[k++];
		if (now.tv_sec != was->tv_sec || now.tv_nsec != was->tv_nsec) {
			if (was->tv_sec != -1) {
				log_info("%s was touched: reloading", o->entries[i].value);
				changed = true;
			}
			*was = now;
		}
	}
	return changed;
}

static void serve_stats(struct master *m)
{
	char *json = stats_json(scoreboard, farms->q, &m->srv->ls, m->version);
	if (json != NULL)
		stats_serve(m->stats_fd, opt_flag(m->srv->cfg.opts, OPT_STATS_HTTP), json);
	free(json);
}

/* How long the loop may sleep: until the next respawn or kill, a second
 * for periodic checks, or until an event. */
static int loop_timeout(const struct master *m)
{
	const struct options *o = m->srv->cfg.opts;
	int64_t now = mono_ms(), next = INT64_MAX;
	if (opt_int(o, OPT_HARAKIRI) > 0 || opt_given(o, OPT_TOUCH_RELOAD))
		next = now + 1000;
	if (m->retire_pending)
		next = now + 20;
	for (size_t i = 0; i < m->t.n + m->nold; i++) {
		const struct proc *p = i < m->t.n ? &m->t.p[i] : &m->old[i - m->t.n];
		if (p->pid > 0 && p->kill_at_ms != 0 && p->kill_at_ms < next)
			next = p->kill_at_ms;
		if (p->pid == 0 && i < m->t.n && m->state == RUNNING)
			next = p->respawn_ms < next ? p->respawn_ms : next;
	}
	if (next == INT64_MAX)
		return -1;
	return next <= now ? 0 : next - now > 60000 ? 60000 : (int)(next - now);
}

static void handle_signals(struct master *m)
{
	char drain[64];
	while (read(sig_pipe[0], drain, sizeof(drain)) > 0)
		;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig_pending[sig]) {
			sig_pending[sig] = 0;
			m->requester = sig_sender[sig];
			if (sig != SIGCHLD)
				act(m, sig_action[sig]);
		}
}

static const pid_t *live_pids(struct master *m)
{
	for (size_t i = 0; i < m->t.n; i++)
		m->pids[i] = m->t.p[i].pid;
	return m->pids;
}

static int write_pidfiles(const struct options *o);

/* Started by a transparent restart, and every worker accepts: this master
 * becomes the server (pidfile, FIFO, READY=1); the previous one stops. */
static void take_over(struct master *m)
{
	const struct options *o = m->srv->cfg.opts;
	if (write_pidfiles(o) == -1 || fifo_open(&m->fifo, o) == -1)
		log_info("taking over without a pidfile or master FIFO (see above)");
	restart_took_over(); /* after the pidfile: the command reads it next */
	sdnotify_ready(dbfarm_status_text());
}

static int supervise(struct master *m)
{
	for (;;) {
		struct pollfd pfd[4 + ZERG_POLLFDS] = {
		        {.fd = sig_pipe[0], .events = POLLIN},
		        {.fd = m->fifo.fd, .events = POLLIN},
		        {.fd = m->stats_fd, .events = POLLIN},
		        {.fd = usignal_master_fd(), .events = POLLIN}};
		int timeout = sdnotify_tick(loop_timeout(m), dbfarm_status_text());
		int timer = usignal_timers(live_pids(m), mono_ms());
		timeout = timer >= 0 && (timeout < 0 || timer < timeout) ? timer : timeout;
		size_t nz = zerg_poll_prepare(pfd + 4, &timeout);
		poll(pfd, 4 + nz, timeout);
		handle_signals(m);
		if (zerg_poll_done(pfd + 4, nz) == ZERG_HANDED_OVER) {
			fifo_close(&m->fifo); /* commands go to the new master now */
			begin_stop(m, false);
		}
		if (pfd[3].revents & POLLIN)
			usignal_master_read(live_pids(m));
		if (pfd[1].revents & POLLIN)
			fifo_commands(m);
		if (m->stats_fd != -1 && (pfd[2].revents & POLLIN))
			serve_stats(m);
		reap(m);
		if (m->state == STOPPING || (m->state == DEGRADED && alive(m) == 0)) {
			if (alive(m) == 0) {
				log_info("all children gone: bye");
				return m->state == STOPPING ? 0 : 1;
			}
		} else if (m->state == RUNNING) {
			spawn_due(m);
			retire_old(m);
			if (restart_pending() && workers_accepting(m))
				take_over(m);
			harakiri_check(m);
			if (opt_given(m->srv->cfg.opts, OPT_TOUCH_RELOAD) && touched(m))
				act(m, MA_GRACEFUL_RELOAD);
		}
		kill_overdue(m);
	}
}

/* --- start-up ------------------------------------------------------------ */

static int init_table(struct master *m)
{
	size_t nw = (size_t)m->srv->cfg.processes, nm = farms->nmules;
	m->t.n = nw + nm;
	m->t.p = calloc(m->t.n, sizeof(struct proc));
	m->pids = calloc(m->t.n + 1, sizeof(pid_t));
	if (m->t.p == NULL || m->pids == NULL)
		return -1;
	for (size_t i = 0; i < m->t.n; i++) {
		m->t.p[i].role = i < nw ? ROLE_WORKER : ROLE_MULE;
		m->t.p[i].id = (int)(i < nw ? i : i - nw) + 1;
	}
	return 0;
}

/* The children a previous master left running become the old generation. */
static void adopt_children(struct master *m, const struct handoff *h)
{
	if (h->nchildren == 0)
		return;
	m->old = calloc(h->nchildren, sizeof(struct proc));
	for (size_t i = 0; m->old != NULL && i < h->nchildren; i++) {
		struct proc *p = &m->old[m->nold++];
		p->pid = h->children[i].pid;
		p->role = h->children[i].role == ROLE_MULE ? ROLE_MULE : ROLE_WORKER;
		p->id = h->children[i].id;
	}
	log_info("reloaded: %zu children of the previous generation keep running until the new "
	         "workers accept",
	         m->nold);
	m->retire_pending = true;
	if (h->brutal)
		for (size_t i = 0; i < m->nold; i++)
			stop_proc(m, &m->old[i], true);
}

static int open_control(struct master *m, const struct handoff *h)
{
	const struct options *o = m->srv->cfg.opts;
	size_t ntouch = 0;
	for (size_t i = 0; i < o->n; i++)
		ntouch += o->entries[i].id == OPT_TOUCH_RELOAD;
	m->touch_mtime = calloc(ntouch + 1, sizeof(struct timespec));
	if (m->touch_mtime == NULL)
		return -1;
	for (size_t i = 0; i < ntouch; i++)
		m->touch_mtime[i].tv_sec = -1;
	touched(m);
	m->stats_fd = -1;
	const char *stats = opt_str(o, OPT_STATS);
	char err[256];
	if (h->stats_fd >= 0 && stats == NULL)
		close(h->stats_fd); /* --stats is gone from the new configuration */
	if (h->stats_fd >= 0 && stats != NULL) {
		m->stats_fd = h->stats_fd; /* the same address is assumed across a reload */
		fcntl(m->stats_fd, F_SETFD, FD_CLOEXEC);
	} else if (stats != NULL && (m->stats_fd = stats_listen(stats, err, sizeof(err))) == -1) {
		log_info("--stats %s: %s", stats, err);
		return -1;
	}
	if (m->stats_fd >= 0)
		proc_close_in_children(m->stats_fd);
	if (stats != NULL)
		log_info("stats server on %s", stats);
	return restart_pending() ? 0 : fifo_open(&m->fifo, o); /* take_over() opens it */
}

static int write_pidfiles(const struct options *o)
{
	const char *p1 = opt_str(o, OPT_PIDFILE), *p2 = opt_str(o, OPT_PIDFILE2);
	return (p1 && daemon_write_pidfile(p1) == -1) || (p2 && daemon_write_pidfile(p2) == -1) ? -1
	                                                                                        : 0;
}

/* Only if they still name this master: a transparent restart's new one
 * (or another zerg instance) may have written them since. */
static void remove_pidfiles(const struct options *o)
{
	const char *p1 = opt_str(o, OPT_PIDFILE), *p2 = opt_str(o, OPT_PIDFILE2);
	if (p1)
		daemon_remove_pidfile(p1);
	if (p2)
		daemon_remove_pidfile(p2);
}

/* --daemonize2 and --logto2 come once the app has loaded. */
static int after_load_detach(struct server *srv)
{
	const struct options *o = srv->cfg.opts;
	const char *d2 = opt_str(o, OPT_DAEMONIZE2), *l2 = opt_str(o, OPT_LOGTO2);
	if (d2 != NULL) {
		PyOS_BeforeFork();
		int rc = daemon_detach(d2);
		PyOS_AfterFork_Child(); /* the child goes on as the master */
		if (rc == -1)
			return -1;
		srv->master_pid = scoreboard->master_pid = getpid();
		log_set_identity("master", 0);
		if (write_pidfiles(o) == -1)
			return -1;
	}
	return l2 != NULL ? daemon_logto(l2) : 0;
}

static int start(struct master *m, struct handoff *h)
{
	struct server *srv = m->srv;
	const struct options *o = srv->cfg.opts;
	char err[512];
	const char *dir = opt_str(o, OPT_CHDIR);
	if (dir != NULL && chdir(dir) == -1) {
		log_err(errno, "chdir(%s) failed", dir);
		return -1;
	}
	static struct static_config statics;
	static struct farms fs;
	if (static_setup(&statics, o, err, sizeof(err)) == -1 ||
	    farms_setup(&fs, o, err, sizeof(err)) == -1 || hooks_check(o, err, sizeof(err)) == -1) {
		log_info("%s", err);
		return -1;
	}
	srv->statics = &statics;
	farms = &fs;
	if (farms_open(&fs, o, h->farmq_fd, err, sizeof(err)) == -1 ||
	    dbfarm_setup(srv, &fs, err, sizeof(err)) == -1) {
		log_info("%s", err);
		return -1;
	}
	static struct scoreboard sb;
	if (scoreboard_create(&sb, srv->cfg.processes, srv->cfg.threads, (int)fs.nmules) == -1) {
		log_err(errno, "cannot map the scoreboard");
		return -1;
	}
	sb.master_pid = srv->master_pid;
	for (int i = 1; i <= (int)fs.nmules; i++)
		farms_describe_mule(&fs, i, sb.mules[i - 1].farms, sizeof(sb.mules[i - 1].farms));
	sb.start_time = time(NULL);
	scoreboard = &sb;
	if (usignal_setup(srv->cfg.processes, (int)fs.nmules) == -1) {
		log_err(errno, "cannot set up uWSGI signals");
		return -1;
	}
	if (open_listeners(srv, h) == -1)
		return -1;
	handoff_close_unused(h);
	return init_table(m);
}

int master_run(struct server *srv)
{
	static struct master m;
	struct handoff h;
	const struct options *o = srv->cfg.opts;
	m.srv = srv;
	m.version = srv->version;
	m.fifo.fd = -1;
	m.stats_fd = -1;
	log_set_identity("master", 0);
	if (opt_given(o, OPT_LOG_DATE))
		log_set_date_format(opt_str(o, OPT_LOG_DATE));
	if (handoff_read(&h) == -1 || zerg_attach(o, h.present, srv->webless) == -1)
		return 1;
	if (h.farmq_fd < 0)
		h.farmq_fd = zerg_farmq_fd();
	if (h.stats_fd < 0)
		h.stats_fd = zerg_stats_fd(opt_str(o, OPT_STATS));
	/* a reload or a transparent restart: detached and logging already */
	bool fresh = !h.present && !restart_pending();
	if (fresh) {
		const char *d = opt_str(o, OPT_DAEMONIZE), *l = opt_str(o, OPT_LOGTO);
		bool py = d && Py_IsInitialized(); /* the wheel: the interpreter runs already */
		if (py)
			PyOS_BeforeFork();
		int rc = d ? daemon_detach(d) : 0;
		if (py && rc == 0)
			PyOS_AfterFork_Child(); /* the child goes on as the master */
		else if (py)
			PyOS_AfterFork_Parent();
		if (rc == -1 || (l && daemon_logto(l) == -1))
			return 1;
	}
	srv->master_pid = getpid();
	log_set_identity("master", 0); /* --daemonize: the pid changed */
	sdnotify_init();
	if (setup_signals() == -1 || start(&m, &h) == -1)
		return 1;
	adopt_children(&m, &h);
	/* --daemonize2 writes them once detached: until then this pid is the
	 * one about to exit, and the command returns as it exits */
	bool pid_later = restart_pending() || (fresh && opt_str(o, OPT_DAEMONIZE2) != NULL);
	m.share = (struct zerg_share){.ls = srv->webless ? NULL : &srv->ls,
	                              .farmq_fd = farms->q ? farmq_fd(farms->q) : -1,
	                              .stats_fd = &m.stats_fd,
	                              .has_mules = farms->nmules > 0};
	if ((!pid_later && write_pidfiles(o) == -1) || open_control(&m, &h) == -1 ||
	    zerg_server_open(o, &m.share) == -1)
		return 1;
	int rc = load(srv);
	if (rc == -1 && m.nold == 0) {
		remove_pidfiles(o);
		return 1;
	}
	if (rc == -1) {
		log_info(
		        "the new code did not load (see above): the previous workers keep serving; "
		        "fix it and reload again, or stop");
		m.state = DEGRADED;
		m.retire_pending = false;
		hooks_remap_signals(o);
	} else {
		setup_signals(); /* the app may have set handlers of its own at import */
		hooks_run(o, OPT_HOOK_POST_APP);
		python_freeze();
		if (fresh && after_load_detach(srv) == -1)
			return 1;
		restart_loaded();
		dbfarm_keeper_start();
		spawn_due(&m);
		hooks_run(o, OPT_HOOK_MASTER_START);
		if (!restart_pending()) /* else once it takes over */
			sdnotify_ready(dbfarm_status_text());
	}
	rc = supervise(&m);
	dbfarm_shutdown(5000);
	remove_pidfiles(o);
	return rc;
}
