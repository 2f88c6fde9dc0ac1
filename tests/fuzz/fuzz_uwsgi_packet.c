/*
 * fuzz_uwsgi_packet.c - libFuzzer target for uwsgi_parse_packet(),
 * uwsgi_packet_get() and uwsgi_content_length().
 *
 * Input: the bytes as they arrive on the socket (so the seed corpus is
 * plain packets). They are parsed under limits around the interesting
 * boundaries (the packet's own size and var count, one less, none), and
 * every answer must equal that of a reference parser written from the wire
 * format over byte offsets; successes must hand out slices that tile the
 * vars exactly. Re-parsing must give the same answer, and a prefix must
 * give INCOMPLETE or the same answer as the whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mulefarm/uwsgi_proto.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* A var as offsets into the input. */
struct ref_var {
	size_t koff, klen, voff, vlen;
};

struct ref {
	ssize_t rc;
	size_t n;            /* vars found (on success) */
	struct ref_var *var; /* room for every var the input could hold */
};

static size_t le16_at(const uint8_t *in, size_t pos)
{
	return (size_t)in[pos] + 256u * (size_t)in[pos + 1];
}

/* The wire format over offsets, with the checks in the contract's order. */
static void reference(const uint8_t *in, size_t len, size_t max_size, size_t max_vars,
                      struct ref *r)
{
	size_t end, pos, n = 0;

	r->n = 0;
	if (len < 4) {
		r->rc = UWSGI_INCOMPLETE;
		return;
	}
	end = 4 + le16_at(in, 1);
	if (end > max_size) {
		r->rc = UWSGI_ERR_TOO_LARGE;
		return;
	}
	if (len < end) {
		r->rc = UWSGI_INCOMPLETE;
		return;
	}
	for (pos = 4; pos != end; n++) {
		size_t klen, vlen;

		/* Both length fields and the key must fit before the value. */
		if (pos + 2 > end || (klen = le16_at(in, pos)) == 0 || pos + 2 + klen + 2 > end) {
			r->rc = UWSGI_ERR_MALFORMED;
			return;
		}
		vlen = le16_at(in, pos + 2 + klen);
		if (pos + 4 + klen + vlen > end) {
			r->rc = UWSGI_ERR_MALFORMED;
			return;
		}
		r->var[n] = (struct ref_var){pos + 2, klen, pos + 4 + klen, vlen};
		pos += 4 + klen + vlen;
	}
	if (n > max_vars) {
		r->rc = UWSGI_ERR_TOO_MANY_VARS;
		return;
	}
	r->n = n;
	r->rc = (ssize_t)end;
}

/* 1*DIGIT, leading zeros dropped, then at most 19 digits (fits u64). */
static int64_t ref_content_length(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	for (size_t j = 0; j < n; j++)
		if (p[j] < '0' || p[j] > '9')
			return -1;
	while (i < n && p[i] == '0')
		i++;
	if (n - i > 19)
		return -1;
	for (; i < n; i++)
		v = v * 10 + (uint64_t)(p[i] - '0');
	return v > ((uint64_t)1 << 62) ? -1 : (int64_t)v;
}

/* uwsgi_packet_get() for the first keys (cut at the first NUL, as a C
 * string must be) against a linear search of the reference's vars. */
static void check_get(const uint8_t *in, const struct uwsgi_packet *pkt, const struct ref *r)
{
	for (size_t i = 0; i < r->n && i < 64; i++) {
		const struct ref_var *v = &r->var[i];
		char *key = malloc(v->klen + 1);
		size_t klen;
		struct http_slice got;
		const struct ref_var *want = NULL;

		memcpy(key, in + v->koff, v->klen);
		key[v->klen] = '\0';
		klen = strlen(key);
		for (size_t j = 0; j < r->n && want == NULL; j++)
			if (r->var[j].klen == klen && memcmp(in + r->var[j].koff, key, klen) == 0)
				want = &r->var[j];
		got = uwsgi_packet_get(pkt, key);
		if (want == NULL)
			CHECK(got.p == NULL && got.len == 0);
		else
			CHECK(got.p == (const char *)in + want->voff && got.len == want->vlen);
		free(key);
	}
	CHECK(uwsgi_packet_get(pkt, "").p == NULL);
}

/* A success: the packet's fields, and slices that tile [4, rc) in order. */
static void check_packet(const uint8_t *in, size_t len, size_t max_size, ssize_t rc,
                         const struct uwsgi_packet *pkt, const struct uwsgi_var *vars,
                         size_t max_vars, const struct ref *r)
{
	const char *base = (const char *)in, *next = base + 4;

	CHECK(rc >= 4 && (size_t)rc <= len && (size_t)rc <= max_size);
	CHECK((size_t)rc == 4 + le16_at(in, 1) && pkt->datasize == rc - 4);
	CHECK(pkt->modifier1 == in[0] && pkt->modifier2 == in[3]);
	CHECK(pkt->vars == vars && pkt->num_vars == r->n && pkt->num_vars <= max_vars);
	for (size_t i = 0; i < pkt->num_vars; i++) {
		const struct uwsgi_var *v = &pkt->vars[i];

		CHECK(v->key.len > 0 && v->key.p == next + 2);
		CHECK(v->value.p == v->key.p + v->key.len + 2);
		next = v->value.p + v->value.len;
		CHECK(next <= base + rc);
		CHECK(v->key.p == base + r->var[i].koff && v->key.len == r->var[i].klen);
		CHECK(v->value.p == base + r->var[i].voff && v->value.len == r->var[i].vlen);
		CHECK(uwsgi_content_length(v->value) ==
		      ref_content_length(in + r->var[i].voff, r->var[i].vlen));
	}
	CHECK(next == base + rc);
	check_get(in, pkt, r);
}

