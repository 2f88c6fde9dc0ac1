/*
 * test_conn.c - a client connection: body decoding across the buffer and
 * the socket, pipelining, 100 Continue, timeouts and blocking writes.
 *
 * The client is the peer end of a socketpair; the server end is
 * non-blocking, as the worker's accept4() makes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mulefarm/conn.h"

#define TEST_TIMEOUT 20 /* seconds; SIGALRM ends a hung test */
#define PEER_WAIT_MS 5000

/* A plain HTTP listener: conn.c only looks at its protocol. */
static struct listener http_listener = {.fd = -1, .proto = PROTO_HTTP};

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

struct fixture {
	struct config cfg;
	struct conn *c;
	int peer; /* the client's end, blocking */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int sv[2];

	alarm(TEST_TIMEOUT);
	if (f == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) == -1)
		return -1;
	f->cfg.processes = f->cfg.threads = 1;
	f->cfg.buffer_size = 4096;
	f->cfg.socket_timeout = 1;
	f->cfg.keepalive_timeout = 1;
	f->c = conn_new(sv[0], &http_listener, &f->cfg);
	if (f->c == NULL)
		return -1;
	f->peer = sv[1];
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	conn_free(f->c);
	if (f->peer != -1)
		close(f->peer);
	free(f);
	alarm(0);
	return 0;
}

/* The client sends <s>. */
static void peer_send(struct fixture *f, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t r = send(f->peer, s, n, MSG_NOSIGNAL);
		if (r == -1)
			fail_msg("send() to the server end failed: %s", strerror(errno));
		s += r;
		n -= (size_t)r;
	}
}

/* The client closes its end (the server sees EOF). */
static void peer_close(struct fixture *f)
{
	close(f->peer);
	f->peer = -1;
}

/* What the client has received so far, without waiting. */
static size_t peer_pending(struct fixture *f, char *dst, size_t cap)
{
	ssize_t r = recv(f->peer, dst, cap, MSG_DONTWAIT);
	if (r == -1 && errno == EAGAIN)
		return 0;
	assert_true(r >= 0);
	return (size_t)r;
}

/* A client writing from its own thread (so the server may block reading),
 * <piece> bytes at a time with <pause_ms> between pieces. */
struct sender {
	int fd;
	const char *p;
	size_t n, piece;
	int pause_ms;
	pthread_t t;
};

static void *sender_run(void *arg)
{
	struct sender *s = arg;
	while (s->n > 0) {
		size_t k = s->n < s->piece ? s->n : s->piece;
		ssize_t r = send(s->fd, s->p, k, MSG_NOSIGNAL);
		if (r == -1)
			break;
		s->p += r;
		s->n -= (size_t)r;
		if (s->pause_ms > 0)
			poll(NULL, 0, s->pause_ms);
	}
	return NULL;
}

static void sender_start(struct sender *s, struct fixture *f, const char *p, size_t n, size_t piece,
                         int pause_ms)
{
	*s = (struct sender){.fd = f->peer, .p = p, .n = n, .piece = piece, .pause_ms = pause_ms};
	assert_int_equal(pthread_create(&s->t, NULL, sender_run, s), 0);
}

/* Joins the sender; everything must have been sent. */
static void sender_join(struct sender *s)
{
	assert_int_equal(pthread_join(s->t, NULL), 0);
	assert_int_equal(s->n, 0);
}

/* Appends <s,n> to the connection buffer, as the event loop's reads do. */
static void buffer(struct conn *c, const char *s, size_t n)
{
	assert_int_equal(conn_reserve(c, c->len + n), 0);
	memcpy(c->buf + c->len, s, n);
	c->len += n;
}

/* A request whose first <in_buf> bytes were read by the event loop and
 * the rest is still on the socket; parses the head. */
static void start(struct fixture *f, const char *req, size_t in_buf)
{
	size_t n = strlen(req);
	assert_true(in_buf <= n);
	buffer(f->c, req, in_buf);
	if (n > in_buf)
		peer_send(f, req + in_buf, n - in_buf);
	if (conn_parse_head(f->c) <= 0)
		fail_msg("head not parsed: %.*s", (int)in_buf, req);
}

