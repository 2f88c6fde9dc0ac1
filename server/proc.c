/*
 * proc.c - spawning children from the process table.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/fifo.h"
#include "mulefarm/log.h"
#include "mulefarm/proc.h"
#include "mulefarm/proctitle.h"
#include "mulefarm/python.h"
#include "mulefarm/mule.h"
#include "mulefarm/scoreboard.h"
#include "mulefarm/usignal.h"
#include "mulefarm/worker.h"
#include "mulefarm/conn.h"

const char *proc_role_name(enum proc_role role)
{
	switch (role) {
	case ROLE_WORKER:
		return "worker";
	case ROLE_MULE:
		return "mule";
	}
	return "child";
}

struct proc *proc_find(struct proc_table *t, pid_t pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->p[i].pid == pid)
			return &t->p[i];
	return NULL;
}

static void child_signals(void)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD, SIGPIPE};
	sigset_t none;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static int master_fds[8];
static size_t n_master_fds;

void proc_close_in_children(int fd)
{
	if (n_master_fds < sizeof(master_fds) / sizeof(master_fds[0]))
		master_fds[n_master_fds++] = fd;
}

/* What the stats show about a fork: pid, last spawn, respawns. */
static void publish_spawn(struct proc *p)
{
	if (scoreboard == NULL)
		return;
	bool again = p->spawns++ > 0;
	if (p->role == ROLE_MULE && p->id <= scoreboard->nmules) {
		struct sb_mule *m = &scoreboard->mules[p->id - 1];
		m->pid = p->pid;
		m->last_spawn = time(NULL);
		m->respawn_count += again;
	} else if (p->role == ROLE_WORKER && p->id <= scoreboard->nworkers) {
		struct sb_worker *w = &scoreboard->workers[p->id - 1];
		w->pid = p->pid;
		w->last_spawn = time(NULL);
		w->respawn_count += again;
	}
}

/* --sched-batch (on by default): a web worker runs under SCHED_BATCH, at
 * the same nice level and CPU share as before. The only change is that a
 * worker woken by a new connection does not preempt the task that woke it
 * (nginx between its connect() and its write of the request, or a client):
 * it runs when that task blocks or its slice ends, or at once on an idle
 * CPU. Without this, on a busy machine the woken worker takes the CPU,
 * finds no request yet, and sleeps again; each such turn is two context
 * switches and an epoll registration. docs/benchmarks.md has the figures.
 * Threads the worker starts later inherit the policy. Needs no privilege;
 * a refusal (a seccomp filter, say) is logged and the worker carries on. */
static void sched_worker(const struct config *cfg)
{
	struct sched_param sp = {.sched_priority = 0};
	if (cfg->sched_batch && sched_setscheduler(0, SCHED_BATCH, &sp) == -1)
		log_err(errno, "--sched-batch: cannot switch to SCHED_BATCH");
}

int proc_spawn(const struct server *srv, struct proc *p)
{
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old); /* no master handler runs in the child */
	if (scoreboard != NULL && p->role == ROLE_WORKER && p->id <= scoreboard->nworkers) {
		scoreboard->workers[p->id - 1].accepting = 0; /* the child sets it */
		p->requests_at_spawn = scoreboard->workers[p->id - 1].requests;
		/* A killed predecessor (harakiri, SIGKILL) left its requests in
		 * the slots: harakiri would kill the new worker for them. */
		for (int t = 0; t < scoreboard->nthreads; t++)
			scoreboard_slot(scoreboard, p->id, t)->started_ms = 0;
	}
	python_before_fork();
	pid_t pid = fork();
	if (pid == 0) {
		child_signals();
		fifo_close_inherited();
		for (size_t i = 0; i < n_master_fds; i++)
			close(master_fds[i]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != srv->master_pid)
			_exit(1); /* the master died before prctl() */
		log_set_identity(proc_role_name(p->role), p->id);
		proctitle_set(proc_role_name(p->role), p->id, "starting");
		if (p->role == ROLE_WORKER)
			sched_worker(&srv->cfg);
		python_after_fork_child(p->role == ROLE_MULE ? 0 : p->id);
		usignal_child_start(p->role == ROLE_MULE, p->id);
		if (p->role == ROLE_MULE)
			mule_main(srv, p->id);
		worker_main(srv, p->id);
	}
	int saved = errno;
	python_after_fork_parent();
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid == -1) {
		log_err(saved, "fork() failed for %s %d", proc_role_name(p->role), p->id);
		return -1;
	}
	p->pid = pid;
	p->started_ms = mono_ms();
	publish_spawn(p);
	log_info("spawned %s %d (pid %d)", proc_role_name(p->role), p->id, (int)pid);
	return 0;
}
