/*
 * worker.c - the web worker: event loop, timers and the Python thread pool.
 *
 * A connection is owned by exactly one side at a time. The loop owns it
 * while it sits in epoll (armed EPOLLONESHOT) and on a timer list; a
 * Python thread owns it from the dispatch queue until it re-arms it. The
 * timer lists, queue and counters are guarded by one mutex; epoll_ctl is
 * thread-safe, so a Python thread hands a connection back by re-arming it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mulefarm/conn.h"
#include "mulefarm/log.h"
#include "mulefarm/static.h"
#include "mulefarm/hooks.h"
#include "mulefarm/proctitle.h"
#include "mulefarm/python.h"
#include "mulefarm/scoreboard.h"
#include "mulefarm/worker.h"
#include "mulefarm/wsgi.h"

#define LINGER_MS          2000
#define STOP_IDLE_GRACE_MS 500 /* see begin_stop() */

enum { ST_HEAD, ST_BODY, ST_RUNNING, ST_LINGER, ST_SENDFILE };
enum { L_NONE, L_IDLE, L_READING, L_LINGER, L__COUNT };

struct clist {
	struct conn *head, *tail;
};

struct worker {
	const struct server *srv;
	const struct config *cfg;
	int id;
	int epfd;
	int evfd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct conn *q_head, *q_tail; /* dispatch queue, linked by next */
	struct clist lists[L__COUNT];
	int64_t timeout_ms[L__COUNT];
	size_t live;
	int idle_threads; /* Python threads waiting for work */
	int queued;       /* connections in the dispatch queue */
	volatile bool stopping;
	bool inline_mode; /* --threads 1: the loop thread runs the app itself */
	int next_slot;    /* scoreboard slot of the next Python thread */
	int busy;         /* Python threads in a request (atomic) */
	uint64_t served;  /* requests served by this process (--max-requests) */
	int64_t next_rss_ms;
	int sig_wake[2]; /* Python's signal wakeup fd: its handlers' signals */
	bool py_signals; /* run Python's signal handlers now */
};

static struct worker wk;
static volatile sig_atomic_t sig_graceful, sig_now;

static void on_signal(int sig)
{
	uint64_t one = 1;
	int saved = errno;
	if (sig == SIGTERM || sig == SIGHUP)
		sig_graceful = 1;
	else
		sig_now = 1;
	if (write(wk.evfd, &one, sizeof(one)) == -1) {
		/* the counter cannot overflow in practice; nothing to do */
	}
	errno = saved;
}

/* --- timer lists (mutex held) ------------------------------------------ */

static void list_remove(struct worker *w, struct conn *c)
{
	struct clist *l = &w->lists[c->list];
	if (c->list == L_NONE)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
	c->list = L_NONE;
}

