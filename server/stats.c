/*
 * stats.c - the stats server's JSON snapshot, its socket, and --top.
 *
 * The snapshot follows uWSGI's stats server (core/master_utils.c,
 * uwsgi_master_generate_stats) key for key where mulefarm has the value,
 * and writes a neutral 0 / [] / {} where it has not, so that every key
 * uwsgitop dereferences (and those exporters read) is there.
 * mulefarm's own additions: "mulefarm", "uptime", "mules" and "farms".
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/dbfarm.h"
#include "mulefarm/jsonval.h"
#include "mulefarm/listener.h"
#include "mulefarm/log.h"
#include "mulefarm/stats.h"

#define STATS_BACKLOG    64
#define STATS_SEND_MS    1000 /* a client that does not read is dropped */
#define STATS_HEAD_MS    100  /* --stats-http: wait this long for a request head */
#define STATS_HEAD_MAX   8192
#define TOP_MAX_SNAPSHOT (64u << 20)
#define TOP_IO_TIMEOUT_S 5

static int64_t clock_ms(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Output buffer. An allocation failure is sticky: every later append is a
 * no-op and stats_json() returns NULL at the end.
 */

struct jbuf {
	char *p;
	size_t len, cap;
	bool failed;
};

static bool jb_reserve(struct jbuf *b, size_t more)
{
	if (b->failed)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1) {
		if (cap > SIZE_MAX / 2)
			goto fail;
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (p == NULL)
		goto fail;
	b->p = p;
	b->cap = cap;
	return true;
fail:
	b->failed = true;
	return false;
}

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
	if (!jb_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void jb_puts(struct jbuf *b, const char *s)
{
	jb_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void jb_printf(struct jbuf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		jb_put(b, small, (size_t)n);
		return;
	}
	if (!jb_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at <s> (<n> bytes available) and its
 * code point in *cp, or 0 when it is not one (overlong, surrogate, above
 * U+10FFFF, truncated, stray continuation byte). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t len;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		c = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		c = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/*
 * Appends <s> (<n> bytes) as a quoted JSON string. The output is pure
 * ASCII: control characters and every non-ASCII character are \u escapes
 * (surrogate pairs above U+FFFF), and a byte that is not valid UTF-8 (a
 * URI may hold any byte) becomes U+FFFD. Pure ASCII also spares readers
 * that decode the stream in chunks (uwsgitop decodes each 4 KiB recv())
 * a character split across two chunks.
 */
static void jb_str(struct jbuf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	jb_put(b, "\"", 1);
	while (i < n) {
		size_t run = i;
		while (run < n && u[run] >= 0x20 && u[run] < 0x7f && u[run] != '"' &&
		       u[run] != '\\')
			run++;
		jb_put(b, s + i, run - i);
		if (run == n)
			break;
		i = run;
		uint32_t cp;
		size_t len = utf8_decode(u + i, n - i, &cp);
		if (len == 0) {
			cp = 0xfffd;
			len = 1;
		}
		i += len;
		switch (cp) {
		case '"':
			jb_put(b, "\\\"", 2);
			break;
		case '\\':
			jb_put(b, "\\\\", 2);
			break;
		case '\n':
			jb_put(b, "\\n", 2);
			break;
		case '\r':
			jb_put(b, "\\r", 2);
			break;
		case '\t':
			jb_put(b, "\\t", 2);
			break;
		default:
			if (cp >= 0x10000) {
				cp -= 0x10000;
				jb_printf(b, "\\u%04x\\u%04x", 0xd800 + (unsigned)(cp >> 10),
				          0xdc00 + (unsigned)(cp & 0x3ff));
			} else {
				jb_printf(b, "\\u%04x", (unsigned)cp);
			}
		}
	}
	jb_put(b, "\"", 1);
}

/* A field of a shared entry that its owner may be rewriting: copied first,
 * so that the length and the bytes written agree. */
static size_t copy_field(char *dst, const char *src, size_t size)
{
	memcpy(dst, src, size);
	return strnlen(dst, size);
}

/*
 * The snapshot's parts.
 */

/* Accept-queue length and limit of <l>, summed over its --reuse-port
 * sockets. On Linux, TCP_INFO on a LISTEN socket reports the accept queue
 * in tcpi_unacked and the backlog in tcpi_sacked. Unix sockets expose no
 * queue length: 0, with the configured backlog as the limit. */
static void listen_queue(const struct listener *l, uint64_t *queue, uint64_t *max)
{
	*queue = 0;
	*max = 0;
	if (l->is_unix) {
		*max = l->backlog > 0 ? (uint64_t)l->backlog : 0;
		return;
	}
	int n = l->worker_fds != NULL ? l->n_worker_fds : 1;
	for (int i = 0; i < n; i++) {
		struct tcp_info ti;
		socklen_t len = sizeof(ti);
		int fd = l->worker_fds != NULL ? l->worker_fds[i] : l->fd;
		memset(&ti, 0, sizeof(ti));
		if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1 ||
		    ti.tcpi_state != TCP_LISTEN)
			continue;
		*queue += ti.tcpi_unacked;
		*max += ti.tcpi_sacked;
	}
}

static uint64_t put_sockets(struct jbuf *b, const struct listeners *ls)
{
	uint64_t total = 0;
	jb_puts(b, "\"sockets\":[");
	for (size_t i = 0; ls != NULL && i < ls->n; i++) {
		const struct listener *l = &ls->l[i];
		uint64_t queue, max;
		listen_queue(l, &queue, &max);
		total += queue;
		jb_puts(b, i ? ",{\"name\":" : "{\"name\":");
		jb_str(b, l->name, strnlen(l->name, sizeof(l->name)));
		jb_printf(b,
		          ",\"proto\":\"%s\",\"queue\":%llu,\"max_queue\":%llu,\"shared\":0,"
		          "\"can_offload\":0}",
		          l->proto == PROTO_HTTP ? "http" : "uwsgi", (unsigned long long)queue,
		          (unsigned long long)max);
	}
	jb_puts(b, "],");
	return total;
}

/*
 * Status words, as uWSGI writes them so that uwsgitop colours them:
 *   "cheap"    no process in this slot (pid 0, or SB_DEAD before the master
 *              reaped it): uWSGI's word for a worker slot without a
 *              process; uwsgitop shows it in magenta;
 *   "busy"     running a request (SB_BUSY, or any of its threads is);
 *   "stopping" finishing its requests before exiting (mulefarm's own word:
 *              uwsgitop prints any status string as it is);
 *   "idle"     otherwise.
 */
static const char *status_word(pid_t pid, int status, bool in_request)
{
	if (pid <= 0 || status == SB_DEAD)
		return "cheap";
	if (status == SB_STOPPING)
		return "stopping";
	if (status == SB_BUSY || in_request)
		return "busy";
	return "idle";
}

/* One uWSGI "core" per request thread. mulefarm does not count requests
 * per thread (0). A thread in a request lists its method and URI in "vars"
 * as uWSGI does (KEY=value) and its start in "req_info". */
static void put_core(struct jbuf *b, const struct sb_slot *s, int id, int64_t now_mono,
                     int64_t now_real)
{
	int64_t started = s->started_ms;
	jb_printf(b,
	          "{\"id\":%d,\"requests\":0,\"static_requests\":0,\"routed_requests\":0,"
	          "\"offloaded_requests\":0,\"write_errors\":0,\"read_errors\":0,"
	          "\"in_request\":%d,\"vars\":[",
	          id, started != 0);
	if (started == 0) {
		jb_puts(b, "],\"req_info\":{}}");
		return;
	}
	char method[SB_METHOD_MAX + 16], uri[SB_URI_MAX + 16];
	size_t mlen = copy_field(method + 15, s->method, SB_METHOD_MAX);
	size_t ulen = copy_field(uri + 12, s->uri, SB_URI_MAX);
	memcpy(method, "REQUEST_METHOD=", 15);
	memcpy(uri, "REQUEST_URI=", 12);
	jb_str(b, method, 15 + mlen);
	jb_puts(b, ",");
	jb_str(b, uri, 12 + ulen);
	int64_t start_real = now_real - (now_mono - started);
	jb_printf(b, "],\"req_info\":{\"request_start\":%lld}}", (long long)(start_real / 1000));
}

/*
 * A worker as uWSGI describes one. Units as uWSGI's: avg_rt in
 * microseconds, rss and vsz in bytes, last_spawn in unix seconds,
 * running_time in microseconds. mulefarm does not measure vsz (0, as
 * uWSGI without --memory-report), signals (0) or running_time, estimated
 * as requests x avg_rt; delta_requests is the worker's request count.
 */
static void put_worker(struct jbuf *b, const struct scoreboard *sb, int i, int64_t now_mono,
                       int64_t now_real)
{
	const struct sb_worker *w = &sb->workers[i];
	const struct sb_slot *slots = &sb->slots[(size_t)i * (size_t)sb->nthreads];
	bool in_request = false;
	for (int t = 0; t < sb->nthreads; t++)
		in_request |= slots[t].started_ms != 0;
	pid_t pid = w->pid;
	uint64_t requests = w->requests, avg_rt = w->avg_rt_us;

	jb_printf(b,
	          "{\"id\":%d,\"pid\":%d,\"accepting\":%d,\"requests\":%llu,"
	          "\"delta_requests\":%llu,\"exceptions\":%llu,\"harakiri_count\":%llu,"
	          "\"signals\":0,\"signal_queue\":0,\"status\":\"%s\",\"rss\":%llu,\"vsz\":0,",
	          w->id, pid > 0 ? (int)pid : 0, pid > 0 && w->accepting ? 1 : 0,
	          (unsigned long long)requests, (unsigned long long)requests,
	          (unsigned long long)w->exceptions, (unsigned long long)w->harakiri_count,
	          status_word(pid, w->status, in_request), (unsigned long long)w->rss_bytes);
	jb_printf(b,
	          "\"running_time\":%llu,\"last_spawn\":%lld,\"respawn_count\":%llu,"
	          "\"tx\":%llu,\"avg_rt\":%llu,\"apps\":[],\"cores\":[",
	          (unsigned long long)(requests * avg_rt), (long long)w->last_spawn,
	          (unsigned long long)w->respawn_count, (unsigned long long)w->tx_bytes,
	          (unsigned long long)avg_rt);
	for (int t = 0; t < sb->nthreads; t++) {
		if (t > 0)
			jb_puts(b, ",");
		put_core(b, &slots[t], t, now_mono, now_real);
	}
	jb_puts(b, "]}");
}

/* The farm names of a mule, from its comma-separated list. */
static void put_farm_names(struct jbuf *b, const char *farms)
{
	char list[SB_FARMS_MAX];
	size_t len = copy_field(list, farms, sizeof(list));
	size_t i = 0;
	bool first = true;

	jb_puts(b, "[");
	while (i < len) {
		size_t end = i;
		while (end < len && list[end] != ',')
			end++;
		size_t s = i, e = end;
		while (s < e && list[s] == ' ')
			s++;
		while (e > s && list[e - 1] == ' ')
			e--;
		if (e > s) {
			if (!first)
				jb_puts(b, ",");
			jb_str(b, list + s, e - s);
			first = false;
		}
		i = end + 1;
	}
	jb_puts(b, "]");
}

/* A mule: its own queue is the farmq queue "mule:<id>". */
static void put_mule(struct jbuf *b, struct farmq *q, const struct sb_mule *m)
{
	struct farmq_stats st = {0};
	if (q != NULL) {
		char name[32];
		snprintf(name, sizeof(name), "mule:%d", m->id);
		int qi = farmq_find(q, name);
		if (qi >= 0)
			farmq_stats(q, (size_t)qi, &st);
	}
	pid_t pid = m->pid;
	jb_printf(b,
	          "{\"id\":%d,\"pid\":%d,\"status\":\"%s\",\"messages\":%llu,\"queue\":%zu,"
	          "\"respawn_count\":%llu,\"last_spawn\":%lld,\"farms\":",
	          m->id, pid > 0 ? (int)pid : 0, status_word(pid, m->status, false),
	          (unsigned long long)m->messages, st.depth, (unsigned long long)m->respawn_count,
	          (long long)m->last_spawn);
	put_farm_names(b, m->farms);
	jb_puts(b, "}");
}

static void put_farms(struct jbuf *b, struct farmq *q)
{
	bool first = true;
	size_t n = q != NULL ? farmq_nqueues(q) : 0;

	jb_puts(b, "\"farms\":[");
	for (size_t i = 0; i < n; i++) {
		const char *name = farmq_name(q, i);
		if (name == NULL || strncmp(name, "mule:", 5) == 0)
			continue;
		struct farmq_stats st = {0};
		farmq_stats(q, i, &st);
		jb_puts(b, first ? "{\"name\":" : ",{\"name\":");
		jb_str(b, name, strnlen(name, FARMQ_NAME_MAX));
		jb_printf(b,
		          ",\"depth\":%zu,\"bytes\":%zu,\"oldest_age\":%.3f,\"pushed\":%llu,"
		          "\"delivered\":%llu,\"rejected\":%llu}",
		          st.depth, st.bytes, (double)st.oldest_ms / 1000.0,
		          (unsigned long long)st.pushed, (unsigned long long)st.delivered,
		          (unsigned long long)st.rejected);
		first = false;
	}
	jb_puts(b, "]");
}

char *stats_json(const struct scoreboard *sb, struct farmq *q, const struct listeners *ls,
                 const char *version)
{
	struct jbuf b = {0};
	char cwd[PATH_MAX];
	int64_t now_mono = clock_ms(CLOCK_MONOTONIC), now_real = clock_ms(CLOCK_REALTIME);

	if (getcwd(cwd, sizeof(cwd)) == NULL)
		cwd[0] = '\0';
	jb_puts(&b, "{\"version\":");
	jb_str(&b, version ? version : "", version ? strlen(version) : 0);
	/* The sockets come first in the text but their sum is a top-level
	 * field: render them aside, then splice. */
	struct jbuf socks = {0};
	uint64_t lq = put_sockets(&socks, ls);
	jb_printf(&b,
	          ",\"mulefarm\":true,\"listen_queue\":%llu,\"listen_queue_errors\":0,"
	          "\"signal_queue\":0,\"load\":%llu,\"pid\":%d,\"uid\":%u,\"gid\":%u,\"cwd\":",
	          (unsigned long long)lq, (unsigned long long)lq, (int)sb->master_pid,
	          (unsigned)getuid(), (unsigned)getgid());
	jb_str(&b, cwd, strlen(cwd));
	jb_printf(&b, ",\"uptime\":%lld,\"locks\":[],",
	          (long long)(now_real / 1000 - sb->start_time));
	if (socks.failed)
		b.failed = true;
	else
		jb_put(&b, socks.p, socks.len);
	free(socks.p);

	jb_puts(&b, "\"workers\":[");
	for (int i = 0; i < sb->nworkers; i++) {
		if (i > 0)
			jb_puts(&b, ",");
		put_worker(&b, sb, i, now_mono, now_real);
	}
	jb_puts(&b, "],\"mules\":[");
	for (int i = 0; i < sb->nmules; i++) {
		if (i > 0)
			jb_puts(&b, ",");
		put_mule(&b, q, &sb->mules[i]);
	}
	jb_puts(&b, "],");
	put_farms(&b, q);
	char *db = dbfarm_stats_json(); /* database farms: their queue figures */
	if (db != NULL) {
		jb_puts(&b, ",\"dbfarms\":");
		jb_puts(&b, db);
		free(db);
	}
	jb_puts(&b, "}");
	if (b.failed) {
		free(b.p);
		errno = ENOMEM;
		return NULL;
	}
	return b.p;
}

/*
 * The stats socket.
 */

static int listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "stats socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a stale socket from an earlier run */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket() failed for %s: %s", path, strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, STATS_BACKLOG) == -1) {
		snprintf(err, errlen, "bind() failed on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int listen_tcp(const char *addr, const char *host, const char *port, char *err,
                      size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res;
	int one = 1, fd = -1;

	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	/* No TCP_DEFER_ACCEPT, unlike the application listeners: a stats
	 * client connects and reads without sending anything. */
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket() failed for %s: %s", addr, strerror(errno));
		goto done;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 || listen(fd, STATS_BACKLOG) == -1) {
		snprintf(err, errlen, "bind() failed on %s: %s", addr, strerror(errno));
		close(fd);
		fd = -1;
	}
done:
	freeaddrinfo(res);
	return fd;
}

int stats_listen(const char *addr, char *err, size_t errlen)
{
	bool is_unix;
	char host[256], port[8];

	if (listener_split(addr, &is_unix, host, sizeof(host), port, sizeof(port)) == -1) {
		snprintf(err, errlen,
		         "invalid stats address '%s' (want host:port, :port or a unix socket path)",
		         addr);
		return -1;
	}
	if (is_unix)
		return listen_unix(addr, err, errlen);
	/* ":port" is loopback here, not every interface as for --socket: the
	 * snapshot shows paths, pids and URIs. */
	return listen_tcp(addr, host[0] ? host : "127.0.0.1", port, err, errlen);
}

/* Waits for <events> on <fd> until <deadline> (monotonic ms). Returns > 0
 * when ready, 0 on timeout, -1 on error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - clock_ms(CLOCK_MONOTONIC);
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int rc = poll(&p, 1, (int)left);
		if (rc == -1 && errno == EINTR)
			continue;
		return rc;
	}
}

/* --stats-http: reads the request head, so that closing the connection
 * does not reset it with the request unread. Best effort: it waits
 * STATS_HEAD_MS at most and answers whatever the request was. */
static void discard_request_head(int fd)
{
	char buf[STATS_HEAD_MAX];
	size_t len = 0;
	int64_t deadline = clock_ms(CLOCK_MONOTONIC) + STATS_HEAD_MS;

	while (len < sizeof(buf)) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n == 0)
			return;
		if (n > 0) {
			len += (size_t)n;
			if (memmem(buf, len, "\r\n\r\n", 4) != NULL || memmem(buf, len, "\n\n", 2))
				return;
			continue;
		}
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) || wait_fd(fd, POLLIN, deadline) <= 0)
			return;
	}
}

