/*
 * reload.c - re-executing the master for a graceful reload, and reading
 * what the previous master handed over (see reload.h).
 *
 * MULEFARM_HANDOFF holds one record per line:
 *   L<address>\t<fd>[,<fd>...]   a listener (several fds with --reuse-port)
 *   Q<fd>                        the farm queues' memfd
 *   S<fd>                        the stats socket
 *   C<pid>:<role>:<id>           a running child
 *   B                            brutal: stop the old children at once
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mulefarm/log.h"
#include "mulefarm/reload.h"

#define HANDOFF_VAR  "MULEFARM_HANDOFF"
#define SPAWN_FD_MIN 16 /* fds are moved here first, clear of the targets */

extern char **environ;

static char exe_path[PATH_MAX];
static char start_dir[PATH_MAX];
static char **saved_argv;

static char **copy_argv(int argc, char **argv)
{
	char **copy = calloc((size_t)argc + 1, sizeof(char *));
	for (int i = 0; copy != NULL && i < argc; i++)
		if ((copy[i] = strdup(argv[i])) == NULL)
			return NULL;
	return copy;
}

int reload_set_command(const char *exe, int argc, char **argv)
{
	if (strlen(exe) >= sizeof(exe_path))
		return -1;
	strcpy(exe_path, exe);
	saved_argv = copy_argv(argc, argv);
	return saved_argv == NULL ? -1 : 0;
}

int reload_prepare(int argc, char **argv)
{
	if (getcwd(start_dir, sizeof(start_dir)) == NULL)
		start_dir[0] = '\0';
	if (saved_argv != NULL)
		return 0; /* reload_set_command() said what to run */
	ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
	if (n <= 0)
		return -1;
	exe_path[n] = '\0';
	saved_argv = copy_argv(argc, argv);
	return saved_argv == NULL ? -1 : 0;
}

static int keep_on_exec(int fd)
{
	int flags = fcntl(fd, F_GETFD);
	return flags == -1 ? -1 : fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
}