/*
 * Parses <in,len> (which the caller allocated at exactly <len> bytes) twice
 * with differently poisoned outputs, checks both against the reference, and
 * returns the result.
 */
static ssize_t check_parse(const uint8_t *in, size_t len, size_t max_size, size_t max_vars,
                           struct ref *r)
{
	struct uwsgi_var *vars[2];
	struct uwsgi_packet pkt[2], poison[2];
	ssize_t rc[2];

	reference(in, len, max_size, max_vars, r);
	for (int k = 0; k < 2; k++) {
		/* Exactly <max_vars> entries, so ASan sees a write past them. */
		vars[k] = max_vars > 0 ? malloc(max_vars * sizeof(*vars[k])) : NULL;
		if (max_vars > 0)
			memset(vars[k], 0x5a + k, max_vars * sizeof(*vars[k]));
		/* memset both: an assignment need not copy the padding. */
		memset(&poison[k], 0xa5 + k, sizeof(poison[k]));
		memset(&pkt[k], 0xa5 + k, sizeof(pkt[k]));
		rc[k] = uwsgi_parse_packet((const char *)in, len, max_size, &pkt[k], vars[k],
		                           max_vars);
		CHECK(rc[k] == r->rc);
		if (rc[k] >= 0)
			check_packet(in, len, max_size, rc[k], &pkt[k], vars[k], max_vars, r);
		else
			CHECK(memcmp(&pkt[k], &poison[k], sizeof(pkt[k])) == 0);
	}
	if (rc[0] >= 0) {
		CHECK(pkt[0].modifier1 == pkt[1].modifier1 && pkt[0].modifier2 == pkt[1].modifier2);
		CHECK(pkt[0].datasize == pkt[1].datasize && pkt[0].num_vars == pkt[1].num_vars);
		CHECK(pkt[0].num_vars == 0 ||
		      memcmp(vars[0], vars[1], pkt[0].num_vars * sizeof(*vars[0])) == 0);
	}
	free(vars[0]);
	free(vars[1]);
	return rc[0];
}

/* The first <k> bytes, in a buffer of their own: INCOMPLETE or <whole>,
 * the answer for all of the input under the same limits (a success then
 * needs exactly its own bytes). */
static void check_prefix(const uint8_t *in, size_t k, size_t max_size, size_t max_vars,
                         ssize_t whole, struct ref *r)
{
	uint8_t *p = malloc(k > 0 ? k : 1);
	ssize_t rc;

	memcpy(p, in, k);
	rc = check_parse(p, k, max_size, max_vars, r);
	CHECK(rc == UWSGI_INCOMPLETE || rc == whole);
	if (whole >= 0)
		CHECK(rc == (k >= (size_t)whole ? whole : UWSGI_INCOMPLETE));
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ref r;
	uint8_t *in = malloc(size > 0 ? size : 1); /* exact copy, so ASan sees reads past <size> */
	size_t total, nvars, all_vars = size / 5 + 1;
	ssize_t whole;

	memcpy(in, data, size);
	r.var = malloc(all_vars * sizeof(*r.var));
	whole = check_parse(in, size, SIZE_MAX, all_vars, &r);
	total = size >= 4 ? 4 + le16_at(in, 1) : 4;
	nvars = r.n;

	/* Limits on either side of the packet's own size and var count. */
	const size_t sizes[] = {SIZE_MAX, 4 + 0xffff, total + 1, total, total - 1, 4096, 4, 3, 0};
	const size_t counts[] = {all_vars, nvars + 1, nvars, nvars > 0 ? nvars - 1 : 0, 0};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (size_t j = 0; j < sizeof(counts) / sizeof(counts[0]); j++)
			check_parse(in, size, sizes[i], counts[j], &r);

	/* Prefixes: the first few, both sides of the packet's end, and one the
	 * input picks; every one for small inputs. */
	size_t cuts[] = {0,
	                 1,
	                 2,
	                 3,
	                 4,
	                 5,
	                 total - 1,
	                 total,
	                 total + 1,
	                 size - 1,
	                 size > 0 ? (size_t)in[size - 1] * 31 % size : 0};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		if (cuts[i] < size)
			check_prefix(in, cuts[i], SIZE_MAX, all_vars, whole, &r);
	ssize_t tight = check_parse(in, size, total, nvars, &r);
	for (size_t k = 0; size <= 96 && k < size; k++) {
		check_prefix(in, k, SIZE_MAX, all_vars, whole, &r);
		check_prefix(in, k, total, nvars, tight, &r);
	}

	/* Content-Length on raw slices of the input, valid or not. */
	for (size_t k = 0; k <= size && k <= 24; k++)
		CHECK(uwsgi_content_length((struct http_slice){(const char *)in, k}) ==
		      ref_content_length(in, k));

	free(r.var);
	free(in);
	return 0;
}