/* Writes all of <iov> before <deadline>; returns 0 or -1. */
static int send_all(int fd, struct iovec *iov, int iovcnt, int64_t deadline)
{
	while (iovcnt > 0) {
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
			    wait_fd(fd, POLLOUT, deadline) <= 0)
				return -1;
			continue;
		}
		size_t done = (size_t)n;
		while (iovcnt > 0 && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return 0;
}

static void serve_one(int fd, bool http, const char *json)
{
	char head[128];
	struct iovec iov[2];
	int n = 0;
	size_t len = strlen(json);

	if (http) {
		discard_request_head(fd);
		int hl = snprintf(head, sizeof(head),
		                  "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
		                  "Content-Length: %zu\r\n\r\n",
		                  len);
		iov[n++] = (struct iovec){.iov_base = head, .iov_len = (size_t)hl};
	}
	iov[n++] = (struct iovec){.iov_base = (void *)json, .iov_len = len};
	if (send_all(fd, iov, n, clock_ms(CLOCK_MONOTONIC) + STATS_SEND_MS) == -1)
		return;
	/* The end of the snapshot is EOF: say it, then drop anything the
	 * client sent that is already here (unread data turns close() into a
	 * reset, which may discard the snapshot on the client's side). */
	shutdown(fd, SHUT_WR);
	char sink[512];
	while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
}

