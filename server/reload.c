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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mulefarm/log.h"
#include "mulefarm/reload.h"

#define HANDOFF_VAR "MULEFARM_HANDOFF"

static char exe_path[PATH_MAX];
static char start_dir[PATH_MAX];
static char **saved_argv;

int reload_prepare(int argc, char **argv)
{
	ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
	if (n <= 0)
		return -1;
	exe_path[n] = '\0';
	if (getcwd(start_dir, sizeof(start_dir)) == NULL)
		start_dir[0] = '\0';
	saved_argv = calloc((size_t)argc + 1, sizeof(char *));
	if (saved_argv == NULL)
		return -1;
	for (int i = 0; i < argc; i++)
		if ((saved_argv[i] = strdup(argv[i])) == NULL)
			return -1;
	return 0;
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
