/*
 * test_http.c - the HTTP/1.1 request parser and chunked decoder.
 *
 * Includes the .c to check the character tables and the word-at-a-time
 * scan against their definitions.
 *
 * Regression cases for request smuggling and parsing bugs that hit other
 * HTTP servers, by family (the integration twins are in
 * tests/integration/test_http_reject.py):
 *
 *   CL.TE / TE.CL desync (both framing headers, either order):
 *       test_transfer_encoding, test_smuggling_chunked_body_region
 *   CL.CL desync (duplicate or list-form Content-Length, equal or not):
 *       test_content_length, test_smuggling_content_length_forms
 *   lenient integer parsing ("0x", "+", "-", stray whitespace) of
 *   Content-Length and chunk-size:
 *       test_content_length, test_smuggling_content_length_forms,
 *       test_chunked_bad_size, test_smuggling_chunk_size_forms
 *   chunk-size overflow / wraparound (> 2^62, 16+ hex digits, 2^64 + n):
 *       test_chunked_bad_size, test_chunked_huge_size,
 *       test_smuggling_chunk_size_overflow
 *   bare-LF / bare-CR line endings (request line, field line, final empty
 *   line, chunk framing):
 *       test_bare_line_endings, test_early_refusal, test_chunked_data_crlf,
 *       test_smuggling_chunked_body_region
 *   empty or invalid field names (": value", "name :", obs-fold):
 *       test_field_refused
 *   chunked body smuggling (a request hidden after a malformed chunk, in
 *   the trailers, or behind a wrapped size; a request inside chunk data
 *   stays body):
 *       test_chunked_leaves_next_request, test_smuggling_chunked_body_region
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../server/http.c"

#define MAX_HEADERS 16

/* Parse state shared by the helpers; each test starts from a fresh one. */
static struct http_request req;
static struct http_header hdrs[MAX_HEADERS];

static ssize_t parse_n(const char *s, size_t len)
{
	memset(&req, 0xa5, sizeof(req));
	return http_parse_request(s, len, &req, hdrs, MAX_HEADERS);
}

static ssize_t parse(const char *s)
{
	return parse_n(s, strlen(s));
}

/* Parses "<line>" "Host: h\r\n" "<fields>" "\r\n". */
static ssize_t parse_head(const char *line, const char *fields)
{
	static char buf[8192];
	int n = snprintf(buf, sizeof(buf), "%s\r\nHost: h\r\n%s\r\n", line, fields);

	assert_true(n > 0 && (size_t)n < sizeof(buf));
	return parse_n(buf, (size_t)n);
}

/* Parses a GET with the given field lines. */
static ssize_t parse_fields_of(const char *fields)
{
	return parse_head("GET / HTTP/1.1", fields);
}

static void assert_slice(struct http_slice s, const char *expect)
{
	if (s.len != strlen(expect) || memcmp(s.p, expect, s.len) != 0)
		fail_msg("slice \"%.*s\" != \"%s\"", (int)s.len, s.p, expect);
}

/*
 * Character classes
 */

static void test_char_classes_match_rfc(void **state)
{
	static const char tchar_extra[] = "!#$%&'*+-.^_`|~";

	for (int c = 0; c < 256; c++) {
		bool alnum =
		        (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		bool tchar = alnum || (c != 0 && strchr(tchar_extra, c) != NULL);
		bool vchar = c >= 0x21 && c <= 0x7e;
		bool obs = c >= 0x80;
		bool ws = c == ' ' || c == '\t';
		bool qd = ws || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) ||
		          obs;

		assert_int_equal(is_class((char)c, C_TCHAR), tchar);
		assert_int_equal(is_class((char)c, C_VALUE), vchar || obs || ws);
		assert_int_equal(is_class((char)c, C_TARGET), vchar || obs);
		assert_int_equal(is_class((char)c, C_QDTEXT), qd);
	}
}

static void test_word_scan_is_exact(void **state)
{
	/* One odd byte at each position of an otherwise plain word. */
	for (int pos = 0; pos < 8; pos++) {
		for (int c = 0; c < 256; c++) {
			char w[8];
			memset(w, 'a', sizeof(w));
			w[pos] = (char)c;
			assert_int_equal(has_below_or_del(load64(w), 0x20), c < 0x20 || c == 0x7f);
			assert_int_equal(has_below_or_del(load64(w), 0x21), c < 0x21 || c == 0x7f);
		}
	}
}

static void test_slice_eq_nocase(void **state)
{
	struct http_slice s = {"Keep-Alive", 10};

	assert_true(http_slice_eq_nocase(s, "keep-alive"));
	assert_true(http_slice_eq_nocase(s, "KEEP-ALIVE"));
	assert_false(http_slice_eq_nocase(s, "keep-aliv"));
	assert_false(http_slice_eq_nocase(s, "keep-alive2"));
	assert_false(http_slice_eq_nocase(s, "keep_alive"));
	assert_true(http_slice_eq_nocase((struct http_slice){"", 0}, ""));
	assert_false(http_slice_eq_nocase((struct http_slice){"", 0}, "a"));
	/* Not NUL-terminated: only <len> bytes count. */
	assert_true(http_slice_eq_nocase((struct http_slice){"closed", 5}, "close"));
	/* Case folding is ASCII only: '@' and '`' differ by 0x20 but are not letters. */
	assert_false(http_slice_eq_nocase((struct http_slice){"@", 1}, "`"));
}

/*
 * Request line
 */

static void test_simple_get(void **state)
{
	const char *s = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\n\r\n";

	assert_int_equal(parse(s), strlen(s));
	assert_slice(req.method, "GET");
	assert_slice(req.target, "/index.html");
	assert_slice(req.path, "/index.html");
	assert_int_equal(req.query.len, 0);
	assert_int_equal(req.minor_version, 1);
	assert_ptr_equal(req.headers, hdrs);
	assert_int_equal(req.num_headers, 2);
	assert_slice(hdrs[0].name, "Host");
	assert_slice(hdrs[0].value, "example.com");
	assert_slice(hdrs[1].name, "X-Empty");
	assert_slice(hdrs[1].value, "");
	assert_int_equal(req.content_length, -1);
	assert_false(req.chunked);
	assert_true(req.keep_alive);
	assert_false(req.expect_continue);
}

static void test_no_fields(void **state)
{
	assert_int_equal(parse("OPTIONS * HTTP/1.0\r\n\r\n"), 22);
	assert_slice(req.method, "OPTIONS");
	assert_slice(req.target, "*");
	assert_int_equal(req.minor_version, 0);
	assert_int_equal(req.num_headers, 0);
	assert_false(req.keep_alive);
}

static void test_path_and_query(void **state)
{
	assert_true(parse_head("GET /a/b%20c?x=1&y=?z HTTP/1.1", "") > 0);
	assert_slice(req.target, "/a/b%20c?x=1&y=?z");
	assert_slice(req.path, "/a/b%20c");
	assert_slice(req.query, "x=1&y=?z");

	assert_true(parse_head("GET /a? HTTP/1.1", "") > 0);
	assert_slice(req.path, "/a");
	assert_slice(req.query, "");

	assert_true(parse_head("GET ?q HTTP/1.1", "") > 0);
	assert_slice(req.path, "");
	assert_slice(req.query, "q");

	assert_true(parse_head("CONNECT example.com:443 HTTP/1.1", "") > 0);
	assert_slice(req.target, "example.com:443");
	assert_true(parse_head("GET http://h/p?q HTTP/1.1", "") > 0);
	assert_slice(req.path, "http://h/p");
}