void stats_serve(int fd, bool http, const char *json)
{
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_err(errno, "accept4() failed on the stats socket");
			return;
		}
		if (json != NULL)
			serve_one(c, http, json);
		close(c);
	}
}

/*
 * --top
 */

static int connect_addr(const char *addr, char *err, size_t errlen)
{
	bool is_unix;
	char host[256], port[8];
	struct timeval tv = {.tv_sec = TOP_IO_TIMEOUT_S};
	int fd = -1;

	if (listener_split(addr, &is_unix, host, sizeof(host), port, sizeof(port)) == -1) {
		snprintf(err, errlen, "invalid stats address '%s'", addr);
		return -1;
	}
	if (is_unix) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		if (strlen(addr) >= sizeof(sun.sun_path)) {
			snprintf(err, errlen, "stats socket path too long: %s", addr);
			return -1;
		}
		memcpy(sun.sun_path, addr, strlen(addr) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd != -1 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			goto connected;
		snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(errno));
		goto fail;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res;
	int rc = getaddrinfo(host[0] ? host : "127.0.0.1", port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	int saved = 0;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			saved = errno;
			continue;
		}
		/* SO_SNDTIMEO also bounds connect() on Linux. */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1) {
		snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(saved));
		return -1;
	}
connected:
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
fail:
	if (fd != -1)
		close(fd);
	return -1;
}

