/*
 * conn.h - one client connection, shared by the worker's event loop
 * (which owns it while it waits for a request) and a Python thread (which
 * owns it while a request runs). Ownership moves by queue; never both.
 *
 * The buffer holds the bytes received: the current request head at
 * [0, head_len), then body bytes and any pipelined requests.
 */
#ifndef MULEFARM_CONN_H
#define MULEFARM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "mulefarm/http.h"
#include "mulefarm/server.h"
#include "mulefarm/uwsgi_proto.h"

#define CONN_MAX_VARS 128 /* uwsgi protocol vars per packet */

/* conn_parse_head() results for the uwsgi protocol, beside HTTP_*. */
enum {
	CONN_ERR_UWSGI_MALFORMED = -100,
	CONN_ERR_UWSGI_TOO_LARGE = -101, /* over --buffer-size */
	CONN_ERR_UWSGI_TOO_MANY = -102,
	CONN_ERR_UWSGI_MODIFIER = -103, /* modifier1 other than 0 (WSGI) */
	CONN_ERR_UWSGI_VARS = -104,     /* no REQUEST_METHOD, or a bad CONTENT_LENGTH */
};

#define CONN_MAX_HEADERS   100
#define CONN_BODY_PREFETCH 65536 /* body bytes the loop gathers before dispatch */

struct conn {
	int fd;
	const struct listener *l;
	const struct config *cfg;
	char peer_addr[48];
	char peer_port[8];

	char *buf;
	size_t cap, len;

	/* The request being served. */
	struct http_request req; /* for the uwsgi protocol, filled from the vars */
	union {
		struct http_header headers[CONN_MAX_HEADERS];
		struct uwsgi_var vars[CONN_MAX_VARS];
	};
	struct uwsgi_packet pkt;
	size_t head_len;
	size_t body_off;   /* first unconsumed body byte in buf */
	int64_t body_left; /* Content-Length bytes not yet consumed */
	struct http_chunked dec;
	bool body_done;            /* the whole body has been consumed */
	bool continue_sent;        /* 100 Continue sent, or not needed */
	bool timed_out;            /* the client stalled while sending the body */
	bool too_large;            /* the body passed --limit-post */
	size_t pend_off, pend_len; /* decoded chunk bytes not yet handed out */
	uint64_t decoded;          /* chunked body bytes decoded so far */
	uint64_t requests;         /* served on this connection */
	bool last_out;             /* what is written now ends the connection */

	/* A static file body the worker's loop sends as the socket drains
	 * (static_serve() returned 2): never blocks a thread on one client. */
	int sf_fd; /* -1 when none */
	off_t sf_off;
	uint64_t sf_left;
	bool sf_keep;

	/* Event-loop state. */
	struct conn *prev, *next;
	int64_t deadline_ms;
	int state;                /* the worker's view: reading head, body, running, lingering */
	bool registered;          /* added to the worker's epoll set */
	int list;                 /* which timer list holds it, or 0 */
	struct http_chunked scan; /* completion scan of a chunked body in the loop */
	size_t scan_off;
};

struct conn *conn_new(int fd, const struct listener *l, const struct config *cfg);
void conn_free(struct conn *c);

/* Grows the buffer so that <need> bytes fit. Returns 0 or -1 (ENOMEM). */
int conn_reserve(struct conn *c, size_t need);

/* Parses the head at the start of the buffer (an HTTP request head, or a
 * uwsgi packet on a --socket listener) and sets up body state. Returns the
 * head's length, HTTP_INCOMPLETE, an HTTP_ERR_* or a CONN_ERR_UWSGI_*. */
ssize_t conn_parse_head(struct conn *c);

/* After a request: drops its head and body from the buffer so that any
 * pipelined bytes start at 0. Returns false if the body was not fully read
 * (the connection cannot be reused). */
bool conn_next_request(struct conn *c);

/*
 * Blocking I/O for the Python thread, with the socket timeout. These never
 * touch the GIL; the caller releases it around them when they may block.
 * Return bytes moved, 0 at EOF (recv), or -1 with errno (ETIMEDOUT when the
 * client stalled for the socket timeout).
 */
ssize_t conn_recv(struct conn *c, void *dst, size_t n);
int conn_writev(struct conn *c, struct iovec *iov, int iovcnt);
int conn_sendfile(struct conn *c, int fd, off_t offset, size_t count);

/* Drops the first <n> bytes from <*iov,*cnt>. */
void conn_iov_advance(struct iovec **iov, int *cnt, size_t n);

/* Non-blocking attempt first: returns bytes written (maybe 0), -1 on error. */
ssize_t conn_try_writev(struct conn *c, struct iovec *iov, int iovcnt);

/* Reads up to <n> decoded body bytes into <dst>. Returns bytes (0 at end of
 * body), or -1: errno ETIMEDOUT (stall), EPROTO (bad chunking), EFBIG
 * (over --limit-post), ECONNRESET (client went away). May block: call with
 * the GIL released, or when the body is known to be buffered. */
ssize_t conn_body_read(struct conn *c, char *dst, size_t n);

/* Holds back partial segments (TCP_CORK) while a head and a file body are
 * queued, so the head does not travel in a small segment of its own;
 * a no-op on unix sockets. */
void conn_cork(struct conn *c, bool on);

/* Marks the bytes about to be written as the connection's last (<last>),
 * or clears the mark. While it is set, a TCP connection the client asked
 * to end holds their last partial segment for the FIN (see conn.c). The
 * caller closes or shuts down the connection right after the write. */
void conn_last_write(struct conn *c, bool last);

/* A canned error response (status line and short body), Connection: close. */
void conn_send_error(struct conn *c, int status);

/* Milliseconds on the monotonic clock. */
int64_t mono_ms(void);

#endif
