/*
 * test_uwsgi_proto.c - the uwsgi protocol packet parser.
 *
 * Packets are built by a small encoder, and a few are spelled out byte by
 * byte so that the encoder and the parser cannot share a byte-order
 * mistake. Links the parser (nothing static is worth reaching), so the
 * Makefile takes it from libmfcore.a.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mulefarm/uwsgi_proto.h"

#define TEST_TIMEOUT 10
#define MAX_VARS     32
#define NO_LIMIT     ((size_t)-1)

/* A packet under construction; vars are appended, then the header set. */
struct pbuf {
	char b[70000];
	size_t len;
};

static struct pbuf pb;
static struct uwsgi_packet pkt;
static struct uwsgi_var vars[MAX_VARS + 1]; /* + 1: a guard entry */

static int setup(void **state)
{
	alarm(TEST_TIMEOUT);
	memset(&pb, 0, sizeof(pb));
	pb.len = 4;
	return 0;
}

static int teardown(void **state)
{
	alarm(0);
	return 0;
}

static void put_le16(size_t n)
{
	assert_true(n <= 0xffff && pb.len + 2 <= sizeof(pb.b));
	pb.b[pb.len++] = (char)(n & 0xff);
	pb.b[pb.len++] = (char)(n >> 8);
}

static void put_bytes(const char *p, size_t n)
{
	assert_true(pb.len + n <= sizeof(pb.b));
	memcpy(pb.b + pb.len, p, n);
	pb.len += n;
}

static void put_var_n(const char *k, size_t kn, const char *v, size_t vn)
{
	put_le16(kn);
	put_bytes(k, kn);
	put_le16(vn);
	put_bytes(v, vn);
}

static void put_var(const char *k, const char *v)
{
	put_var_n(k, strlen(k), v, strlen(v));
}

/* Sets the header for everything appended so far; returns 4 + datasize. */
static size_t finish(uint8_t m1, uint8_t m2)
{
	size_t datasize = pb.len - 4;

	assert_true(datasize <= 0xffff);
	pb.b[0] = (char)m1;
	pb.b[1] = (char)(datasize & 0xff);
	pb.b[2] = (char)(datasize >> 8);
	pb.b[3] = (char)m2;
	return pb.len;
}

static ssize_t parse_n(const char *buf, size_t len, size_t max_size, size_t max_vars)
{
	memset(&pkt, 0xa5, sizeof(pkt));
	memset(vars, 0xa5, sizeof(vars));
	return uwsgi_parse_packet(buf, len, max_size, &pkt, vars, max_vars);
}

static ssize_t parse_pb(void)
{
	return parse_n(pb.b, pb.len, NO_LIMIT, MAX_VARS);
}

static void assert_slice_n(struct http_slice s, const char *expect, size_t n)
{
	if (s.p == NULL || s.len != n || memcmp(s.p, expect, n) != 0)
		fail_msg("slice \"%.*s\" != \"%.*s\"", (int)s.len, s.p ? s.p : "", (int)n, expect);
}

static void assert_slice(struct http_slice s, const char *expect)
{
	assert_slice_n(s, expect, strlen(expect));
}

static void assert_var(size_t i, const char *k, const char *v)
{
	assert_true(i < pkt.num_vars);
	assert_slice(pkt.vars[i].key, k);
	assert_slice(pkt.vars[i].value, v);
}