/* Reads the body in reads of at most <step> bytes. Returns its length,
 * or -1 with errno from the failing read (bytes before it are in <dst>). */
static ssize_t read_body(struct conn *c, char *dst, size_t cap, size_t step)
{
	size_t total = 0;
	for (;;) {
		size_t want = cap - total < step ? cap - total : step;
		ssize_t r = conn_body_read(c, dst + total, want);
		if (r == -1)
			return -1;
		if (r == 0)
			return (ssize_t)total;
		assert_true((size_t)r <= want);
		total += (size_t)r;
		assert_true(total < cap);
	}
}

static void assert_body(struct conn *c, const char *expect, size_t step)
{
	char got[1 << 16];
	ssize_t n = read_body(c, got, sizeof(got), step);
	if (n == -1)
		fail_msg("body read failed: %s", strerror(errno));
	if ((size_t)n != strlen(expect) || memcmp(got, expect, (size_t)n) != 0)
		fail_msg("body \"%.*s\" != \"%s\"", (int)n, got, expect);
	assert_true(c->body_done);
	assert_int_equal(conn_body_read(c, got, sizeof(got)), 0); /* stays at the end */
}

/* Asserts the next read fails with <err>, after <before> body bytes. */
static void assert_body_fails(struct conn *c, const char *before, int err)
{
	char got[1 << 16];
	size_t total = 0;
	for (;;) {
		ssize_t r = conn_body_read(c, got + total, sizeof(got) - total);
		if (r == -1)
			break;
		if (r == 0)
			fail_msg("body ended after %zu bytes; wanted errno %d", total, err);
		total += (size_t)r;
	}
	if (errno != err)
		fail_msg("errno %d (%s), wanted %d (%s)", errno, strerror(errno), err,
		         strerror(err));
	if (total != strlen(before) || memcmp(got, before, total) != 0)
		fail_msg("got \"%.*s\" before the error, wanted \"%s\"", (int)total, got, before);
	assert_false(c->body_done);
}

/* Bytes the server end still has unread on its socket. */
static size_t socket_pending(struct conn *c, char *dst, size_t cap)
{
	ssize_t r = recv(c->fd, dst, cap, MSG_DONTWAIT);
	if (r == -1 && errno == EAGAIN)
		return 0;
	assert_true(r >= 0);
	return (size_t)r;
}

#define POST_CL(n)   "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: " #n "\r\n\r\n"
#define POST_CHUNKED "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
#define CHUNKED_BODY "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: t\r\n\r\n"
#define NEXT_REQ     "GET /second?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"

/*
 * Requests without a body
 */

static void test_no_body(void **state)
{
	struct fixture *f = *state;
	char b[8];
	start(f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27);
	assert_true(f->c->body_done);
	assert_int_equal(conn_body_read(f->c, b, sizeof(b)), 0);
	assert_int_equal(conn_body_read(f->c, b, 0), 0);
}

static void test_head_incomplete(void **state)
{
	struct fixture *f = *state;
	buffer(f->c, "GET / HTTP/1.1\r\nHost:", 21);
	assert_int_equal(conn_parse_head(f->c), HTTP_INCOMPLETE);
	buffer(f->c, " h\r\n\r\n", 6);
	assert_int_equal(conn_parse_head(f->c), 27);
	assert_int_equal(f->c->head_len, 27);
}

/*
 * Content-Length bodies
 */

static void test_length_body_buffered(void **state)
{
	struct fixture *f = *state;
	const char *req = POST_CL(11) "hello world";
	start(f, req, strlen(req));
	assert_body(f->c, "hello world", 4);
}

static void test_length_body_split(void **state)
{
	/* Part of the body came with the head, the rest is on the socket,
	 * followed by the next request: the body stops exactly at its end. */
	struct fixture *f = *state;
	const char *req = POST_CL(11) "hello world" NEXT_REQ;
	char rest[256];
	start(f, req, strlen(POST_CL(11)) + 4);
	assert_body(f->c, "hello world", 3);
	size_t n = socket_pending(f->c, rest, sizeof(rest));
	assert_int_equal(n, strlen(NEXT_REQ));
	assert_memory_equal(rest, NEXT_REQ, n);
}

