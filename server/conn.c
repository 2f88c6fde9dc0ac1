/*
 * conn.c - a client connection: buffer, body decoding, timed blocking I/O.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/conn.h"

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct conn *conn_new(int fd, const struct listener *l, const struct config *cfg)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->fd = fd;
	c->sf_fd = -1;
	c->l = l;
	c->cfg = cfg;
	return c;
}

void conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->fd != -1)
		close(c->fd);
	if (c->sf_fd != -1)
		close(c->sf_fd);
	free(c->buf);
	free(c);
}

static ssize_t parse_uwsgi(struct conn *c);

int conn_reserve(struct conn *c, size_t need)
{
	if (need <= c->cap)
		return 0;
	size_t cap = c->cap ? c->cap : 4096;
	while (cap < need)
		cap *= 2;
	char *b = realloc(c->buf, cap);
	if (b == NULL) {
		errno = ENOMEM;
		return -1;
	}
	bool moved = b != c->buf;
	c->buf = b;
	c->cap = cap;
	/* The parsed head is slices of the buffer: parse it again where it now
	 * lives (same bytes, same answer). */
	if (moved && c->head_len > 0 && c->l->proto == PROTO_UWSGI)
		parse_uwsgi(c);
	else if (moved && c->head_len > 0)
		http_parse_request(c->buf, c->len, &c->req, c->headers, CONN_MAX_HEADERS);
	return 0;
}

static struct http_slice empty_if_absent(struct http_slice s)
{
	return s.p ? s : (struct http_slice){"", 0};
}

/* The uwsgi packet's vars become the request: nginx already parsed HTTP,
 * so only what framing and logging need is taken from them. The body is
 * CONTENT_LENGTH bytes, whatever HTTP_TRANSFER_ENCODING says, and the
 * response is close-delimited (one request per connection). */
static ssize_t parse_uwsgi(struct conn *c)
{
	ssize_t r = uwsgi_parse_packet(c->buf, c->len, c->cfg->buffer_size, &c->pkt, c->vars,
	                               CONN_MAX_VARS);
	switch (r) {
	case UWSGI_INCOMPLETE:
		return HTTP_INCOMPLETE;
	case UWSGI_ERR_TOO_LARGE:
		return CONN_ERR_UWSGI_TOO_LARGE;
	case UWSGI_ERR_TOO_MANY_VARS:
		return CONN_ERR_UWSGI_TOO_MANY;
	}
	if (r < 0)
		return CONN_ERR_UWSGI_MALFORMED;
	if (c->pkt.modifier1 != 0)
		return CONN_ERR_UWSGI_MODIFIER;
	struct http_request *q = &c->req;
	memset(q, 0, sizeof(*q));
	q->method = uwsgi_packet_get(&c->pkt, "REQUEST_METHOD");
	q->target = empty_if_absent(uwsgi_packet_get(&c->pkt, "REQUEST_URI"));
	q->path = empty_if_absent(uwsgi_packet_get(&c->pkt, "PATH_INFO"));
	q->query = empty_if_absent(uwsgi_packet_get(&c->pkt, "QUERY_STRING"));
	q->content_length = uwsgi_content_length(uwsgi_packet_get(&c->pkt, "CONTENT_LENGTH"));
	if (q->method.p == NULL || q->method.len == 0 || q->content_length < 0)
		return CONN_ERR_UWSGI_VARS;
	return r;
}

ssize_t conn_parse_head(struct conn *c)
{
	ssize_t r = c->l->proto == PROTO_UWSGI ? parse_uwsgi(c)
	                                       : http_parse_request(c->buf, c->len, &c->req,
	                                                            c->headers, CONN_MAX_HEADERS);
	if (r <= 0)
		return r;
	c->head_len = (size_t)r;
	c->body_off = (size_t)r;
	c->body_left = c->req.content_length > 0 ? c->req.content_length : 0;
	c->body_done = !c->req.chunked && c->body_left == 0;
	c->continue_sent = !c->req.expect_continue;
	c->timed_out = c->too_large = false;
	c->pend_off = c->pend_len = 0;
	c->decoded = 0;
	http_chunked_init(&c->dec);
	return r;
}