/* What nginx's uwsgi_params sends for "POST /app/x?a=1" with a body. */
static const char *const nginx_vars[][2] = {
        {"QUERY_STRING", "a=1"},
        {"REQUEST_METHOD", "POST"},
        {"CONTENT_TYPE", "application/x-www-form-urlencoded"},
        {"CONTENT_LENGTH", "5"},
        {"REQUEST_URI", "/app/x?a=1"},
        {"PATH_INFO", "/app/x"},
        {"DOCUMENT_ROOT", "/usr/share/nginx/html"},
        {"SERVER_PROTOCOL", "HTTP/1.1"},
        {"REQUEST_SCHEME", "http"},
        {"HTTPS", ""},
        {"REMOTE_ADDR", "127.0.0.1"},
        {"REMOTE_PORT", "51234"},
        {"SERVER_PORT", "80"},
        {"SERVER_NAME", "localhost"},
        {"HTTP_HOST", "localhost"},
        {"HTTP_USER_AGENT", "curl/7.88.1"},
        {"HTTP_ACCEPT", "*/*"},
        {"HTTP_CONTENT_LENGTH", "5"},
};
#define NGINX_NVARS (sizeof(nginx_vars) / sizeof(nginx_vars[0]))

static size_t put_nginx_packet(void)
{
	for (size_t i = 0; i < NGINX_NVARS; i++)
		put_var(nginx_vars[i][0], nginx_vars[i][1]);
	return finish(0, 0);
}

/*
 * Valid packets
 */

static void test_nginx_request(void **state)
{
	size_t total = put_nginx_packet();

	assert_int_equal(parse_pb(), total);
	assert_int_equal(pkt.modifier1, 0);
	assert_int_equal(pkt.modifier2, 0);
	assert_int_equal(pkt.datasize, total - 4);
	assert_ptr_equal(pkt.vars, vars);
	assert_int_equal(pkt.num_vars, NGINX_NVARS);
	for (size_t i = 0; i < NGINX_NVARS; i++) {
		assert_var(i, nginx_vars[i][0], nginx_vars[i][1]);
		/* Slices point into the caller's buffer, inside the vars. */
		assert_true(pkt.vars[i].key.p >= pb.b + 4);
		assert_true(pkt.vars[i].value.p + pkt.vars[i].value.len <= pb.b + total);
	}
}

static void test_hand_encoded(void **state)
{
	static const char raw[] = "\x00\x0a\x00\x00"
	                          "\x03\x00"
	                          "FOO"
	                          "\x03\x00"
	                          "bar";

	assert_int_equal(parse_n(raw, sizeof(raw) - 1, NO_LIMIT, MAX_VARS), 14);
	assert_int_equal(pkt.datasize, 10);
	assert_int_equal(pkt.num_vars, 1);
	assert_var(0, "FOO", "bar");
}

/* datasize and a value length above 255, and modifiers with the top bit
 * set: the high bytes and the sign must not be lost. */
static void test_little_endian_and_modifiers(void **state)
{
	char raw[4 + 270];

	raw[0] = 5;
	raw[1] = 0x0e; /* datasize 0x010e = 270 */
	raw[2] = 0x01;
	raw[3] = (char)0xfe;
	raw[4] = 1;
	raw[5] = 0;
	raw[6] = 'K';
	raw[7] = 0x09; /* value length 0x0109 = 265 */
	raw[8] = 0x01;
	memset(raw + 9, 'v', 265);

	assert_int_equal(parse_n(raw, sizeof(raw), NO_LIMIT, MAX_VARS), 274);
	assert_int_equal(pkt.modifier1, 5);
	assert_int_equal(pkt.modifier2, 0xfe);
	assert_int_equal(pkt.datasize, 270);
	assert_int_equal(pkt.num_vars, 1);
	assert_slice(pkt.vars[0].key, "K");
	assert_int_equal(pkt.vars[0].value.len, 265);
	assert_ptr_equal(pkt.vars[0].value.p, raw + 9);
}

static void test_empty_packet(void **state)
{
	static const char raw[] = "\x07\x00\x00\x09";

	assert_int_equal(parse_n(raw, 4, NO_LIMIT, MAX_VARS), 4);
	assert_int_equal(pkt.num_vars, 0);
	assert_int_equal(pkt.datasize, 0);
	assert_int_equal(pkt.modifier1, 7);
	assert_int_equal(pkt.modifier2, 9);
	/* No array at all is fine when there is nothing to store. */
	assert_int_equal(uwsgi_parse_packet(raw, 4, 4, &pkt, NULL, 0), 4);
	assert_int_equal(pkt.num_vars, 0);
	assert_null(uwsgi_packet_get(&pkt, "CONTENT_LENGTH").p);
}