static void test_length_body_every_split(void **state)
{
	/* Wherever the event loop's read ended, the body is the same. */
	struct fixture *f = *state;
	const char *req = POST_CL(26) "abcdefghijklmnopqrstuvwxyz";
	size_t head = strlen(POST_CL(26));
	for (size_t cut = head; cut <= strlen(req); cut++) {
		teardown(state);
		assert_int_equal(setup(state), 0);
		f = *state;
		start(f, req, cut);
		assert_body(f->c, "abcdefghijklmnopqrstuvwxyz", 7);
	}
}

static void test_length_body_large(void **state)
{
	/* Larger than a socket buffer: the client writes it from a thread. */
	struct fixture *f = *state;
	enum { N = 1 << 20 };
	char *body = malloc(N), *got = malloc(N + 1);
	char head[128];
	assert_non_null(body);
	assert_non_null(got);
	for (size_t i = 0; i < N; i++)
		body[i] = (char)('a' + i % 23);
	int hn = snprintf(head, sizeof(head),
	                  "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", N);
	buffer(f->c, head, (size_t)hn);
	buffer(f->c, body, 1000);
	assert_true(conn_parse_head(f->c) > 0);

	struct sender snd;
	sender_start(&snd, f, body + 1000, N - 1000, N, 0);
	size_t total = 0;
	ssize_t r;
	while ((r = conn_body_read(f->c, got + total, N + 1 - total)) > 0)
		total += (size_t)r;
	sender_join(&snd);
	assert_int_equal(r, 0);
	assert_int_equal(total, N);
	assert_memory_equal(got, body, N);
	free(body);
	free(got);
}

/*
 * Chunked bodies
 */

static void test_chunked_buffered(void **state)
{
	struct fixture *f = *state;
	const char *req = POST_CHUNKED CHUNKED_BODY;
	start(f, req, strlen(req));
	assert_body(f->c, "hello world", 64);
}

static void test_chunked_split(void **state)
{
	struct fixture *f = *state;
	const char *req = POST_CHUNKED CHUNKED_BODY;
	start(f, req, strlen(POST_CHUNKED) + 6); /* "5\r\nhel" */
	assert_body(f->c, "hello world", 2);
	char b[8];
	assert_int_equal(socket_pending(f->c, b, sizeof(b)), 0);
}

static void test_chunked_every_split(void **state)
{
	struct fixture *f = *state;
	const char *req = POST_CHUNKED CHUNKED_BODY;
	for (size_t cut = strlen(POST_CHUNKED); cut <= strlen(req); cut++) {
		teardown(state);
		assert_int_equal(setup(state), 0);
		f = *state;
		start(f, req, cut);
		assert_body(f->c, "hello world", 3);
	}
}

static void test_chunked_trickled(void **state)
{
	/* The client sends the body one byte at a time, each byte arriving
	 * while the server waits. */
	struct fixture *f = *state;
	const char *body = CHUNKED_BODY;
	char got[64];
	start(f, POST_CHUNKED, strlen(POST_CHUNKED));

	struct sender snd;
	sender_start(&snd, f, body, strlen(body), 1, 2);
	ssize_t n = read_body(f->c, got, sizeof(got), sizeof(got));
	sender_join(&snd);
	assert_int_equal(n, 11);
	assert_memory_equal(got, "hello world", 11);
}

static void test_chunked_large(void **state)
{
	/* More chunked bytes than the buffer holds: it is reused, not grown
	 * without bound. */
	struct fixture *f = *state;
	enum { CHUNKS = 300, SIZE = 1000 };
	static char body[CHUNKS * (SIZE + 16) + 16], want[CHUNKS * SIZE], got[CHUNKS * SIZE + 1];
	size_t bn = 0;
	for (int i = 0; i < CHUNKS; i++) {
		bn += (size_t)sprintf(body + bn, "%x\r\n", SIZE);
		for (int j = 0; j < SIZE; j++)
			want[i * SIZE + j] = body[bn++] = (char)('A' + (i + j) % 26);
		bn += (size_t)sprintf(body + bn, "\r\n");
	}
	bn += (size_t)sprintf(body + bn, "0\r\n\r\n");
	start(f, POST_CHUNKED, strlen(POST_CHUNKED));

	struct sender snd;
	sender_start(&snd, f, body, bn, 4000, 0);
	ssize_t n = read_body(f->c, got, sizeof(got), 777);
	sender_join(&snd);
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(got, want, sizeof(want));
	assert_true(f->c->cap <= 16384); /* not proportional to the body */
}

