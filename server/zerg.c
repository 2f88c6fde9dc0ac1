/*
 * zerg.c - zerg mode (see zerg.h): attaching to zerg servers, serving one
 * from the master loop, and the standalone pool.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/conn.h"
#include "mulefarm/daemon.h"
#include "mulefarm/farm.h"
#include "mulefarm/listener.h"
#include "mulefarm/log.h"
#include "mulefarm/proc.h"
#include "mulefarm/restart.h"
#include "mulefarm/zerg.h"
#include "mulefarm/zerg_wire.h"

#define CONNECT_TIMEOUT_MS 30000 /* uWSGI's zerg client waits 30 s */
#define HOLD_POLL_MS       200   /* without a pidfd: how often to look */
#define ACCEPT_BATCH       16

/* A socket received from a zerg server (several fds with --reuse-port). */
struct received {
	int *fds;
	int nfds;
	char name[ZERG_NAME_MAX + 1]; /* as the server configured it, or its address */
	bool named;                   /* the server said how it configured it */
	int option;                   /* the socket option it maps to, -1: none */
	bool taken;
};

static struct {
	struct received *r;
	size_t n;
	const char **opts; /* the socket options' values, in order */
	size_t nopts;
	int farmq_fd;   /* received, until zerg_farmq_fd() */
	int farmq_keep; /* a dup, to move leftovers once the server's master is gone */
	int stats_fd;
	pid_t master_pid; /* the server's master, while our mules wait for it */
	int master_pidfd;
	bool hold, told_hold;
	int server_fd; /* --zerg-server */
	const struct zerg_share *share;
} z = {.farmq_fd = -1, .farmq_keep = -1, .stats_fd = -1, .master_pidfd = -1, .server_fd = -1};

static bool is_socket_option(enum opt_id id)
{
	return id == OPT_HTTP_SOCKET || id == OPT_HTTP || id == OPT_SOCKET;
}

/* --- addresses ----------------------------------------------------------- */

/* The address <fd> is bound to, as a socket option would name it. */
static void sock_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "";
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		snprintf(buf, len, "fd%d", fd);
	} else if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *u = (const struct sockaddr_un *)&ss;
		snprintf(buf, len, "%s", u->sun_path[0] ? u->sun_path : "(abstract)");
	} else if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "fd%d", fd);
	}
}

static bool same_sockaddr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (a->sa_family != b->ss_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

/* Whether <fd> is bound to <addr> (a socket option's value). */
static bool bound_to(int fd, const char *addr)
{
	bool is_unix;
	char host[256], port[8];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (listener_split(addr, &is_unix, host, sizeof(host), port, sizeof(port)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		return false;
	if (is_unix)
		return ss.ss_family == AF_UNIX &&
		       strcmp(((const struct sockaddr_un *)&ss)->sun_path, addr) == 0;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res;
	hints.ai_family = host[0] == '\0' ? AF_INET : AF_UNSPEC;
	if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0)
		return false;
	bool same = false;
	for (struct addrinfo *a = res; a != NULL && !same; a = a->ai_next)
		same = same_sockaddr(a->ai_addr, &ss);
	freeaddrinfo(res);
	return same;
}

/* --- receiving ------------------------------------------------------------ */

/* One recvmsg() within <deadline_ms>: data into <buf>, fds appended to
 * <fds> (close-on-exec). Returns the byte count (0: the end), or -1. */
static ssize_t recv_some(int fd, void *buf, size_t len, int *fds, int *nfds, int64_t deadline_ms)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * ZERG_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline_ms - mono_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&p, 1, (int)left) < 1)
			continue;
		struct iovec iov = {.iov_base = buf, .iov_len = len};
		struct msghdr msg = {.msg_iov = &iov,
		                     .msg_iovlen = 1,
		                     .msg_control = ctl.b,
		                     .msg_controllen = sizeof(ctl.b)};
		ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n == -1)
			return -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int f;
				memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (*nfds < ZERG_MAX_FDS)
					fds[(*nfds)++] = f;
				else
					close(f);
			}
		}
		if (msg.msg_flags & MSG_CTRUNC) {
			errno = EMSGSIZE; /* fds were lost: do not serve half the sockets */
			return -1;
		}
		return n;
	}
}