/* Reads what <addr> sends, to EOF, after sending <request> (if not NULL).
 * Returns it malloc()ed, or NULL with a message in <err>. */
static char *fetch_once(const char *addr, const char *request, size_t *lenp, char *err,
                        size_t errlen)
{
	int fd = connect_addr(addr, err, errlen);
	size_t len = 0, cap = 65536;
	char *buf = NULL;

	if (fd == -1)
		return NULL;
	if (request != NULL && send(fd, request, strlen(request), MSG_NOSIGNAL) == -1) {
		snprintf(err, errlen, "writing to %s: %s", addr, strerror(errno));
		goto fail;
	}
	buf = malloc(cap);
	if (buf == NULL)
		goto nomem;
	for (;;) {
		if (len == cap) {
			char *p = cap < TOP_MAX_SNAPSHOT ? realloc(buf, cap * 2) : NULL;
			if (p == NULL)
				goto nomem;
			buf = p;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n == 0)
			break;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "reading from %s: %s", addr,
			         errno == EAGAIN ? "timed out" : strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	close(fd);
	*lenp = len;
	return buf;
nomem:
	snprintf(err, errlen, "reading from %s: %s", addr, strerror(ENOMEM));
fail:
	free(buf);
	close(fd);
	return NULL;
}

/* One snapshot from <addr>. A plain stats server writes it on connect;
 * mulefarm's --stats-http too (after a short wait for a request), but
 * uWSGI's --stats-http closes without a word until it gets a request: an
 * empty answer is retried with one. Nothing is sent first, since a plain
 * server that closes with a request unread may reset the connection. An
 * HTTP head is skipped. */
static char *fetch_snapshot(const char *addr, size_t *lenp, char *err, size_t errlen)
{
	size_t len;
	char *buf = fetch_once(addr, NULL, &len, err, errlen);

	if (buf != NULL && len == 0) {
		free(buf);
		buf = fetch_once(addr, "GET / HTTP/1.0\r\n\r\n", &len, err, errlen);
	}
	if (buf == NULL)
		return NULL;
	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		char *body = memmem(buf, len, "\r\n\r\n", 4);
		size_t skip = body != NULL ? (size_t)(body + 4 - buf) : len;
		memmove(buf, buf + skip, len - skip);
		len -= skip;
	}
	*lenp = len;
	return buf;
}