static void test_head_survives_buffer_growth(void **state)
{
	/* A head that fills the buffer: the chunked body makes it grow, and
	 * the parsed head (slices of the buffer) must follow it. */
	struct fixture *f = *state;
	char head[4096];
	size_t pre = strlen(POST_CHUNKED) - 2;
	memcpy(head, POST_CHUNKED, pre);
	memcpy(head + pre, "X-Pad: ", 7);
	memset(head + pre + 7, 'p', sizeof(head) - pre - 7 - 4);
	memcpy(head + sizeof(head) - 4, "\r\n\r\n", 4);
	buffer(f->c, head, sizeof(head));
	assert_int_equal(f->c->cap, sizeof(head));
	assert_int_equal(conn_parse_head(f->c), sizeof(head));
	peer_send(f, CHUNKED_BODY, strlen(CHUNKED_BODY));

	assert_body(f->c, "hello world", 64);
	assert_true(f->c->cap > sizeof(head));
	const char *b = f->c->buf, *end = f->c->buf + f->c->head_len;
	assert_true(f->c->req.path.p >= b && f->c->req.path.p < end);
	assert_true(http_slice_eq_nocase(f->c->req.path, "/up"));
	struct http_header *pad = &f->c->req.headers[f->c->req.num_headers - 1];
	assert_true(pad->value.p >= b && pad->value.p + pad->value.len <= end);
	assert_true(http_slice_eq_nocase(pad->name, "X-Pad"));
	assert_int_equal(pad->value.len, sizeof(head) - pre - 7 - 4);
}

static void test_chunked_limit_post(void **state)
{
	struct fixture *f = *state;
	f->cfg.limit_post = 10;
	start(f, POST_CHUNKED "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", strlen(POST_CHUNKED) + 3);
	assert_body_fails(f->c, "hello", EFBIG);
	assert_true(f->c->too_large);
	assert_false(f->c->timed_out);
	/* Sticky: the bytes past the limit are never handed out, and the
	 * connection is not reused. */
	assert_body_fails(f->c, "", EFBIG);
	assert_false(conn_next_request(f->c));
}

static void test_chunked_limit_post_exact(void **state)
{
	struct fixture *f = *state;
	f->cfg.limit_post = 10;
	start(f, POST_CHUNKED "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", strlen(POST_CHUNKED));
	assert_body(f->c, "helloworld", 4);
	assert_false(f->c->too_large);
}

static void test_chunked_malformed(void **state)
{
	struct fixture *f = *state;
	const char *req = POST_CHUNKED "zz\r\nhello\r\n0\r\n\r\n";
	start(f, req, strlen(req));
	assert_body_fails(f->c, "", EPROTO);
	assert_body_fails(f->c, "", EPROTO); /* and stays so */
}

static void test_chunked_malformed_on_socket(void **state)
{
	struct fixture *f = *state;
	start(f, POST_CHUNKED "5\r\nhello\r\n5\r\nworldX\r\n0\r\n\r\n", strlen(POST_CHUNKED) + 4);
	assert_body_fails(f->c, "helloworld", EPROTO);
	assert_false(conn_next_request(f->c));
}

/*
 * The client going away or stalling
 */

static void test_length_peer_closes(void **state)
{
	struct fixture *f = *state;
	start(f, POST_CL(11) "hello", strlen(POST_CL(11)) + 2);
	peer_close(f);
	assert_body_fails(f->c, "hello", ECONNRESET);
}

static void test_chunked_peer_closes(void **state)
{
	struct fixture *f = *state;
	start(f, POST_CHUNKED "5\r\nhello\r\n5\r\nwo", strlen(POST_CHUNKED) + 3);
	peer_close(f);
	assert_body_fails(f->c, "hellowo", ECONNRESET);
}

static void test_length_peer_stalls(void **state)
{
	struct fixture *f = *state;
	start(f, POST_CL(11) "hello", strlen(POST_CL(11)) + 2);
	assert_body_fails(f->c, "hello", ETIMEDOUT);
	assert_true(f->c->timed_out);
	assert_false(conn_next_request(f->c));
}