static void close_all(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

static int add_received(const int *fds, int n, const char *name, size_t name_len, bool named)
{
	struct received *grown = realloc(z.r, (z.n + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	z.r = grown;
	struct received *r = &z.r[z.n];
	memset(r, 0, sizeof(*r));
	r->fds = malloc((size_t)n * sizeof(int));
	if (r->fds == NULL)
		return -1;
	memcpy(r->fds, fds, (size_t)n * sizeof(int));
	r->nfds = n;
	r->option = -1;
	r->named = named;
	if (named)
		snprintf(r->name, sizeof(r->name), "%.*s", (int)name_len, name);
	else
		sock_name(fds[0], r->name, sizeof(r->name));
	for (int i = 0; i < n; i++) /* uWSGI's pool may hand out blocking sockets */
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
	z.n++;
	return 0;
}

/* Keeps what mulefarm's message describes. Returns 0, or -1 (malformed:
 * the caller keeps uWSGI's part). */
static int apply_extra(const char *buf, size_t len, const int *fds, int nfds)
{
	struct zerg_rec recs[ZERG_MAX_FDS + 8];
	size_t nrecs;
	int want = zerg_wire_parse(buf, len, recs, sizeof(recs) / sizeof(recs[0]), &nrecs);
	if (want != nfds)
		return -1;
	int at = 0;
	for (size_t i = 0; i < nrecs; i++) {
		const struct zerg_rec *r = &recs[i];
		const int *f = fds + at;
		at += r->nfds;
		switch (r->kind) {
		case ZERG_REC_LISTENER:
			if (add_received(f, r->nfds, r->name, r->name_len, true) == -1)
				close_all(f, r->nfds);
			break;
		case ZERG_REC_FARMQ:
			if (z.farmq_fd >= 0)
				close(f[0]); /* several servers: the first one's queues */
			else
				z.farmq_fd = f[0];
			break;
		case ZERG_REC_STATS:
			if (z.stats_fd >= 0)
				close(f[0]);
			else
				z.stats_fd = f[0];
			break;
		case ZERG_REC_MASTER:
			if (z.master_pid > 0) {
				close_all(f, r->nfds);
				break;
			}
			z.master_pid = r->pid;
			z.master_pidfd = r->nfds ? f[0] : -1;
			z.hold = true;
			break;
		}
	}
	return 0;
}

/* Reads both messages from <fd> (see zerg_wire.h). */
static int receive(int fd, const char *from)
{
	int64_t deadline = mono_ms() + CONNECT_TIMEOUT_MS;
	unsigned char head[ZERG_HEAD_LEN];
	int base[ZERG_MAX_FDS], nbase = 0;
	ssize_t n = recv_some(fd, head, sizeof(head), base, &nbase, deadline);
	bool announced;
	if (n <= 0 || zerg_wire_parse_head(head, (size_t)n, &announced) == -1) {
		if (n == -1)
			log_err(errno, "zerg: nothing received from %s", from);
		else
			log_info("zerg: %s did not send the uwsgi-zerg tag", from);
		close_all(base, nbase);
		return -1;
	}
	static char buf[ZERG_EXTRA_MAX];
	int extra[ZERG_MAX_FDS], nextra = 0;
	size_t got = 0;
	while (got < sizeof(buf) && !zerg_wire_complete(buf, got)) {
		n = recv_some(fd, buf + got, sizeof(buf) - got, extra, &nextra, deadline);
		if (n <= 0)
			break; /* a uWSGI server closes after its message */
		got += (size_t)n;
	}
	if (got > 0 && apply_extra(buf, got, extra, nextra) == 0) {
		close_all(base, nbase); /* the same sockets, described */
		log_info("zerg: received %d sockets from %s (described: mulefarm)", nbase, from);
		return 0;
	}
	if (got > 0)
		log_info("zerg: ignoring a malformed mulefarm message from %s", from);
	close_all(extra, nextra);
	for (int i = 0; i < nbase; i++)
		if (add_received(base + i, 1, NULL, 0, false) == -1)
			close(base[i]);
	log_info("zerg: received %d sockets from %s", nbase, from);
	return 0;
}

/* Connects to the zerg server at <path> within the timeout; -1 if absent. */
static int connect_server(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_info("zerg: socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	int64_t deadline = mono_ms() + CONNECT_TIMEOUT_MS;
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if ((errno != EAGAIN && errno != EINTR) || mono_ms() >= deadline) {
			log_err(errno, "zerg: connect() failed on %s", path);
			close(fd);
			return -1;
		}
		struct timespec ts = {0, 20 * 1000 * 1000}; /* the backlog is full */
		nanosleep(&ts, NULL);
	}
	return fd;
}

/* --- mapping -------------------------------------------------------------- */

static void map_one(size_t i, size_t j, bool *mapped, const char *how)
{
	z.r[i].option = (int)j;
	mapped[j] = true;
	log_info("zerg: %s takes the received socket %s (%s)", z.opts[j], z.r[i].name, how);
}

/* The rule in zerg.h: by configured name, by address, then in order. */
static int settle(const struct options *o)
{
	z.opts = calloc(o->n + 1, sizeof(char *));
	bool *mapped = calloc(o->n + 1, sizeof(bool));
	if (z.opts == NULL || mapped == NULL) {
		free(mapped);
		return -1;
	}
	for (size_t i = 0; i < o->n; i++)
		if (is_socket_option(o->entries[i].id) && o->entries[i].value != NULL)
			z.opts[z.nopts++] = o->entries[i].value;
	for (size_t j = 0; j < z.nopts; j++)
		for (size_t i = 0; i < z.n && !mapped[j]; i++)
			if (z.r[i].option == -1 && z.r[i].named &&
			    strcmp(z.r[i].name, z.opts[j]) == 0)
				map_one(i, j, mapped, "the same address text");
	for (size_t j = 0; j < z.nopts; j++)
		for (size_t i = 0; i < z.n && !mapped[j]; i++)
			if (z.r[i].option == -1 && bound_to(z.r[i].fds[0], z.opts[j]))
				map_one(i, j, mapped, "bound there");
	for (size_t j = 0; j < z.nopts; j++)
		for (size_t i = 0; i < z.n && !mapped[j]; i++)
			if (z.r[i].option == -1)
				map_one(i, j, mapped, "in order");
	for (size_t j = 0; j < z.nopts; j++)
		if (!mapped[j])
			log_info("zerg: no received socket for %s: binding it", z.opts[j]);
	free(mapped);
	return 0;
}

int zerg_attach(const struct options *o, bool reloading, bool webless)
{
	int chan = restart_channel();
	if (chan >= 0) {
		if (receive(chan, "the master being replaced") == -1)
			return -1;
	} else if (!webless) {
		for (size_t i = 0; i < o->n; i++) {
			const struct opt_entry *e = &o->entries[i];
			if (e->id != OPT_ZERG || e->value == NULL)
				continue;
			int fd = connect_server(e->value);
			int rc = fd == -1 ? -1 : receive(fd, e->value);
			if (fd != -1)
				close(fd);
			if (rc == 0)
				continue;
			if (!opt_flag(o, OPT_ZERG_FALLBACK) && !reloading) {
				log_info(
				        "zerg: cannot attach to %s (--zerg-fallback binds instead)",
				        e->value);
				return -1;
			}
			log_info("zerg: cannot attach to %s: binding the sockets instead",
			         e->value);
		}
	}
	return z.n > 0 ? settle(o) : 0;
}

bool zerg_attached(void)
{
	return z.n > 0;
}

int zerg_listener(const char *addr, int *fds, int maxfds)
{
	for (size_t j = 0; j < z.nopts; j++) {
		if (strcmp(z.opts[j], addr) != 0)
			continue;
		for (size_t i = 0; i < z.n; i++) {
			struct received *r = &z.r[i];
			if (r->option != (int)j || r->taken || r->nfds > maxfds)
				continue;
			r->taken = true;
			memcpy(fds, r->fds, (size_t)r->nfds * sizeof(int));
			return r->nfds;
		}
	}
	return 0;
}

size_t zerg_unclaimed(void)
{
	size_t n = 0;
	for (size_t i = 0; i < z.n; i++)
		n += z.r[i].option == -1;
	return n;
}

int zerg_take_unclaimed(struct listener *l)
{
	for (size_t i = 0; i < z.n; i++) {
		struct received *r = &z.r[i];
		if (r->option != -1 || r->taken)
			continue;
		r->taken = true;
		l->proto = PROTO_UWSGI; /* uWSGI's default protocol */
		if (listener_adopt(l, r->name, r->fds, r->nfds) == -1)
			return -1;
		log_info("zerg: serving the received socket %s with the uwsgi protocol (no "
		         "--http-socket or --socket names it)",
		         r->name);
		return 0;
	}
	/* The end of open_listeners(): a re-executed master took some from
	 * its predecessor instead. */
	for (size_t i = 0; i < z.n; i++)
		if (!z.r[i].taken) {
			close_all(z.r[i].fds, z.r[i].nfds);
			z.r[i].taken = true;
		}
	return -1;
}

int zerg_farmq_fd(void)
{
	int fd = z.farmq_fd;
	z.farmq_fd = -1;
	if (fd >= 0 && z.hold)
		z.farmq_keep = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return fd;
}

int zerg_stats_fd(const char *stats)
{
	int fd = z.stats_fd;
	z.stats_fd = -1;
	if (fd < 0)
		return -1;
	char loopback[300];
	if (stats != NULL && stats[0] == ':') { /* --stats :port is loopback only */
		snprintf(loopback, sizeof(loopback), "127.0.0.1%s", stats);
		stats = loopback;
	}
	if (stats == NULL || !bound_to(fd, stats)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The server's master is gone: our mules may start, and what it left in
 * queues of another shape moves into ours. */
static void release_mules(void)
{
	z.hold = false;
	if (z.master_pidfd >= 0)
		close(z.master_pidfd);
	z.master_pidfd = -1;
	if (z.told_hold)
		log_info("zerg: the previous master (pid %d) has exited: starting the mules",
		         (int)z.master_pid);
	if (z.farmq_keep < 0)
		return;
	struct stat a, b;
	if (farms != NULL && farms->q != NULL && fstat(z.farmq_keep, &a) == 0 &&
	    fstat(farmq_fd(farms->q), &b) == 0 && (a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
		char err[256];
		struct farmq *old = farmq_attach(z.farmq_keep, err, sizeof(err));
		if (old != NULL) {
			size_t lost = 0, moved = farmq_migrate(old, farms->q, &lost);
			log_info("zerg: moved %zu messages the previous instance left queued "
			         "(%zu had no queue here and are dropped)",
			         moved, lost);
			farmq_close(old);
			z.farmq_keep = -1;
			return;
		}
		log_info("zerg: the previous instance's farm queues are unusable: %s", err);
	}
	close(z.farmq_keep);
	z.farmq_keep = -1;
}

bool zerg_mules_held(void)
{
	if (!z.hold)
		return false;
	bool gone;
	if (z.master_pidfd >= 0) {
		struct pollfd p = {.fd = z.master_pidfd, .events = POLLIN};
		gone = poll(&p, 1, 0) == 1;
	} else {
		gone = kill(z.master_pid, 0) == -1 && errno == ESRCH;
	}
	if (gone) {
		release_mules();
		return false;
	}
	if (!z.told_hold)
		log_info(
		        "zerg: the mules wait for the previous master (pid %d) to exit, so that no "
		        "mule id runs twice",
		        (int)z.master_pid);
	z.told_hold = true;
	return true;
}

/* --- serving --------------------------------------------------------------- */

static int send_fds(int fd, const void *data, size_t len, const int *fds, int nfds)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * ZERG_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds > 0) {
		memset(ctl.b, 0, sizeof(ctl.b));
		msg.msg_control = ctl.b;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n != -1 && (size_t)n != len) {
		errno = EMSGSIZE;
		return -1;
	}
	return n == -1 ? -1 : 0;
}

static int pidfd_self(void)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, getpid(), 0);
#else
	return -1;
#endif
}

/* mulefarm's message: every fd of every listener, then the extras. */
static int send_extra(int fd, const struct zerg_share *share)
{
	static char buf[ZERG_EXTRA_MAX];
	int fds[ZERG_MAX_FDS], n = 0, pidfd = -1;
	size_t len = 0;
	const struct listeners *ls = share->ls;
	for (size_t i = 0; ls != NULL && i < ls->n; i++) {
		const struct listener *l = &ls->l[i];
		int k = l->worker_fds ? l->n_worker_fds : 1;
		if (n + k > ZERG_MAX_FDS - 3 ||
		    zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_LISTENER, k, 0, l->name) == -1)
			return -1;
		for (int j = 0; j < k; j++)
			fds[n++] = l->worker_fds ? l->worker_fds[j] : l->fd;
	}
	int rc = -1;
	if (share->farmq_fd >= 0) {
		if (zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_FARMQ, 1, 0, NULL) == -1)
			goto out;
		fds[n++] = share->farmq_fd;
	}
	if (share->stats_fd != NULL && *share->stats_fd >= 0) {
		if (zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_STATS, 1, 0, NULL) == -1)
			goto out;
		fds[n++] = *share->stats_fd;
	}
	if (share->has_mules) {
		pidfd = pidfd_self();
		if (zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_MASTER, pidfd >= 0,
		                  (int)getpid(), NULL) == -1)
			goto out;
		if (pidfd >= 0)
			fds[n++] = pidfd;
	}
	if (zerg_wire_end(buf, sizeof(buf), &len) == -1)
		goto out;
	rc = send_fds(fd, buf, len, fds, n);