static void test_method_is_token(void **state)
{
	assert_true(parse_head("get / HTTP/1.1", "") > 0); /* case-sensitive, any token */
	assert_true(parse_head("M-SEARCH * HTTP/1.1", "") > 0);
	assert_true(parse_head("!#$%&'*+-.^_`|~09azAZ / HTTP/1.1", "") > 0);
	assert_slice(req.method, "!#$%&'*+-.^_`|~09azAZ");

	assert_int_equal(parse_head("G(ET / HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head("GE:T / HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head(" / HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head(" GET / HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head("GET\t/ HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head("G\xc3\x89T / HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
}

static void test_target(void **state)
{
	/* Bytes >= 0x80 are let through for the application to judge. */
	assert_true(parse_head("GET /caf\xc3\xa9?\xff HTTP/1.1", "") > 0);
	assert_slice(req.path, "/caf\xc3\xa9");
	assert_true(parse_head("GET /\"<>{}|\\^` HTTP/1.1", "") > 0);

	assert_int_equal(parse_head("GET  HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head("GET  / HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head("GET /\x01 HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head("GET /\x1f HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head("GET /\x7f HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head("GET /a\tb HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head("GET /a\rb HTTP/1.1", ""), HTTP_ERR_BAD_REQUEST);
	/* A NUL needs an explicit length; put it in a long target so that the
	 * word-at-a-time scan meets it. */
	static const char nul[] = "GET /0123456789abcdef\0/ HTTP/1.1\r\nHost: h\r\n\r\n";
	assert_int_equal(parse_n(nul, sizeof(nul) - 1), HTTP_ERR_BAD_REQUEST);
	for (size_t i = 5; i < 21; i++) {
		char s[sizeof(nul)];
		memcpy(s, nul, sizeof(s));
		s[21] = 'x';
		s[i] = 0x7f;
		assert_int_equal(parse_n(s, sizeof(s) - 1), HTTP_ERR_BAD_REQUEST);
	}
}

static void test_version(void **state)
{
	assert_true(parse_head("GET / HTTP/1.0", "") > 0);
	assert_int_equal(req.minor_version, 0);
	assert_true(parse_head("GET / HTTP/1.1", "") > 0);
	assert_int_equal(req.minor_version, 1);

	/* Well-formed but unsupported: 505. */
	assert_int_equal(parse_head("GET / HTTP/1.2", ""), HTTP_ERR_VERSION);
	assert_int_equal(parse_head("GET / HTTP/1.9", ""), HTTP_ERR_VERSION);
	assert_int_equal(parse_head("GET / HTTP/2.0", ""), HTTP_ERR_VERSION);
	assert_int_equal(parse_head("GET / HTTP/0.9", ""), HTTP_ERR_VERSION);
	assert_int_equal(parse_head("GET / HTTP/9.1", ""), HTTP_ERR_VERSION);
	assert_int_equal(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), HTTP_ERR_VERSION);

	/* Not an HTTP-version at all: 400. */
	static const char *const bad[] = {
	        "GET / HTTP/1.10",
	        "GET / HTTP/11",
	        "GET / HTTP/1",
	        "GET / HTTP/1.",
	        "GET / http/1.1",
	        "GET / HTTP/1.1 ",
	        "GET /  HTTP/1.1",
	        "GET / HTTP /1.1",
	        "GET / HTTP/a.1",
	        "GET / HTTP/1.x",
	        "GET / HTTP/1,1",
	        "GET / HTTPS/1.1",
	        "GET /",
	        "GET / ",
	        "GET",
	        "GET / HTTP/1.1 x",
	        "GET / HTTP/1.1\t",
	        "GET / HTTP/1.1\r",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_head(bad[i], "") != HTTP_ERR_BAD_REQUEST)
			fail_msg("accepted request line \"%s\"", bad[i]);
}

static void test_leading_empty_lines(void **state)
{
	const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";

	assert_int_equal(parse(s), strlen(s));
	assert_slice(req.method, "GET");
	assert_int_equal(parse("\r\n"), HTTP_INCOMPLETE);
	assert_int_equal(parse("\r\n\r"), HTTP_INCOMPLETE);
	assert_int_equal(parse("\r"), HTTP_INCOMPLETE);
	assert_int_equal(parse(""), HTTP_INCOMPLETE);
	assert_int_equal(parse("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("\rGET / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("\r\r\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse(" \r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_ERR_BAD_REQUEST);
}

static void test_request_line_end(void **state)
{
	assert_int_equal(http_request_line_end("GET / HTTP/1.1\r\nHost", 20), 14);
	assert_int_equal(http_request_line_end("\r\n\r\nGET / HTTP/1.1\r\n", 20), 18);
	assert_int_equal(http_request_line_end("GET / HTTP/1.1\r", 15), -1);
	assert_int_equal(http_request_line_end("GET /aaaaaaaa", 13), -1);
	assert_int_equal(http_request_line_end("\r\n\r\n", 4), -1);
	assert_int_equal(http_request_line_end("", 0), -1);
}

/*
 * Fields
 */

static void test_field_values(void **state)
{
	assert_true(parse_fields_of("A:  \t x y \t \r\n"
	                            "B:\r\n"
	                            "C: \t \r\n"
	                            "D:\tt\tu\r\n"
	                            "E: caf\xc3\xa9 \x80\xff\r\n"
	                            "F: \"q\" (c) <a>\r\n"
	                            "Mixed-Case: v\r\n") > 0);
	assert_int_equal(req.num_headers, 8);
	assert_slice(hdrs[1].name, "A");
	assert_slice(hdrs[1].value, "x y");
	assert_slice(hdrs[2].value, "");
	assert_slice(hdrs[3].value, "");
	assert_slice(hdrs[4].value, "t\tu");
	assert_slice(hdrs[5].value, "caf\xc3\xa9 \x80\xff");
	assert_slice(hdrs[6].value, "\"q\" (c) <a>");
	assert_slice(hdrs[7].name, "Mixed-Case");

	/* A long value with a HTAB in the middle of the word-at-a-time scan. */
	assert_true(parse_fields_of("Long: 0123456789abcdef\t0123456789abcdef0123456789\r\n") > 0);
	assert_slice(hdrs[1].value, "0123456789abcdef\t0123456789abcdef0123456789");
}

static void test_field_refused(void **state)
{
	static const char *const bad[] = {
	        " X: obs-fold\r\n",
	        "A: b\r\n continued\r\n",
	        "A: b\r\n\tcontinued\r\n",
	        "A : b\r\n",
	        "A\t: b\r\n",
	        ": b\r\n",
	        "A b: c\r\n",
	        "A@: b\r\n",
	        "A(b): c\r\n",
	        "A\xc3\xa9: b\r\n",
	        "no colon\r\n",
	        "NoColon\r\n",
	        "A: b\x01\r\n",
	        "A: b\x1f\r\n",
	        "A: b\x7f\r\n",
	        "A: b\rc\r\n",
	        "A: b\nc: d\r\n",
	        "A: b\n",
	        "A: b\r\r\n",
	        "A: 0123456789abcdef0123456789\x0b\r\n",
	        "\x01: b\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_fields_of(bad[i]) != HTTP_ERR_BAD_REQUEST)
			fail_msg("accepted field line #%zu", i);

	static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nA: b\0c\r\n\r\n";
	assert_int_equal(parse_n(nul, sizeof(nul) - 1), HTTP_ERR_BAD_REQUEST);
}

static void test_bare_line_endings(void **state)
{
	assert_int_equal(parse("GET / HTTP/1.1\n\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.1\nHost: h\r\n\r\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\n\r\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\r\n\r\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.1\rHost: h\r\n\r\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n\r\n"), HTTP_ERR_BAD_REQUEST);
}

/* Refusals that need no complete head: the answer comes at once, and is
 * the same when the head completes. */
static void test_early_refusal(void **state)
{
	static const char *const bad[] = {
	        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* TLS ClientHello */
	        "GE\x01",
	        "GET /\x01",
	        "GET  ",
	        "GET / HTTP/1.1\n",
	        "GET / HTTP/1.1\r\nHost: h\n",
	        "GET / HTTP/1.1\r\nHost: h\r\nX: y\nZ",
	        "GET / HTTP/1.1\r\n\n",
	        "GET / HTTP/1.1\rX",
	        "GET / HTTPS",
	        "GET / HTTP/1.12",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i]) != HTTP_ERR_BAD_REQUEST)
			fail_msg("did not refuse partial head #%zu at once", i);
	assert_int_equal(parse("GET / HTTP/2.0\r\n"), HTTP_ERR_VERSION);
	/* Field lines are judged only once the head is complete. */
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nA b\r\n"), HTTP_INCOMPLETE);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nA b\r\n\r\n"), HTTP_ERR_BAD_REQUEST);
}

static void test_too_many_headers(void **state)
{
	char buf[4096];
	size_t n = 0;

	n += (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; i < 3; i++)
		n += (size_t)sprintf(buf + n, "H%d: v\r\n", i);
	strcpy(buf + n, "\r\n");
	assert_int_equal(http_parse_request(buf, n + 2, &req, hdrs, 4), n + 2);
	assert_int_equal(req.num_headers, 4);
	assert_int_equal(http_parse_request(buf, n + 2, &req, hdrs, 3), HTTP_ERR_TOO_MANY_HEADERS);

	/* No array at all is fine when no field comes (HTTP/1.0: no Host). */
	assert_int_equal(http_parse_request("GET / HTTP/1.0\r\n\r\n", 18, &req, NULL, 0), 18);
	assert_int_equal(http_parse_request("GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27, &req, NULL, 0),
	                 HTTP_ERR_TOO_MANY_HEADERS);

	/* A malformed line after the limit is still a 400: the answer does
	 * not depend on where the limit falls. */
	strcpy(buf + n, "Bad line\r\n\r\n");
	assert_int_equal(http_parse_request(buf, strlen(buf), &req, hdrs, 1), HTTP_ERR_BAD_REQUEST);
	/* Fields past the limit are still checked for framing. */
	const char *s = "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\nContent-Length: x\r\n\r\n";
	assert_int_equal(http_parse_request(s, strlen(s), &req, hdrs, 1), HTTP_ERR_BAD_REQUEST);
}

/* The array may be exactly as long as the fields; nothing is written past
 * <max_headers>. */
static void test_headers_array_bound(void **state)
{
	struct http_header h[3];
	const char *s = "GET / HTTP/1.1\r\nHost: h\r\nB: 2\r\n\r\n";

	memset(h, 0x5a, sizeof(h));
	assert_int_equal(http_parse_request(s, strlen(s), &req, h, 2), strlen(s));
	assert_slice(h[1].name, "B");
	for (size_t i = 0; i < sizeof(h[2]); i++)
		assert_int_equal(((unsigned char *)&h[2])[i], 0x5a);
}

/*
 * Framing
 */

static void test_content_length(void **state)
{
	assert_true(parse_fields_of("Content-Length: 42\r\n") > 0);
	assert_int_equal(req.content_length, 42);
	assert_false(req.chunked);
	assert_true(parse_fields_of("content-LENGTH:   0  \r\n") > 0);
	assert_int_equal(req.content_length, 0);
	assert_true(parse_fields_of("Content-Length: 007\r\n") > 0);
	assert_int_equal(req.content_length, 7);
	assert_true(parse_fields_of("Content-Length: 9223372036854775807\r\n") > 0);
	assert_int_equal(req.content_length, INT64_MAX);

	static const char *const bad[] = {
	        "Content-Length: 9223372036854775808\r\n",
	        "Content-Length: 99999999999999999999\r\n",
	        "Content-Length:\r\n",
	        "Content-Length: \r\n",
	        "Content-Length: +5\r\n",
	        "Content-Length: -1\r\n",
	        "Content-Length: 5 5\r\n",
	        "Content-Length: 5,5\r\n",
	        "Content-Length: 0x10\r\n",
	        "Content-Length: 1e3\r\n",
	        "Content-Length: 5\r\nContent-Length: 5\r\n",
	        "Content-Length: 5\r\ncontent-length: 6\r\n",
	        "Content-Length: 5\r\nContent-Length: x\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_fields_of(bad[i]) != HTTP_ERR_BAD_REQUEST)
			fail_msg("accepted \"%s\"", bad[i]);
	/* Look-alike names are just fields. */
	assert_true(parse_fields_of("Content-Lengths: x\r\nContent-Lengt: y\r\n") > 0);
	assert_int_equal(req.content_length, -1);
}

static void test_transfer_encoding(void **state)
{
	static const char *const chunked[] = {
	        "Transfer-Encoding: chunked\r\n",
	        "transfer-encoding: CHUNKED\r\n",
	        "Transfer-Encoding: , chunked ,\r\n",
	        "Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n",
	        "Transfer-Encoding: chunked\r\nTransfer-Encoding: \r\n",
	};
	for (size_t i = 0; i < sizeof(chunked) / sizeof(chunked[0]); i++) {
		if (parse_fields_of(chunked[i]) <= 0)
			fail_msg("refused \"%s\"", chunked[i]);
		assert_true(req.chunked);
		assert_int_equal(req.content_length, -1);
	}

	static const char *const not_impl[] = {
	        "Transfer-Encoding: gzip\r\n",
	        "Transfer-Encoding: gzip, chunked\r\n",
	        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
	        "Transfer-Encoding: identity\r\n",
	        "Transfer-Encoding: x;q=1, chunked\r\n",
	};
	for (size_t i = 0; i < sizeof(not_impl) / sizeof(not_impl[0]); i++)
		if (parse_fields_of(not_impl[i]) != HTTP_ERR_NOT_IMPLEMENTED)
			fail_msg("not 501: \"%s\"", not_impl[i]);

	static const char *const bad[] = {
	        "Transfer-Encoding: chunked, gzip\r\n",
	        "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
	        "Transfer-Encoding: chunked, chunked\r\n",
	        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
	        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
	        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
	        "Content-Length: 5\r\nTransfer-Encoding: gzip\r\n",
	        "Transfer-Encoding:\r\n",
	        "Transfer-Encoding: ,\r\n",
	        "Transfer-Encoding: chunked;x=1\r\n",
	        "Transfer-Encoding: chu nked\r\n",
	        "Transfer-Encoding: \"chunked\"\r\n",
	        "Transfer-Encoding: gzip x, chunked\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_fields_of(bad[i]) != HTTP_ERR_BAD_REQUEST)
			fail_msg("not 400: \"%s\"", bad[i]);

	/* HTTP/1.0 has no Transfer-Encoding (RFC 9112 6.1). */
	assert_int_equal(parse_head("POST / HTTP/1.0", "Transfer-Encoding: chunked\r\n"),
	                 HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse_head("POST / HTTP/1.0", "Transfer-Encoding: gzip\r\n"),
	                 HTTP_ERR_BAD_REQUEST);
}

static void test_connection(void **state)
{
	static const struct {
		const char *line, *fields;
		bool keep_alive;
	} cases[] = {
	        {"GET / HTTP/1.1", "", true},
	        {"GET / HTTP/1.1", "Connection: close\r\n", false},
	        {"GET / HTTP/1.1", "Connection: CLOSE\r\n", false},
	        {"GET / HTTP/1.1", "Connection: Upgrade, Close\r\n", false},
	        {"GET / HTTP/1.1", "Connection: upgrade\r\nConnection: close\r\n", false},
	        {"GET / HTTP/1.1", "Connection: keep-alive\r\n", true},
	        {"GET / HTTP/1.1", "Connection: closed, xclose\r\n", true},
	        {"GET / HTTP/1.1", "Connection: keep-alive, close\r\n", false},
	        {"GET / HTTP/1.0", "", false},
	        {"GET / HTTP/1.0", "Connection: keep-alive\r\n", true},
	        {"GET / HTTP/1.0", "Connection: Keep-Alive\r\n", true},
	        {"GET / HTTP/1.0", "Connection: te ,\t keep-alive \r\n", true},
	        {"GET / HTTP/1.0", "Connection: close, keep-alive\r\n", false},
	        {"GET / HTTP/1.0", "Connection: keep-alives\r\n", false},
	        {"GET / HTTP/1.0", "Keep-Alive: 300\r\n", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(parse_head(cases[i].line, cases[i].fields) > 0);
		if (req.keep_alive != cases[i].keep_alive)
			fail_msg("case %zu: keep_alive %d", i, req.keep_alive);
	}
}

static void test_expect(void **state)
{
	assert_true(parse_fields_of("Expect: 100-continue\r\n") > 0);
	assert_true(req.expect_continue);
	assert_true(parse_fields_of("expect: 100-Continue \r\n") > 0);
	assert_true(req.expect_continue);
	assert_true(parse_fields_of("Expect: 100-continued\r\n") > 0);
	assert_false(req.expect_continue);
	assert_true(parse_fields_of("Expect: 200-ok\r\n") > 0);
	assert_false(req.expect_continue);
	assert_true(parse_fields_of("X-Expect: 100-continue\r\n") > 0);
	assert_false(req.expect_continue);
	/* 1.0 clients do not wait for 100 Continue. */
	assert_true(parse_head("POST / HTTP/1.0", "Expect: 100-continue\r\n") > 0);
	assert_false(req.expect_continue);
}

/* RFC 9112 3.2: an HTTP/1.1 request has exactly one Host field, an
 * HTTP/1.0 request at most one. */
static void test_host(void **state)
{
	/* HTTP/1.1 without Host. */
	assert_int_equal(parse("GET / HTTP/1.1\r\n\r\n"), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("GET / HTTP/1.1\r\nA: b\r\nConnection: close\r\n\r\n"),
	                 HTTP_ERR_BAD_REQUEST);
	assert_int_equal(parse("\r\nPOST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
	                 HTTP_ERR_BAD_REQUEST);
	/* Look-alike names are not Host. */
	assert_int_equal(
	        parse("GET / HTTP/1.1\r\nHosts: h\r\nX-Host: h\r\nHos: h\r\nHost-: h\r\n\r\n"),
	        HTTP_ERR_BAD_REQUEST);
	/* Refused only once the head is complete: the field may still come. */
	assert_int_equal(parse("GET / HTTP/1.1\r\nA: b\r\n"), HTTP_INCOMPLETE);

	/* HTTP/1.0 without Host is fine, with one too. */
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n"), 18);
	assert_int_equal(req.minor_version, 0);
	assert_int_equal(parse("GET / HTTP/1.0\r\nA: b\r\n\r\n"), 24);
	assert_int_equal(parse("GET / HTTP/1.0\r\nHost: h\r\n\r\n"), 27);

	/* Exactly one in 1.1, the name in any case, among other fields. */
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), 42);
	assert_slice(hdrs[0].value, "example.com:8080");
	static const char *const one[] = {
	        "GET / HTTP/1.1\r\nhost: h\r\n\r\n",
	        "GET / HTTP/1.1\r\nHOST: h\r\n\r\n",
	        "GET / HTTP/1.1\r\nhOsT: h\r\n\r\n",
	        "GET / HTTP/1.1\r\nA: b\r\nHost: h\r\nHosts: x\r\nX-Host: y\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++)
		if (parse(one[i]) != (ssize_t)strlen(one[i]))
			fail_msg("refused \"%s\"", one[i]);

	/* An empty Host is allowed (RFC 9112 3.2: no authority). */
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 25);
	assert_slice(hdrs[0].value, "");
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: \t \r\n\r\n"), 28);
	assert_slice(hdrs[0].value, "");

	/* More than one, in either version, even if equal or empty. */
	static const char *const two[] = {
	        "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
	        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	        "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\nhost: h\r\n\r\n",
	        "GET / HTTP/1.1\r\nHOST: h\r\nhOsT: i\r\n\r\n",
	        "GET / HTTP/1.1\r\nHost:\r\nHost:\r\n\r\n",
	        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nHost: c\r\n\r\n",
	        "GET / HTTP/1.0\r\nHost: h\r\nHost: h\r\n\r\n",
	        "GET / HTTP/1.0\r\nhost: a\r\nHOST: b\r\n\r\n",
	        "GET / HTTP/1.0\r\nHost:\r\nHost:\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(two) / sizeof(two[0]); i++)
		if (parse(two[i]) != HTTP_ERR_BAD_REQUEST)
			fail_msg("accepted \"%s\"", two[i]);

	/* The Host rule is part of framing: syntax errors and too many
	 * fields come first, and it is checked before the transfer-coding
	 * (400 rather than 501). */
	assert_int_equal(parse("GET / HTTP/1.2\r\n\r\n"), HTTP_ERR_VERSION);
	assert_int_equal(
	        http_parse_request("GET / HTTP/1.1\r\nA: b\r\nB: c\r\n\r\n", 30, &req, hdrs, 1),
	        HTTP_ERR_TOO_MANY_HEADERS);
	assert_int_equal(http_parse_request("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 36,
	                                    &req, hdrs, 1),
	                 HTTP_ERR_TOO_MANY_HEADERS);
	assert_int_equal(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
	                 HTTP_ERR_BAD_REQUEST);
	assert_int_equal(
	        parse("POST / HTTP/1.1\r\nHost: a\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
	        HTTP_ERR_BAD_REQUEST);
}

/*
 * Incremental use
 */

static const char full_request[] = "\r\nPOST /submit?a=b HTTP/1.1\r\n"
                                   "Host: example.com\r\n"
                                   "User-Agent: test/1.0 (with a long enough value)\r\n"
                                   "Content-Length: 5\r\n"
                                   "Connection: keep-alive\r\n"
                                   "\r\n";

static void test_every_prefix_incomplete(void **state)
{
	size_t n = sizeof(full_request) - 1;
	char *copy = malloc(n); /* exact size: ASan sees any read past <len> */

	for (size_t i = 0; i < n; i++) {
		memcpy(copy, full_request, i);
		ssize_t r = http_parse_request(copy, i, &req, hdrs, MAX_HEADERS);
		if (r != HTTP_INCOMPLETE)
			fail_msg("prefix of %zu bytes gave %zd", i, r);
	}
	memcpy(copy, full_request, n);
	assert_int_equal(http_parse_request(copy, n, &req, hdrs, MAX_HEADERS), n);
	assert_slice(req.query, "a=b");
	assert_int_equal(req.content_length, 5);
	free(copy);
}

static void test_pipelined(void **state)
{
	static const char s[] = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
	                        "GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	                        "GET /c HTTP/1.1\r\n";
	size_t len = sizeof(s) - 1, off;
	ssize_t r;

	r = parse_n(s, len);
	assert_int_equal(r, 48);
	assert_slice(req.path, "/a");
	assert_int_equal(req.content_length, 5);
	off = (size_t)r + 5;
	assert_memory_equal(s + off - 5, "hello", 5);

	r = parse_n(s + off, len - off);
	assert_int_equal(r, 47);
	assert_slice(req.path, "/b");
	assert_false(req.keep_alive);
	off += (size_t)r;

	assert_int_equal(parse_n(s + off, len - off), HTTP_INCOMPLETE);
}

static void test_bytes_after_head_unconsumed(void **state)
{
	/* Whatever follows the head (even garbage) is left to the caller. */
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n\x01\n\r\n\r\n"), 27);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n\r\n"), 33);
}

/*
 * Chunked decoder
 */

struct decoded {
	int rc;          /* last result: DONE, ERROR or NEED_MORE when input ran out */
	size_t consumed; /* input bytes consumed in all */
	size_t len;      /* decoded body bytes */
	char data[16384];
};

/*
 * Feeds <in> to a fresh decoder as a connection would: the bytes arrive in
 * pieces ending at each of <cuts> (ascending) and at <len>; a call gets
 * every received byte not consumed yet.
 */
static void decode_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                        struct decoded *out)
{
	struct http_chunked d;
	size_t pos = 0, avail, k = 0;

	http_chunked_init(&d);
	out->len = 0;
	avail = ncuts > 0 ? cuts[0] : len;
	for (;;) {
		size_t used = (size_t)-1;
		struct http_slice data = {NULL, 0};
		int rc = http_chunked_step(&d, in + pos, avail - pos, &used, &data);

		assert_true(used <= avail - pos);
		if (rc == HTTP_CHUNK_DATA) {
			assert_true(data.len > 0);
			assert_true(data.p >= in + pos && data.p + data.len <= in + pos + used);
			assert_true(out->len + data.len <= sizeof(out->data));
			memcpy(out->data + out->len, data.p, data.len);
			out->len += data.len;
		}
		pos += used;
		if (rc == HTTP_CHUNK_NEED_MORE) {
			assert_int_equal(pos, avail);
			if (avail == len)
				break;
			avail = ++k < ncuts ? cuts[k] : len;
			continue;
		}
		if (rc == HTTP_CHUNK_DONE || rc == HTTP_CHUNK_ERROR) {
			out->rc = rc;
			out->consumed = pos;
			return;
		}
		assert_int_equal(rc, HTTP_CHUNK_DATA);
	}
	out->rc = HTTP_CHUNK_NEED_MORE;
	out->consumed = pos;
}

static struct decoded dec_whole, dec_split;

/* Decodes <in> whole, then split in two at every byte, then one byte at a
 * time; all must agree. Returns the whole decode. */
static const struct decoded *decode(const char *in, size_t len)
{
	char *copy = malloc(len + 1); /* exact size for ASan */

	memcpy(copy, in, len);
	decode_cuts(copy, len, NULL, 0, &dec_whole);
	for (size_t cut = 0; cut <= len; cut++) {
		decode_cuts(copy, len, &cut, 1, &dec_split);
		assert_int_equal(dec_split.rc, dec_whole.rc);
		assert_int_equal(dec_split.consumed, dec_whole.consumed);
		assert_int_equal(dec_split.len, dec_whole.len);
		assert_memory_equal(dec_split.data, dec_whole.data, dec_whole.len);
	}
	if (len > 0) {
		size_t *cuts = malloc(len * sizeof(*cuts));
		for (size_t i = 0; i < len; i++)
			cuts[i] = i + 1;
		decode_cuts(copy, len, cuts, len, &dec_split);
		assert_int_equal(dec_split.rc, dec_whole.rc);
		assert_int_equal(dec_split.consumed, dec_whole.consumed);
		assert_int_equal(dec_split.len, dec_whole.len);
		assert_memory_equal(dec_split.data, dec_whole.data, dec_whole.len);
		free(cuts);
	}
	free(copy);
	return &dec_whole;
}

static const struct decoded *decode_str(const char *in)
{
	return decode(in, strlen(in));
}

static void assert_body(const char *in, const char *body)
{
	const struct decoded *r = decode_str(in);

	if (r->rc != HTTP_CHUNK_DONE)
		fail_msg("\"%s\": rc %d", in, r->rc);
	assert_int_equal(r->consumed, strlen(in));
	assert_int_equal(r->len, strlen(body));
	assert_memory_equal(r->data, body, r->len);
}

static void assert_chunk_error(const char *in)
{
	if (decode_str(in)->rc != HTTP_CHUNK_ERROR)
		fail_msg("accepted chunked body \"%s\"", in);
}

static void test_chunked_simple(void **state)
{
	assert_body("5\r\nhello\r\n0\r\n\r\n", "hello");
	assert_body("0\r\n\r\n", "");
	assert_body("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
	assert_body("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
	assert_body("000001\r\nx\r\n0000\r\n\r\n", "x");
	assert_body("1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", "\r\n"); /* data is not looked at */
}

static void test_chunked_incremental_results(void **state)
{
	static const char in[] = "5\r\nhello\r\n0\r\n\r\n";
	struct http_chunked d;
	struct http_slice data;
	size_t used;

	http_chunked_init(&d);
	assert_int_equal(http_chunked_step(&d, in, 0, &used, &data), HTTP_CHUNK_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(http_chunked_step(&d, in, 3, &used, &data), HTTP_CHUNK_NEED_MORE);
	assert_int_equal(used, 3);
	assert_int_equal(http_chunked_step(&d, in + 3, 2, &used, &data), HTTP_CHUNK_DATA);
	assert_int_equal(used, 2);
	assert_ptr_equal(data.p, in + 3);
	assert_int_equal(data.len, 2);
	assert_int_equal(http_chunked_step(&d, in + 5, 10, &used, &data), HTTP_CHUNK_DATA);
	assert_int_equal(used, 3);
	assert_ptr_equal(data.p, in + 5);
	assert_int_equal(data.len, 3);
	assert_int_equal(http_chunked_step(&d, in + 8, 7, &used, &data), HTTP_CHUNK_DONE);
	assert_int_equal(used, 7);
	/* Done stays done, consuming nothing. */
	assert_int_equal(http_chunked_step(&d, "x", 1, &used, &data), HTTP_CHUNK_DONE);
	assert_int_equal(used, 0);
}

static void test_chunked_leaves_next_request(void **state)
{
	static const char in[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	const struct decoded *r = decode(in, sizeof(in) - 1);

	assert_int_equal(r->rc, HTTP_CHUNK_DONE);
	assert_int_equal(r->consumed, 13);
	assert_int_equal(r->len, 3);
}

static void test_chunked_extensions(void **state)
{
	static const char *const good[] = {
	        "5;a\r\nhello\r\n0\r\n\r\n",
	        "5;a=b\r\nhello\r\n0\r\n\r\n",
	        "5 ;a=b\r\nhello\r\n0\r\n\r\n",
	        "5\t; a = b\r\nhello\r\n0\r\n\r\n",
	        "5;a;b=c;d=\"\"\r\nhello\r\n0\r\n\r\n",
	        "5;a=\"q \\\" \\\\ x\"\r\nhello\r\n0\r\n\r\n",
	        "5;a=\"\t!#[]~\x80\xff\"\r\nhello\r\n0\r\n\r\n",
	        "5;a=\"x\" ;b\r\nhello\r\n0\r\n\r\n",
	        "5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n",
	        "5;a = \"b\"\r\nhello\r\n0;last=1\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_body(good[i], "hello");

	static const char *const bad[] = {
	        "5;\r\nhello\r\n0\r\n\r\n",           "5;=b\r\nhello\r\n0\r\n\r\n",
	        "5;a=\r\nhello\r\n0\r\n\r\n",         "5;a=b c\r\nhello\r\n0\r\n\r\n",
	        "5 \r\nhello\r\n0\r\n\r\n",           "5;a \r\nhello\r\n0\r\n\r\n",
	        "5;a=b \r\nhello\r\n0\r\n\r\n",       "5;a=\"x\" \r\nhello\r\n0\r\n\r\n",
	        "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n",   "5;a=\"unterminated\r\nhello\r\n0\r\n\r\n",
	        "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", "5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n",
	        "5;a=b;\r\nhello\r\n0\r\n\r\n",       "5;a==b\r\nhello\r\n0\r\n\r\n",
	        "5;a=b=c\r\nhello\r\n0\r\n\r\n",      "5;a@b\r\nhello\r\n0\r\n\r\n",
	        "5;a=b@\r\nhello\r\n0\r\n\r\n",       "5;;a\r\nhello\r\n0\r\n\r\n",
	        "5 a\r\nhello\r\n0\r\n\r\n",          "5;a\x7f\r\nhello\r\n0\r\n\r\n",
	        "5;a\n\nhello\r\n0\r\n\r\n",          "5\r\nhello\r\n0;\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_chunk_error(bad[i]);
}

static void test_chunked_bad_size(void **state)
{
	static const char *const bad[] = {
	        "\r\nhello\r\n0\r\n\r\n",    "g\r\nx\r\n0\r\n\r\n",
	        "-1\r\nx\r\n0\r\n\r\n",      "+1\r\nx\r\n0\r\n\r\n",
	        "0x5\r\nhello\r\n0\r\n\r\n", " 5\r\nhello\r\n0\r\n\r\n",
	        ";a\r\nhello\r\n0\r\n\r\n",  "4000000000000001\r\n",
	        "10000000000000000\r\n",     "ffffffffffffffffff\r\n",
	        "5\nhello\r\n0\r\n\r\n",     "5\rhello\r\n0\r\n\r\n",
	        "5\r\r\nhello\r\n0\r\n\r\n", "\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_chunk_error(bad[i]);
}

static void test_chunked_huge_size(void **state)
{
	static const char in[] = "4000000000000000\r\nabc";
	struct http_chunked d;
	struct http_slice data;
	size_t used;

	/* 2^62 itself is allowed, and counted down as data arrives. */
	http_chunked_init(&d);
	assert_int_equal(http_chunked_step(&d, in, sizeof(in) - 1, &used, &data), HTTP_CHUNK_DATA);
	assert_int_equal(used, sizeof(in) - 1);
	assert_int_equal(data.len, 3);
	assert_true(d.remaining == ((uint64_t)1 << 62) - 3);
	/* As are leading zeros, up to the line limit. */
	assert_body("00000000000000000000000000000000000001\r\nx\r\n0\r\n\r\n", "x");
}

static void test_chunked_data_crlf(void **state)
{
	assert_chunk_error("5\r\nhelloX\r\n0\r\n\r\n");
	assert_chunk_error("5\r\nhello\n0\r\n\r\n");
	assert_chunk_error("5\r\nhello\r0\r\n\r\n");
	assert_chunk_error("5\r\nhello\r\r\n0\r\n\r\n");
	assert_chunk_error("3\r\nhello\r\n0\r\n\r\n");
	assert_chunk_error("5\r\nhello\r\n0\r\n\n");
	assert_chunk_error("5\r\nhello\r\n0\r\n\rX");
	assert_chunk_error("0\r\n\n");
}

static void test_chunked_trailers(void **state)
{
	assert_body("5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum:  abc \t\r\nEmpty:\r\n\r\n",
	            "hello");
	assert_body("0\r\nX: caf\xc3\xa9\t\x80\r\n\r\n", "");

	static const char *const bad[] = {
	        "0\r\n X: obs-fold\r\n\r\n", "0\r\nA: b\r\n\tcontinued\r\n\r\n",
	        "0\r\nA : b\r\n\r\n",        "0\r\n: b\r\n\r\n",
	        "0\r\nA b\r\n\r\n",          "0\r\nA\r\n\r\n",
	        "0\r\nA@: b\r\n\r\n",        "0\r\nA: b\x01\r\n\r\n",
	        "0\r\nA: b\x7f\r\n\r\n",     "0\r\nA: b\n\r\n",
	        "0\r\nA: b\rc\r\n\r\n",      "0\r\nA: b\r\n\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_chunk_error(bad[i]);

	static const char nul[] = "0\r\nA: \0\r\n\r\n";
	assert_int_equal(decode(nul, sizeof(nul) - 1)->rc, HTTP_CHUNK_ERROR);
}

/* Builds a body whose first size line is exactly <line> bytes (CRLF
 * included), padded with an extension. */
static size_t build_long_size_line(char *buf, size_t line)
{
	size_t n = 0;

	buf[n++] = '1';
	buf[n++] = ';';
	while (n < line - 2)
		buf[n++] = 'x';
	memcpy(buf + n, "\r\na\r\n0\r\n\r\n", 10);
	return n + 10;
}

/* Builds "0" CRLF then a trailer section of exactly <size> bytes. */
static size_t build_long_trailer(char *buf, size_t size)
{
	size_t n = 0;

	memcpy(buf, "0\r\n", 3);
	n = 3;
	memcpy(buf + n, "T:", 2);
	n += 2;
	while (n < 3 + size - 4)
		buf[n++] = 'v';
	memcpy(buf + n, "\r\n\r\n", 4);
	return n + 4;
}

static void test_chunked_limits(void **state)
{
	static char buf[HTTP_CHUNK_TRAILER_MAX + 64];
	struct decoded *r = &dec_whole;
	size_t n;

	n = build_long_size_line(buf, HTTP_CHUNK_LINE_MAX);
	decode_cuts(buf, n, NULL, 0, r);
	assert_int_equal(r->rc, HTTP_CHUNK_DONE);
	assert_int_equal(r->len, 1);
	n = build_long_size_line(buf, HTTP_CHUNK_LINE_MAX + 1);
	decode_cuts(buf, n, NULL, 0, r);
	assert_int_equal(r->rc, HTTP_CHUNK_ERROR);
	assert_int_equal(r->consumed, HTTP_CHUNK_LINE_MAX + 1);

	/* The limit is per line: many chunks are fine. */
	n = 0;
	for (int i = 0; i < 1000; i++)
		n += (size_t)sprintf(buf + n, "1\r\n%c\r\n", 'a' + i % 26);
	n += (size_t)sprintf(buf + n, "0\r\n\r\n");
	decode_cuts(buf, n, NULL, 0, r);
	assert_int_equal(r->rc, HTTP_CHUNK_DONE);
	assert_int_equal(r->len, 1000);

	n = build_long_trailer(buf, HTTP_CHUNK_TRAILER_MAX);
	decode_cuts(buf, n, NULL, 0, r);
	assert_int_equal(r->rc, HTTP_CHUNK_DONE);
	assert_int_equal(r->consumed, n);
	n = build_long_trailer(buf, HTTP_CHUNK_TRAILER_MAX + 1);
	decode_cuts(buf, n, NULL, 0, r);
	assert_int_equal(r->rc, HTTP_CHUNK_ERROR);

	/* The trailer limit counts the whole section, not one line. */
	n = 3;
	memcpy(buf, "0\r\n", 3);
	while (n < 3 + HTTP_CHUNK_TRAILER_MAX)
		n += (size_t)sprintf(buf + n, "T: v\r\n");
	n += (size_t)sprintf(buf + n, "\r\n");
	decode_cuts(buf, n, NULL, 0, r);
	assert_int_equal(r->rc, HTTP_CHUNK_ERROR);
}

static void test_chunked_error_is_sticky(void **state)
{
	struct http_chunked d;
	struct http_slice data;
	size_t used;

	http_chunked_init(&d);
	assert_int_equal(http_chunked_step(&d, "5x", 2, &used, &data), HTTP_CHUNK_ERROR);
	assert_int_equal(used, 2);
	assert_int_equal(http_chunked_step(&d, "\r\nhello", 7, &used, &data), HTTP_CHUNK_ERROR);
	assert_int_equal(used, 0);
}

static void test_chunked_incomplete(void **state)
{
	/* Every proper prefix of a valid body only asks for more. */
	static const char in[] = "5;e=\"v\"\r\nhello\r\n0\r\nT: x\r\n\r\n";

	for (size_t i = 0; i < sizeof(in) - 1; i++) {
		const struct decoded *r = decode(in, i);
		if (r->rc != HTTP_CHUNK_NEED_MORE)
			fail_msg("prefix %zu: rc %d", i, r->rc);
		assert_int_equal(r->consumed, i);
	}
}

/*
 * Regression cases: request smuggling and parsing bugs seen in other
 * servers (see the list at the top of the file).
 */

/* A request hidden in a body; it must never be parsed as the next one. */
#define SMUGGLED "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"

/* Content-Length as other servers misread it. A list of equal values is
 * what RFC 9110 8.6 lets a recipient collapse, but collapsing it while a
 * peer refuses it (or takes the first) is a CL.CL desync: refused, as are
 * signs, a hex prefix, a wrapped 2^64 + n and whitespace that is not OWS.
 * OWS around the value is not part of it (RFC 9110 5.5): accepted, and the
 * length is exactly the digits. */
static void test_smuggling_content_length_forms(void **state)
{
	static const char *const bad[] = {
	        "Content-Length: 5, 5\r\n",
	        "Content-Length: 5 ,5\r\n",
	        "Content-Length: 5,\r\n",
	        "Content-Length: ,5\r\n",
	        "Content-Length: 5, 6\r\n",
	        "Content-Length: 0x\r\n",
	        "Content-Length: 0x5\r\n",
	        "Content-Length: 0X5\r\n",
	        "Content-Length: +0\r\n",
	        "Content-Length: -0\r\n",
	        "Content-Length: 1_0\r\n",
	        "Content-Length: 5\x0b\r\n",
	        "Content-Length: \x0c"
	        "5\r\n",
	        "Content-Length: 5\xa0\r\n",                /* NBSP: not OWS */
	        "Content-Length: 18446744073709551621\r\n", /* 2^64 + 5 */
	        "Content-Length: 5\r\nContent-Length: 5\r\n",
	        "Content-Length: 5\r\nContent-Length: 50\r\n",
	        "Content-Length: 0\r\nX: y\r\nContent-Length: 0\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_fields_of(bad[i]) != HTTP_ERR_BAD_REQUEST)
			fail_msg("accepted \"%s\"", bad[i]);

	static const char *const ows[] = {
	        "Content-Length:5\r\n",         "Content-Length:  5\r\n",
	        "Content-Length: 5  \r\n",      "Content-Length:\t5\t\r\n",
	        "Content-Length: \t 5 \t \r\n",
	};
	for (size_t i = 0; i < sizeof(ows) / sizeof(ows[0]); i++) {
		if (parse_fields_of(ows[i]) <= 0)
			fail_msg("refused \"%s\"", ows[i]);
		assert_int_equal(req.content_length, 5);
		assert_false(req.chunked);
	}
}

/* chunk-size = 1*HEXDIG and nothing else: no "0x" prefix, sign, digit
 * separator or whitespace before it, and no whitespace between it and the
 * CRLF (BWS only before ';'). A lenient reader of "0x0", "+0", "-0" or
 * " 0" would see the last chunk and take what follows for a request. */
static void test_smuggling_chunk_size_forms(void **state)
{
	static const char *const bad[] = {
	        "0x5\r\nhello\r\n0\r\n\r\n",
	        "0X5\r\nhello\r\n0\r\n\r\n",
	        "0x\r\n\r\n",
	        "0x0\r\n\r\n" SMUGGLED,
	        "+5\r\nhello\r\n0\r\n\r\n",
	        "+0\r\n\r\n" SMUGGLED,
	        "-5\r\nhello\r\n0\r\n\r\n",
	        "-0\r\n\r\n" SMUGGLED,
	        "1_0\r\n0123456789abcdef\r\n0\r\n\r\n",
	        " 5\r\nhello\r\n0\r\n\r\n",
	        "\t5\r\nhello\r\n0\r\n\r\n",
	        " 0\r\n\r\n" SMUGGLED,
	        "5 \r\nhello\r\n0\r\n\r\n",
	        "5\t\r\nhello\r\n0\r\n\r\n",
	        "0 \r\n\r\n" SMUGGLED,
	        "0\t\r\n\r\n" SMUGGLED,
	        "5\x0b\r\nhello\r\n0\r\n\r\n",
	        "5\r\nhello\r\n0x0\r\n\r\n",
	        "5\r\nhello\r\n 0\r\n\r\n",
	        "5\r\nhello\r\n0 \r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_chunk_error(bad[i]);
}

/* A size past 64 bits must not wrap: "10000000000000005" read modulo 2^64
 * is 5, and the bytes after "hello" would become the next request. Sizes
 * over 2^62 are refused at the digit that crosses the limit, before any
 * data is handed out; more than 16 digits are fine while the value stays
 * small (leading zeros). */
static void test_smuggling_chunk_size_overflow(void **state)
{
	static const char *const bad[] = {
	        "4000000000000001\r\nhello\r\n0\r\n\r\n",           /* 2^62 + 1 */
	        "7fffffffffffffff\r\nhello\r\n0\r\n\r\n",           /* INT64_MAX */
	        "8000000000000000\r\nhello\r\n0\r\n\r\n",           /* 2^63: negative as int64 */
	        "ffffffffffffffff\r\nhello\r\n0\r\n\r\n",           /* 16 digits, -1 as int64 */
	        "10000000000000000\r\n\r\n" SMUGGLED,               /* 2^64: wraps to 0 */
	        "10000000000000005\r\nhello\r\n0\r\n\r\n" SMUGGLED, /* wraps to 5 */
	        "1000000000000000000000005\r\nhello\r\n0\r\n\r\n" SMUGGLED,
	        "ffffffffffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct decoded *r = decode_str(bad[i]);
		size_t digits = strcspn(bad[i], "\r");

		if (r->rc != HTTP_CHUNK_ERROR)
			fail_msg("accepted chunk size \"%.*s\"", (int)digits, bad[i]);
		assert_int_equal(r->len, 0);
		assert_true(r->consumed <= digits);
	}
	assert_body("0000000000000005\r\nhello\r\n0\r\n\r\n", "hello");
	assert_body("00000000000000000000000000000005\r\nhello\r\n00000000000000000\r\n\r\n",
	            "hello");
}

/* The bytes after the body end are handed back untouched. */
#define CHUNKED_POST "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"

/*
 * A chunked request followed by a request in the body region, framed as
 * the connection does it: the head, then the decoder on what follows.
 * Where the body ends right, what follows is the next request (plain
 * pipelining); a request inside chunk data is body; every malformed
 * framing around a smuggled request is an error, never a body end that
 * leaves the smuggled bytes to be parsed.
 */
static void test_smuggling_chunked_body_region(void **state)
{
	static char buf[512];
	const size_t head = sizeof(CHUNKED_POST) - 1;
	const struct decoded *r;
	int n;

	/* A request inside chunk data is body, all of it. */
	n = snprintf(buf, sizeof(buf), CHUNKED_POST "%zx\r\n" SMUGGLED "\r\n0\r\n\r\n",
	             strlen(SMUGGLED));
	assert_int_equal(parse_n(buf, (size_t)n), head);
	assert_true(req.chunked);
	r = decode(buf + head, (size_t)n - head);
	assert_int_equal(r->rc, HTTP_CHUNK_DONE);
	assert_int_equal(r->consumed, (size_t)n - head);
	assert_int_equal(r->len, strlen(SMUGGLED));
	assert_memory_equal(r->data, SMUGGLED, r->len);

	/* The body ends at the last chunk's CRLF: what follows is the next
	 * request, as the client meant it. */
	n = snprintf(buf, sizeof(buf), CHUNKED_POST "0\r\n\r\n" SMUGGLED);
	assert_int_equal(parse_n(buf, (size_t)n), head);
	r = decode(buf + head, (size_t)n - head);
	assert_int_equal(r->rc, HTTP_CHUNK_DONE);
	assert_int_equal(r->consumed, 5);
	assert_int_equal(parse(buf + head + 5), strlen(SMUGGLED));
	assert_slice(req.path, "/smuggled");

	static const char *const bad[] = {
	        "5\r\nhello" SMUGGLED "0\r\n\r\n",                  /* data not followed by CRLF */
	        "3\r\nhello\r\n0\r\n\r\n" SMUGGLED,                 /* size shorter than the data */
	        "5\nhello\n0\n\n" SMUGGLED,                         /* bare LF framing */
	        "5\r\nhello\n0\r\n\r\n" SMUGGLED,                   /* bare LF after data */
	        "0\n\n" SMUGGLED,                                   /* bare LF last chunk */
	        "0\r\n\n" SMUGGLED,                                 /* bare LF final line */
	        "0\r\n\r" SMUGGLED,                                 /* bare CR final line */
	        "0\r\n" SMUGGLED,                                   /* request line as trailer */
	        "0\r\nX: y\n" SMUGGLED,                             /* bare LF trailer */
	        "0;a=\"x\r\n\r\n" SMUGGLED,                         /* unterminated extension */
	        "0;a\n\r\n" SMUGGLED,                               /* bare LF after extension */
	        "10000000000000005\r\nhello\r\n0\r\n\r\n" SMUGGLED, /* wraps to 5 */
	        "0x0\r\n\r\n" SMUGGLED,
	        "-0\r\n\r\n" SMUGGLED,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = snprintf(buf, sizeof(buf), CHUNKED_POST "%s", bad[i]);
		assert_int_equal(parse_n(buf, (size_t)n), head);
		if (decode(buf + head, (size_t)n - head)->rc != HTTP_CHUNK_ERROR)
			fail_msg("body #%zu not refused", i);
	}

	/* Heads that would let a peer frame the body differently. */
	static const char *const heads[] = {
	        /* TE.CL and CL.TE */
	        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: "
	        "4\r\n\r\n",
	        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: "
	        "chunked\r\n\r\n",
	        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: "
	        "gzip\r\n\r\n",
	        /* Transfer-Encoding in HTTP/1.0 */
	        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
	        /* Transfer-Encoding behind a bare LF, a fold or a space */
	        "POST / HTTP/1.1\r\nHost: h\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n",
	        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
	        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
	        "POST / HTTP/1.1\r\nHost: h\r\n Transfer-Encoding: chunked\r\n\r\n",
	        /* chunked not last, or twice */
	        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
	        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
	        "Transfer-Encoding: chunked\r\n\r\n",
	        /* an empty field name */
	        "POST / HTTP/1.1\r\nHost: h\r\n: chunked\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		n = snprintf(buf, sizeof(buf), "%s0\r\n\r\n" SMUGGLED, heads[i]);
		if (parse_n(buf, (size_t)n) != HTTP_ERR_BAD_REQUEST)
			fail_msg("head #%zu not refused with 400", i);
	}
	/* An unknown coding alone is 501, still before any body byte. */
	n = snprintf(buf, sizeof(buf),
	             "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n" SMUGGLED);
	assert_int_equal(parse_n(buf, (size_t)n), HTTP_ERR_NOT_IMPLEMENTED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_char_classes_match_rfc),
	        cmocka_unit_test(test_word_scan_is_exact),
	        cmocka_unit_test(test_slice_eq_nocase),
	        cmocka_unit_test(test_simple_get),
	        cmocka_unit_test(test_no_fields),
	        cmocka_unit_test(test_path_and_query),
	        cmocka_unit_test(test_method_is_token),
	        cmocka_unit_test(test_target),
	        cmocka_unit_test(test_version),
	        cmocka_unit_test(test_leading_empty_lines),
	        cmocka_unit_test(test_request_line_end),
	        cmocka_unit_test(test_field_values),
	        cmocka_unit_test(test_field_refused),
	        cmocka_unit_test(test_bare_line_endings),
	        cmocka_unit_test(test_early_refusal),
	        cmocka_unit_test(test_too_many_headers),
	        cmocka_unit_test(test_headers_array_bound),
	        cmocka_unit_test(test_content_length),
	        cmocka_unit_test(test_transfer_encoding),
	        cmocka_unit_test(test_connection),
	        cmocka_unit_test(test_expect),
	        cmocka_unit_test(test_host),
	        cmocka_unit_test(test_every_prefix_incomplete),
	        cmocka_unit_test(test_pipelined),
	        cmocka_unit_test(test_bytes_after_head_unconsumed),
	        cmocka_unit_test(test_chunked_simple),
	        cmocka_unit_test(test_chunked_incremental_results),
	        cmocka_unit_test(test_chunked_leaves_next_request),
	        cmocka_unit_test(test_chunked_extensions),
	        cmocka_unit_test(test_chunked_bad_size),
	        cmocka_unit_test(test_chunked_huge_size),
	        cmocka_unit_test(test_chunked_data_crlf),
	        cmocka_unit_test(test_chunked_trailers),
	        cmocka_unit_test(test_chunked_limits),
	        cmocka_unit_test(test_chunked_error_is_sticky),
	        cmocka_unit_test(test_chunked_incomplete),
	        cmocka_unit_test(test_smuggling_content_length_forms),
	        cmocka_unit_test(test_smuggling_chunk_size_forms),
	        cmocka_unit_test(test_smuggling_chunk_size_overflow),
	        cmocka_unit_test(test_smuggling_chunked_body_region),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