static void test_chunked_peer_stalls(void **state)
{
	struct fixture *f = *state;
	start(f, POST_CHUNKED "5\r\nhello\r\n", strlen(POST_CHUNKED) + 3);
	assert_body_fails(f->c, "hello", ETIMEDOUT);
	assert_true(f->c->timed_out);
	assert_false(f->c->too_large);
}

/*
 * Pipelining
 */

static void assert_next_is_second(struct conn *c)
{
	assert_true(conn_next_request(c));
	assert_int_equal(c->len, strlen(NEXT_REQ));
	assert_memory_equal(c->buf, NEXT_REQ, c->len);
	assert_int_equal(conn_parse_head(c), (ssize_t)strlen(NEXT_REQ));
	assert_true(http_slice_eq_nocase(c->req.method, "GET"));
	assert_true(http_slice_eq_nocase(c->req.path, "/second"));
	assert_true(http_slice_eq_nocase(c->req.query, "x=1"));
	assert_true(c->body_done);
}

static void test_pipelined_after_length_body(void **state)
{
	struct fixture *f = *state;
	const char *req = POST_CL(5) "hello" NEXT_REQ;
	start(f, req, strlen(req));
	assert_body(f->c, "hello", 4096); /* a large read stops at the body's end */
	assert_next_is_second(f->c);
	assert_int_equal(f->c->requests, 1);
}

static void test_pipelined_after_unread_length_body(void **state)
{
	/* The app ignored the body; it is skipped, not parsed as a request. */
	struct fixture *f = *state;
	const char *req = POST_CL(5) "hello" NEXT_REQ;
	start(f, req, strlen(req));
	assert_next_is_second(f->c);
}

static void test_pipelined_after_partly_read_length_body(void **state)
{
	struct fixture *f = *state;
	const char *req = POST_CL(5) "hello" NEXT_REQ;
	char b[2];
	start(f, req, strlen(req));
	assert_int_equal(conn_body_read(f->c, b, 2), 2);
	assert_next_is_second(f->c);
}

static void test_pipelined_after_get(void **state)
{
	struct fixture *f = *state;
	const char *req = "GET /first HTTP/1.1\r\nHost: h\r\n\r\n" NEXT_REQ;
	start(f, req, strlen(req));
	assert_next_is_second(f->c);
}

static void test_pipelined_after_chunked_body(void **state)
{
	struct fixture *f = *state;
	const char *req = POST_CHUNKED CHUNKED_BODY NEXT_REQ;
	start(f, req, strlen(req));
	assert_body(f->c, "hello world", 5);
	assert_next_is_second(f->c);
}

static void test_pipelined_after_chunked_body_from_socket(void **state)
{
	/* The body's tail and the next request arrive in one read. */
	struct fixture *f = *state;
	const char *req = POST_CHUNKED CHUNKED_BODY NEXT_REQ;
	start(f, req, strlen(POST_CHUNKED) + 5);
	assert_body(f->c, "hello world", 5);
	assert_next_is_second(f->c);
}

static void test_pipelined_after_unread_chunked_body(void **state)
{
	struct fixture *f = *state;
	const char *req = POST_CHUNKED CHUNKED_BODY NEXT_REQ;
	start(f, req, strlen(req));
	assert_next_is_second(f->c);
}

static void test_next_request_refused_when_body_unread(void **state)
{
	/* The rest of the body is still on the socket: not reusable. */
	struct fixture *f = *state;
	start(f, POST_CL(11) "hello world", strlen(POST_CL(11)) + 5);
	assert_false(conn_next_request(f->c));

	teardown(state);
	assert_int_equal(setup(state), 0);
	f = *state;
	start(f, POST_CHUNKED CHUNKED_BODY, strlen(POST_CHUNKED) + 12);
	assert_false(conn_next_request(f->c));
}

/*
 * Expect: 100-continue
 */

#define POST_EXPECT_CL(n)                                                                          \
	"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: " #n "\r\n\r\n"
#define POST_EXPECT_CHUNKED                                                                        \
	"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: "              \
	"chunked\r\n\r\n"

/* A client that sends the body only after 100 Continue (curl without its
 * one-second fallback). */