out:
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}

int zerg_send(int fd, const struct zerg_share *share)
{
	int fds[ZERG_MAX_FDS], n = 0;
	const struct listeners *ls = share->ls;
	for (size_t i = 0; ls != NULL && i < ls->n && n < ZERG_MAX_FDS; i++)
		fds[n++] = ls->l[i].fd;
	unsigned char head[ZERG_HEAD_LEN];
	zerg_wire_head(head, n);
	if (send_fds(fd, head, sizeof(head), fds, n) == -1)
		return -1;
	/* A uWSGI client closes once it has read its part: EPIPE is fine. */
	if (send_extra(fd, share) == -1 && errno != EPIPE && errno != ECONNRESET)
		return -1;
	return 0;
}

/* Binds the unix socket <path> with <mode> (octal text): never reachable
 * by anyone else, even between bind() and chmod(). */
static int bind_unix(const char *path, const char *mode, int backlog)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	if (strlen(mode) < 3 || strlen(mode) > 4 || strspn(mode, "01234567") != strlen(mode)) {
		log_info("invalid --chmod-zerg mode '%s' (want octal, e.g. 600)", mode);
		return -1;
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_info("zerg: socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a stale socket, or the one of the instance we replace */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_err(errno, "socket() failed for %s", path);
		return -1;
	}
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	int saved = errno;
	umask(old);
	if (rc == -1) {
		log_err(saved, "bind() failed on %s", path);
	} else if (chmod(path, (mode_t)strtol(mode, NULL, 8)) == -1) {
		log_err(errno, "chmod() failed on %s", path);
		rc = -1;
	} else if (listen(fd, backlog) == -1) {
		log_err(errno, "listen() failed on %s", path);
		rc = -1;
	}
	if (rc == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int zerg_server_open(const struct options *o, const struct zerg_share *share)
{
	z.share = share;
	const char *path = opt_str(o, OPT_ZERG_SERVER);
	if (path == NULL || share->ls == NULL)
		return 0; /* mulefarm-handler: no sockets to hand out */
	const char *mode = opt_str(o, OPT_CHMOD_ZERG);
	z.server_fd = bind_unix(path, mode, (int)opt_int(o, OPT_LISTEN));
	if (z.server_fd == -1)
		return -1;
	proc_close_in_children(z.server_fd);
	log_info("zerg server on %s (mode %s)", path, mode);
	return 0;
}

/* Serves the clients waiting on <fd>: each gets the sockets, then EOF. */
static void serve_clients(int fd, const struct zerg_share *share)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c == -1) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_err(errno, "zerg: accept4() failed");
			return;
		}
		struct ucred cr = {0};
		socklen_t cl = sizeof(cr);
		getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
		if (zerg_send(c, share) == -1)
			log_err(errno, "zerg: cannot hand the sockets to pid %d", (int)cr.pid);
		else
			log_info("zerg: handed %zu sockets to pid %d", share->ls ? share->ls->n : 0,
			         (int)cr.pid);
		close(c);
	}
}

