/*
 * listener.c - listening sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mulefarm/listener.h"
#include "mulefarm/log.h"

static int copy(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

int listener_split(const char *addr, bool *is_unix, char *host, size_t hostlen, char *port,
                   size_t portlen)
{
	const char *colon;

	*is_unix = strchr(addr, '/') != NULL || strchr(addr, ':') == NULL;
	if (*is_unix) {
		host[0] = port[0] = '\0';
		return addr[0] == '\0' ? -1 : 0;
	}
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		if (copy(host, hostlen, addr + 1, (size_t)(close - addr - 1)) == -1)
			return -1;
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (copy(host, hostlen, addr, (size_t)(colon - addr)) == -1)
			return -1;
	}
	const char *p = colon + 1;
	if (*p == '\0' || strspn(p, "0123456789") != strlen(p) || strlen(p) > 5 || atoi(p) > 65535)
		return -1;
	return copy(port, portlen, p, strlen(p));
}

/* --chown-socket user[:group], names or numeric ids. */
static int chown_path(const char *path, const char *owner)
{
	char user[128];
	const char *colon = strchr(owner, ':');
	size_t ulen = colon ? (size_t)(colon - owner) : strlen(owner);
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	if (ulen >= sizeof(user))
		goto bad;
	memcpy(user, owner, ulen);
	user[ulen] = '\0';
	if (user[0] != '\0') {
		struct passwd *pw = getpwnam(user);
		if (pw == NULL && strspn(user, "0123456789") != ulen)
			goto bad;
		uid = pw ? pw->pw_uid : (uid_t)atol(user);
		gid = pw ? pw->pw_gid : gid;
	}
	if (colon != NULL && colon[1] != '\0') {
		struct group *gr = getgrnam(colon + 1);
		if (gr == NULL && strspn(colon + 1, "0123456789") != strlen(colon + 1))
			goto bad;
		gid = gr ? gr->gr_gid : (gid_t)atol(colon + 1);
	}
	if (chown(path, uid, gid) == -1) {
		log_err(errno, "chown(%s, %s) failed (--chown-socket)", path, owner);
		return -1;
	}
	return 0;
bad:
	log_info("--chown-socket %s: unknown user or group", owner);
	return -1;
}

static int open_unix(struct listener *l, const char *path, int backlog, const char *mode,
                     const char *owner)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_info("unix socket path too long: %s", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a stale socket from an earlier run */
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd == -1) {
		log_err(errno, "socket() failed for %s", path);
		return -1;
	}
	if (bind(l->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		log_err(errno, "bind() failed on %s", path);
		return -1;
	}
	if (mode != NULL &&
	    (strlen(mode) < 3 || strlen(mode) > 4 || strspn(mode, "01234567") != strlen(mode))) {
		log_info("invalid --chmod-socket mode '%s' (want octal, e.g. 660)", mode);
		return -1;
	}
	if (mode != NULL && chmod(path, (mode_t)strtol(mode, NULL, 8)) == -1) {
		log_err(errno, "chmod() failed on %s", path);
		return -1;
	}
	if (owner != NULL && chown_path(path, owner) == -1)
		return -1;
	if (listen(l->fd, backlog) == -1) {
		log_err(errno, "listen() failed on %s", path);
		return -1;
	}
	snprintf(l->server_name, sizeof(l->server_name), "localhost"); /* unix socket */
	l->server_port[0] = '\0';
	return 0;
}

/* The real port, also when the address asked for port 0. */
static void set_bound_port(struct listener *l, const char *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	unsigned bound = (unsigned)atoi(port);
	if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0)
		bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                       : ((struct sockaddr_in *)&ss)->sin_port);
	snprintf(l->server_port, sizeof(l->server_port), "%u", bound);
}

