/*
 * fuzz_http_request.c - libFuzzer target for http_parse_request().
 *
 * Input: the bytes a client sent. Checks that
 *  - the result is a documented value, a head length within the input;
 *  - returned slices lie inside the head and agree with each other;
 *  - a fresh copy of the same bytes parses the same way;
 *  - every prefix gives HTTP_INCOMPLETE or the full input's answer, and
 *    bytes appended after a decided answer do not change it;
 *  - a reference parser written line by line from the RFC 9112 grammar
 *    gives the same answer, and the same fields;
 *  - an accepted request has one Host field (HTTP/1.1) or at most one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mulefarm/http.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define MAX_HEADERS 8 /* small, so that 431 is reachable */

struct parsed {
	ssize_t r;
	struct http_request req;
	struct http_header headers[MAX_HEADERS];
};

/* Parses <len> bytes from an exact-size copy, so that ASan sees any read
 * past the end. */
static void parse_copy(const uint8_t *data, size_t len, struct parsed *out, const char **copy)
{
	char *buf = malloc(len ? len : 1);

	memcpy(buf, data, len);
	memset(&out->req, 0, sizeof(out->req));
	out->r = http_parse_request(buf, len, &out->req, out->headers, MAX_HEADERS);
	*copy = buf;
}

static int in_range(struct http_slice s, const char *lo, const char *hi)
{
	return s.p >= lo && s.p <= hi && s.len <= (size_t)(hi - s.p);
}

/*
 * Reference parser: finds the head naively, splits it into lines at CRLF
 * and checks each line against the grammar, in the same order of
 * precedence as the contract (request line, field lines, field count,
 * framing).
 */
struct ref {
	ssize_t r; /* as http_parse_request() */
	size_t method, target, num_headers;
	int64_t content_length;
	bool chunked, keep_alive, expect_continue;
	unsigned te_fields, te_codings, te_chunked, host_fields;
	bool te_last_chunked, te_unknown, te_malformed, conn_close, conn_keep_alive, expect;
};

static int ref_tchar(int c)
{
	return c > 0 && c < 0x7f &&
	       (strchr("!#$%&'*+-.^_`|~", c) != NULL || (c >= '0' && c <= '9') ||
	        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
}

static int ref_ws(int c)
{
	return c == ' ' || c == '\t';
}

static int ref_value_char(int c)
{
	return ref_ws(c) || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

static int ref_eq(const uint8_t *p, size_t n, const char *lit)
{
	if (n != strlen(lit))
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i];
		if (c != lit[i])
			return 0;
	}
	return 1;
}

static ssize_t ref_request_line(const uint8_t *l, size_t n, struct ref *o, int *minor)
{
	const uint8_t *sp1 = memchr(l, ' ', n), *sp2, *v;

	if (sp1 == NULL || sp1 == l)
		return HTTP_ERR_BAD_REQUEST;
	for (const uint8_t *q = l; q < sp1; q++)
		if (!ref_tchar(*q))
			return HTTP_ERR_BAD_REQUEST;
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return HTTP_ERR_BAD_REQUEST;
	for (const uint8_t *q = sp1 + 1; q < sp2; q++)
		if (*q < 0x21 || *q == 0x7f)
			return HTTP_ERR_BAD_REQUEST;
	o->method = (size_t)(sp1 - l);
	o->target = (size_t)(sp2 - sp1 - 1);
	v = sp2 + 1;
	if (l + n - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
	    v[6] != '.' || v[7] < '0' || v[7] > '9')
		return HTTP_ERR_BAD_REQUEST;
	if (v[5] != '1' || v[7] > '1')
		return HTTP_ERR_VERSION;
	*minor = v[7] - '0';
	return 0;
}