size_t zerg_poll_prepare(struct pollfd *pfd, int *timeout_ms)
{
	size_t n = 0;
	if (z.server_fd >= 0)
		pfd[n++] = (struct pollfd){.fd = z.server_fd, .events = POLLIN};
	if (z.hold && z.master_pidfd >= 0)
		pfd[n++] = (struct pollfd){.fd = z.master_pidfd, .events = POLLIN};
	else if (z.hold && (*timeout_ms < 0 || *timeout_ms > HOLD_POLL_MS))
		*timeout_ms = HOLD_POLL_MS;
	return n + restart_poll_prepare(pfd + n, timeout_ms);
}

enum zerg_event zerg_poll_done(const struct pollfd *pfd, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (pfd[i].revents == 0)
			continue;
		if (pfd[i].fd == z.server_fd)
			serve_clients(z.server_fd, z.share);
		else if (z.hold && pfd[i].fd == z.master_pidfd)
			zerg_mules_held(); /* releases them */
	}
	if (z.hold && z.master_pidfd < 0)
		zerg_mules_held();
	return restart_poll_done(pfd, n);
}

bool zerg_reaped(pid_t pid, int status)
{
	return restart_reaped(pid, status);
}

/* --- the standalone pool ---------------------------------------------------- */

struct pool {
	int fd;
	struct listeners ls;
	struct zerg_share share;
};