/* <s> with control characters (a terminal would obey them) made '?'. */
static const char *printable(const char *s, char *out, size_t size)
{
	size_t i = 0;
	for (; s[i] != '\0' && i + 1 < size; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	out[i] = '\0';
	return out;
}

static const char *human_size(long long n, char *out, size_t size)
{
	if (n >= 1LL << 30)
		snprintf(out, size, "%.1fG", (double)n / (1 << 30));
	else if (n >= 1 << 20)
		snprintf(out, size, "%.1fM", (double)n / (1 << 20));
	else if (n >= 1 << 10)
		snprintf(out, size, "%.1fK", (double)n / (1 << 10));
	else
		snprintf(out, size, "%lld", n);
	return out;
}

static const char *duration(long long s, char *out, size_t size)
{
	if (s < 0)
		snprintf(out, size, "?");
	else if (s >= 86400)
		snprintf(out, size, "%lldd%02lldh%02lldm", s / 86400, s / 3600 % 24, s / 60 % 60);
	else if (s >= 3600)
		snprintf(out, size, "%lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(out, size, "%lldm%02llds", s / 60, s % 60);
	return out;
}

static void render_workers(const struct jval *workers)
{
	char c1[64], c2[32];
	printf("%4s %8s %-8s %10s %6s %9s %8s %8s %8s\n", "WID", "PID", "STATUS", "REQ", "EXC",
	       "AVG(ms)", "RSS", "HARAKIRI", "RESPAWNS");
	for (size_t i = 0; workers != NULL && i < workers->n; i++) {
		const struct jval *w = &workers->items[i];
		printf("%4lld %8lld %-8s %10lld %6lld %9.1f %8s %8lld %8lld\n",
		       json_int(w, "id", 0), json_int(w, "pid", 0),
		       printable(json_str(w, "status", "?"), c1, 9), json_int(w, "requests", 0),
		       json_int(w, "exceptions", 0), json_num(w, "avg_rt", 0) / 1000.0,
		       human_size(json_int(w, "rss", 0), c2, sizeof(c2)),
		       json_int(w, "harakiri_count", 0), json_int(w, "respawn_count", 0));
	}
}

static void render_mules(const struct jval *mules)
{
	char c1[16], names[SB_FARMS_MAX], c3[SB_FARMS_MAX];
	printf("\n%4s %8s %-8s %10s %6s %s\n", "MULE", "PID", "STATUS", "MSGS", "QUEUE", "FARMS");
	for (size_t i = 0; i < mules->n; i++) {
		const struct jval *m = &mules->items[i], *farms = json_arr(m, "farms");
		size_t len = 0;
		names[0] = '\0';
		for (size_t f = 0; farms != NULL && f < farms->n && len < sizeof(names); f++)
			if (farms->items[f].type == JSTR)
				len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
				                        len ? "," : "", farms->items[f].str);
		printf("%4lld %8lld %-8s %10lld %6lld %s\n", json_int(m, "id", 0),
		       json_int(m, "pid", 0), printable(json_str(m, "status", "?"), c1, 9),
		       json_int(m, "messages", 0), json_int(m, "queue", 0),
		       printable(names, c3, sizeof(c3)));
	}
}

static void render_farms(const struct jval *farms)
{
	char c1[FARMQ_NAME_MAX + 1];
	printf("\n%-24s %8s %10s %10s %9s\n", "FARM", "DEPTH", "OLDEST(s)", "DELIVERED",
	       "REJECTED");
	for (size_t i = 0; i < farms->n; i++) {
		const struct jval *f = &farms->items[i];
		printf("%-24s %8lld %10.1f %10lld %9lld\n",
		       printable(json_str(f, "name", "?"), c1, sizeof(c1)), json_int(f, "depth", 0),
		       json_num(f, "oldest_age", 0), json_int(f, "delivered", 0),
		       json_int(f, "rejected", 0));
	}
}

/* Prints one screen from a snapshot; -1 (after an error line) if it is
 * not one. Reads uWSGI's snapshots too (no uptime, mules or farms). */
static int render(const char *addr, const char *snap, size_t len)
{
	struct jval root;
	size_t at;
	char ver[64], up[32], when[32];

	int rc = json_parse(snap, len, &root, &at);
	if (rc == 0 && root.type != JOBJ) {
		json_free(&root);
		at = 0;
		rc = -1;
	}
	if (rc == -1) {
		printf("mulefarm top: malformed snapshot from %s (%zu bytes, error at byte %zu)\n",
		       addr, len, at);
		return -1;
	}
	const struct jval *workers = json_arr(&root, "workers");
	const struct jval *mules = json_arr(&root, "mules");
	const struct jval *farms = json_arr(&root, "farms");
	long long total = 0;
	for (size_t i = 0; workers != NULL && i < workers->n; i++)
		total += json_int(&workers->items[i], "requests", 0);
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&now, &tm));
	printf("%s %s - %s - master pid %lld - uptime %s - listen queue %lld - requests %lld\n",
	       json_get(&root, "mulefarm") != NULL ? "mulefarm" : "uwsgi",
	       printable(json_str(&root, "version", ""), ver, sizeof(ver)), when,
	       json_int(&root, "pid", 0), duration(json_int(&root, "uptime", -1), up, sizeof(up)),
	       json_int(&root, "listen_queue", 0), total);
	render_workers(workers);
	if (mules != NULL && mules->n > 0)
		render_mules(mules);
	if (farms != NULL && farms->n > 0)
		render_farms(farms);
	json_free(&root);
	return 0;
}

int stats_top(const char *addr, int count)
{
	bool tty = isatty(STDOUT_FILENO) == 1;
	int rc = 0;

	for (int i = 0; count <= 0 || i < count; i++) {
		if (i > 0) {
			struct timespec ts = {.tv_sec = 1};
			while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
				;
		}
		char err[512];
		size_t len;
		char *snap = fetch_snapshot(addr, &len, err, sizeof(err));
		if (tty)
			fputs("\x1b[H\x1b[2J", stdout);
		if (snap == NULL) {
			printf("mulefarm top: %s\n", err);
			rc = -1;
		} else {
			rc = render(addr, snap, len);
		}
		free(snap);
		fflush(stdout);
	}
	return rc == 0 ? 0 : 1;
}
