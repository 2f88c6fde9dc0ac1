/*
 * fuzz_http_chunked.c - libFuzzer target for http_chunked_step().
 *
 * Input: two bytes choosing a split point, then the body. The body is
 * decoded whole, in two pieces split there, and one byte at a time; all
 * three must agree with each other and with a reference decoder written
 * straight from the RFC 9112 7.1 grammar over the whole buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mulefarm/http.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

struct outcome {
	int rc;          /* DONE, ERROR, or NEED_MORE when the input ran out */
	size_t consumed; /* where DONE stopped (other results: not compared) */
	size_t len;      /* decoded bytes */
	uint8_t *data;   /* at least as large as the input */
};

/* Decodes <in,len> arriving in pieces that end at <cut> and at <len>
 * (<step> > 0: in pieces of <step> bytes instead). */
static void decode(const uint8_t *in, size_t len, size_t cut, size_t step, struct outcome *o)
{
	struct http_chunked d;
	size_t pos = 0, avail = step > 0 ? (step < len ? step : len) : cut;

	http_chunked_init(&d);
	o->len = 0;
	for (;;) {
		size_t used = (size_t)-1;
		struct http_slice s = {NULL, 0};
		const char *base = (const char *)in + pos;
		int rc = http_chunked_step(&d, base, avail - pos, &used, &s);

		CHECK(used <= avail - pos);
		switch (rc) {
		case HTTP_CHUNK_DATA:
			CHECK(s.len > 0 && s.p >= base && s.p + s.len <= base + used);
			CHECK(o->len + s.len <= len);
			memcpy(o->data + o->len, s.p, s.len);
			o->len += s.len;
			pos += used;
			break;
		case HTTP_CHUNK_NEED_MORE:
			CHECK(used == avail - pos);
			pos = avail;
			if (avail == len) {
				o->rc = rc;
				o->consumed = pos;
				return;
			}
			avail = step > 0 ? (len - avail > step ? avail + step : len) : len;
			break;
		case HTTP_CHUNK_DONE:
		case HTTP_CHUNK_ERROR:
			o->rc = rc;
			o->consumed = pos + used;
			/* Finished decoders stay finished and consume nothing. */
			CHECK(http_chunked_step(&d, base, avail - pos, &used, &s) == rc &&
			      used == 0);
			return;
		default:
			abort();
		}
	}
}

/*
 * Reference decoder: the grammar over the whole buffer, top-down. Data is
 * emitted as it is passed over, like the incremental decoder does.
 */
struct ref {
	const uint8_t *in;
	size_t len, pos;
};

enum { REF_OK = 0, REF_ERROR = 1, REF_SHORT = 2 };