static void list_append(struct worker *w, struct conn *c, int which)
{
	struct clist *l = &w->lists[which];
	list_remove(w, c);
	c->list = which;
	c->deadline_ms = mono_ms() + w->timeout_ms[which];
	c->prev = l->tail;
	c->next = NULL;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

/* --- connection hand-offs (any thread) ---------------------------------- */

static void conn_close(struct worker *w, struct conn *c)
{
	pthread_mutex_lock(&w->mu);
	list_remove(w, c);
	w->live--;
	pthread_mutex_unlock(&w->mu);
	conn_free(c);
	if (w->stopping) {
		uint64_t one = 1;
		if (write(w->evfd, &one, sizeof(one)) == -1) {
			/* wake-up only */
		}
	}
}

/* Puts <c> on timer list <which> and waits for <events> on it. */
static void conn_arm(struct worker *w, struct conn *c, int which, uint32_t events)
{
	struct epoll_event ev = {.events = events | EPOLLONESHOT, .data.ptr = c};
	pthread_mutex_lock(&w->mu);
	list_append(w, c, which);
	pthread_mutex_unlock(&w->mu);
	int op = c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	c->registered = true;
	if (epoll_ctl(w->epfd, op, c->fd, &ev) == -1) {
		log_err(errno, "epoll_ctl() failed");
		conn_close(w, c);
	}
}

/* Waits for <c> to become readable, on timer list <which>. */
static void conn_wait(struct worker *w, struct conn *c, int which)
{
	conn_arm(w, c, which, EPOLLIN | EPOLLRDHUP);
}

/* Waits for <c> to take more of a static file body (ST_SENDFILE); the
 * socket timeout bounds a client that stops reading. */
static void conn_wait_out(struct worker *w, struct conn *c)
{
	c->state = ST_SENDFILE;
	conn_arm(w, c, L_READING, EPOLLOUT);
}

/* Closes after the peer has stopped sending, so that unread request bytes
 * do not turn our last response into a reset. */
static void conn_linger(struct worker *w, struct conn *c)
{
	c->state = ST_LINGER;
	if (shutdown(c->fd, SHUT_WR) == -1) {
		conn_close(w, c);
		return;
	}
	conn_wait(w, c, L_LINGER);
}

static void fail(struct worker *w, struct conn *c, int status)
{
	conn_send_error(c, status);
	conn_linger(w, c);
}

static void dispatch(struct worker *w, struct conn *c)
{
	c->state = ST_RUNNING;
	c->next = NULL;
	pthread_mutex_lock(&w->mu);
	if (w->q_tail)
		w->q_tail->next = c;
	else
		w->q_head = c;
	w->q_tail = c;
	w->queued++;
	if (!w->inline_mode)
		pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static struct conn *dequeue(struct worker *w)
{
	struct conn *c = w->q_head;
	if (c != NULL) {
		w->queued--;
		w->q_head = c->next;
		if (w->q_head == NULL)
			w->q_tail = NULL;
		c->next = NULL;
	}
	return c;
}

/* --- reading a request in the loop -------------------------------------- */

/* A refused uwsgi packet is logged: behind nginx nobody else would see why
 * the client got an error. */
static int uwsgi_status(struct worker *w, struct conn *c, ssize_t rc)
{
	const unsigned char *b = (const unsigned char *)c->buf;
	switch (rc) {
	case CONN_ERR_UWSGI_TOO_LARGE:
		log_info("uwsgi packet of %u bytes refused: larger than --buffer-size %zu",
		         4u + (b[1] | (unsigned)b[2] << 8), w->cfg->buffer_size);
		return 413;
	case CONN_ERR_UWSGI_MODIFIER:
		log_info("uwsgi packet with modifier1 %u refused: only 0 (WSGI) is served", b[0]);
		return 501;
	case CONN_ERR_UWSGI_TOO_MANY:
		log_info("uwsgi packet refused: more than %d vars", CONN_MAX_VARS);
		return 431;
	case CONN_ERR_UWSGI_VARS:
		log_info("uwsgi packet refused: no REQUEST_METHOD, or an invalid CONTENT_LENGTH");
		return 400;
	}
	log_info("malformed uwsgi packet refused (a var overruns the packet, or a key is empty)");
	return 400;
}

static int parse_status(struct worker *w, struct conn *c, ssize_t rc)
{
	if (rc <= CONN_ERR_UWSGI_MALFORMED)
		return uwsgi_status(w, c, rc);
	switch (rc) {
	case HTTP_ERR_TOO_MANY_HEADERS:
		return 431;
	case HTTP_ERR_NOT_IMPLEMENTED:
		return 501;
	case HTTP_ERR_VERSION:
		return 505;
	}
	return 400;
}

/* Whether enough of the body has arrived to hand the request to Python:
 * all of it when small, CONN_BODY_PREFETCH bytes of a large one. */
static int body_ready(struct conn *c)
{
	size_t have = c->len - c->head_len;
	if (c->body_done || (!c->continue_sent && have == 0))
		return 1;
	if (!c->req.chunked) {
		uint64_t want = (uint64_t)c->body_left;
		return have >= (want < CONN_BODY_PREFETCH ? want : CONN_BODY_PREFETCH);
	}
	while (c->scan_off < c->len) {
		size_t used;
		struct http_slice data;
		int rc = http_chunked_step(&c->scan, c->buf + c->scan_off, c->len - c->scan_off,
		                           &used, &data);
		c->scan_off += used;
		if (rc == HTTP_CHUNK_DONE)
			return 1;
		if (rc == HTTP_CHUNK_ERROR)
			return -1;
	}
	return have >= CONN_BODY_PREFETCH;
}

static void start_body(struct worker *w, struct conn *c)
{
	const struct config *cfg = w->cfg;
	if (c->head_len > cfg->buffer_size) {
		ssize_t line = http_request_line_end(c->buf, c->len);
		fail(w, c, line > (ssize_t)cfg->buffer_size ? 414 : 431);
		return;
	}
	if (cfg->limit_post > 0 && c->req.content_length > cfg->limit_post) {
		log_info("request body of %lld bytes refused: larger than --limit-post %lld",
		         (long long)c->req.content_length, (long long)cfg->limit_post);
		fail(w, c, 413);
		return;
	}
	c->state = ST_BODY;
	http_chunked_init(&c->scan);
	c->scan_off = c->head_len;
}

/* Advances <c> with what is buffered: parse the head, gather the body,
 * dispatch. Any thread may call it for a connection it owns. */
static void conn_process(struct worker *w, struct conn *c)
{
	if (c->state == ST_HEAD) {
		ssize_t rc = c->len ? conn_parse_head(c) : HTTP_INCOMPLETE;
		if (rc == HTTP_INCOMPLETE) {
			if (c->len >= w->cfg->buffer_size) {
				ssize_t line = http_request_line_end(c->buf, c->len);
				bool long_line = line == -1 || line > (ssize_t)w->cfg->buffer_size;
				fail(w, c, long_line ? 414 : 431);
			} else {
				conn_wait(w, c, c->len ? L_READING : L_IDLE);
			}
			return;
		}
		if (rc < 0) {
			fail(w, c, parse_status(w, c, rc));
			return;
		}
		start_body(w, c);
		if (c->state != ST_BODY)
			return;
	}
	int ready = body_ready(c);
	if (ready < 0) {
		fail(w, c, 400);
	} else if (ready) {
		dispatch(w, c);
	} else if (conn_reserve(c, c->head_len + CONN_BODY_PREFETCH) == -1) {
		fail(w, c, 500);
	} else {
		conn_wait(w, c, L_READING);
	}
}

static void after_request(struct worker *w, struct conn *c, bool keep);

/* Sends more of a pending static file body; hands the connection on when
 * it is all out. */
static void on_writable(struct worker *w, struct conn *c)
{
	while (c->sf_left > 0) {
		ssize_t n = sendfile(c->fd, c->sf_fd, &c->sf_off, (size_t)c->sf_left);
		if (n > 0) {
			c->sf_left -= (uint64_t)n;
		} else if (n == -1 && errno == EAGAIN) {
			conn_wait_out(w, c);
			return;
		} else if (n == 0) {
			c->sf_keep = false; /* the file shrank: only closing tells the client */
			break;
		} else if (errno != EINTR) {
			conn_close(w, c);
			return;
		}
	}
	close(c->sf_fd);
	c->sf_fd = -1;
	after_request(w, c, c->sf_keep);
}

static void on_readable(struct worker *w, struct conn *c)
{
	if (c->state == ST_LINGER) {
		char sink[4096];
		ssize_t r = recv(c->fd, sink, sizeof(sink), 0);
		if (r > 0 || (r == -1 && errno == EAGAIN))
			conn_wait(w, c, L_LINGER);
		else
			conn_close(w, c);
		return;
	}
	if (c->len == c->cap && conn_reserve(c, c->cap + 4096) == -1) {
		conn_close(w, c);
		return;
	}
	ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	if (r == -1 && (errno == EAGAIN || errno == EINTR)) {
		conn_wait(w, c, c->len ? L_READING : L_IDLE);
		return;
	}
	if (r <= 0) {
		conn_close(w, c);
		return;
	}
	c->len += (size_t)r;
	conn_process(w, c);
}

static void peer_name(struct conn *c, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, c->peer_addr, sizeof(c->peer_addr));
		snprintf(c->peer_port, sizeof(c->peer_port), "%u", ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, c->peer_addr, sizeof(c->peer_addr));
		snprintf(c->peer_port, sizeof(c->peer_port), "%u", ntohs(s6->sin6_port));
	}
}