static void test_empty_values(void **state)
{
	put_var("QUERY_STRING", "");
	put_var("CONTENT_LENGTH", "");
	put_var("X", "");
	size_t total = finish(0, 0);

	assert_int_equal(parse_pb(), total);
	assert_int_equal(pkt.num_vars, 3);
	assert_var(0, "QUERY_STRING", "");
	assert_var(2, "X", "");
	/* An empty value at the very end points at the end of the vars. */
	assert_ptr_equal(pkt.vars[2].value.p, pb.b + total);
}

static void test_binary_keys_and_values(void **state)
{
	put_var_n("A\0B", 3, "\0\xff\r\n", 4);
	put_var_n("\xc3\xa9", 2, "x", 1);
	size_t total = finish(0, 0);

	assert_int_equal(parse_pb(), total);
	assert_int_equal(pkt.num_vars, 2);
	assert_slice_n(pkt.vars[0].key, "A\0B", 3);
	assert_slice_n(pkt.vars[0].value, "\0\xff\r\n", 4);
	assert_slice_n(pkt.vars[1].key, "\xc3\xa9", 2);
	/* A C-string key stops at its NUL, so it does not match "A\0B". */
	assert_null(uwsgi_packet_get(&pkt, "A").p);
}

static void test_largest_packet(void **state)
{
	static char big[0xffff - 4];

	memset(big, 'b', sizeof(big));
	put_var_n("K", 1, big, sizeof(big) - 1); /* 2 + 1 + 2 + len = 0xffff */
	size_t total = finish(0, 0);

	assert_int_equal(total, 4 + 0xffff);
	assert_int_equal(parse_n(pb.b, total, 4 + 0xffff, MAX_VARS), 4 + 0xffff);
	assert_int_equal(pkt.datasize, 0xffff);
	assert_int_equal(pkt.vars[0].value.len, sizeof(big) - 1);
	assert_int_equal(parse_n(pb.b, total, 4 + 0xfffe, MAX_VARS), UWSGI_ERR_TOO_LARGE);
}

/*
 * Malformed vars
 */

/* Parses a vars block given as raw bytes under a correct header. */
static ssize_t parse_vars_block(const char *vars_raw, size_t n)
{
	pb.len = 4;
	put_bytes(vars_raw, n);
	finish(0, 0);
	return parse_pb();
}

#define VARS(lit) parse_vars_block(lit, sizeof(lit) - 1)

static void test_malformed_overruns(void **state)
{
	/* Key length past the end of the vars. */
	assert_int_equal(VARS("\x04\x00"
	                      "KEY"),
	                 UWSGI_ERR_MALFORMED);
	assert_int_equal(VARS("\xff\xff"
	                      "K"),
	                 UWSGI_ERR_MALFORMED);
	/* Value length past the end, by one byte and by a lot. */
	assert_int_equal(VARS("\x01\x00"
	                      "K"
	                      "\x04\x00"
	                      "abc"),
	                 UWSGI_ERR_MALFORMED);
	assert_int_equal(VARS("\x01\x00"
	                      "K"
	                      "\x00\x01"
	                      "abc"),
	                 UWSGI_ERR_MALFORMED);
	/* Key without a value length, or half of one. */
	assert_int_equal(VARS("\x01\x00"
	                      "K"),
	                 UWSGI_ERR_MALFORMED);
	assert_int_equal(VARS("\x01\x00"
	                      "K"
	                      "\x00"),
	                 UWSGI_ERR_MALFORMED);
	/* The second var overruns, the first is fine. */
	assert_int_equal(VARS("\x01\x00"
	                      "A"
	                      "\x01\x00"
	                      "a"
	                      "\x01\x00"
	                      "B"
	                      "\x02\x00"
	                      "b"),
	                 UWSGI_ERR_MALFORMED);
}

