/*
 * http.c - pure HTTP/1.1 request parser and chunked body decoder (RFC 9112).
 *
 * The request parser first looks for the end of the head ("\r\n\r\n") and
 * only then parses it, once: a request that arrived whole (the common case)
 * costs one memchr() loop and one pass. Inside a complete head the line
 * scanners need no bounds checks, because every scan stops at CR or LF and
 * the head ends in CRLF CRLF. While the head is incomplete, only the request
 * line and the line endings are checked, so that garbage (a TLS hello,
 * bare-LF requests) is refused at once instead of when the buffer fills up.
 */
#include <string.h>

#include "mulefarm/http.h"

/* Character classes (RFC 9110 5.6.2 tchar, 5.5 field-value, 5.6.4 qdtext;
 * RFC 9112 3.2 request-target, restricted to the bytes we accept). */
enum {
	C_TCHAR = 1 << 0,  /* tchar */
	C_VALUE = 1 << 1,  /* field-vchar / SP / HTAB (obs-text included) */
	C_TARGET = 1 << 2, /* request-target: no controls, no SP */
	C_QDTEXT = 1 << 3, /* quoted-string text, before '\' escapes */
};

#define TK (C_TCHAR | C_VALUE | C_TARGET | C_QDTEXT) /* token characters */
#define VC (C_VALUE | C_TARGET | C_QDTEXT)           /* other VCHAR, obs-text */
#define VN (C_VALUE | C_TARGET)                      /* '"' and '\' */
#define WS (C_VALUE | C_QDTEXT)                      /* SP, HTAB */
#define __ 0                                         /* controls, DEL */

static const unsigned char char_class[256] = {
        __, __, __, __, __, __, __, __, __, WS, __, __, __, __, __, __, /* 0x00 */
        __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, /* 0x10 */
        WS, TK, VN, TK, TK, TK, TK, TK, VC, VC, TK, TK, VC, TK, TK, VC, /* 0x20 */
        TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, VC, VC, VC, VC, VC, VC, /* 0x30 */
        VC, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, /* 0x40 */
        TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, VC, VN, VC, TK, TK, /* 0x50 */
        TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, /* 0x60 */
        TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, TK, VC, TK, VC, TK, __, /* 0x70 */
        VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, /* 0x80 */
        VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, /* 0x90 */
        VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, /* 0xa0 */
        VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, /* 0xb0 */
        VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, /* 0xc0 */
        VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, /* 0xd0 */
        VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, /* 0xe0 */
        VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, VC, /* 0xf0 */
};

#undef TK
#undef VC
#undef VN
#undef WS
#undef __

static inline bool is_class(char c, int cls)
{
	return (char_class[(unsigned char)c] & cls) != 0;
}

static inline bool is_ws(char c)
{
	return c == ' ' || c == '\t';
}

static inline unsigned char to_lower(char c)
{
	unsigned char u = (unsigned char)c;
	return (unsigned char)(u - 'A') < 26 ? u | 0x20 : u;
}

/*
 * Eight bytes at a time: a word "has a byte below <n>" test (exact as to
 * whether one exists, for n <= 128), used to skip runs of plain bytes in
 * targets and field values before looking at single bytes.
 */
#define ONES  ((uint64_t)0x0101010101010101)
#define HIGHS (ONES * 0x80)

static inline uint64_t load64(const char *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
	return x;
}

/* Whether any byte of <x> is below <n> or is DEL. */
static inline bool has_below_or_del(uint64_t x, unsigned n)
{
	uint64_t y = x ^ (ONES * 0x7f);

	return (((x - ONES * n) & ~x) | ((y - ONES) & ~y)) & HIGHS;
}

/* <p,n> equals the lowercase literal <lit> (of length <n>) ignoring case. */
static bool eq_lower(const char *p, size_t n, const char *lit)
{
	for (size_t i = 0; i < n; i++)
		if (to_lower(p[i]) != (unsigned char)lit[i])
			return false;
	return true;
}

bool http_slice_eq(struct http_slice s, const char *lit)
{
	return strlen(lit) == s.len && memcmp(s.p, lit, s.len) == 0;
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 206:
		return "Partial Content";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 416:
		return "Range Not Satisfiable";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Error";
}