/* How many connections to accept now: only as many as this worker can
 * start serving at once, so that a busy worker leaves new connections to
 * its idle siblings (EPOLLEXCLUSIVE wakes one waiting worker). */
static int accept_budget(struct worker *w)
{
	if (w->inline_mode)
		return 1;
	pthread_mutex_lock(&w->mu);
	int free_threads = w->idle_threads - w->queued;
	pthread_mutex_unlock(&w->mu);
	return free_threads > 1 ? free_threads : 1;
}

static void on_accept(struct worker *w, const struct listener *l)
{
	int budget = accept_budget(w);
	/* The peer's address is only wanted from TCP HTTP clients: behind
	 * the uwsgi protocol the peer is nginx, and the client's address
	 * comes in the packet. */
	bool want_peer = !l->is_unix && l->proto != PROTO_UWSGI;
	for (int i = 0; i < budget && !w->stopping; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(listener_fd(l, w->id), want_peer ? (struct sockaddr *)&ss : NULL,
		                 want_peer ? &sl : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != ECONNABORTED && errno != EINTR)
				log_err(errno, "accept4() failed on %s", l->name);
			return;
		}
		struct conn *c = conn_new(fd, l, w->cfg);
		if (c == NULL || conn_reserve(c, w->cfg->buffer_size) == -1) {
			log_err(ENOMEM, "cannot allocate a connection on %s", l->name);
			conn_free(c);
			continue;
		}
		/* TCP_NODELAY comes from the listener. */
		if (want_peer)
			peer_name(c, &ss);
		pthread_mutex_lock(&w->mu);
		w->live++;
		pthread_mutex_unlock(&w->mu);
		/* On loopback and with fast clients the request is often here
		 * already: read before paying for an epoll round trip. */
		on_readable(w, c);
	}
}