static void ref_list(const uint8_t *v, size_t n, struct ref *o, int which)
{
	size_t i = 0;

	while (i <= n) {
		size_t j = i, a, b;
		while (j < n && v[j] != ',')
			j++;
		for (a = i; a < j && ref_ws(v[a]); a++)
			;
		for (b = j; b > a && ref_ws(v[b - 1]); b--)
			;
		if (b > a && which == 'c') {
			o->conn_close |= ref_eq(v + a, b - a, "close");
			o->conn_keep_alive |= ref_eq(v + a, b - a, "keep-alive");
		} else if (b > a && which == 'e') {
			o->expect |= ref_eq(v + a, b - a, "100-continue");
		} else if (b > a) {
			size_t t = a;
			while (t < b && ref_tchar(v[t]))
				t++;
			o->te_codings++;
			o->te_last_chunked = t > a && ref_eq(v + a, t - a, "chunked");
			if (t == a)
				o->te_malformed = true;
			else if (o->te_last_chunked)
				o->te_chunked++;
			else
				o->te_unknown = true;
			if (o->te_last_chunked && t != b)
				o->te_malformed = true;
			for (; !o->te_last_chunked && t < b && v[t] != ';'; t++)
				o->te_malformed |= !ref_ws(v[t]);
		}
		i = j + 1;
	}
}

static ssize_t ref_field(const uint8_t *l, size_t n, struct ref *o)
{
	const uint8_t *colon = memchr(l, ':', n);
	size_t a, b, name;

	if (colon == NULL || colon == l)
		return HTTP_ERR_BAD_REQUEST;
	name = (size_t)(colon - l);
	for (size_t i = 0; i < name; i++)
		if (!ref_tchar(l[i]))
			return HTTP_ERR_BAD_REQUEST;
	for (size_t i = name + 1; i < n; i++)
		if (!ref_value_char(l[i]))
			return HTTP_ERR_BAD_REQUEST;
	for (a = name + 1; a < n && ref_ws(l[a]); a++)
		;
	for (b = n; b > a && ref_ws(l[b - 1]); b--)
		;
	if (ref_eq(l, name, "content-length")) {
		int64_t v = 0;
		if (o->content_length != -1 || a == b)
			return HTTP_ERR_BAD_REQUEST;
		for (size_t i = a; i < b; i++) {
			if (l[i] < '0' || l[i] > '9' || v > (INT64_MAX - (l[i] - '0')) / 10)
				return HTTP_ERR_BAD_REQUEST;
			v = v * 10 + (l[i] - '0');
		}
		o->content_length = v;
	} else if (ref_eq(l, name, "transfer-encoding")) {
		o->te_fields++;
		ref_list(l + a, b - a, o, 't');
	} else if (ref_eq(l, name, "connection")) {
		ref_list(l + a, b - a, o, 'c');
	} else if (ref_eq(l, name, "expect")) {
		ref_list(l + a, b - a, o, 'e');
	} else if (ref_eq(l, name, "host")) {
		o->host_fields++;
	}
	return 0;
}

static ssize_t ref_framing(struct ref *o, int minor)
{
	/* RFC 9112 3.2: one Host in HTTP/1.1 (its value may be empty), at
	 * most one in HTTP/1.0. */
	if (o->host_fields > 1 || (minor == 1 && o->host_fields == 0))
		return HTTP_ERR_BAD_REQUEST;
	if (o->te_fields > 0) {
		if (minor == 0 || o->content_length != -1 || o->te_malformed ||
		    o->te_codings == 0 || o->te_chunked > 1 ||
		    (o->te_chunked == 1 && !o->te_last_chunked))
			return HTTP_ERR_BAD_REQUEST;
		if (o->te_unknown)
			return HTTP_ERR_NOT_IMPLEMENTED;
		o->chunked = true;
	}
	o->keep_alive = !o->conn_close && (minor == 1 || o->conn_keep_alive);
	o->expect_continue = minor == 1 && o->expect;
	return 0;
}

/* No complete head yet: the request line, or what arrived of it, must be
 * (a prefix of) a valid one, and no line may end in a bare LF. */