static int is_tchar(int c)
{
	return c > 0 && c < 0x7f &&
	       (strchr("!#$%&'*+-.^_`|~", c) != NULL || (c >= '0' && c <= '9') ||
	        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
}

static int is_vchar_obs(int c)
{
	return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

static int is_ws(int c)
{
	return c == ' ' || c == '\t';
}

static size_t ref_skip_ws(struct ref *r)
{
	size_t start = r->pos;

	while (r->pos < r->len && is_ws(r->in[r->pos]))
		r->pos++;
	return r->pos - start;
}

static int ref_token(struct ref *r)
{
	size_t start = r->pos;

	while (r->pos < r->len && is_tchar(r->in[r->pos]))
		r->pos++;
	if (r->pos == r->len)
		return REF_SHORT;
	return r->pos > start ? REF_OK : REF_ERROR;
}

static int ref_quoted(struct ref *r)
{
	r->pos++; /* DQUOTE */
	for (;;) {
		if (r->pos >= r->len)
			return REF_SHORT;
		int c = r->in[r->pos++];
		if (c == '"')
			return REF_OK;
		if (c == '\\') {
			if (r->pos >= r->len)
				return REF_SHORT;
			c = r->in[r->pos++];
			if (!is_ws(c) && !is_vchar_obs(c))
				return REF_ERROR;
		} else if (!is_ws(c) && !is_vchar_obs(c)) {
			return REF_ERROR;
		}
	}
}

/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF */
static int ref_ext_crlf(struct ref *r)
{
	for (;;) {
		size_t ws = ref_skip_ws(r), mark;
		int e;
		if (r->pos >= r->len)
			return REF_SHORT;
		if (r->in[r->pos] != ';') {
			if (ws > 0) /* BWS only before ';' */
				return REF_ERROR;
			break;
		}
		r->pos++;
		ref_skip_ws(r);
		if ((e = ref_token(r)) != REF_OK)
			return e;
		mark = r->pos;
		ref_skip_ws(r);
		if (r->pos >= r->len)
			return REF_SHORT;
		if (r->in[r->pos] != '=') {
			r->pos = mark;
			continue;
		}
		r->pos++;
		ref_skip_ws(r);
		if (r->pos >= r->len)
			return REF_SHORT;
		e = r->in[r->pos] == '"' ? ref_quoted(r) : ref_token(r);
		if (e != REF_OK)
			return e;
	}
	if (r->in[r->pos] != '\r')
		return REF_ERROR;
	if (++r->pos >= r->len)
		return REF_SHORT;
	return r->in[r->pos++] == '\n' ? REF_OK : REF_ERROR;
}

static int ref_size_line(struct ref *r, uint64_t *size)
{
	size_t start = r->pos;
	int e;

	*size = 0;
	while (r->pos < r->len) {
		int c = r->in[r->pos], v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v = (c | 0x20) - 'a' + 10;
		else
			break;
		if (*size > ((uint64_t)1 << 58))
			return REF_ERROR;
		*size = *size * 16 + (uint64_t)v;
		if (*size > ((uint64_t)1 << 62))
			return REF_ERROR;
		r->pos++;
	}
	if (r->pos == r->len)
		return r->pos - start > HTTP_CHUNK_LINE_MAX ? REF_ERROR : REF_SHORT;
	if (r->pos == start)
		return REF_ERROR;
	e = ref_ext_crlf(r);
	if (e == REF_SHORT)
		return r->len - start > HTTP_CHUNK_LINE_MAX ? REF_ERROR : REF_SHORT;
	return r->pos - start > HTTP_CHUNK_LINE_MAX ? REF_ERROR : e;
}

static int ref_trailers(struct ref *r)
{
	size_t start = r->pos;
	int e = REF_OK;

	while (e == REF_OK) {
		if (r->pos >= r->len) {
			e = REF_SHORT;
		} else if (r->in[r->pos] == '\r') {
			if (++r->pos >= r->len)
				e = REF_SHORT;
			else
				e = r->in[r->pos++] == '\n' ? REF_OK : REF_ERROR;
			break;
		} else if ((e = ref_token(r)) == REF_OK) {
			if (r->in[r->pos++] != ':') {
				e = REF_ERROR;
				break;
			}
			while (r->pos < r->len &&
			       (is_ws(r->in[r->pos]) || is_vchar_obs(r->in[r->pos])))
				r->pos++;
			if (r->pos >= r->len)
				e = REF_SHORT;
			else if (r->in[r->pos++] != '\r')
				e = REF_ERROR;
			else if (r->pos >= r->len)
				e = REF_SHORT;
			else if (r->in[r->pos++] != '\n')
				e = REF_ERROR;
		}
	}
	if (r->pos - start > HTTP_CHUNK_TRAILER_MAX ||
	    (e == REF_SHORT && r->len - start > HTTP_CHUNK_TRAILER_MAX))
		return REF_ERROR;
	return e;
}

static void reference(const uint8_t *in, size_t len, struct outcome *o)
{
	struct ref r = {in, len, 0};
	uint64_t size;
	int e;

	o->len = 0;
	for (;;) {
		if ((e = ref_size_line(&r, &size)) != REF_OK)
			break;
		if (size == 0) {
			e = ref_trailers(&r);
			break;
		}
		size_t n = len - r.pos < size ? len - r.pos : (size_t)size;
		memcpy(o->data + o->len, in + r.pos, n);
		o->len += n;
		r.pos += n;
		if (n < size || r.pos >= len) {
			e = REF_SHORT;
			break;
		}
		if (in[r.pos++] != '\r') {
			e = REF_ERROR;
			break;
		}
		if (r.pos >= len) {
			e = REF_SHORT;
			break;
		}
		if (in[r.pos++] != '\n') {
			e = REF_ERROR;
			break;
		}
	}
	o->rc = e == REF_OK      ? HTTP_CHUNK_DONE
	        : e == REF_ERROR ? HTTP_CHUNK_ERROR
	                         : HTTP_CHUNK_NEED_MORE;
	o->consumed = e == REF_OK ? r.pos : len;
}

static void check_same(const struct outcome *a, const struct outcome *b)
{
	CHECK(a->rc == b->rc);
	CHECK(a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
	if (a->rc != HTTP_CHUNK_ERROR)
		CHECK(a->consumed == b->consumed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, split, bytes, ref;
	uint8_t *in;
	size_t len, cut;

	if (size < 2)
		return 0;
	len = size - 2;
	cut = ((size_t)data[0] << 8 | data[1]) % (len + 1);
	in = malloc(len + 1); /* exact copy, so ASan sees reads past <len> */
	memcpy(in, data + 2, len);
	whole.data = malloc(len + 1);
	split.data = malloc(len + 1);
	bytes.data = malloc(len + 1);
	ref.data = malloc(len + 1);

	decode(in, len, len, 0, &whole);
	decode(in, len, cut, 0, &split);
	decode(in, len, 0, 1, &bytes);
	reference(in, len, &ref);
	check_same(&whole, &split);
	check_same(&whole, &bytes);
	CHECK(whole.consumed == split.consumed && whole.consumed == bytes.consumed);
	check_same(&whole, &ref);

	free(in);
	free(whole.data);
	free(split.data);
	free(bytes.data);
	free(ref.data);
	return 0;
}