/* Appends printf output to the growing buffer <*buf>. */
static int append(char **buf, size_t *len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int append(char **buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *p = realloc(*buf, *len + (size_t)n + 1);
	if (p == NULL)
		return -1;
	*buf = p;
	va_start(ap, fmt);
	vsnprintf(p + *len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*len += (size_t)n;
	return 0;
}

static int add_listener(char **buf, size_t *len, const struct listener *l)
{
	int n = l->worker_fds ? l->n_worker_fds : 1;
	if (append(buf, len, "L%s\t", l->name) == -1)
		return -1;
	for (int i = 0; i < n; i++) {
		int fd = l->worker_fds ? l->worker_fds[i] : l->fd;
		if (keep_on_exec(fd) == -1 || append(buf, len, "%s%d", i ? "," : "", fd) == -1)
			return -1;
	}
	return append(buf, len, "\n");
}

int reload_exec(const struct server *srv, int farmq_fd, int stats_fd,
                const struct handoff_child *children, size_t nchildren, bool brutal)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = append(&buf, &len, "%s", "");
	for (size_t i = 0; rc == 0 && i < srv->ls.n; i++)
		rc = add_listener(&buf, &len, &srv->ls.l[i]);
	if (rc == 0 && farmq_fd >= 0)
		rc = keep_on_exec(farmq_fd) == -1 ? -1 : append(&buf, &len, "Q%d\n", farmq_fd);
	if (rc == 0 && stats_fd >= 0)
		rc = keep_on_exec(stats_fd) == -1 ? -1 : append(&buf, &len, "S%d\n", stats_fd);
	for (size_t i = 0; rc == 0 && i < nchildren; i++)
		rc = append(&buf, &len, "C%d:%d:%d\n", (int)children[i].pid, children[i].role,
		            children[i].id);
	if (rc == 0 && brutal)
		rc = append(&buf, &len, "B\n");
	if (rc == -1 || setenv(HANDOFF_VAR, buf, 1) == -1) {
		log_err(errno, "cannot prepare the reload");
		free(buf);
		return -1;
	}
	free(buf);
	if (start_dir[0] != '\0' && chdir(start_dir) == -1)
		log_err(errno, "chdir(%s) failed before re-exec", start_dir);
	fflush(stdout);
	fflush(stderr);
	execv(exe_path, saved_argv);
	log_err(errno, "execv(%s) failed: cannot reload", exe_path);
	unsetenv(HANDOFF_VAR);
	return -1;
}

int handoff_read(struct handoff *h)
{
	memset(h, 0, sizeof(*h));
	h->farmq_fd = -1;
	h->stats_fd = -1;
	const char *v = getenv(HANDOFF_VAR);
	if (v == NULL)
		return 0;
	h->present = true;
	h->text = strdup(v);
	unsetenv(HANDOFF_VAR);
	if (h->text == NULL)
		return -1;
	size_t lines = 1;
	for (const char *p = h->text; *p; p++)
		lines += *p == '\n';
	h->children = calloc(lines, sizeof(*h->children));
	if (h->children == NULL)
		return -1;
	for (char *line = h->text; *line; line = strchr(line, '\n') + 1) {
		if (strchr(line, '\n') == NULL)
			break;
		struct handoff_child *c = &h->children[h->nchildren];
		if (line[0] == 'Q')
			h->farmq_fd = atoi(line + 1);
		else if (line[0] == 'S')
			h->stats_fd = atoi(line + 1);
		else if (line[0] == 'B')
			h->brutal = true;
		else if (line[0] == 'C' &&
		         sscanf(line + 1, "%d:%d:%d", &c->pid, &c->role, &c->id) == 3)
			h->nchildren++;
	}
	return 0;
}

/* Calls <fn> for each fd of record <rec> ("fd,fd\n"). */
static int each_fd(const char *rec, int *fds, int maxfds)
{
	int n = 0;
	for (const char *p = rec; *p && *p != '\n';) {
		char *end;
		long fd = strtol(p, &end, 10);
		if (end == p)
			break;
		if (n < maxfds)
			fds[n] = (int)fd;
		n++;
		p = *end == ',' ? end + 1 : end;
	}
	return n;
}

int handoff_listener(struct handoff *h, const char *name, int *fds, int maxfds)
{
	size_t nlen = strlen(name);
	for (char *line = h->text; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (line[0] == 'L' && strncmp(line + 1, name, nlen) == 0 &&
		    line[1 + nlen] == '\t') {
			line[0] = 'l'; /* taken */
			return each_fd(line + 2 + nlen, fds, maxfds);
		}
	}
	return 0;
}

void handoff_close_unused(struct handoff *h)
{
	for (char *line = h->text; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		char *tab = line[0] == 'L' ? strchr(line, '\t') : NULL;
		if (tab == NULL)
			continue;
		int fds[64];
		int n = each_fd(tab + 1, fds, 64);
		for (int i = 0; i < n && i < 64; i++)
			close(fds[i]);
		log_info("closed a socket the new configuration no longer has: %.*s",
		         (int)(tab - line - 1), line + 1);
		line[0] = 'l';
	}
}

/* environ without our own hand-over variables, plus <env>. */
static char **spawn_env(const char *env)
{
	size_t n = 0;
	while (environ[n] != NULL)
		n++;
	char **e = calloc(n + 2, sizeof(char *));
	if (e == NULL)
		return NULL;
	size_t k = 0;
	const char *name_end = strchr(env, '=');
	size_t name_len = name_end ? (size_t)(name_end - env) + 1 : strlen(env);
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], HANDOFF_VAR "=", strlen(HANDOFF_VAR) + 1) != 0 &&
		    strncmp(environ[i], env, name_len) != 0)
			e[k++] = environ[i];
	e[k] = (char *)env;
	return e;
}

pid_t reload_spawn(const int (*map)[2], size_t n, const char *env)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int high[8] = {-1, -1, -1, -1, -1, -1, -1, -1}, top = 2;
	pid_t pid = -1;
	char **envp = spawn_env(env);
	if (envp == NULL || n > 8)
		goto out_env;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	/* Each source goes out of the way first, then to its target: a source
	 * that is itself a target (stderr) is read before it is replaced. */
	for (size_t i = 0; i < n; i++) {
		high[i] = fcntl(map[i][0], F_DUPFD_CLOEXEC, SPAWN_FD_MIN);
		if (high[i] == -1)
			goto out;
		posix_spawn_file_actions_adddup2(&fa, high[i], map[i][1]);
		top = map[i][1] > top ? map[i][1] : top;
	}
	posix_spawn_file_actions_addclosefrom_np(&fa, top + 1);
	if (start_dir[0] != '\0')
		posix_spawn_file_actions_addchdir_np(&fa, start_dir);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	fflush(stdout);
	fflush(stderr);
	int rc = posix_spawn(&pid, exe_path, &fa, &attr, saved_argv, envp);
	if (rc != 0) {
		log_err(rc, "posix_spawn(%s) failed", exe_path);
		pid = -1;
	}
out:
	for (size_t i = 0; i < n && i < 8; i++)
		if (high[i] != -1)
			close(high[i]);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
out_env:
	free(envp);
	return pid;
}