/* datasize shorter than the vars that follow: the bytes past datasize are
 * body, so the last var overruns datasize even though the buffer has it. */
static void test_malformed_datasize_short(void **state)
{
	put_var("KEY", "value");
	finish(0, 0);
	pb.b[1]--; /* datasize one short */
	assert_int_equal(parse_pb(), UWSGI_ERR_MALFORMED);
}

static void test_malformed_trailing_bytes(void **state)
{
	static const char tails[][4] = {{0}, {1, 0}, {1, 0, 'K'}, {1, 0, 'K', 0}};

	/* 1 to 4 bytes after a good var cannot hold another one (5 bytes). */
	for (size_t n = 1; n <= 4; n++) {
		pb.len = 4;
		put_var("A", "a");
		put_bytes(tails[n - 1], n);
		finish(0, 0);
		assert_int_equal(parse_pb(), UWSGI_ERR_MALFORMED);
	}
	/* ... and 5 do. */
	pb.len = 4;
	put_var("A", "a");
	put_var("K", "");
	finish(0, 0);
	assert_int_equal(parse_pb(), pb.len);
	assert_int_equal(pkt.num_vars, 2);
}

static void test_zero_length_key(void **state)
{
	assert_int_equal(VARS("\x00\x00"
	                      "\x01\x00"
	                      "v"),
	                 UWSGI_ERR_MALFORMED);
	assert_int_equal(VARS("\x00\x00"
	                      "\x00\x00"),
	                 UWSGI_ERR_MALFORMED);
	/* After good vars, too. */
	assert_int_equal(VARS("\x01\x00"
	                      "A"
	                      "\x00\x00"
	                      "\x00\x00"
	                      "\x00\x00"),
	                 UWSGI_ERR_MALFORMED);
}

/*
 * Limits
 */

static void test_too_large_boundary(void **state)
{
	size_t total = put_nginx_packet();

	assert_int_equal(parse_n(pb.b, total, total, MAX_VARS), total);
	assert_int_equal(pkt.num_vars, NGINX_NVARS);
	assert_int_equal(parse_n(pb.b, total, total - 1, MAX_VARS), UWSGI_ERR_TOO_LARGE);
	/* A limit below the header refuses every packet, even an empty one. */
	assert_int_equal(parse_n("\0\0\0\0", 4, 4, MAX_VARS), 4);
	assert_int_equal(parse_n("\0\0\0\0", 4, 3, MAX_VARS), UWSGI_ERR_TOO_LARGE);
	assert_int_equal(parse_n("\0\0\0\0", 4, 0, MAX_VARS), UWSGI_ERR_TOO_LARGE);
}

/* Refused as soon as the header is in: the vars never need to arrive. */
static void test_too_large_before_vars(void **state)
{
	size_t total = put_nginx_packet();

	for (size_t k = 0; k <= total; k++)
		assert_int_equal(parse_n(pb.b, k, total - 1, MAX_VARS),
		                 k < 4 ? UWSGI_INCOMPLETE : UWSGI_ERR_TOO_LARGE);
	/* The largest datasize against a typical 4096-byte buffer. */
	assert_int_equal(parse_n("\0\xff\xff\0", 4, 4096, MAX_VARS), UWSGI_ERR_TOO_LARGE);
	/* TOO_LARGE wins over vars that would be malformed. */
	assert_int_equal(parse_n("\0\x02\0\0\0\0", 6, 5, MAX_VARS), UWSGI_ERR_TOO_LARGE);
}

static void test_too_many_vars(void **state)
{
	size_t total = put_nginx_packet();

	assert_int_equal(parse_n(pb.b, total, NO_LIMIT, NGINX_NVARS), total);
	assert_int_equal(pkt.num_vars, NGINX_NVARS);
	assert_int_equal(parse_n(pb.b, total, NO_LIMIT, NGINX_NVARS - 1), UWSGI_ERR_TOO_MANY_VARS);
	assert_int_equal(parse_n(pb.b, total, NO_LIMIT, 0), UWSGI_ERR_TOO_MANY_VARS);
	assert_int_equal(uwsgi_parse_packet(pb.b, total, NO_LIMIT, &pkt, NULL, 0),
	                 UWSGI_ERR_TOO_MANY_VARS);
}