bool http_slice_eq_nocase(struct http_slice s, const char *lit)
{
	size_t i;

	for (i = 0; i < s.len; i++)
		if (lit[i] == '\0' || to_lower(s.p[i]) != to_lower(lit[i]))
			return false;
	return lit[i] == '\0';
}

/* Skips the empty lines (CRLF) allowed before a request line. */
static const char *skip_empty_lines(const char *p, const char *last)
{
	while (last - p >= 2 && p[0] == '\r' && p[1] == '\n')
		p += 2;
	return p;
}

ssize_t http_request_line_end(const char *buf, size_t len)
{
	const char *last = buf + len;
	const char *p = skip_empty_lines(buf, last);
	const char *cr = memmem(p, (size_t)(last - p), "\r\n", 2);

	return cr != NULL ? cr - buf : -1;
}

/*
 * Request line
 */

/* Checks "HTTP/1.x" CRLF at <p>, bounded by <last>. Anything that is not
 * HTTP-version CRLF is malformed (400); a well-formed version other than
 * 1.0 or 1.1 is refused with 505. */
static int parse_version(const char *p, const char *last, struct http_request *req)
{
	static const char pattern[] = "HTTP/#.#\r\n";

	for (size_t i = 0; i < sizeof(pattern) - 1; i++) {
		if (p + i == last)
			return HTTP_INCOMPLETE;
		if (pattern[i] == '#' ? (unsigned char)(p[i] - '0') > 9 : p[i] != pattern[i])
			return HTTP_ERR_BAD_REQUEST;
	}
	if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
		return HTTP_ERR_VERSION;
	req->minor_version = p[7] - '0';
	return 0;
}

/*
 * Parses the request line at *<pp>, bounded by <last> (which may cut it
 * short: then HTTP_INCOMPLETE, unless what is there is already wrong).
 * On success returns 0 and advances *<pp> past the CRLF.
 */
static int parse_request_line(const char **pp, const char *last, struct http_request *req)
{
	const char *p = *pp, *start = p, *q;
	int r;

	while (p < last && is_class(*p, C_TCHAR))
		p++;
	if (p == last)
		return HTTP_INCOMPLETE;
	if (p == start || *p != ' ')
		return HTTP_ERR_BAD_REQUEST;
	req->method = (struct http_slice){start, (size_t)(p - start)};

	start = ++p;
	while (last - p >= 8 && !has_below_or_del(load64(p), 0x21))
		p += 8;
	while (p < last && is_class(*p, C_TARGET))
		p++;
	if (p == last)
		return HTTP_INCOMPLETE;
	if (p == start || *p != ' ')
		return HTTP_ERR_BAD_REQUEST;
	req->target = (struct http_slice){start, (size_t)(p - start)};
	q = memchr(start, '?', req->target.len);
	if (q != NULL) {
		req->path = (struct http_slice){start, (size_t)(q - start)};
		req->query = (struct http_slice){q + 1, (size_t)(p - q - 1)};
	} else {
		req->path = req->target;
		req->query = (struct http_slice){p, 0};
	}

	r = parse_version(++p, last, req);
	if (r != 0)
		return r;
	*pp = p + 10;
	return 0;
}

/*
 * Header fields
 */

/* What the framing fields said, gathered line by line and judged once the
 * whole head is known (so that the answer does not depend on field order
 * more than it must). */
struct framing {
	unsigned te_fields;   /* Transfer-Encoding fields seen */
	unsigned te_codings;  /* transfer-codings listed in them */
	unsigned te_chunked;  /* of which "chunked" */
	bool te_last_chunked; /* the last coding listed was "chunked" */
	bool te_unknown;      /* a coding other than chunked */
	bool te_malformed;    /* a list element that is not a transfer-coding */
	unsigned host_fields; /* Host fields seen */
	bool conn_close;
	bool conn_keep_alive;
	bool expect_continue;
};

/* Calls back for each non-empty element of a comma-separated list (RFC 9110
 * 5.6.1), with OWS around it removed. */
static void for_each_element(struct http_slice v, struct framing *f,
                             void (*fn)(const char *p, size_t n, struct framing *f))
{
	const char *p = v.p, *last = v.p + v.len;

	while (p < last) {
		const char *e = memchr(p, ',', (size_t)(last - p));
		const char *t = e != NULL ? e : last;

		while (p < t && is_ws(*p))
			p++;
		while (t > p && is_ws(t[-1]))
			t--;
		if (t > p)
			fn(p, (size_t)(t - p), f);
		p = e != NULL ? e + 1 : last;
	}
}