/* Consumes what is buffered of the rest of the body without blocking.
 * Returns true when the body is then complete. */
static bool skip_buffered_body(struct conn *c)
{
	if (!c->req.chunked) {
		if ((uint64_t)c->body_left > c->len - c->body_off)
			return false;
		c->body_off += (size_t)c->body_left;
		c->body_left = 0;
		return true;
	}
	for (;;) {
		size_t used;
		struct http_slice data;
		int rc = http_chunked_step(&c->dec, c->buf + c->body_off, c->len - c->body_off,
		                           &used, &data);
		c->body_off += used;
		if (rc == HTTP_CHUNK_DONE)
			return true;
		if (rc != HTTP_CHUNK_DATA)
			return false;
	}
}

bool conn_next_request(struct conn *c)
{
	if (c->too_large || c->timed_out)
		return false;
	if (!c->body_done && !skip_buffered_body(c))
		return false;
	size_t rest = c->len - c->body_off;
	memmove(c->buf, c->buf + c->body_off, rest);
	c->len = rest;
	c->head_len = c->body_off = 0;
	c->requests++;
	return true;
}

static int wait_fd(struct conn *c, short events)
{
	struct pollfd p = {.fd = c->fd, .events = events};
	for (;;) {
		int r = poll(&p, 1, c->cfg->socket_timeout * 1000);
		if (r > 0)
			return 0;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

ssize_t conn_recv(struct conn *c, void *dst, size_t n)
{
	for (;;) {
		ssize_t r = recv(c->fd, dst, n, 0);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || wait_fd(c, POLLIN) == -1)
			return -1;
	}
}

ssize_t conn_try_writev(struct conn *c, struct iovec *iov, int iovcnt)
{
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
	for (;;) {
		ssize_t r = sendmsg(c->fd, &m, MSG_NOSIGNAL | (c->last_out ? MSG_MORE : 0));
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -1;
	}
}

void conn_iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (*cnt > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt > 0) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

int conn_writev(struct conn *c, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		ssize_t r = conn_try_writev(c, iov, iovcnt);
		if (r == -1)
			return -1;
		conn_iov_advance(&iov, &iovcnt, (size_t)r);
		if (iovcnt > 0 && r == 0 && wait_fd(c, POLLOUT) == -1)
			return -1;
	}
	return 0;
}

int conn_sendfile(struct conn *c, int fd, off_t offset, size_t count)
{
	while (count > 0) {
		ssize_t r = sendfile(c->fd, fd, &offset, count);
		if (r > 0) {
			count -= (size_t)r;
			continue;
		}
		if (r == 0)
			return 0; /* the file is shorter than announced */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || wait_fd(c, POLLOUT) == -1)
			return -1;
	}
	return 0;
}

static int send_continue(struct conn *c)
{
	static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = sizeof(msg) - 1};
	c->continue_sent = true;
	return conn_writev(c, &iov, 1);
}

static ssize_t read_fixed(struct conn *c, char *dst, size_t n)
{
	size_t want = n < (uint64_t)c->body_left ? n : (size_t)c->body_left;
	size_t avail = c->len - c->body_off;
	ssize_t r;

	if (avail > 0) {
		r = (ssize_t)(want < avail ? want : avail);
		memcpy(dst, c->buf + c->body_off, (size_t)r);
		c->body_off += (size_t)r;
	} else {
		if (!c->continue_sent && send_continue(c) == -1)
			return -1;
		r = conn_recv(c, dst, want);
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (r == -1)
			return -1;
	}
	c->body_left -= r;
	c->body_done = c->body_left == 0;
	return r;
}

/* Receives more chunked bytes after the head, reusing the body area once
 * everything in it was decoded (the head stays intact for logging). */
