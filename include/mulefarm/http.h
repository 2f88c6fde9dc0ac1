/*
 * http.h - pure HTTP/1.1 request parser and chunked body decoder (RFC 9112).
 *
 * Bytes in, slices into the caller's buffer out. No allocation, no globals,
 * no logging, no I/O: safe from any thread, and fuzzed (tests/fuzz/).
 *
 * Strictness (what is refused, and with which status) is decided here so
 * that every listener behaves the same; the connection code only maps the
 * negative return values to a response.
 */
#ifndef MULEFARM_HTTP_H
#define MULEFARM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A (pointer, length) view into the caller's buffer; never NUL-terminated. */
struct http_slice {
	const char *p;
	size_t len;
};

struct http_header {
	struct http_slice name;  /* a valid token, case as sent */
	struct http_slice value; /* leading/trailing OWS stripped */
};

/* Parse results. Positive values from http_parse_request() are lengths. */
enum {
	HTTP_INCOMPLETE = -1,           /* need more bytes */
	HTTP_ERR_BAD_REQUEST = -2,      /* 400, close */
	HTTP_ERR_TOO_MANY_HEADERS = -3, /* 431, close */
	HTTP_ERR_NOT_IMPLEMENTED = -4,  /* 501: transfer-coding other than chunked */
	HTTP_ERR_VERSION = -5,          /* 505: not HTTP/1.0 or HTTP/1.1 */
};

struct http_request {
	struct http_slice method;
	struct http_slice target;    /* request-target as sent (REQUEST_URI) */
	struct http_slice path;      /* target up to '?' (still percent-encoded) */
	struct http_slice query;     /* after the first '?', without it; len 0 if none */
	int minor_version;           /* 0 or 1 (HTTP/1.x) */
	struct http_header *headers; /* caller's array */
	size_t num_headers;

	/* Framing, derived from the headers. */
	int64_t content_length; /* -1 when absent */
	bool chunked;           /* Transfer-Encoding: chunked */
	bool keep_alive;        /* 1.1 unless "Connection: close"; 1.0 only with keep-alive */
	bool expect_continue;   /* Expect: 100-continue */
};

/*
 * Parses one request head (request line and header fields up to and
 * including the empty line) at the start of <buf,len>.
 *
 * <headers> is an array of <max_headers> entries that req->headers will
 * point to. Returns the length of the head (> 0) on success,
 * HTTP_INCOMPLETE when the head is not complete yet, or a negative
 * HTTP_ERR_* code. Re-parsing the same bytes always gives the same answer,
 * so a caller may simply call again with more data.
 *
 * Refused with HTTP_ERR_BAD_REQUEST: both Content-Length and
 * Transfer-Encoding; more than one Content-Length field (even if equal), or
 * a value that is not 1*DIGIT or overflows int64; Transfer-Encoding in an
 * HTTP/1.0 request; obs-fold (a line starting with SP/HTAB); whitespace
 * between field name and colon; a field name that is not a token; a method
 * that is not a token; control characters (other than HTAB) in a field
 * value or the request-target; a bare CR or a bare LF (lines end in CRLF);
 * a malformed request line; an empty request-target; an HTTP/1.1 request
 * without a Host field, or any request with more than one.
 * Leading empty lines (CRLF) before the request line are skipped (RFC 9112
 * 2.2) and counted in the returned length.
 *
 * When several faults apply, the first in this order decides: the request
 * line (400, or 505 for a well-formed HTTP/x.y other than 1.0 and 1.1);
 * the field lines in order (400, Content-Length included); more than
 * <max_headers> fields (431); then Host (400: none in 1.1, or more than
 * one); then framing: Transfer-Encoding in HTTP/1.0
 * or with Content-Length, an empty or malformed coding list, "chunked"
 * twice or not last (400), any other coding (501). Transfer-Encoding
 * fields combine into one list (empty elements ignored).
 *
 * Before the head is complete, a request line that cannot become valid and
 * a bare LF are refused at once; everything else waits for the end of the
 * head. The answer for a prefix of some bytes is always HTTP_INCOMPLETE or
 * the answer for the whole.
 *
 * "close" in any Connection field wins over "keep-alive". expect_continue
 * is set for an Expect list element "100-continue" in HTTP/1.1 only; other
 * expectations are ignored. The request-target's form is not checked
 * here. On success every field of *<req> is set; on any other
 * result *<req> is unspecified.
 */
ssize_t http_parse_request(const char *buf, size_t len, struct http_request *req,
                           struct http_header *headers, size_t max_headers);

/* Locates the end of the request line: the index of its CR, or -1 when no
 * CRLF has arrived yet. Lets the caller pick 414 over 431 when the header
 * buffer fills up. Leading empty lines are skipped as by
 * http_parse_request(); the index counts from <buf>. */
ssize_t http_request_line_end(const char *buf, size_t len);

/* Case-insensitive comparison of a slice with a NUL-terminated literal. */
bool http_slice_eq_nocase(struct http_slice s, const char *lit);

/* Exact comparison of a slice with a NUL-terminated literal. */
bool http_slice_eq(struct http_slice s, const char *lit);

/* The reason phrase for <status> (RFC 9110), "Error" for one not used. */
const char *http_status_text(int status);

/*
 * Incremental chunked body decoder (RFC 9112 7.1). Zero-copy: decoded body
 * bytes are returned as slices of the input.
 */
struct http_chunked {
	int state;
	uint64_t remaining; /* bytes left in the current chunk */
	size_t line_len;    /* bytes of the current chunk-size line seen */
	size_t trailer_len; /* bytes of trailer section seen */
};

enum {
	HTTP_CHUNK_DATA = 1,      /* <data> holds body bytes */
	HTTP_CHUNK_NEED_MORE = 2, /* all of the input was consumed */
	HTTP_CHUNK_DONE = 3,      /* the last chunk and trailers ended */
	HTTP_CHUNK_ERROR = -1,    /* malformed: respond 400 and close */
};

/* Limits that keep a hostile client from making the decoder buffer nothing
 * forever: a chunk-size line (with extensions) and the whole trailer
 * section. */
#define HTTP_CHUNK_LINE_MAX    4096
#define HTTP_CHUNK_TRAILER_MAX 8192

void http_chunked_init(struct http_chunked *d);

/*
 * Consumes a prefix of <in,len>; sets *consumed to its length. Returns
 * HTTP_CHUNK_DATA with <data> set to a slice of <in> (consumed covers it),
 * HTTP_CHUNK_NEED_MORE when every byte was consumed without yielding data,
 * HTTP_CHUNK_DONE when the body ended (*consumed stops right after the
 * final CRLF; bytes after it belong to the next request), or
 * HTTP_CHUNK_ERROR. Call in a loop until NEED_MORE or DONE.
 *
 * Refused: a chunk size that is empty, not hex, or over 2^62; a chunk
 * extension that is not `;` token [ "=" ( token / quoted-string ) ] with
 * optional BWS; a chunk not followed by CRLF; bare CR or LF; trailer fields
 * that are not valid header fields; a size line or trailer section over the
 * limits above.
 *
 * BWS is accepted only where RFC 9112 7.1.1 puts it (before ';', around
 * '='), never before the CRLF. The line limit counts the whole size line
 * with its CRLF; the trailer limit counts everything after the last-chunk
 * line up to and including the final CRLF. With DATA, *consumed ends right
 * after the data; the CRLF after it is left for the next call. Once DONE or
 * ERROR has been returned, further calls return the same and consume
 * nothing.
 */
int http_chunked_step(struct http_chunked *d, const char *in, size_t len, size_t *consumed,
                      struct http_slice *data);

#endif