/* One transfer-coding: token *( OWS ";" OWS transfer-parameter ). The
 * parameters are not looked at: chunked takes none, and any other coding
 * is refused anyway. */
static void te_element(const char *p, size_t n, struct framing *f)
{
	size_t tok = 0;

	while (tok < n && is_class(p[tok], C_TCHAR))
		tok++;
	f->te_codings++;
	f->te_last_chunked = false;
	if (tok == 0) {
		f->te_malformed = true;
		return;
	}
	if (tok == 7 && eq_lower(p, 7, "chunked")) {
		f->te_chunked++;
		f->te_last_chunked = true;
		if (tok < n) /* "chunked" has no parameters */
			f->te_malformed = true;
		return;
	}
	for (size_t i = tok; i < n && p[i] != ';'; i++)
		if (!is_ws(p[i]))
			f->te_malformed = true;
	f->te_unknown = true;
}

static void connection_element(const char *p, size_t n, struct framing *f)
{
	if (n == 5 && eq_lower(p, 5, "close"))
		f->conn_close = true;
	else if (n == 10 && eq_lower(p, 10, "keep-alive"))
		f->conn_keep_alive = true;
}

static void expect_element(const char *p, size_t n, struct framing *f)
{
	if (n == 12 && eq_lower(p, 12, "100-continue"))
		f->expect_continue = true;
}

/* Content-Length = 1*DIGIT, at most once, within int64. */
static int parse_content_length(struct http_slice v, struct http_request *req)
{
	int64_t n = 0;

	if (req->content_length != -1 || v.len == 0)
		return HTTP_ERR_BAD_REQUEST;
	for (size_t i = 0; i < v.len; i++) {
		unsigned d = (unsigned char)(v.p[i] - '0');
		if (d > 9 || n > (INT64_MAX - (int64_t)d) / 10)
			return HTTP_ERR_BAD_REQUEST;
		n = n * 10 + (int64_t)d;
	}
	req->content_length = n;
	return 0;
}

/* Notes what a field means for framing; dispatches on the name's length
 * first so that most fields cost one switch. */
static int note_field(const struct http_header *h, struct http_request *req, struct framing *f)
{
	switch (h->name.len) {
	case 4:
		if (eq_lower(h->name.p, 4, "host"))
			f->host_fields++;
		break;
	case 6:
		if (eq_lower(h->name.p, 6, "expect"))
			for_each_element(h->value, f, expect_element);
		break;
	case 10:
		if (eq_lower(h->name.p, 10, "connection"))
			for_each_element(h->value, f, connection_element);
		break;
	case 14:
		if (eq_lower(h->name.p, 14, "content-length"))
			return parse_content_length(h->value, req);
		break;
	case 17:
		if (eq_lower(h->name.p, 17, "transfer-encoding")) {
			f->te_fields++;
			for_each_element(h->value, f, te_element);
		}
		break;
	}
	return 0;
}

/* Skips field-value bytes, eight at a time while eight remain before
 * <end>. Stops at CR or LF at the latest: see parse_field_line(). */
static const char *skip_value(const char *p, const char *end)
{
	for (;;) {
		while (end - p >= 8 && !has_below_or_del(load64(p), 0x20))
			p += 8;
		/* HTAB, or the end of the value is in these eight bytes */
		for (int i = 0; i < 8; i++, p++)
			if (!is_class(*p, C_VALUE))
				return p;
	}
}

/*
 * Parses one field line at *<pp> into <h>. The head ending at <end> is
 * complete, so the scans need no bounds: each stops at CR or LF at the
 * latest, and the head ends in CRLF CRLF.
 */
static int parse_field_line(const char **pp, const char *end, struct http_header *h)
{
	const char *p = *pp, *start = p, *vend;

	while (is_class(*p, C_TCHAR))
		p++;
	if (p == start || *p != ':') /* obs-fold, "name :", bad names */
		return HTTP_ERR_BAD_REQUEST;
	h->name = (struct http_slice){start, (size_t)(p - start)};

	p++;
	while (is_ws(*p))
		p++;
	start = p;
	p = skip_value(p, end);
	if (p[0] != '\r' || p[1] != '\n') /* controls, bare CR or LF */
		return HTTP_ERR_BAD_REQUEST;
	for (vend = p; vend > start && is_ws(vend[-1]); vend--)
		;
	h->value = (struct http_slice){start, (size_t)(vend - start)};
	*pp = p + 2;
	return 0;
}