/* Every var is checked, so malformation past the array is still found. */
static void test_malformed_wins_over_too_many(void **state)
{
	for (size_t i = 0; i < 8; i++)
		put_var("K", "v");
	put_bytes("\x01", 1);
	size_t total = finish(0, 0);

	assert_int_equal(parse_n(pb.b, total, NO_LIMIT, 2), UWSGI_ERR_MALFORMED);
	assert_int_equal(parse_n(pb.b, total, NO_LIMIT, 0), UWSGI_ERR_MALFORMED);
	assert_int_equal(parse_n(pb.b, total, NO_LIMIT, MAX_VARS), UWSGI_ERR_MALFORMED);
}

/* Nothing is written past <max_vars>, whatever the packet holds. */
static void test_vars_array_bound(void **state)
{
	struct uwsgi_var guard;
	size_t total = put_nginx_packet();

	for (size_t max = 0; max <= NGINX_NVARS; max++) {
		ssize_t rc = parse_n(pb.b, total, NO_LIMIT, max);

		memset(&guard, 0xa5, sizeof(guard));
		assert_int_equal(rc, max < NGINX_NVARS ? UWSGI_ERR_TOO_MANY_VARS : (ssize_t)total);
		assert_memory_equal(&vars[max], &guard, sizeof(guard));
	}
}

/*
 * Incremental arrival
 */

static void test_every_prefix_incomplete(void **state)
{
	size_t total = put_nginx_packet();

	for (size_t k = 0; k < total; k++)
		assert_int_equal(parse_n(pb.b, k, NO_LIMIT, MAX_VARS), UWSGI_INCOMPLETE);
	/* Also with the tightest limit that accepts it. */
	for (size_t k = 0; k < total; k++)
		assert_int_equal(parse_n(pb.b, k, total, MAX_VARS), UWSGI_INCOMPLETE);
	assert_int_equal(parse_n(pb.b, total, total, MAX_VARS), total);
}

/* A malformed or overfull packet is only judged once all of it is in. */
static void test_bad_packet_prefixes_incomplete(void **state)
{
	put_var("A", "a");
	put_bytes("\x00\x00\x01\x00"
	          "v",
	          5);
	size_t total = finish(0, 0);

	for (size_t k = 0; k < total; k++) {
		assert_int_equal(parse_n(pb.b, k, NO_LIMIT, MAX_VARS), UWSGI_INCOMPLETE);
		assert_int_equal(parse_n(pb.b, k, NO_LIMIT, 0), UWSGI_INCOMPLETE);
	}
	assert_int_equal(parse_n(pb.b, total, NO_LIMIT, MAX_VARS), UWSGI_ERR_MALFORMED);
}

static void test_body_after_packet(void **state)
{
	size_t total = put_nginx_packet();
	/* A body that would parse as a var if it were read as one. */
	static const char body[] = "\x01\x00"
	                           "Z"
	                           "\x00\x00";

	put_bytes(body, sizeof(body) - 1);
	assert_int_equal(parse_pb(), total);
	assert_int_equal(pkt.num_vars, NGINX_NVARS);
	assert_memory_equal(pb.b + total, body, sizeof(body) - 1);
	assert_null(uwsgi_packet_get(&pkt, "Z").p);
	/* Garbage after the packet does not matter either. */
	pb.len = total;
	put_bytes("\xff", 1);
	assert_int_equal(parse_pb(), total);
	/* Nor does it for a malformed packet. */
	pb.b[1]--;
	assert_int_equal(parse_pb(), UWSGI_ERR_MALFORMED);
}