static volatile sig_atomic_t pool_stop;

static void on_pool_signal(int sig)
{
	pool_stop = sig;
}

/* "path:addr1,addr2": binds the addresses, then the pool socket. */
static int pool_open(struct pool *p, const char *spec, const struct options *o)
{
	const char *colon = strchr(spec, ':');
	if (colon == NULL || colon == spec || colon[1] == '\0') {
		log_info("invalid --zergpool '%s' (want PATH:addr1,addr2)", spec);
		return -1;
	}
	char path[256], *addrs = strdup(colon + 1), *save = NULL;
	snprintf(path, sizeof(path), "%.*s", (int)(colon - spec), spec);
	size_t n = 1;
	for (const char *c = colon + 1; *c; c++)
		n += *c == ',';
	p->ls.l = calloc(n, sizeof(struct listener));
	if (addrs == NULL || p->ls.l == NULL) {
		free(addrs);
		return -1;
	}
	const char *mode = opt_given(o, OPT_CHMOD_SOCKET) ? opt_str(o, OPT_CHMOD_SOCKET) : NULL;
	for (char *a = strtok_r(addrs, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save)) {
		struct listener *l = &p->ls.l[p->ls.n];
		if (listener_open(l, a, (int)opt_int(o, OPT_LISTEN), mode,
		                  opt_str(o, OPT_CHOWN_SOCKET)) == -1) {
			free(addrs);
			return -1;
		}
		p->ls.n++;
		log_info("zergpool %s: bound %s (fd %d)", path, l->name, l->fd);
	}
	free(addrs);
	p->share = (struct zerg_share){.ls = &p->ls, .farmq_fd = -1};
	p->fd = bind_unix(path, opt_str(o, OPT_CHMOD_ZERG), (int)opt_int(o, OPT_LISTEN));
	if (p->fd == -1)
		return -1;
	log_info("zergpool on %s (mode %s): %zu sockets", path, opt_str(o, OPT_CHMOD_ZERG),
	         p->ls.n);
	return 0;
}