static int fill_chunked(struct conn *c)
{
	if (c->body_off == c->len)
		c->len = c->body_off = c->head_len;
	if (c->len == c->cap && conn_reserve(c, c->cap + 16384) == -1)
		return -1;
	if (!c->continue_sent && send_continue(c) == -1)
		return -1;
	ssize_t r = conn_recv(c, c->buf + c->len, c->cap - c->len);
	if (r == 0) {
		errno = ECONNRESET;
		return -1;
	}
	if (r == -1)
		return -1;
	c->len += (size_t)r;
	return 0;
}

static ssize_t read_chunked(struct conn *c, char *dst, size_t n)
{
	if (c->too_large) {
		errno = EFBIG; /* sticky: bytes past the limit are never handed out */
		return -1;
	}
	while (c->pend_len == 0) {
		size_t used;
		struct http_slice data;
		int rc = HTTP_CHUNK_NEED_MORE;
		if (c->body_off < c->len) {
			rc = http_chunked_step(&c->dec, c->buf + c->body_off, c->len - c->body_off,
			                       &used, &data);
			c->body_off += used;
		}
		if (rc == HTTP_CHUNK_DONE) {
			c->body_done = true;
			return 0;
		}
		if (rc == HTTP_CHUNK_ERROR) {
			errno = EPROTO;
			return -1;
		}
		if (rc == HTTP_CHUNK_DATA) {
			c->decoded += data.len;
			if (c->cfg->limit_post > 0 && c->decoded > (uint64_t)c->cfg->limit_post) {
				c->too_large = true;
				errno = EFBIG;
				return -1;
			}
			c->pend_off = (size_t)(data.p - c->buf);
			c->pend_len = data.len;
		} else if (fill_chunked(c) == -1) {
			return -1;
		}
	}
	size_t take = n < c->pend_len ? n : c->pend_len;
	memcpy(dst, c->buf + c->pend_off, take);
	c->pend_off += take;
	c->pend_len -= take;
	return (ssize_t)take;
}

ssize_t conn_body_read(struct conn *c, char *dst, size_t n)
{
	if (c->body_done || n == 0)
		return 0;
	ssize_t r = c->req.chunked ? read_chunked(c, dst, n) : read_fixed(c, dst, n);
	if (r == -1 && errno == ETIMEDOUT)
		c->timed_out = true;
	return r;
}

void conn_cork(struct conn *c, bool on)
{
	int v = on;
	if (!c->l->is_unix)
		setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
}

/*
 * The last bytes of a connection the client asked to end (Connection:
 * close, HTTP/1.0 without keep-alive, and every uwsgi-protocol request)
 * are sent with MSG_MORE: the kernel holds their last partial segment
 * until close() or shutdown() adds the FIN to it. The response and the FIN
 * then travel in one segment, and the client sends one ACK fewer: the
 * client receives 3 segments (the SYN-ACK, the ACK of its request, the
 * response with the FIN) instead of 4, and behind nginx the server's CPU
 * per request drops by about a fifth (docs/benchmarks.md). Never on unix
 * sockets (no segments), and never when the client sent bytes past its
 * request: closing with unread bytes resets the connection, and a reset
 * drops what is held. (A client that sends more after asking to close,
 * unread in the kernel, is reset as before.)
 */
void conn_last_write(struct conn *c, bool last)
{
	bool pipelined = c->body_done && c->len > c->body_off;
	c->last_out = last && !c->l->is_unix && !c->req.keep_alive && !pipelined;
}

void conn_send_error(struct conn *c, int status)
{
	char msg[256];
	const char *text = http_status_text(status);
	int n = snprintf(msg, sizeof(msg),
	                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n%d %s\n",
	                 status, text, strlen(text) + 5, status, text);
	struct iovec iov = {.iov_base = msg, .iov_len = (size_t)n};
	conn_try_writev(c, &iov, 1);
}