/* Derives the framing of the request once all fields are known. */
static int judge_framing(struct http_request *req, const struct framing *f)
{
	/* RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in 1.0. */
	if (f->host_fields > 1 || (req->minor_version == 1 && f->host_fields == 0))
		return HTTP_ERR_BAD_REQUEST;
	if (f->te_fields > 0) {
		if (req->minor_version == 0 || req->content_length != -1)
			return HTTP_ERR_BAD_REQUEST;
		if (f->te_malformed || f->te_codings == 0)
			return HTTP_ERR_BAD_REQUEST;
		if (f->te_chunked > 1 || (f->te_chunked == 1 && !f->te_last_chunked))
			return HTTP_ERR_BAD_REQUEST;
		if (f->te_unknown)
			return HTTP_ERR_NOT_IMPLEMENTED;
		req->chunked = true;
	}
	if (req->minor_version == 1)
		req->keep_alive = !f->conn_close;
	else
		req->keep_alive = f->conn_keep_alive && !f->conn_close;
	req->expect_continue = req->minor_version == 1 && f->expect_continue;
	return 0;
}

/* Parses the field lines of a complete head, from <p> up to its final
 * CRLF. Syntax errors win over a field count past <max>, which is only
 * reported once every line was checked. */
static int parse_fields(const char *p, const char *end, struct http_request *req,
                        struct http_header *headers, size_t max)
{
	struct framing f = {0};
	struct http_header h;
	size_t n = 0;
	int r;

	while (*p != '\r') {
		r = parse_field_line(&p, end, &h);
		if (r == 0)
			r = note_field(&h, req, &f);
		if (r != 0)
			return r;
		if (n < max)
			headers[n] = h;
		n++;
	}
	if (p[1] != '\n')
		return HTTP_ERR_BAD_REQUEST;
	if (n > max)
		return HTTP_ERR_TOO_MANY_HEADERS;
	req->num_headers = n;
	return judge_framing(req, &f);
}

/*
 * The head is not complete yet. Checks what can be checked for good: the
 * request line, or as much of it as arrived, and that every line received
 * so far ends in CRLF. A complete head with the same bytes fails the same
 * way, so the answer never changes as more bytes arrive.
 */
static ssize_t check_partial(const char *p, const char *last, struct http_request *req)
{
	int r = parse_request_line(&p, last, req);

	if (r != 0)
		return r;
	for (const char *lf = p; (lf = memchr(lf, '\n', (size_t)(last - lf))) != NULL; lf++)
		if (lf[-1] != '\r')
			return HTTP_ERR_BAD_REQUEST;
	return HTTP_INCOMPLETE;
}

/* Returns the end of the first CRLF CRLF in [<p>, <last>), or NULL. A
 * memchr() loop: glibc's memmem() is several times slower on heads. */
static const char *find_head_end(const char *p, const char *last)
{
	while (last - p >= 4) {
		const char *cr = memchr(p, '\r', (size_t)(last - p - 3));
		if (cr == NULL)
			return NULL;
		if (cr[1] == '\n' && cr[2] == '\r' && cr[3] == '\n')
			return cr + 4;
		p = cr + 1;
	}
	return NULL;
}

ssize_t http_parse_request(const char *buf, size_t len, struct http_request *req,
                           struct http_header *headers, size_t max_headers)
{
	const char *last = buf + len;
	const char *p = skip_empty_lines(buf, last);
	const char *end;
	int r;

	if (p == last || (last - p == 1 && *p == '\r')) /* maybe one more empty line */
		return HTTP_INCOMPLETE;

	req->headers = headers;
	req->num_headers = 0;
	req->content_length = -1;
	req->chunked = false;
	req->keep_alive = false;
	req->expect_continue = false;

	end = find_head_end(p, last);
	if (end == NULL)
		return check_partial(p, last, req);

	r = parse_request_line(&p, end, req);
	if (r == 0)
		r = parse_fields(p, end, req, headers, max_headers);
	if (r != 0)
		return r == HTTP_INCOMPLETE ? HTTP_ERR_BAD_REQUEST : r;
	return end - buf;
}