static void test_pipelined_packets(void **state)
{
	put_var("A", "1");
	size_t first = finish(0, 0);

	/* A second packet straight after the first. */
	put_bytes("\x00\x05\x00\x00"
	          "\x01\x00"
	          "B"
	          "\x00\x00",
	          9);
	assert_int_equal(parse_pb(), first);
	assert_var(0, "A", "1");
	assert_int_equal(parse_n(pb.b + first, pb.len - first, NO_LIMIT, MAX_VARS), 9);
	assert_int_equal(pkt.num_vars, 1);
	assert_var(0, "B", "");
}

static void test_reparse_same(void **state)
{
	struct uwsgi_packet first;
	struct uwsgi_var first_vars[MAX_VARS];
	size_t total = put_nginx_packet();

	assert_int_equal(parse_pb(), total);
	first = pkt;
	memcpy(first_vars, vars, sizeof(first_vars));
	assert_int_equal(parse_pb(), total);
	assert_memory_equal(&pkt, &first, sizeof(pkt));
	assert_memory_equal(vars, first_vars, NGINX_NVARS * sizeof(vars[0]));
}

/* *pkt is written only on success. */
static void test_pkt_untouched_on_failure(void **state)
{
	struct uwsgi_packet poison;
	size_t total = put_nginx_packet();

	memset(&poison, 0xa5, sizeof(poison));
	assert_int_equal(parse_n(pb.b, total - 1, NO_LIMIT, MAX_VARS), UWSGI_INCOMPLETE);
	assert_memory_equal(&pkt, &poison, sizeof(pkt));
	assert_int_equal(parse_n(pb.b, total, total - 1, MAX_VARS), UWSGI_ERR_TOO_LARGE);
	assert_memory_equal(&pkt, &poison, sizeof(pkt));
	assert_int_equal(parse_n(pb.b, total, NO_LIMIT, 1), UWSGI_ERR_TOO_MANY_VARS);
	assert_memory_equal(&pkt, &poison, sizeof(pkt));
	pb.b[1]--;
	assert_int_equal(parse_n(pb.b, total, NO_LIMIT, MAX_VARS), UWSGI_ERR_MALFORMED);
	assert_memory_equal(&pkt, &poison, sizeof(pkt));
}

/*
 * uwsgi_packet_get
 */

static void test_get(void **state)
{
	size_t total = put_nginx_packet();
	struct http_slice s;

	assert_int_equal(parse_pb(), total);
	for (size_t i = 0; i < NGINX_NVARS; i++)
		assert_slice(uwsgi_packet_get(&pkt, nginx_vars[i][0]), nginx_vars[i][1]);
	/* Found but empty is not missing. */
	s = uwsgi_packet_get(&pkt, "HTTPS");
	assert_non_null(s.p);
	assert_int_equal(s.len, 0);
	/* Exact and case-sensitive: no prefixes, extensions or folding. */
	assert_null(uwsgi_packet_get(&pkt, "request_method").p);
	assert_null(uwsgi_packet_get(&pkt, "Request_Method").p);
	assert_null(uwsgi_packet_get(&pkt, "REQUEST").p);
	assert_null(uwsgi_packet_get(&pkt, "REQUEST_METHODS").p);
	assert_null(uwsgi_packet_get(&pkt, "SCRIPT_NAME").p);
	assert_null(uwsgi_packet_get(&pkt, "").p);
	assert_int_equal(uwsgi_packet_get(&pkt, "").len, 0);
}

static void test_get_first_occurrence(void **state)
{
	put_var("HTTP_COOKIE", "a=1");
	put_var("http_cookie", "lower");
	put_var("HTTP_COOKIE", "b=2");
	size_t total = finish(0, 0);

	assert_int_equal(parse_pb(), total);
	assert_int_equal(pkt.num_vars, 3);
	assert_slice(uwsgi_packet_get(&pkt, "HTTP_COOKIE"), "a=1");
	assert_ptr_equal(uwsgi_packet_get(&pkt, "HTTP_COOKIE").p, pkt.vars[0].value.p);
	assert_slice(uwsgi_packet_get(&pkt, "http_cookie"), "lower");
}