/* --- Python threads ------------------------------------------------------ */

static void after_request(struct worker *w, struct conn *c, bool keep)
{
	/* <keep>: the response promised keep-alive, so the connection stays
	 * open even when stopping (closing it now would fail the client's
	 * next request); as an idle connection it then gets a short grace. */
	if (keep && conn_next_request(c)) {
		c->state = ST_HEAD;
		conn_process(w, c);
	} else if (c->body_done) {
		conn_close(w, c);
	} else {
		conn_linger(w, c); /* unread body: do not answer it with a reset */
	}
}

/* Static files are answered before Python is involved, without the GIL.
 * Returns true when <c> was served (and handed on). */
static bool serve_static(struct worker *w, struct conn *c)
{
	bool keep = false;
	if (w->srv->statics == NULL || !static_enabled(w->srv->statics))
		return false;
	int rc = static_serve(w->srv->statics, c, &keep);
	if (rc == 0)
		return false;
	if (rc == 2) {
		conn_wait_out(w, c);
		return true;
	}
	after_request(w, c, rc == 1 && keep);
	return true;
}

/* Asks the loop for a graceful stop; the master forks a fresh worker. */
static void recycle(struct worker *w)
{
	uint64_t one = 1;
	sig_graceful = 1;
	if (write(w->evfd, &one, sizeof(one)) == -1) {
		/* the loop is awake anyway */
	}
}

/* --reload-on-rss, sampled at most once a second by the loop. */
static void check_rss(struct worker *w, int64_t now)
{
	if (now < w->next_rss_ms)
		return;
	w->next_rss_ms = now + 1000;
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "re");
	if (f == NULL)
		return;
	int n = fscanf(f, "%ld %ld", &pages, &resident);
	fclose(f);
	if (n != 2)
		return;
	uint64_t rss = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
	scoreboard->workers[w->id - 1].rss_bytes = rss;
	long limit = w->cfg->reload_on_rss_mb;
	if (limit > 0 && rss > (uint64_t)limit * 1024 * 1024 && !w->stopping && !sig_graceful) {
		log_info("RSS %llu MB is over --reload-on-rss %ld: recycling",
		         (unsigned long long)(rss >> 20), limit);
		recycle(w);
	}
}

