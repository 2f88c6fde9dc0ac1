/*
 * proc.c - spawning children from the process table.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "mulefarm/log.h"
#include "mulefarm/proc.h"
#include "mulefarm/python.h"
#include "mulefarm/worker.h"
#include "mulefarm/conn.h"

const char *proc_role_name(enum proc_role role)
{
	switch (role) {
	case ROLE_WORKER:
		return "worker";
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

int proc_spawn(const struct server *srv, struct proc *p)
{
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old); /* no master handler runs in the child */
	python_before_fork();
	pid_t pid = fork();
	if (pid == 0) {
		child_signals();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != srv->master_pid)
			_exit(1); /* the master died before prctl() */
		log_set_identity(proc_role_name(p->role), p->id);
		python_after_fork_child(p->id);
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
	log_info("spawned %s %d (pid %d)", proc_role_name(p->role), p->id, (int)pid);
	return 0;
}