/*
 * uwsgi_content_length
 */

static int64_t cl(const char *s)
{
	return uwsgi_content_length((struct http_slice){s, strlen(s)});
}

static void test_content_length(void **state)
{
	static const struct {
		const char *in;
		int64_t out;
	} cases[] = {
	        {"", 0},
	        {"0", 0},
	        {"5", 5},
	        {"007", 7},
	        {"1234567890", 1234567890},
	        {"4611686018427387903", ((int64_t)1 << 62) - 1},
	        {"4611686018427387904", (int64_t)1 << 62}, /* 2^62: the largest */
	        {"0004611686018427387904", (int64_t)1 << 62},
	        {"4611686018427387905", -1},
	        {"9223372036854775807", -1}, /* INT64_MAX */
	        {"9223372036854775808", -1},
	        {"18446744073709551616", -1}, /* 2^64: would wrap */
	        {"99999999999999999999999999999999", -1},
	        {"0x10", -1},
	        {"0X10", -1},
	        {"+5", -1},
	        {"-1", -1},
	        {"-0", -1},
	        {" 5", -1},
	        {"5 ", -1},
	        {"\t5", -1},
	        {"5\r\n", -1},
	        {"1e3", -1},
	        {"5.0", -1},
	        {"1,2", -1},
	        {"/", -1}, /* the characters either side of the digits */
	        {":", -1},
	        {"\xb5", -1}, /* '5' | 0x80: the whole byte must be a digit */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t got = cl(cases[i].in);

		if (got != cases[i].out)
			fail_msg("uwsgi_content_length(\"%s\") = %lld, want %lld", cases[i].in,
			         (long long)got, (long long)cases[i].out);
	}
	/* The length bounds the scan: digits past it are not read. */
	assert_int_equal(uwsgi_content_length((struct http_slice){"12x", 2}), 12);
	assert_int_equal(uwsgi_content_length((struct http_slice){"5\0"
	                                                          "1",
	                                                          3}),
	                 -1);
	/* A missing var (p == NULL) has no body. */
	assert_int_equal(uwsgi_content_length((struct http_slice){NULL, 0}), 0);
}

/* From a parsed packet, as the server will use it. */
static void test_content_length_from_packet(void **state)
{
	size_t total = put_nginx_packet();

	assert_int_equal(parse_pb(), total);
	assert_int_equal(uwsgi_content_length(uwsgi_packet_get(&pkt, "CONTENT_LENGTH")), 5);
	assert_int_equal(uwsgi_content_length(uwsgi_packet_get(&pkt, "NO_SUCH")), 0);
	assert_int_equal(uwsgi_content_length(uwsgi_packet_get(&pkt, "HTTPS")), 0);
	assert_int_equal(uwsgi_content_length(uwsgi_packet_get(&pkt, "REMOTE_ADDR")), -1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	        T(test_nginx_request),
	        T(test_hand_encoded),
	        T(test_little_endian_and_modifiers),
	        T(test_empty_packet),
	        T(test_empty_values),
	        T(test_binary_keys_and_values),
	        T(test_largest_packet),
	        T(test_malformed_overruns),
	        T(test_malformed_datasize_short),
	        T(test_malformed_trailing_bytes),
	        T(test_zero_length_key),
	        T(test_too_large_boundary),
	        T(test_too_large_before_vars),
	        T(test_too_many_vars),
	        T(test_malformed_wins_over_too_many),
	        T(test_vars_array_bound),
	        T(test_every_prefix_incomplete),
	        T(test_bad_packet_prefixes_incomplete),
	        T(test_body_after_packet),
	        T(test_pipelined_packets),
	        T(test_reparse_same),
	        T(test_pkt_untouched_on_failure),
	        T(test_get),
	        T(test_get_first_occurrence),
	        T(test_content_length),
	        T(test_content_length_from_packet),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