/* <src> into <dst> of <size> bytes, cut to fit, NUL-terminated. */
static void copy_slice(char *dst, size_t size, struct http_slice src)
{
	size_t n = src.len < size - 1 ? src.len : size - 1;
	if (n > 0)
		memcpy(dst, src.p, n);
	dst[n] = '\0';
}

/* Runs the app for <c> on request thread <slot>, publishing the request
 * (for harakiri and the stats) while it runs. GIL held. */
static bool serve_app(struct worker *w, struct conn *c, int slot, bool closing)
{
	struct sb_worker *me = &scoreboard->workers[w->id - 1];
	struct sb_slot *s = scoreboard_slot(scoreboard, w->id, slot);
	copy_slice(s->method, sizeof(s->method), c->req.method);
	copy_slice(s->uri, sizeof(s->uri), c->req.target);
	int64_t start = mono_ms();
	s->started_ms = start;
	if (__atomic_add_fetch(&w->busy, 1, __ATOMIC_RELAXED) == 1 && !w->stopping) {
		me->status = SB_BUSY;
		proctitle_state("busy");
	}
	bool keep = wsgi_serve(c, closing);
	s->started_ms = 0;
	uint64_t n = ++me->requests;
	uint64_t rt_us = (uint64_t)(mono_ms() - start) * 1000;
	me->avg_rt_us = n == 1 ? rt_us : (me->avg_rt_us * 15 + rt_us) / 16;
	me->exceptions = wsgi_exceptions;
	if (__atomic_sub_fetch(&w->busy, 1, __ATOMIC_RELAXED) == 0 && !w->stopping) {
		me->status = SB_IDLE;
		proctitle_state("idle");
	}
	w->served++;
	if (w->cfg->max_requests > 0 && w->served >= (uint64_t)w->cfg->max_requests &&
	    !w->stopping && !sig_graceful) {
		log_info("served %llu requests (--max-requests): recycling",
		         (unsigned long long)w->served);
		recycle(w);
	}
	return keep;
}

static void *python_thread(void *arg)
{
	struct worker *w = arg;
	sigset_t all;
	sigfillset(&all);
	/* Signals go to the loop thread, which runs Python's handlers. */
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&w->mu);
	int slot = w->next_slot++;
	pthread_mutex_unlock(&w->mu);
	PyGILState_Ensure();
	PyThreadState *ts = PyEval_SaveThread();
	for (;;) {
		pthread_mutex_lock(&w->mu);
		w->idle_threads++;
		while (w->q_head == NULL)
			pthread_cond_wait(&w->cv, &w->mu);
		w->idle_threads--;
		struct conn *c = dequeue(w);
		pthread_mutex_unlock(&w->mu);

		if (serve_static(w, c))
			continue;
		bool closing = w->stopping;
		PyEval_RestoreThread(ts);
		bool keep = serve_app(w, c, slot, closing);
		ts = PyEval_SaveThread();
		after_request(w, c, keep);
	}
	return NULL;
}

/* With a single Python thread there is nothing to hand requests to: the
 * loop thread serves its queue between two epoll_wait() calls, and the
 * context switch per request disappears. Heads and bodies are still read
 * by the loop, so a slow client never holds the app. */
static void serve_inline(struct worker *w, PyThreadState **ts)
{
	struct conn *c;
	for (;;) {
		pthread_mutex_lock(&w->mu);
		c = dequeue(w);
		pthread_mutex_unlock(&w->mu);
		if (c == NULL)
			return;
		if (serve_static(w, c))
			continue;
		bool closing = w->stopping;
		PyEval_RestoreThread(*ts);
		bool keep = serve_app(w, c, 0, closing);
		*ts = PyEval_SaveThread();
		after_request(w, c, keep);
	}
}

/* --- the loop ------------------------------------------------------------- */

static void sweep(struct worker *w, int64_t now)
{
	for (int which = L_IDLE; which < L__COUNT; which++) {
		for (;;) {
			pthread_mutex_lock(&w->mu);
			struct conn *c = w->lists[which].head;
			if (c == NULL || c->deadline_ms > now) {
				pthread_mutex_unlock(&w->mu);
				break;
			}
			list_remove(w, c);
			pthread_mutex_unlock(&w->mu);
			/* A stalled partial request hears why it is closed. */
			if (which == L_READING && c->len > 0 && c->state != ST_SENDFILE)
				conn_send_error(c, 408);
			conn_close(w, c);
		}
	}
}

