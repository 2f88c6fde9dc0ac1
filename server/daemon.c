/*
 * daemon.c - pidfiles, detaching and log files (see daemon.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mulefarm/daemon.h"
#include "mulefarm/log.h"

static long read_pid(const char *pidfile)
{
	FILE *f = fopen(pidfile, "r");
	long pid = 0;
	if (f == NULL)
		return -1;
	int n = fscanf(f, "%ld", &pid);
	fclose(f);
	return n == 1 && pid > 0 ? pid : 0;
}

pid_t daemon_read_pidfile(const char *pidfile)
{
	long pid = read_pid(pidfile);
	if (pid == -1)
		fprintf(stderr, "mulefarm: cannot open pidfile %s: %s\n", pidfile, strerror(errno));
	else if (pid == 0)
		fprintf(stderr, "mulefarm: pidfile %s holds no pid\n", pidfile);
	return pid > 0 ? (pid_t)pid : -1;
}

void daemon_remove_pidfile(const char *path)
{
	if (read_pid(path) == (long)getpid())
		unlink(path);
}

int daemon_signal_pidfile(const char *pidfile, int sig)
{
	pid_t pid = daemon_read_pidfile(pidfile);
	if (pid == -1)
		return 1;
	if (kill(pid, sig) == -1) {
		fprintf(stderr, "mulefarm: cannot signal pid %ld from %s: %s\n", (long)pid, pidfile,
		        strerror(errno));
		return 1;
	}
	return 0;
}

int daemon_logto(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd == -1) {
		log_err(errno, "cannot open log file %s", path);
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	int rc = dup2(fd, STDOUT_FILENO) == -1 || dup2(fd, STDERR_FILENO) == -1 ? -1 : 0;
	close(fd);
	if (rc == -1)
		log_err(errno, "dup2() failed for log file %s", path);
	return rc;
}

int daemon_detach(const char *logfile)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == -1) {
		log_err(errno, "fork() failed (--daemonize)");
		return -1;
	}
	if (pid > 0)
		_exit(0);
	if (setsid() == -1)
		log_err(errno, "setsid() failed");
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null != -1) {
		dup2(null, STDIN_FILENO);
		close(null);
	}
	return daemon_logto(logfile);
}

/* Written aside and renamed: a reader (--reload PIDFILE) never sees the
 * file empty while a re-executed master writes it again. */
int daemon_write_pidfile(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 ||
	    rename(tmp, path) == -1) {
		log_err(errno, "cannot write pidfile %s", path);
		unlink(tmp);
		return -1;
	}
	return 0;
}