static int open_tcp(struct listener *l, const char *host, const char *port, int backlog)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res;
	int one = 1;

	hints.ai_family = host[0] == '\0' ? AF_INET : AF_UNSPEC;
	int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		log_info("cannot resolve %s: %s", l->name, gai_strerror(rc));
		return -1;
	}
	l->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd == -1) {
		log_err(errno, "socket() failed for %s", l->name);
		goto fail;
	}
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l->reuse_port && setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) {
		log_err(errno, "setsockopt(SO_REUSEPORT) failed on %s", l->name);
		goto fail;
	}
	/* Wake a worker only once the request has arrived: its first read
	 * then succeeds (nginx's "deferred"). */
	setsockopt(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof(one));
	/* Accepted sockets inherit it: no setsockopt() per connection. */
	setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(l->fd, res->ai_addr, res->ai_addrlen) == -1) {
		log_err(errno, "bind() failed on %s", l->name);
		goto fail;
	}
	if (listen(l->fd, backlog) == -1) {
		log_err(errno, "listen() failed on %s", l->name);
		goto fail;
	}
	freeaddrinfo(res);
	snprintf(l->server_name, sizeof(l->server_name), "%s", host[0] ? host : "0.0.0.0");
	set_bound_port(l, port);
	return 0;
fail:
	freeaddrinfo(res);
	return -1;
}

int listener_open(struct listener *l, const char *addr, int backlog, const char *mode,
                  const char *owner)
{
	l->backlog = backlog;
	char host[256], port[8];

	l->fd = -1;
	snprintf(l->name, sizeof(l->name), "%s", addr);
	if (listener_split(addr, &l->is_unix, host, sizeof(host), port, sizeof(port)) == -1) {
		log_info("invalid socket address '%s' (want host:port, [v6]:port, :port or a path)",
		         addr);
		return -1;
	}
	int rc = l->is_unix ? open_unix(l, addr, backlog, mode, owner)
	                    : open_tcp(l, host, port, backlog);
	if (rc == -1 && l->fd != -1) {
		close(l->fd);
		l->fd = -1;
	}
	return rc;
}

int listener_fd(const struct listener *l, int id)
{
	if (l->worker_fds != NULL && id >= 1 && id <= l->n_worker_fds)
		return l->worker_fds[id - 1];
	return l->fd;
}

int listener_per_worker(struct listener *l, int n)
{
	if (l->is_unix || n < 2)
		return 0;
	l->worker_fds = calloc((size_t)n, sizeof(int));
	if (l->worker_fds == NULL)
		return -1;
	l->worker_fds[0] = l->fd;
	l->n_worker_fds = 1;
	char host[256], port[8];
	bool is_unix;
	if (listener_split(l->name, &is_unix, host, sizeof(host), port, sizeof(port)) == -1)
		return -1;
	for (int i = 1; i < n; i++) {
		/* The port actually bound (the address may have asked for 0). */
		struct listener more = {.fd = -1, .reuse_port = true};
		snprintf(more.name, sizeof(more.name), "%s", l->name);
		if (open_tcp(&more, host, l->server_port, l->backlog) == -1) {
			if (more.fd != -1)
				close(more.fd);
			return -1;
		}
		l->worker_fds[l->n_worker_fds++] = more.fd;
	}
	return 0;
}

int listener_adopt(struct listener *l, const char *addr, const int *fds, int n)
{
	char host[256], port[8];
	snprintf(l->name, sizeof(l->name), "%s", addr);
	if (n < 1 ||
	    listener_split(addr, &l->is_unix, host, sizeof(host), port, sizeof(port)) == -1)
		return -1;
	l->fd = fds[0];
	if (n > 1) {
		l->worker_fds = calloc((size_t)n, sizeof(int));
		if (l->worker_fds == NULL)
			return -1;
		memcpy(l->worker_fds, fds, (size_t)n * sizeof(int));
		l->n_worker_fds = n;
	}
	for (int i = 0; i < n; i++) {
		int flags = fcntl(fds[i], F_GETFD);
		if (flags == -1 || fcntl(fds[i], F_SETFD, flags | FD_CLOEXEC) == -1)
			return -1;
	}
	if (l->is_unix) {
		snprintf(l->server_name, sizeof(l->server_name), "localhost");
		l->server_port[0] = '\0';
		return 0;
	}
	snprintf(l->server_name, sizeof(l->server_name), "%s", host[0] ? host : "0.0.0.0");
	set_bound_port(l, port);
	return 0;
}