static int next_timeout(struct worker *w, int64_t now)
{
	int64_t next = now + 1000;
	pthread_mutex_lock(&w->mu);
	for (int which = L_IDLE; which < L__COUNT; which++) {
		struct conn *c = w->lists[which].head;
		if (c && c->deadline_ms < next)
			next = c->deadline_ms;
	}
	pthread_mutex_unlock(&w->mu);
	int64_t t = next - now;
	return t < 0 ? 0 : (int)t;
}

static void begin_stop(struct worker *w)
{
	if (w->stopping)
		return;
	w->stopping = true;
	for (size_t i = 0; i < w->srv->ls.n; i++)
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, listener_fd(&w->srv->ls.l[i], w->id), NULL);
	/* An idle keep-alive connection may have a request on its way (a
	 * load generator sends the next one at once): closing it now would
	 * fail that request. Each gets a short grace instead; a request that
	 * comes is served with "Connection: close". The list stays sorted. */
	int64_t grace = mono_ms() + STOP_IDLE_GRACE_MS;
	pthread_mutex_lock(&w->mu);
	w->timeout_ms[L_IDLE] = STOP_IDLE_GRACE_MS;
	for (struct conn *c = w->lists[L_IDLE].head; c != NULL; c = c->next)
		if (c->deadline_ms > grace)
			c->deadline_ms = grace;
	pthread_mutex_unlock(&w->mu);
	struct sb_worker *me = &scoreboard->workers[w->id - 1];
	if (me->pid == getpid()) { /* after FIFO 'w' it is the new worker's entry */
		me->status = SB_STOPPING;
		me->accepting = 0;
	}
	proctitle_state("stopping");
	log_info("stopping gracefully");
}

static void handle_event(struct worker *w, struct epoll_event *ev)
{
	uint64_t tag = ev->data.u64;
	if (tag == 0) {
		uint64_t n;
		if (read(w->evfd, &n, sizeof(n)) == -1) {
			/* spurious wake-up */
		}
		if (sig_now)
			_exit(0);
		return; /* a graceful stop begins after this batch of events */
	}
	if (tag <= w->srv->ls.n) {
		on_accept(w, &w->srv->ls.l[tag - 1]);
		return;
	}
	if (ev->data.ptr == (void *)w->sig_wake) {
		char drain[64];
		while (read(w->sig_wake[0], drain, sizeof(drain)) > 0)
			;
		w->py_signals = true;
		return;
	}
	struct conn *c = ev->data.ptr;
	pthread_mutex_lock(&w->mu);
	list_remove(w, c);
	pthread_mutex_unlock(&w->mu);
	if (c->state == ST_SENDFILE)
		on_writable(w, c);
	else
		on_readable(w, c);
}

static void loop_setup(struct worker *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->epfd == -1 || w->evfd == -1 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev)) {
		log_err(errno, "epoll/eventfd set-up failed");
		_exit(1);
	}
	for (size_t i = 0; i < w->srv->ls.n; i++) {
		struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = i + 1};
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, listener_fd(&w->srv->ls.l[i], w->id), &lev) ==
		    -1) {
			log_err(errno, "epoll_ctl() failed on %s", w->srv->ls.l[i].name);
			_exit(1);
		}
	}
	/* A signal with a Python handler that lands while the loop is not in
	 * epoll_wait() (no EINTR) still wakes it: Python writes its number to
	 * the wakeup fd (set in worker_main). */
	struct epoll_event sev = {.events = EPOLLIN, .data.ptr = w->sig_wake};
	if (pipe2(w->sig_wake, O_NONBLOCK | O_CLOEXEC) == -1 ||
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->sig_wake[0], &sev) == -1) {
		log_err(errno, "signal wakeup pipe set-up failed");
		_exit(1);
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
}

/* Published once the loop polls the listeners: the master waits for
 * this before retiring an old generation. Then the accepting hooks. */