static ssize_t ref_partial(const uint8_t *l, size_t n, struct ref *o)
{
	static const char pattern[] = "HTTP/#.#\r\n";
	size_t i = 0, t;
	int minor;

	for (; i + 1 < n; i++) {
		if (l[i] == '\r' && l[i + 1] == '\n') {
			ssize_t r = ref_request_line(l, i, o, &minor);
			if (r != 0)
				return r;
			for (i += 2; i < n; i++)
				if (l[i] == '\n' && l[i - 1] != '\r')
					return HTTP_ERR_BAD_REQUEST;
			return HTTP_INCOMPLETE;
		}
	}
	for (i = 0; i < n && ref_tchar(l[i]); i++)
		;
	if (i == n)
		return HTTP_INCOMPLETE;
	if (i == 0 || l[i] != ' ')
		return HTTP_ERR_BAD_REQUEST;
	for (t = ++i; i < n && l[i] >= 0x21 && l[i] != 0x7f; i++)
		;
	if (i == n)
		return HTTP_INCOMPLETE;
	if (i == t || l[i] != ' ')
		return HTTP_ERR_BAD_REQUEST;
	for (t = 0, i++; i + t < n; t++) {
		int c = l[i + t];
		if (t >= 10 || (pattern[t] == '#' ? (c < '0' || c > '9') : c != pattern[t]))
			return HTTP_ERR_BAD_REQUEST;
	}
	return HTTP_INCOMPLETE;
}

static void reference(const uint8_t *buf, size_t len, struct ref *o)
{
	size_t p = 0, end = 0, line;
	int minor = -1;
	ssize_t r = 0;

	memset(o, 0, sizeof(*o));
	o->content_length = -1;
	while (p + 1 < len && buf[p] == '\r' && buf[p + 1] == '\n')
		p += 2;
	for (size_t i = p; i + 4 <= len && end == 0; i++)
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
			end = i + 4;
	if (end == 0) {
		int more_crlf = p == len || (p + 1 == len && buf[p] == '\r');
		o->r = more_crlf ? HTTP_INCOMPLETE : ref_partial(buf + p, len - p, o);
		return;
	}
	for (line = p; r == 0 && line < end - 2;) {
		size_t e = line;
		while (!(buf[e] == '\r' && buf[e + 1] == '\n'))
			e++;
		if (line == p)
			r = ref_request_line(buf + line, e - line, o, &minor);
		else if ((r = ref_field(buf + line, e - line, o)) == 0)
			o->num_headers++;
		line = e + 2;
	}
	if (r == 0 && o->num_headers > MAX_HEADERS)
		r = HTTP_ERR_TOO_MANY_HEADERS;
	if (r == 0)
		r = ref_framing(o, minor);
	o->r = r == 0 ? (ssize_t)end : r;
}