/*
 * Chunked decoder. Framing bytes go through a byte-at-a-time state machine
 * (size lines and trailers are short); chunk data is handed out as slices
 * of the input without being looked at.
 */
enum {
	CS_SIZE0,       /* first hex digit of chunk-size */
	CS_SIZE,        /* more hex digits, then ';', BWS or CR */
	CS_SIZE_WS,     /* BWS after chunk-size: only ';' may follow */
	CS_EXT_PRE,     /* after ';': BWS, then chunk-ext-name */
	CS_EXT_NAME,    /* in chunk-ext-name */
	CS_EXT_NAME_WS, /* BWS after the name: '=' or ';' may follow */
	CS_EXT_PRE_VAL, /* after '=': BWS, then token or quoted-string */
	CS_EXT_TOKEN,   /* in a token value */
	CS_EXT_QSTR,    /* in a quoted-string value */
	CS_EXT_QPAIR,   /* after '\' in a quoted-string */
	CS_EXT_VAL_END, /* right after the closing DQUOTE */
	CS_EXT_VAL_WS,  /* BWS after a value: only ';' may follow */
	CS_SIZE_LF,     /* LF ending the size line */
	CS_DATA,        /* chunk data, <remaining> bytes left */
	CS_DATA_CR,     /* CRLF after chunk data */
	CS_DATA_LF,
	CS_TR_START,    /* start of a trailer line, or CR of the final CRLF */
	CS_TR_NAME,     /* in a trailer field name */
	CS_TR_VALUE,    /* in a trailer field value */
	CS_TR_LF,       /* LF ending a trailer line */
	CS_TR_FINAL_LF, /* LF of the final CRLF */
	CS_DONE,
	CS_ERROR,
};

#define CHUNK_SIZE_MAX ((uint64_t)1 << 62)

void http_chunked_init(struct http_chunked *d)
{
	d->state = CS_SIZE0;
	d->remaining = 0;
	d->line_len = 0;
	d->trailer_len = 0;
}

static int hex_value(char c)
{
	unsigned u = (unsigned char)c;

	if (u - '0' < 10)
		return (int)(u - '0');
	u |= 0x20;
	if (u - 'a' < 6)
		return (int)(u - 'a') + 10;
	return -1;
}

/* A hex digit of chunk-size, refusing sizes over 2^62. */
static int size_digit(struct http_chunked *d, char c)
{
	int v = hex_value(c);

	if (v < 0 || d->remaining > CHUNK_SIZE_MAX >> 4)
		return CS_ERROR;
	d->remaining = d->remaining << 4 | (uint64_t)v;
	return d->remaining > CHUNK_SIZE_MAX ? CS_ERROR : CS_SIZE;
}

/* After a chunk-size, chunk-ext-name or value: BWS, another extension or
 * the end of the line. */
static int ext_after(char c, int ws_state)
{
	if (is_ws(c))
		return ws_state;
	if (c == ';')
		return CS_EXT_PRE;
	return c == '\r' ? CS_SIZE_LF : CS_ERROR;
}

/* In BWS: only more BWS or another extension may follow (BWS is allowed
 * before ';' and '=', never before CRLF). */
static int ext_bws(char c, int ws_state)
{
	if (is_ws(c))
		return ws_state;
	return c == ';' ? CS_EXT_PRE : CS_ERROR;
}

/*
 * One byte of a chunk-size line: chunk-size [ chunk-ext ] CRLF with
 * chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ). Returns the
 * next state.
 */