struct waiting_client {
	int fd;
	const char *body;
	char got[64];
	ssize_t got_len;
};

static void *waiting_client_run(void *arg)
{
	struct waiting_client *w = arg;
	struct pollfd p = {.fd = w->fd, .events = POLLIN};
	w->got_len = -1;
	if (poll(&p, 1, PEER_WAIT_MS) != 1)
		return NULL;
	w->got_len = recv(w->fd, w->got, sizeof(w->got), 0);
	if (w->got_len == (ssize_t)strlen(continue_line))
		send(w->fd, w->body, strlen(w->body), MSG_NOSIGNAL);
	return NULL;
}

static void test_expect_continue_waiting_client(void **state)
{
	struct fixture *f = *state;
	struct waiting_client w = {.fd = f->peer, .body = "hello world"};
	pthread_t t;
	char rest[64];

	start(f, POST_EXPECT_CL(11), strlen(POST_EXPECT_CL(11)));
	assert_false(f->c->continue_sent);
	assert_int_equal(pthread_create(&t, NULL, waiting_client_run, &w), 0);
	char got[64];
	ssize_t n = read_body(f->c, got, sizeof(got), 4);
	int read_errno = errno;
	assert_int_equal(pthread_join(t, NULL), 0);
	if (n == -1)
		fail_msg("body read failed: %s", strerror(read_errno));
	assert_int_equal(w.got_len, strlen(continue_line));
	assert_memory_equal(w.got, continue_line, strlen(continue_line));
	assert_int_equal(n, 11);
	assert_memory_equal(got, "hello world", 11);
	assert_int_equal(peer_pending(f, rest, sizeof(rest)), 0); /* sent once */
}

static void test_expect_continue_chunked(void **state)
{
	struct fixture *f = *state;
	char got[64];
	start(f, POST_EXPECT_CHUNKED CHUNKED_BODY, strlen(POST_EXPECT_CHUNKED));
	assert_body(f->c, "hello world", 1);
	size_t n = peer_pending(f, got, sizeof(got));
	assert_int_equal(n, strlen(continue_line));
	assert_memory_equal(got, continue_line, n);
}

static void test_expect_continue_not_sent_when_body_buffered(void **state)
{
	/* The client already sent the body: nothing to invite. */
	struct fixture *f = *state;
	char got[64];
	const char *req = POST_EXPECT_CL(11) "hello world";
	start(f, req, strlen(req));
	assert_body(f->c, "hello world", 3);
	assert_int_equal(peer_pending(f, got, sizeof(got)), 0);

	teardown(state);
	assert_int_equal(setup(state), 0);
	f = *state;
	req = POST_EXPECT_CHUNKED CHUNKED_BODY;
	start(f, req, strlen(req));
	assert_body(f->c, "hello world", 3);
	assert_int_equal(peer_pending(f, got, sizeof(got)), 0);
}

static void test_expect_continue_not_sent_unasked(void **state)
{
	struct fixture *f = *state;
	char got[64];
	start(f, POST_CL(11) "hello world", strlen(POST_CL(11)));
	assert_body(f->c, "hello world", 3);
	assert_int_equal(peer_pending(f, got, sizeof(got)), 0);

	teardown(state);
	assert_int_equal(setup(state), 0);
	f = *state;
	/* HTTP/1.0 has no 100 Continue. */
	start(f, "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
	      strlen("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
	assert_body(f->c, "hello", 3);
	assert_int_equal(peer_pending(f, got, sizeof(got)), 0);
}

static void test_expect_continue_not_sent_without_body(void **state)
{
	struct fixture *f = *state;
	char got[64];
	start(f, POST_EXPECT_CL(0), strlen(POST_EXPECT_CL(0)));
	assert_body(f->c, "", 3);
	assert_int_equal(peer_pending(f, got, sizeof(got)), 0);
}

/*
 * Writing
 */

struct reader {
	int fd;
	size_t want;
	char *got;
	size_t len;
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;
	while (r->len < r->want) {
		ssize_t n = recv(r->fd, r->got + r->len, r->want - r->len, 0);
		if (n <= 0)
			break;
		r->len += (size_t)n;
		if (r->len % 7 == 0)
			poll(NULL, 0, 1); /* a slow reader now and then */
	}
	return NULL;
}

static void test_writev_large(void **state)
{
	struct fixture *f = *state;
	static const size_t sizes[] = {1 << 20, 0, 3, (3 << 20) + 1, 1, 70000};
	enum { CNT = sizeof(sizes) / sizeof(sizes[0]) };
	struct iovec iov[CNT];
	size_t total = 0;
	for (int i = 0; i < CNT; i++)
		total += sizes[i];
	char *src = malloc(total);
	struct reader r = {.fd = f->peer, .want = total, .got = malloc(total)};
	assert_non_null(src);
	assert_non_null(r.got);
	for (size_t i = 0; i < total; i++)
		src[i] = (char)(i * 2654435761u >> 13);
	size_t off = 0;
	for (int i = 0; i < CNT; i++) {
		iov[i] = (struct iovec){src + off, sizes[i]};
		off += sizes[i];
	}

	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, reader_run, &r), 0);
	int rc = conn_writev(f->c, iov, CNT);
	int write_errno = errno;
	assert_int_equal(pthread_join(t, NULL), 0);
	if (rc != 0)
		fail_msg("conn_writev failed: %s", strerror(write_errno));
	assert_int_equal(r.len, total);
	assert_memory_equal(r.got, src, total);
	free(src);
	free(r.got);
}