static void check_success(const struct parsed *ps, const char *buf, const struct ref *o)
{
	const struct http_request *q = &ps->req;
	const char *lo = buf, *hi = buf + ps->r;

	CHECK(memcmp(hi - 4, "\r\n\r\n", 4) == 0);
	CHECK(in_range(q->method, lo, hi) && q->method.len == o->method);
	CHECK(in_range(q->target, lo, hi) && q->target.len == o->target);
	CHECK(q->method.p + q->method.len + 1 == q->target.p);
	CHECK(q->path.p == q->target.p);
	if (q->path.len < q->target.len) {
		CHECK(q->path.p[q->path.len] == '?' && memchr(q->path.p, '?', q->path.len) == NULL);
		CHECK(q->query.p == q->path.p + q->path.len + 1);
		CHECK(q->path.len + 1 + q->query.len == q->target.len);
	} else {
		CHECK(q->path.len == q->target.len && q->query.len == 0);
		CHECK(memchr(q->target.p, '?', q->target.len) == NULL);
	}
	CHECK(q->minor_version == 0 || q->minor_version == 1);
	CHECK(q->headers == ps->headers && q->num_headers == o->num_headers);
	size_t hosts = 0;
	for (size_t i = 0; i < q->num_headers; i++) {
		const struct http_header *h = &q->headers[i];
		CHECK(in_range(h->name, lo, hi) && in_range(h->value, lo, hi));
		CHECK(h->name.len > 0 && h->name.p[h->name.len] == ':');
		CHECK(http_slice_eq_nocase(h->name, "host") ==
		      (h->name.len == 4 && strncasecmp(h->name.p, "host", 4) == 0));
		hosts += http_slice_eq_nocase(h->name, "host");
		if (h->value.len > 0) {
			CHECK(h->value.p[0] != ' ' && h->value.p[0] != '\t');
			CHECK(h->value.p[h->value.len - 1] != ' ' &&
			      h->value.p[h->value.len - 1] != '\t');
		}
	}
	CHECK(hosts == o->host_fields && hosts <= 1 && hosts >= (size_t)q->minor_version);
	CHECK(q->content_length == o->content_length && q->chunked == o->chunked);
	CHECK(q->keep_alive == o->keep_alive && q->expect_continue == o->expect_continue);
	CHECK(!q->chunked || (q->content_length == -1 && q->minor_version == 1));

	ssize_t le = http_request_line_end(buf, (size_t)ps->r);
	CHECK(le > 0 && le < ps->r && buf + le == q->target.p + q->target.len + 9);
}

/* Prefix lengths worth checking: all for short inputs, else a spread plus
 * the bytes around the head's end. */
static int prefix_wanted(size_t i, size_t size, ssize_t r)
{
	if (size <= 256 || (r > 0 && (i + 1 == (size_t)r || i == (size_t)r)))
		return 1;
	return i % (size / 32 + 1) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct parsed full, again, part;
	static struct ref o;
	const char *buf, *buf2, *pbuf;

	parse_copy(data, size, &full, &buf);
	ssize_t r = full.r;
	CHECK(r == HTTP_INCOMPLETE || r == HTTP_ERR_BAD_REQUEST || r == HTTP_ERR_TOO_MANY_HEADERS ||
	      r == HTTP_ERR_NOT_IMPLEMENTED || r == HTTP_ERR_VERSION ||
	      (r > 0 && (size_t)r <= size));

	reference(data, size, &o);
	CHECK(r == o.r);
	if (r > 0)
		check_success(&full, buf, &o);

	/* Determinism: same bytes elsewhere, same answer, same offsets. */
	parse_copy(data, size, &again, &buf2);
	CHECK(again.r == r);
	if (r > 0) {
		CHECK(again.req.target.p - buf2 == full.req.target.p - buf);
		CHECK(again.req.num_headers == full.req.num_headers);
		for (size_t i = 0; i < full.req.num_headers; i++)
			CHECK(again.headers[i].value.p - buf2 == full.headers[i].value.p - buf &&
			      again.headers[i].value.len == full.headers[i].value.len);
	}
	free((void *)buf2);

	/* Prefixes: undecided, or already the final answer. */
	for (size_t i = 0; i < size; i++) {
		if (!prefix_wanted(i, size, r))
			continue;
		parse_copy(data, i, &part, &pbuf);
		CHECK(part.r == HTTP_INCOMPLETE || part.r == r);
		if (r > 0)
			CHECK(part.r == ((ssize_t)i < r ? HTTP_INCOMPLETE : r));
		free((void *)pbuf);
	}

	/* More bytes after a decided answer change nothing. */
	if (r != HTTP_INCOMPLETE) {
		uint8_t *more = malloc(size + 3);
		memcpy(more, data, size);
		memcpy(more + size, "\n\r\x00", 3);
		parse_copy(more, size + 3, &part, &pbuf);
		CHECK(part.r == r);
		free((void *)pbuf);
		free(more);
	}
	free((void *)buf);
	return 0;
}