static void start_accepting(struct worker *w)
{
	struct sb_worker *me = &scoreboard->workers[w->id - 1];
	const struct options *o = w->srv->cfg.opts;
	me->status = SB_IDLE;
	me->accepting = 1;
	proctitle_state("idle");
	bool first = !me->once_done;
	me->once_done = 1;
	hooks_run(o, OPT_HOOK_ACCEPTING);
	if (first)
		hooks_run(o, OPT_HOOK_ACCEPTING_ONCE);
	if (w->id == 1)
		hooks_run(o, OPT_HOOK_ACCEPTING1);
	if (w->id == 1 && first)
		hooks_run(o, OPT_HOOK_ACCEPTING1_ONCE);
}

/* --harakiri: the master sends SIGUSR2 before killing a stuck worker, and
 * faulthandler writes every thread's Python stack to the log. */
static void dump_stacks_on_sigusr2(void)
{
	PyObject *fh = PyImport_ImportModule("faulthandler");
	PyObject *sys = PyImport_ImportModule("sys");
	PyObject *err = sys ? PyObject_GetAttrString(sys, "stderr") : NULL;
	PyObject *r = fh && err ? PyObject_CallMethod(fh, "register", "iOO", SIGUSR2, err, Py_True)
	                        : NULL;
	if (r == NULL)
		PyErr_Clear();
	Py_XDECREF(r);
	Py_XDECREF(err);
	Py_XDECREF(sys);
	Py_XDECREF(fh);
}

/* signal.set_wakeup_fd(fd) unless the app set its own (post_fork_hook).
 * Main thread, GIL held. */
static void set_signal_wakeup_fd(int fd)
{
	PyObject *sig = PyImport_ImportModule("signal");
	PyObject *set = sig ? PyObject_GetAttrString(sig, "set_wakeup_fd") : NULL;
	PyObject *old = set ? PyObject_CallFunction(set, "i", fd) : NULL;
	long was = old ? PyLong_AsLong(old) : -1;
	if (was != -1) {
		Py_XDECREF(PyObject_CallFunction(set, "l", was));
	}
	if (PyErr_Occurred())
		python_print_exception();
	Py_XDECREF(old);
	Py_XDECREF(set);
	Py_XDECREF(sig);
}

void worker_main(const struct server *srv, int id)
{
	struct worker *w = &wk;
	w->srv = srv;
	w->id = id;
	w->cfg = &srv->cfg;
	w->timeout_ms[L_IDLE] = (int64_t)srv->cfg.keepalive_timeout * 1000;
	w->timeout_ms[L_READING] = (int64_t)srv->cfg.socket_timeout * 1000;
	w->timeout_ms[L_LINGER] = LINGER_MS;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	loop_setup(w);
	set_signal_wakeup_fd(w->sig_wake[1]);
	dump_stacks_on_sigusr2();
	start_accepting(w);

	PyThreadState *ts = PyEval_SaveThread();
	w->inline_mode = srv->cfg.threads == 1;
	for (int i = 0; !w->inline_mode && i < srv->cfg.threads; i++) {
		pthread_t t;
		int rc = pthread_create(&t, NULL, python_thread, w);
		if (rc != 0) {
			log_err(rc, "pthread_create() failed");
			_exit(1);
		}
		pthread_detach(t);
	}
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(w->epfd, evs, 64, next_timeout(w, mono_ms()));
		if (n == -1 && errno != EINTR) {
			log_err(errno, "epoll_wait() failed");
			_exit(1);
		}
		for (int i = 0; i < n; i++)
			handle_event(w, &evs[i]);
		if (n == -1 || w->py_signals) { /* run the app's Python handlers, if any */
			w->py_signals = false;
			PyEval_RestoreThread(ts);
			if (PyErr_CheckSignals() == -1)
				python_print_exception();
			ts = PyEval_SaveThread();
		}
		if (w->inline_mode)
			serve_inline(w, &ts);
		if (sig_graceful)
			begin_stop(w);
		int64_t now = mono_ms();
		check_rss(w, now);
		sweep(w, now);
		if (w->stopping) {
			pthread_mutex_lock(&w->mu);
			size_t live = w->live;
			pthread_mutex_unlock(&w->mu);
			if (live == 0)
				_exit(0);
		}
	}
}