static void test_writev_empty(void **state)
{
	struct fixture *f = *state;
	char b[8];
	struct iovec iov[2] = {{b, 0}, {b, 0}};
	assert_int_equal(conn_writev(f->c, iov, 2), 0);
	assert_int_equal(conn_writev(f->c, iov, 0), 0);
	assert_int_equal(peer_pending(f, b, sizeof(b)), 0);
}

static void test_writev_peer_stalls(void **state)
{
	/* The client stops reading: the write gives up after the timeout. */
	struct fixture *f = *state;
	enum { N = 16 << 20 };
	char *src = calloc(1, N);
	assert_non_null(src);
	struct iovec iov = {src, N};
	assert_int_equal(conn_writev(f->c, &iov, 1), -1);
	assert_int_equal(errno, ETIMEDOUT);
	free(src);
}

static void test_writev_peer_gone(void **state)
{
	/* No SIGPIPE: the error comes back instead. */
	struct fixture *f = *state;
	char b[] = "HTTP/1.1 200 OK\r\n\r\n";
	struct iovec iov = {b, sizeof(b) - 1};
	peer_close(f);
	assert_int_equal(conn_writev(f->c, &iov, 1), -1);
	assert_int_equal(errno, EPIPE);
}

static void test_sendfile(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/mf-conn-XXXXXX", got[32];
	int fd = mkstemp(path);
	assert_true(fd != -1);
	unlink(path);
	assert_int_equal(write(fd, "0123456789abcdef", 16), 16);
	assert_int_equal(conn_sendfile(f->c, fd, 4, 8), 0);
	close(fd);
	size_t n = peer_pending(f, got, sizeof(got));
	assert_int_equal(n, 8);
	assert_memory_equal(got, "456789ab", 8);
}

static void test_iov_advance(void **state)
{
	char a[] = "abc", d[] = "de", e[] = "";
	struct iovec base[3], *iov;
	int cnt;

#define RESET()                                                                                    \
	do {                                                                                       \
		base[0] = (struct iovec){a, 3};                                                    \
		base[1] = (struct iovec){e, 0};                                                    \
		base[2] = (struct iovec){d, 2};                                                    \
		iov = base;                                                                        \
		cnt = 3;                                                                           \
	} while (0)

	RESET();
	conn_iov_advance(&iov, &cnt, 2); /* inside the first */
	assert_ptr_equal(iov, &base[0]);
	assert_int_equal(cnt, 3);
	assert_ptr_equal(iov->iov_base, a + 2);
	assert_int_equal(iov->iov_len, 1);

	RESET();
	conn_iov_advance(&iov, &cnt, 3); /* at a boundary: empty entries skipped too */
	assert_ptr_equal(iov, &base[2]);
	assert_int_equal(cnt, 1);
	assert_ptr_equal(iov->iov_base, d);
	assert_int_equal(iov->iov_len, 2);

	RESET();
	conn_iov_advance(&iov, &cnt, 4); /* across entries */
	assert_ptr_equal(iov, &base[2]);
	assert_int_equal(cnt, 1);
	assert_ptr_equal(iov->iov_base, d + 1);
	assert_int_equal(iov->iov_len, 1);

	RESET();
	conn_iov_advance(&iov, &cnt, 5); /* everything */
	assert_int_equal(cnt, 0);

	RESET();
	conn_iov_advance(&iov, &cnt, 0);
	assert_ptr_equal(iov, &base[0]);
	assert_int_equal(cnt, 3);
	assert_int_equal(iov->iov_len, 3);

	RESET();
	conn_iov_advance(&iov, &cnt, 1); /* twice in a row */
	conn_iov_advance(&iov, &cnt, 3);
	assert_ptr_equal(iov, &base[2]);
	assert_ptr_equal(iov->iov_base, d + 1);
	assert_int_equal(iov->iov_len, 1);
#undef RESET
}