static int size_line_byte(struct http_chunked *d, char c)
{
	switch (d->state) {
	case CS_SIZE0:
		return size_digit(d, c);
	case CS_SIZE:
		return hex_value(c) >= 0 ? size_digit(d, c) : ext_after(c, CS_SIZE_WS);
	case CS_SIZE_WS:
	case CS_EXT_VAL_WS:
		return ext_bws(c, d->state);
	case CS_EXT_PRE:
		if (is_ws(c))
			return CS_EXT_PRE;
		return is_class(c, C_TCHAR) ? CS_EXT_NAME : CS_ERROR;
	case CS_EXT_NAME:
		if (is_class(c, C_TCHAR))
			return CS_EXT_NAME;
		return c == '=' ? CS_EXT_PRE_VAL : ext_after(c, CS_EXT_NAME_WS);
	case CS_EXT_NAME_WS:
		return c == '=' ? CS_EXT_PRE_VAL : ext_bws(c, CS_EXT_NAME_WS);
	case CS_EXT_PRE_VAL:
		if (is_ws(c))
			return CS_EXT_PRE_VAL;
		if (c == '"')
			return CS_EXT_QSTR;
		return is_class(c, C_TCHAR) ? CS_EXT_TOKEN : CS_ERROR;
	case CS_EXT_TOKEN:
		return is_class(c, C_TCHAR) ? CS_EXT_TOKEN : ext_after(c, CS_EXT_VAL_WS);
	case CS_EXT_QSTR:
		if (c == '"')
			return CS_EXT_VAL_END;
		if (c == '\\')
			return CS_EXT_QPAIR;
		return is_class(c, C_QDTEXT) ? CS_EXT_QSTR : CS_ERROR;
	case CS_EXT_QPAIR: /* HTAB / SP / VCHAR / obs-text */
		return is_class(c, C_VALUE) ? CS_EXT_QSTR : CS_ERROR;
	case CS_EXT_VAL_END:
		return ext_after(c, CS_EXT_VAL_WS);
	case CS_SIZE_LF:
		if (c != '\n')
			return CS_ERROR;
		return d->remaining > 0 ? CS_DATA : CS_TR_START;
	}
	return CS_ERROR;
}

/* One byte of the trailer section: *( field-line CRLF ) CRLF, with field
 * lines as strict as in the head. Returns the next state. */
static int trailer_byte(int state, char c)
{
	switch (state) {
	case CS_TR_START:
		if (c == '\r')
			return CS_TR_FINAL_LF;
		return is_class(c, C_TCHAR) ? CS_TR_NAME : CS_ERROR;
	case CS_TR_NAME:
		if (c == ':')
			return CS_TR_VALUE;
		return is_class(c, C_TCHAR) ? CS_TR_NAME : CS_ERROR;
	case CS_TR_VALUE:
		if (c == '\r')
			return CS_TR_LF;
		return is_class(c, C_VALUE) ? CS_TR_VALUE : CS_ERROR;
	case CS_TR_LF:
		return c == '\n' ? CS_TR_START : CS_ERROR;
	case CS_TR_FINAL_LF:
		return c == '\n' ? CS_DONE : CS_ERROR;
	}
	return CS_ERROR;
}

/* One framing byte (anything but chunk data). Enforces the size line and
 * trailer section limits. Returns the next state. */
static int framing_byte(struct http_chunked *d, char c)
{
	switch (d->state) {
	case CS_DATA_CR:
		return c == '\r' ? CS_DATA_LF : CS_ERROR;
	case CS_DATA_LF:
		d->line_len = 0;
		return c == '\n' ? CS_SIZE0 : CS_ERROR;
	case CS_TR_START:
	case CS_TR_NAME:
	case CS_TR_VALUE:
	case CS_TR_LF:
	case CS_TR_FINAL_LF:
		if (++d->trailer_len > HTTP_CHUNK_TRAILER_MAX)
			return CS_ERROR;
		return trailer_byte(d->state, c);
	}
	if (++d->line_len > HTTP_CHUNK_LINE_MAX)
		return CS_ERROR;
	return size_line_byte(d, c);
}

int http_chunked_step(struct http_chunked *d, const char *in, size_t len, size_t *consumed,
                      struct http_slice *data)
{
	size_t i = 0;

	if (d->state == CS_DONE || d->state == CS_ERROR) {
		*consumed = 0;
		return d->state == CS_DONE ? HTTP_CHUNK_DONE : HTTP_CHUNK_ERROR;
	}
	while (i < len) {
		if (d->state == CS_DATA) {
			size_t n = len - i < d->remaining ? len - i : (size_t)d->remaining;
			data->p = in + i;
			data->len = n;
			d->remaining -= n;
			if (d->remaining == 0)
				d->state = CS_DATA_CR;
			*consumed = i + n;
			return HTTP_CHUNK_DATA;
		}
		d->state = framing_byte(d, in[i++]);
		if (d->state == CS_ERROR || d->state == CS_DONE) {
			*consumed = i;
			return d->state == CS_DONE ? HTTP_CHUNK_DONE : HTTP_CHUNK_ERROR;
		}
	}
	*consumed = i;
	return HTTP_CHUNK_NEED_MORE;
}