int zergpool_run(const struct options *o)
{
	log_set_identity("zergpool", 0);
	size_t n = 0;
	for (size_t i = 0; i < o->n; i++)
		n += o->entries[i].id == OPT_ZERGPOOL;
	struct pool *pools = calloc(n, sizeof(*pools));
	struct pollfd *pfd = calloc(n, sizeof(*pfd));
	if (pools == NULL || pfd == NULL)
		return 1;
	size_t k = 0;
	for (size_t i = 0; i < o->n; i++)
		if (o->entries[i].id == OPT_ZERGPOOL &&
		    pool_open(&pools[k++], o->entries[i].value ? o->entries[i].value : "", o) == -1)
			return 1;
	struct sigaction sa = {.sa_handler = on_pool_signal}; /* no SA_RESTART: poll() wakes */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	const char *pidfile = opt_str(o, OPT_PIDFILE);
	if (pidfile != NULL && daemon_write_pidfile(pidfile) == -1)
		return 1;
	while (!pool_stop) {
		for (size_t i = 0; i < n; i++)
			pfd[i] = (struct pollfd){.fd = pools[i].fd, .events = POLLIN};
		if (poll(pfd, n, -1) == -1)
			continue;
		for (size_t i = 0; i < n; i++)
			if (pfd[i].revents)
				serve_clients(pools[i].fd, &pools[i].share);
	}
	log_info("signal %d: bye", (int)pool_stop);
	if (pidfile != NULL)
		daemon_remove_pidfile(pidfile);
	return 0;
}
