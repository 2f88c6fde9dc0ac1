/*
 * httplat.c - an open-loop HTTP latency client for tests/bench/http.sh.
 * Not a test: it prints figures.
 *
 *   httplat [-c conns] [-r rate] [-d seconds] [-w warmup] [-C] [-o file]
 *           HOST:PORT|/unix/path [PATH]
 *
 * wrk is a closed loop: each of its connections sends its next request when
 * the last one is answered, so a faster server is also sent more requests,
 * and two servers' latencies are taken at different loads. httplat sends
 * GET PATH at a fixed <rate> (requests/s) whatever the server does, on at
 * most <conns> connections at once. A request is due at start + i / rate;
 * its latency runs from then until its response is complete, so time spent
 * waiting for a free connection counts (no coordinated omission). Two
 * servers are then compared at the same offered load.
 *
 * Keep-alive (the default) reuses a connection until the server closes it;
 * a server that closes after each response (uWSGI --http-socket) costs a
 * new connection inside the next request's latency. -C sends
 * "Connection: close" and opens a new connection for each request, the
 * connect inside the latency. A request written on a reused connection
 * that the server had closed is sent again on a new one (as browsers do).
 *
 * Only requests due after the warm-up are measured. Output: "key value"
 * lines: sent, measured, errors, non2xx, connects (connections opened),
 * retries, unsent (due
 * but never sent: the server fell behind the rate), rate (achieved
 * responses/s), p50 p90 p99 p999 max (milliseconds). -o writes each
 * measured request's due time since the warm-up and latency (µs) to a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { C_FREE, C_CONNECTING, C_WRITING, C_READING };

struct client {
	int fd;
	int state;
	bool reused;      /* a request was already answered on this fd */
	bool keep;        /* the server will keep fd open after this response */
	int64_t due;      /* the current request's due time, ns */
	size_t sent;      /* bytes of the request written */
	size_t got;       /* bytes of the response header block read */
	size_t body_left; /* body bytes still to come (SIZE_MAX: until EOF) */
	bool in_body;
	char head[8192];
};

static struct {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char req[1024];
	size_t reqlen;
	bool close_mode;
	int epfd;
	int64_t start, measure_from, end;
	double interval; /* ns between two requests */
	uint64_t *lat;   /* ns, measured requests */
	FILE *dump;      /* -o: "due_us latency_us" per measured request */
	size_t nlat, cap;
	uint64_t sent, errors, non2xx, connects, retries, unsent;
} g;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* When request <i> (from 0) is due. */
static int64_t due_at(uint64_t i)
{
	return g.start + (int64_t)((double)i * g.interval);
}

static void die(const char *what)
{
	fprintf(stderr, "httplat: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void drop_fd(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->reused = false;
}

static void watch(struct client *c, uint32_t events, int op)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	if (epoll_ctl(g.epfd, op, c->fd, &ev) == -1)
		die("epoll_ctl");
}

/* Starts sending the current request on <c>, connecting first if needed. */
static void begin(struct client *c)
{
	c->sent = c->got = 0;
	c->in_body = false;
	c->keep = !g.close_mode;
	if (c->fd >= 0) {
		c->state = C_WRITING;
		watch(c, EPOLLOUT, EPOLL_CTL_MOD);
		return;
	}
	c->fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1)
		die("socket");
	g.connects++;
	int one = 1;
	if (g.addr.ss_family != AF_UNIX)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = C_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&g.addr, g.addrlen) == 0)
		c->state = C_WRITING;
	else if (errno != EINPROGRESS)
		die("connect");
	watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void record(struct client *c, int64_t t)
{
	if (c->due < g.measure_from || c->due >= g.end)
		return;
	if (g.nlat == g.cap) {
		g.cap = g.cap ? g.cap * 2 : 65536;
		g.lat = realloc(g.lat, g.cap * sizeof(*g.lat));
		if (g.lat == NULL)
			die("realloc");
	}
	g.lat[g.nlat++] = (uint64_t)(t - c->due);
	if (g.dump != NULL)
		fprintf(g.dump, "%lld %lld\n", (long long)(c->due - g.measure_from) / 1000,
		        (long long)(t - c->due) / 1000);
}