/*
 * Errors and buffer
 */

static void test_send_error(void **state)
{
	struct fixture *f = *state;
	static const int statuses[] = {400, 408, 413, 414, 431, 500, 501, 503, 505};
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		char got[512], line[16];
		conn_send_error(f->c, statuses[i]);
		size_t n = peer_pending(f, got, sizeof(got) - 1);
		got[n] = '\0';
		snprintf(line, sizeof(line), "HTTP/1.1 %d ", statuses[i]);
		assert_true(strncmp(got, line, strlen(line)) == 0);
		assert_non_null(strstr(got, "\r\nConnection: close\r\n"));
		const char *cl = strstr(got, "\r\nContent-Length: ");
		const char *body = strstr(got, "\r\n\r\n");
		assert_non_null(cl);
		assert_non_null(body);
		body += 4;
		/* The announced length is the body's. */
		assert_int_equal(strtol(cl + 18, NULL, 10), (long)(got + n - body));
		assert_int_equal(strtol(body, NULL, 10), statuses[i]);
	}
}

static void test_reserve_keeps_bytes(void **state)
{
	struct fixture *f = *state;
	buffer(f->c, "abc", 3);
	assert_int_equal(conn_reserve(f->c, 1 << 20), 0);
	assert_true(f->c->cap >= 1 << 20);
	assert_int_equal(f->c->len, 3);
	assert_memory_equal(f->c->buf, "abc", 3);
	size_t cap = f->c->cap;
	assert_int_equal(conn_reserve(f->c, 10), 0); /* never shrinks */
	assert_int_equal(f->c->cap, cap);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_no_body),
	        T(test_head_incomplete),
	        T(test_length_body_buffered),
	        T(test_length_body_split),
	        T(test_length_body_every_split),
	        T(test_length_body_large),
	        T(test_chunked_buffered),
	        T(test_chunked_split),
	        T(test_chunked_every_split),
	        T(test_chunked_trickled),
	        T(test_chunked_large),
	        T(test_head_survives_buffer_growth),
	        T(test_chunked_limit_post),
	        T(test_chunked_limit_post_exact),
	        T(test_chunked_malformed),
	        T(test_chunked_malformed_on_socket),
	        T(test_length_peer_closes),
	        T(test_chunked_peer_closes),
	        T(test_length_peer_stalls),
	        T(test_chunked_peer_stalls),
	        T(test_pipelined_after_length_body),
	        T(test_pipelined_after_unread_length_body),
	        T(test_pipelined_after_partly_read_length_body),
	        T(test_pipelined_after_get),
	        T(test_pipelined_after_chunked_body),
	        T(test_pipelined_after_chunked_body_from_socket),
	        T(test_pipelined_after_unread_chunked_body),
	        T(test_next_request_refused_when_body_unread),
	        T(test_expect_continue_waiting_client),
	        T(test_expect_continue_chunked),
	        T(test_expect_continue_not_sent_when_body_buffered),
	        T(test_expect_continue_not_sent_unasked),
	        T(test_expect_continue_not_sent_without_body),
	        T(test_writev_large),
	        T(test_writev_empty),
	        T(test_writev_peer_stalls),
	        T(test_writev_peer_gone),
	        T(test_sendfile),
	        T(test_iov_advance),
	        T(test_send_error),
	        T(test_reserve_keeps_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