/* The request on <c> is over (answered, or failed with <error>). */
static void finish(struct client *c, bool error)
{
	if (error)
		g.errors++;
	else
		record(c, now_ns());
	if (error || !c->keep) {
		if (c->fd >= 0)
			epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
		drop_fd(c);
	} else {
		c->reused = true;
		watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD); /* notice a close while idle */
	}
	c->state = C_FREE;
}

/* The connection broke before any of the response came. A reused
 * keep-alive connection the server had closed: send again on a new one. */
static void broken(struct client *c)
{
	bool retry = c->reused && c->got == 0 && !c->in_body;
	epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
	drop_fd(c);
	if (!retry) {
		g.errors++;
		c->state = C_FREE;
		return;
	}
	g.retries++;
	begin(c);
}

/* Parses the header block in c->head[0..c->got) once it is complete.
 * Returns 1 when parsed, 0 when more is needed, -1 on garbage. */
static int parse_head(struct client *c)
{
	char *end = memmem(c->head, c->got, "\r\n\r\n", 4);
	if (end == NULL)
		return c->got == sizeof(c->head) ? -1 : 0;
	*end = '\0';
	if (strncmp(c->head, "HTTP/1.", 7) != 0 || c->got < 12)
		return -1;
	int status = atoi(c->head + 9);
	if (status < 200 || status > 399)
		g.non2xx++;
	c->body_left = SIZE_MAX;
	bool http10 = c->head[7] == '0';
	c->keep = !g.close_mode && !http10;
	for (char *l = strstr(c->head, "\r\n"); l != NULL; l = strstr(l + 2, "\r\n")) {
		const char *h = l + 2;
		if (strncasecmp(h, "content-length:", 15) == 0)
			c->body_left = strtoull(h + 15, NULL, 10);
		else if (strncasecmp(h, "connection:", 11) == 0) {
			const char *v = h + 11 + strspn(h + 11, " \t");
			if (strncasecmp(v, "close", 5) == 0)
				c->keep = false;
			else if (strncasecmp(v, "keep-alive", 10) == 0 && !g.close_mode)
				c->keep = true;
		}
	}
	if (c->body_left == SIZE_MAX)
		c->keep = false; /* close-delimited */
	size_t head_len = (size_t)(end - c->head) + 4;
	size_t extra = c->got - head_len;
	if (c->body_left != SIZE_MAX)
		c->body_left = extra >= c->body_left ? 0 : c->body_left - extra;
	c->in_body = true;
	return 1;
}

static void on_readable(struct client *c)
{
	for (;;) {
		char sink[65536];
		char *p = c->in_body ? sink : c->head + c->got;
		size_t room = c->in_body ? sizeof(sink) : sizeof(c->head) - c->got;
		ssize_t n = read(c->fd, p, room);
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (c->in_body && c->body_left == SIZE_MAX && n == 0)
				finish(c, false); /* close-delimited body */
			else
				broken(c);
			return;
		}
		if (!c->in_body) {
			c->got += (size_t)n;
			int rc = parse_head(c);
			if (rc == -1) {
				finish(c, true);
				return;
			}
			if (rc == 0)
				continue;
		} else if (c->body_left != SIZE_MAX) {
			c->body_left = (size_t)n >= c->body_left ? 0 : c->body_left - (size_t)n;
		}
		if (c->body_left == 0) {
			finish(c, false);
			return;
		}
	}
}

static void on_event(struct client *c)
{
	if (c->state == C_FREE) { /* idle keep-alive connection: closed by the server */
		epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
		drop_fd(c);
		return;
	}
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			broken(c);
			return;
		}
		c->state = C_WRITING;
	}
	if (c->state == C_WRITING) {
		ssize_t n = send(c->fd, g.req + c->sent, g.reqlen - c->sent, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno != EAGAIN)
				broken(c);
			return;
		}
		c->sent += (size_t)n;
		if (c->sent < g.reqlen)
			return;
		c->state = C_READING;
		watch(c, EPOLLIN, EPOLL_CTL_MOD);
		return;
	}
	on_readable(c);
}

static void resolve(const char *hostport)
{
	if (hostport[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&g.addr;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", hostport);
		g.addrlen = sizeof(*un);
		return;
	}
	char host[256];
	snprintf(host, sizeof(host), "%s", hostport);
	char *colon = strrchr(host, ':');
	if (colon == NULL) {
		fprintf(stderr, "httplat: %s: expected HOST:PORT\n", hostport);
		exit(2);
	}
	*colon = '\0';
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, "httplat: %s: %s\n", hostport, gai_strerror(rc));
		exit(2);
	}
	memcpy(&g.addr, ai->ai_addr, ai->ai_addrlen);
	g.addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(double p)
{
	if (g.nlat == 0)
		return 0;
	size_t i = (size_t)(p * (double)(g.nlat - 1) + 0.5);
	return (double)g.lat[i] / 1e6;
}

int main(int argc, char **argv)
{
	int conns = 50;
	double rate = 10000, secs = 10, warmup = 2;
	int opt;
	while ((opt = getopt(argc, argv, "c:r:d:w:Co:")) != -1) {
		switch (opt) {
		case 'c':
			conns = atoi(optarg);
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 'd':
			secs = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'C':
			g.close_mode = true;
			break;
		case 'o':
			g.dump = fopen(optarg, "w");
			if (g.dump == NULL)
				die(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (optind >= argc || conns < 1 || rate <= 0 || secs <= 0 || warmup < 0)
		goto usage;
	resolve(argv[optind]);
	const char *path = optind + 1 < argc ? argv[optind + 1] : "/";
	g.reqlen =
	        (size_t)snprintf(g.req, sizeof(g.req), "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n",
	                         path, argv[optind], g.close_mode ? "Connection: close\r\n" : "");
	signal(SIGPIPE, SIG_IGN);
	g.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (g.epfd == -1)
		die("epoll_create1");
	struct client *cl = calloc((size_t)conns, sizeof(*cl));
	if (cl == NULL)
		die("calloc");
	for (int i = 0; i < conns; i++)
		cl[i].fd = -1;

	g.interval = 1e9 / rate;
	g.start = now_ns();
	g.measure_from = g.start + (int64_t)(warmup * 1e9);
	g.end = g.measure_from + (int64_t)(secs * 1e9);
	int64_t drain_until = g.end + 2000000000; /* in-flight requests may finish */
	uint64_t next = 0;                        /* the next request to send */
	struct epoll_event evs[256];
	for (;;) {
		int64_t t = now_ns();
		int busy = 0;
		for (int i = 0; i < conns; i++)
			busy += cl[i].state != C_FREE;
		bool all_sent = due_at(next) >= g.end;
		if (all_sent && busy == 0)
			break;
		if (t >= drain_until) {
			g.errors += (uint64_t)busy; /* no answer in time */
			break;
		}
		/* send every request that is due, as connections allow */
		for (int i = 0; i < conns; i++) {
			int64_t due = due_at(next);
			if (due > t || due >= g.end)
				break;
			if (cl[i].state != C_FREE)
				continue;
			cl[i].due = due;
			next++;
			g.sent++;
			begin(&cl[i]);
		}
		int64_t due = due_at(next);
		int64_t wait = due - now_ns();
		if (busy == conns || wait > 100000000 || due >= g.end)
			wait = 100000000;
		if (wait < 0)
			wait = 0;
		struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
		int n = epoll_pwait2(g.epfd, evs, 256, &ts, NULL);
		if (n == -1 && errno != EINTR)
			die("epoll_pwait2");
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr);
	}
	/* requests due before the end that were never sent */
	while (due_at(next) < g.end) {
		g.unsent++;
		next++;
	}

	if (g.nlat > 1) /* g.lat is NULL when nothing was measured */
		qsort(g.lat, g.nlat, sizeof(*g.lat), cmp_u64);
	printf("sent %llu\nmeasured %zu\nerrors %llu\nnon2xx %llu\nconnects %llu\nretries %llu\n"
	       "unsent %llu\nrate %.0f\n",
	       (unsigned long long)g.sent, g.nlat, (unsigned long long)g.errors,
	       (unsigned long long)g.non2xx, (unsigned long long)g.connects,
	       (unsigned long long)g.retries, (unsigned long long)g.unsent, (double)g.nlat / secs);
	printf("p50 %.3f\np90 %.3f\np99 %.3f\np999 %.3f\nmax %.3f\n", pct_ms(0.50), pct_ms(0.90),
	       pct_ms(0.99), pct_ms(0.999), g.nlat ? (double)g.lat[g.nlat - 1] / 1e6 : 0.0);
	return 0;
usage:
	fprintf(stderr,
	        "usage: httplat [-c conns] [-r rate] [-d seconds] [-w warmup] [-C] [-o file] "
	        "HOST:PORT|/unix/path [PATH]\n");
	return 2;
}
