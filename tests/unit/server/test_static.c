/*
 * test_static.c - static files: the path resolver (static_resolve.c), the
 * Range and date parsers and the Content-Type table (static helpers of
 * static.c, included), set-up from the options, and static_serve() end to
 * end over a socketpair on a temporary tree:
 *
 *   <tmp>/root/a.txt            "abcdefghijklmnopqrstuvwxyz", mtime T
 *   <tmp>/root/empty.bin        0 bytes
 *   <tmp>/root/sub/index.html   "<p>index</p>"
 *   <tmp>/root/noindex/x.txt
 *   <tmp>/root/link_in     -> a.txt
 *   <tmp>/root/link_out    -> ../outside/secret.txt
 *   <tmp>/root/link_safe   -> ../safe/s.css
 *   <tmp>/root/link_dir    -> ../outside
 *   <tmp>/outside/secret.txt
 *   <tmp>/safe/s.css
 *   <tmp>/second/only2.txt      (a second map for the same prefix)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/sendfile.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../../server/static.c"

#define TEST_TIMEOUT 20         /* seconds; SIGALRM ends a hung test */
#define MTIME        1700000000 /* Tue, 14 Nov 2023 22:13:20 GMT */
#define MTIME_DATE   "Tue, 14 Nov 2023 22:13:20 GMT"
#define ALPHABET     "abcdefghijklmnopqrstuvwxyz"
#define BIG_SIZE     (3 * 1024 * 1024 + 17) /* more than a socket buffer */

static struct listener http_listener = {.fd = -1, .proto = PROTO_HTTP};
static struct listener uwsgi_listener = {.fd = -1, .proto = PROTO_UWSGI};

/* ---- static_resolve ---------------------------------------------------- */

struct resolve_case {
	enum static_kind kind;
	const char *prefix, *dir;
	bool is_file;
	const char *path;
	size_t path_len; /* 0: strlen(path) */
	size_t outlen;   /* 0: PATH_MAX */
	int rc;
	const char *out;
};

static const struct resolve_case resolve_cases[] = {
        /* --static-map: prefix match, plain string prefix as uWSGI */
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a.css", 0, 0, 1, "/srv/www/a.css"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/d/e/f.js", 0, 0, 1,
         "/srv/www/d/e/f.js"},
        {STATIC_MAP, "/static", "/srv/www", false, "/staticfoo", 0, 0, 1, "/srv/www/foo"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static", 0, 0, 1, "/srv/www/"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/", 0, 0, 1, "/srv/www/"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/sub/", 0, 0, 1, "/srv/www/sub/"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static//a//b.css", 0, 0, 1,
         "/srv/www/a/b.css"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/./a/./b.css", 0, 0, 1,
         "/srv/www/a/b.css"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a/.", 0, 0, 1, "/srv/www/a/"},
        {STATIC_MAP, "/static", "/srv/www", false, "/other/a.css", 0, 0, 0, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/stat", 0, 0, 0, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/", 0, 0, 0, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "", 0, 0, 0, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/STATIC/a.css", 0, 0, 0, NULL},
        /* the prefix is compared decoded */
        {STATIC_MAP, "/static", "/srv/www", false, "/st%61tic/a.css", 0, 0, 1, "/srv/www/a.css"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static%2fa.css", 0, 0, 1, "/srv/www/a.css"},
        /* the prefix does not match: 0 even for a bad rest */
        {STATIC_MAP, "/static", "/srv/www", false, "/other/../x", 0, 0, 0, NULL},
        /* traversal */
        {STATIC_MAP, "/static", "/srv/www", false, "/static/../etc/passwd", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a/../../etc", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/..", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a/..", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static..", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/%2e%2e/etc/passwd", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/%2E%2e/x", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/.%2E", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static%2f..%2fetc", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a%2f..%2f..%2fb", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static//..//x", 0, 0, -1, NULL},
        /* dots that are names */
        {STATIC_MAP, "/static", "/srv/www", false, "/static/...", 0, 0, 1, "/srv/www/..."},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/..a/b..", 0, 0, 1, "/srv/www/..a/b.."},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/.htaccess", 0, 0, 1,
         "/srv/www/.htaccess"},
        /* NUL, control characters, backslash */
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a%00.css", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a\0.css", 13, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a%0a.css", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a%7f", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/..\\x", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a\\b", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/..%5cx", 0, 0, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a%5Cb", 0, 0, -1, NULL},
        /* other escapes */
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a%20b.css", 0, 0, 1,
         "/srv/www/a b.css"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/%C3%A9t%c3%a9", 0, 0, 1,
         "/srv/www/\xc3\xa9t\xc3\xa9"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/100%", 0, 0, 1, "/srv/www/100%"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/%zz%4", 0, 0, 1, "/srv/www/%zz%4"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/%252e%252e", 0, 0, 1,
         "/srv/www/%2e%2e"},
        /* <out> size: the name and its NUL must fit */
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a.css", 0, 14, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a.css", 0, 15, 1, "/srv/www/a.css"},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a.css", 0, 8, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/static/a.css", 0, 1, -1, NULL},
        {STATIC_MAP, "/static", "/srv/www", false, "/x", 0, 1, 0, NULL},
        /* <dir> with trailing slashes, and the root */
        {STATIC_MAP, "/s", "/srv/www/", false, "/s/a", 0, 0, 1, "/srv/www/a"},
        {STATIC_MAP, "/s", "/srv/www//", false, "/s", 0, 0, 1, "/srv/www/"},
        {STATIC_CHECK, "", "/", false, "/etc/hosts", 0, 0, 1, "/etc/hosts"},
        {STATIC_CHECK, "", "/", false, "/", 0, 0, 1, "/"},
        /* --static-map2: the whole path under <dir> */
        {STATIC_MAP2, "/static", "/srv/www", false, "/static/a.css", 0, 0, 1,
         "/srv/www/static/a.css"},
        {STATIC_MAP2, "/static", "/srv/www", false, "/staticfoo", 0, 0, 1, "/srv/www/staticfoo"},
        {STATIC_MAP2, "/static", "/srv/www", false, "/x/a.css", 0, 0, 0, NULL},
        {STATIC_MAP2, "/static", "/srv/www", false, "/static/../x", 0, 0, -1, NULL},
        {STATIC_MAP2, "/static", "/srv/www", false, "/st%61tic/b", 0, 0, 1, "/srv/www/static/b"},
        /* --check-static: every path */
        {STATIC_CHECK, "", "/srv/www", false, "/a/b.css", 0, 0, 1, "/srv/www/a/b.css"},
        {STATIC_CHECK, "", "/srv/www", false, "/", 0, 0, 1, "/srv/www/"},
        {STATIC_CHECK, "", "/srv/www", false, "", 0, 0, 1, "/srv/www/"},
        {STATIC_CHECK, "", "/srv/www", false, "/../x", 0, 0, -1, NULL},
        {STATIC_CHECK, "", "/srv/www", false, "/%2e%2e/x", 0, 0, -1, NULL},
        /* a map to a file: any path under the prefix */
        {STATIC_MAP, "/favicon.ico", "/srv/fav.ico", true, "/favicon.ico", 0, 0, 1, "/srv/fav.ico"},
        {STATIC_MAP, "/favicon.ico", "/srv/fav.ico", true, "/favicon.ico/x", 0, 0, 1,
         "/srv/fav.ico"},
        {STATIC_MAP, "/favicon.ico", "/srv/fav.ico", true, "/favicon.ic", 0, 0, 0, NULL},
        {STATIC_MAP, "/favicon.ico", "/srv/fav.ico", true, "/favicon.ico", 0, 12, -1, NULL},
};

static void test_resolve_table(void **state)
{
	char out[PATH_MAX];

	for (size_t i = 0; i < sizeof(resolve_cases) / sizeof(resolve_cases[0]); i++) {
		const struct resolve_case *t = &resolve_cases[i];
		struct static_map m = {.kind = t->kind,
		                       .prefix = (char *)t->prefix,
		                       .prefix_len = strlen(t->prefix),
		                       .dir = (char *)t->dir,
		                       .is_file = t->is_file};
		size_t len = t->path_len ? t->path_len : strlen(t->path);
		size_t outlen = t->outlen ? t->outlen : sizeof(out);
		int rc = static_resolve(&m, t->path, len, out, outlen);
		if (rc != t->rc)
			fail_msg("case %zu (%s): got %d, want %d", i, t->path, rc, t->rc);
		if (rc == 1 && strcmp(out, t->out) != 0)
			fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, t->path, out, t->out);
	}
}

/* An exact-size heap buffer: ASan sees a write past <outlen>. */
static void test_resolve_writes_within_out(void **state)
{
	struct static_map m = {.kind = STATIC_MAP, .prefix = "/s", .prefix_len = 2, .dir = "/d"};
	const char *path = "/s/abc/def";

	for (size_t outlen = 1; outlen <= 12; outlen++) {
		char *out = malloc(outlen);
		int rc = static_resolve(&m, path, strlen(path), out, outlen);
		assert_int_equal(rc, outlen >= strlen("/d/abc/def") + 1 ? 1 : -1);
		if (rc == 1)
			assert_string_equal(out, "/d/abc/def");
		free(out);
	}
}

/* ---- Range ------------------------------------------------------------- */

struct range_case {
	const char *value;
	uint64_t size;
	enum range_result rc;
	uint64_t from, count;
};

static const struct range_case range_cases[] = {
        {"bytes=0-9", 100, RANGE_OK, 0, 10},
        {"bytes=0-0", 100, RANGE_OK, 0, 1},
        {"bytes=99-99", 100, RANGE_OK, 99, 1},
        {"bytes=90-", 100, RANGE_OK, 90, 10},
        {"bytes=0-", 100, RANGE_OK, 0, 100},
        {"bytes=-10", 100, RANGE_OK, 90, 10},
        {"bytes=-100", 100, RANGE_OK, 0, 100},
        {"bytes=-200", 100, RANGE_OK, 0, 100},
        {"bytes=50-999", 100, RANGE_OK, 50, 50},
        {"Bytes=1-2", 100, RANGE_OK, 1, 2},
        {"BYTES=1-2", 100, RANGE_OK, 1, 2},
        {"bytes=1-2 ", 100, RANGE_OK, 1, 2},
        {"bytes=1-2,", 100, RANGE_OK, 1, 2},
        {"bytes=, 1-2", 100, RANGE_OK, 1, 2},
        /* numbers past 64 bits: infinite, never wrapped */
        {"bytes=0-99999999999999999999", 100, RANGE_OK, 0, 100},
        {"bytes=0-18446744073709551615", 100, RANGE_OK, 0, 100},
        {"bytes=0-18446744073709551616", 100, RANGE_OK, 0, 100},
        {"bytes=-99999999999999999999", 100, RANGE_OK, 0, 100},
        /* Range integer overflow (a regression family of other servers):
         * 2^64 - 1, 2^64 and 2^64 + 1 must not wrap to a small number, as
         * suffix or as last-pos, nor overflow from + count on a huge file */
        {"bytes=-18446744073709551615", 100, RANGE_OK, 0, 100},
        {"bytes=-18446744073709551616", 100, RANGE_OK, 0, 100},
        {"bytes=-18446744073709551617", 100, RANGE_OK, 0, 100},
        {"bytes=99-18446744073709551617", 100, RANGE_OK, 99, 1},
        {"bytes=18446744073709551617-", 100, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=18446744073709551617-18446744073709551617", 100, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=0-18446744073709551616", INT64_MAX, RANGE_OK, 0, INT64_MAX},
        {"bytes=-18446744073709551617", INT64_MAX, RANGE_OK, 0, INT64_MAX},
        {"bytes=9223372036854775806-18446744073709551616", INT64_MAX, RANGE_OK, INT64_MAX - 1, 1},
        {"bytes=99999999999999999999-", 100, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=18446744073709551615-", 100, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=99999999999999999999-99999999999999999999", 100, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=18446744073709551616-18446744073709551615", 100, RANGE_UNSATISFIABLE, 0, 0},
        /* unsatisfiable */
        {"bytes=-0", 100, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=100-", 100, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=100-200", 100, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=0-", 0, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=-5", 0, RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=0-0", 0, RANGE_UNSATISFIABLE, 0, 0},
        /* ignored: the whole file */
        {"bytes=5-2", 100, RANGE_IGNORE, 0, 0},
        {"bytes=0-1,3-4", 100, RANGE_IGNORE, 0, 0},
        {"bytes=0-1, -5", 100, RANGE_IGNORE, 0, 0},
        {"bytes=", 100, RANGE_IGNORE, 0, 0},
        {"bytes=,", 100, RANGE_IGNORE, 0, 0},
        {"bytes=-", 100, RANGE_IGNORE, 0, 0},
        {"bytes=--5", 100, RANGE_IGNORE, 0, 0},
        {"bytes=a-b", 100, RANGE_IGNORE, 0, 0},
        {"bytes=1-2x", 100, RANGE_IGNORE, 0, 0},
        {"bytes=1", 100, RANGE_IGNORE, 0, 0},
        {"bytes=+1-2", 100, RANGE_IGNORE, 0, 0},
        {"bytes=1 -2", 100, RANGE_IGNORE, 0, 0},
        {"bytes = 0-1", 100, RANGE_IGNORE, 0, 0},
        {"bytes", 100, RANGE_IGNORE, 0, 0},
        {"items=0-1", 100, RANGE_IGNORE, 0, 0},
        {"", 100, RANGE_IGNORE, 0, 0},
};

static void test_range_table(void **state)
{
	for (size_t i = 0; i < sizeof(range_cases) / sizeof(range_cases[0]); i++) {
		const struct range_case *t = &range_cases[i];
		uint64_t from = 77, count = 77;
		enum range_result rc =
		        range_parse(t->value, strlen(t->value), t->size, &from, &count);
		if (rc != t->rc)
			fail_msg("case %zu (%s): got %d, want %d", i, t->value, rc, t->rc);
		if (rc == RANGE_OK && (from != t->from || count != t->count))
			fail_msg("case %zu (%s): got %" PRIu64 "+%" PRIu64 ", want %" PRIu64
			         "+%" PRIu64,
			         i, t->value, from, count, t->from, t->count);
	}
}

/* Only the slice is read: a valid range followed by garbage in memory. */
static void test_range_reads_only_the_slice(void **state)
{
	const char *v = "bytes=1-2,3-4";
	uint64_t from, count;
	assert_int_equal(range_parse(v, 9, 100, &from, &count), RANGE_OK);
	assert_int_equal(from, 1);
	assert_int_equal(count, 2);
}

/* ---- HTTP dates -------------------------------------------------------- */

static void test_date_format(void **state)
{
	char out[HTTP_DATE_LEN + 1];

	assert_int_equal(http_date_format(0, out), 0);
	assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
	assert_int_equal(http_date_format(784111777, out), 0);
	assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
	assert_int_equal(http_date_format(MTIME, out), 0);
	assert_string_equal(out, MTIME_DATE);
}

static void test_date_round_trip(void **state)
{
	static const time_t times[] = {0,
	                               1,
	                               59,
	                               86399,
	                               86400,
	                               784111777,
	                               951782400 /* 2000-02-29 */,
	                               1700000000,
	                               2147483647,
	                               4102444800 /* 2100 */,
	                               253402300799 /* 9999-12-31 23:59:59 */};
	char out[HTTP_DATE_LEN + 1];

	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		assert_int_equal(http_date_format(times[i], out), 0);
		assert_int_equal(strlen(out), HTTP_DATE_LEN);
		assert_int_equal(http_date_parse(out, strlen(out)), times[i]);
	}
	/* every second of a day, through each month */
	for (time_t t = 1700000000; t < 1700000000 + 366 * 86400; t += 86400 * 7 + 3607) {
		assert_int_equal(http_date_format(t, out), 0);
		assert_int_equal(http_date_parse(out, strlen(out)), t);
	}
	assert_int_equal(http_date_format(253402300800, out), -1); /* year 10000 */
}

static void test_date_parse_refuses(void **state)
{
	static const char *const bad[] = {
	        "Sunday, 06-Nov-94 08:49:37 GMT", /* RFC 850 */
	        "Sun Nov  6 08:49:37 1994",       /* asctime */
	        "Sun, 06 Nov 1994 08:49:37 UTC",  "Sun, 06 Nov 1994 08:49:37 GMT ",
	        "Sun, 06 Nov 1994 08:49:37 GM",   "Sun, 6 Nov 1994 08:49:37 GMT",
	        "Xyz, 06 Nov 1994 08:49:37 GMT",  "Sun, 06 Nox 1994 08:49:37 GMT",
	        "Sun, 06 nov 1994 08:49:37 GMT",  "Sun, 32 Nov 1994 08:49:37 GMT",
	        "Sun, 00 Nov 1994 08:49:37 GMT",  "Sun, 06 Nov 1994 24:49:37 GMT",
	        "Sun, 06 Nov 1994 08:60:37 GMT",  "Sun, 06 Nov 1994 08:49:61 GMT",
	        "Sun, 06 Nov 19a4 08:49:37 GMT",  "Sun, 06 Nov 1994 08-49-37 GMT",
	        "Sun,_06 Nov 1994 08:49:37 GMT",  "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (http_date_parse(bad[i], strlen(bad[i])) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	/* the slice, not the string: a valid date cut short */
	assert_int_equal(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 28), -1);
}

/* ---- Content-Type ------------------------------------------------------ */

static void test_mime_from_file(void **state)
{
	char file[] = "/tmp/mf_mime_XXXXXX";
	int fd = mkstemp(file);
	static const char text[] = "# comment line\n"
	                           "text/html\t\thtml htm\n"
	                           "\n"
	                           "text/plain txt TEXT # trailing comment\n"
	                           "application/x-first  dup\n"
	                           "application/x-second dup gz\n"
	                           "not-a-type ext1\n"
	                           "image/png png\r\n"
	                           "application/x-noext\n";

	assert_true(fd != -1);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	struct static_mime *t = mime_load(file);
	unlink(file);
	assert_non_null(t);

	assert_string_equal(mime_type(t, "/d/a.html"), "text/html");
	assert_string_equal(mime_type(t, "/d/a.HTM"), "text/html");
	assert_string_equal(mime_type(t, "/d/a.text"), "text/plain");
	assert_string_equal(mime_type(t, "/d/a.txt"), "text/plain");
	assert_string_equal(mime_type(t, "/d/a.dup"), "application/x-first");
	assert_string_equal(mime_type(t, "/d/a.tar.gz"), "application/x-second");
	assert_string_equal(mime_type(t, "/d/a.png"), "image/png");
	assert_string_equal(mime_type(t, "/d/a.ext1"), MIME_DEFAULT);
	assert_string_equal(mime_type(t, "/d/a.trailing"), MIME_DEFAULT);
	assert_string_equal(mime_type(t, "/d/a.comment"), MIME_DEFAULT);
	assert_string_equal(mime_type(t, "/d/noext"), MIME_DEFAULT);
	assert_string_equal(mime_type(t, "/d.html/noext"), MIME_DEFAULT);
	assert_string_equal(mime_type(t, "/d/a."), MIME_DEFAULT);
	assert_string_equal(mime_type(t, "/d/.html"), "text/html");
	assert_string_equal(mime_type(t, "/d/a.unknown"), MIME_DEFAULT);
	assert_string_equal(mime_type(NULL, "/d/a.html"), MIME_DEFAULT);
	mime_free(t);
}

static void test_mime_builtin_and_missing_file(void **state)
{
	errno = 0;
	assert_null(mime_load("/nonexistent/mime.types"));
	assert_int_equal(errno, ENOENT);

	struct static_mime *t = mime_load(NULL);
	assert_non_null(t);
	assert_string_equal(mime_type(t, "a.css"), "text/css");
	assert_string_equal(mime_type(t, "a.JS"), "text/javascript");
	assert_string_equal(mime_type(t, "a.html"), "text/html");
	assert_string_equal(mime_type(t, "a.woff2"), "font/woff2");
	assert_string_equal(mime_type(t, "a.bin"), MIME_DEFAULT);
	mime_free(t);
}

/* ---- If-None-Match lists ----------------------------------------------- */

static bool inm(const char *v, const char *etag)
{
	return etag_list_match((struct http_slice){.p = v, .len = strlen(v)}, etag);
}

static void test_etag_list(void **state)
{
	const char *e = "\"5f-1a\"";
	assert_true(inm("\"5f-1a\"", e));
	assert_true(inm("W/\"5f-1a\"", e));
	assert_true(inm("*", e));
	assert_true(inm("\"x\", \"5f-1a\"", e));
	assert_true(inm("\"x\",W/\"5f-1a\" , \"y\"", e));
	assert_true(inm(" , \"5f-1a\"", e));
	assert_true(inm("\"a,b\", \"5f-1a\"", e));
	assert_false(inm("\"5f-1b\"", e));
	assert_false(inm("5f-1a", e));
	assert_false(inm("\"5f-1a", e));
	assert_false(inm("w/\"5f-1a\"", e));
	assert_false(inm("", e));
	assert_false(inm("\"\"", e));
}

/* ---- static_setup ------------------------------------------------------ */

static void test_setup_errors(void **state)
{
	static const char *const bad[][2] = {
	        {"static-map", "/static"},    {"static-map", "=/srv"}, {"static-map", "/s="},
	        {"static-map2", "/static"},   {"check-static", ""},    {"static-index", ""},
	        {"static-index", "a/b.html"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct options o = {0};
		struct static_config sc;
		char err[256] = "";
		assert_int_equal(opt_add(&o, "static-map", "/ok=/tmp", err, sizeof(err)), 0);
		assert_int_equal(opt_add(&o, bad[i][0], bad[i][1], err, sizeof(err)), 0);
		assert_int_equal(static_setup(&sc, &o, err, sizeof(err)), -1);
		if (strstr(err, bad[i][0]) == NULL)
			fail_msg("message \"%s\" does not name --%s", err, bad[i][0]);
		assert_false(static_enabled(&sc));
		assert_int_equal(sc.n_maps, 0);
		opt_free(&o);
	}
}

static void test_setup_builds_maps(void **state)
{
	struct options o = {0};
	struct static_config sc;
	char err[256] = "", file[] = "/tmp/mf_static_XXXXXX", real_tmp[PATH_MAX];
	int fd = mkstemp(file);

	assert_true(fd != -1);
	close(fd);
	assert_non_null(realpath("/tmp", real_tmp));
	assert_int_equal(opt_add(&o, "static-map", "/s=/tmp/", err, sizeof(err)), 0);
	assert_int_equal(opt_add(&o, "static-index", "index.html", err, sizeof(err)), 0);
	assert_int_equal(opt_add(&o, "static-map2", "/m2=/nonexistent/dir", err, sizeof(err)), 0);
	assert_int_equal(opt_add(&o, "check-static", "/tmp", err, sizeof(err)), 0);
	assert_int_equal(opt_add(&o, "static-safe", "/nonexistent/safe", err, sizeof(err)), 0);
	assert_int_equal(opt_add(&o, "static-safe", "/tmp", err, sizeof(err)), 0);
	assert_int_equal(opt_add(&o, "static-index", "index.htm", err, sizeof(err)), 0);
	char fav[PATH_MAX + 8];
	snprintf(fav, sizeof(fav), "/fav.ico=%s", file);
	assert_int_equal(opt_add(&o, "static-map", fav, err, sizeof(err)), 0);

	assert_int_equal(static_setup(&sc, &o, err, sizeof(err)), 0);
	assert_true(static_enabled(&sc));
	assert_int_equal(sc.n_maps, 4);
	assert_int_equal(sc.maps[0].kind, STATIC_MAP);
	assert_string_equal(sc.maps[0].prefix, "/s");
	assert_int_equal(sc.maps[0].prefix_len, 2);
	assert_string_equal(sc.maps[0].dir, "/tmp/");
	assert_string_equal(sc.maps[0].real, real_tmp);
	assert_false(sc.maps[0].is_file);
	assert_int_equal(sc.maps[1].kind, STATIC_MAP2);
	assert_null(sc.maps[1].real);
	assert_int_equal(sc.maps[2].kind, STATIC_CHECK);
	assert_string_equal(sc.maps[2].prefix, "");
	assert_int_equal(sc.maps[2].prefix_len, 0);
	assert_true(sc.maps[3].is_file);
	assert_int_equal(sc.n_index, 2);
	assert_string_equal(sc.index[0], "index.html");
	assert_string_equal(sc.index[1], "index.htm");
	assert_int_equal(sc.n_safe, 1); /* the one that does not resolve is left out */
	assert_string_equal(sc.safe[0], real_tmp);
	assert_non_null(sc.mime);
	static_free(&sc);
	assert_false(static_enabled(&sc));
	opt_free(&o);
	unlink(file);
}

static void test_setup_without_maps(void **state)
{
	struct options o = {0};
	struct static_config sc;
	char err[256] = "";
	assert_int_equal(opt_add(&o, "static-index", "index.html", err, sizeof(err)), 0);
	assert_int_equal(static_setup(&sc, &o, err, sizeof(err)), 0);
	assert_false(static_enabled(&sc));
	assert_null(sc.mime); /* not loaded when nothing is served */
	static_free(&sc);
	opt_free(&o);
}

/* ---- static_serve end to end ------------------------------------------- */

struct fixture {
	char tmp[64];
	struct options o;
	struct static_config sc;
	struct config cfg;
	struct conn *c;
	int peer;
	char resp[65536];
	size_t resp_len;
	bool keep;
};

static void put_file(const char *dir, const char *name, const char *data, size_t n)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd != -1);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
	struct timespec ts[2] = {{.tv_sec = MTIME}, {.tv_sec = MTIME}};
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void put_dir(const char *dir, const char *name)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(mkdir(path, 0755), 0);
}

static void put_link(const char *dir, const char *name, const char *target)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(symlink(target, path), 0);
}

/* Adds --<key> <before><arg><after>. */
static void add_opt(struct fixture *f, const char *key, const char *before, const char *arg,
                    const char *after)
{
	char value[PATH_MAX + 64], err[256];
	snprintf(value, sizeof(value), "%s%s%s", before, arg, after);
	if (opt_add(&f->o, key, value, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char root[128], err[256];
	int sv[2];

	alarm(TEST_TIMEOUT);
	signal(SIGPIPE, SIG_IGN);
	if (f == NULL)
		return -1;
	strcpy(f->tmp, "/tmp/mf_static_XXXXXX");
	if (mkdtemp(f->tmp) == NULL)
		return -1;
	put_dir(f->tmp, "root");
	put_dir(f->tmp, "outside");
	put_dir(f->tmp, "safe");
	put_dir(f->tmp, "second");
	snprintf(root, sizeof(root), "%s/root", f->tmp);
	put_file(root, "a.txt", ALPHABET, 26);
	put_file(root, "empty.bin", "", 0);
	put_dir(root, "sub");
	put_file(root, "sub/index.html", "<p>index</p>", 12);
	put_dir(root, "noindex");
	put_file(root, "noindex/x.txt", "x", 1);
	put_link(root, "link_in", "a.txt");
	put_link(root, "link_out", "../outside/secret.txt");
	put_link(root, "link_safe", "../safe/s.css");
	put_link(root, "link_dir", "../outside");
	put_file(f->tmp, "outside/secret.txt", "secret", 6);
	put_file(f->tmp, "safe/s.css", "body{}", 6);
	put_file(f->tmp, "second/only2.txt", "two", 3);

	add_opt(f, "static-map", "/s=", f->tmp, "/root");
	add_opt(f, "static-map", "/s=", f->tmp, "/second");
	add_opt(f, "static-map2", "/second=", f->tmp, "");
	add_opt(f, "static-index", "", "index.html", "");
	add_opt(f, "static-safe", "", f->tmp, "/safe");
	if (static_setup(&f->sc, &f->o, err, sizeof(err)) == -1)
		fail_msg("%s", err);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) == -1)
		return -1;
	f->cfg.processes = f->cfg.threads = 1;
	f->cfg.buffer_size = 4096;
	f->cfg.socket_timeout = 5;
	f->c = conn_new(sv[0], &http_listener, &f->cfg);
	if (f->c == NULL)
		return -1;
	f->peer = sv[1];
	*state = f;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	conn_free(f->c);
	if (f->peer != -1)
		close(f->peer);
	static_free(&f->sc);
	opt_free(&f->o);
	nftw(f->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	alarm(0);
	return 0;
}

/* Parses the request head <raw> into the connection, as the worker does. */
static void load_request(struct fixture *f, const char *raw)
{
	size_t n = strlen(raw);
	f->c->len = f->c->head_len = 0;
	assert_int_equal(conn_reserve(f->c, n), 0);
	memcpy(f->c->buf, raw, n);
	f->c->len = n;
	assert_int_equal(conn_parse_head(f->c), (ssize_t)n);
}

/* Everything the client has received, without waiting: static_serve()
 * has returned, so a response that fits the socket buffer is all there. */
static void read_response(struct fixture *f)
{
	f->resp_len = 0;
	for (;;) {
		ssize_t r = recv(f->peer, f->resp + f->resp_len, sizeof(f->resp) - 1 - f->resp_len,
		                 MSG_DONTWAIT);
		if (r <= 0)
			break;
		f->resp_len += (size_t)r;
	}
	f->resp[f->resp_len] = '\0';
}

/* Serves <raw>; returns static_serve()'s result, response in f->resp. */
static int serve(struct fixture *f, const char *raw)
{
	load_request(f, raw);
	f->keep = !f->c->req.keep_alive; /* must be overwritten */
	int rc = static_serve(&f->sc, f->c, &f->keep);
	read_response(f);
	return rc;
}

static int status(const struct fixture *f)
{
	int s = 0;
	assert_int_equal(sscanf(f->resp, "HTTP/1.1 %d ", &s), 1);
	return s;
}

/* The value of header <name> in the response head, or NULL. */
static const char *header(const struct fixture *f, const char *name)
{
	static char value[256];
	const char *end = strstr(f->resp, "\r\n\r\n");
	size_t n = strlen(name);

	assert_non_null(end);
	for (const char *p = strstr(f->resp, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
			const char *v = p + 2 + n + 1 + strspn(p + 2 + n + 1, " ");
			size_t len = (size_t)(strstr(v, "\r\n") - v);
			assert_true(len < sizeof(value));
			memcpy(value, v, len);
			value[len] = '\0';
			return value;
		}
	}
	return NULL;
}

static const char *body(const struct fixture *f)
{
	const char *end = strstr(f->resp, "\r\n\r\n");
	assert_non_null(end);
	return end + 4;
}

static const char *our_etag(void)
{
	static char e[64];
	snprintf(e, sizeof(e), "\"%llx-%llx\"", (unsigned long long)MTIME, 26ULL);
	return e;
}

#define GET(path, extra) "GET " path " HTTP/1.1\r\nHost: x\r\n" extra "\r\n"

static void test_serve_200(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(serve(f, GET("/s/a.txt", "")), 1);
	assert_int_equal(status(f), 200);
	assert_string_equal(header(f, "Content-Type"), "text/plain");
	assert_string_equal(header(f, "Content-Length"), "26");
	assert_string_equal(header(f, "Last-Modified"), MTIME_DATE);
	assert_string_equal(header(f, "ETag"), our_etag());
	assert_string_equal(header(f, "Accept-Ranges"), "bytes");
	const char *date = header(f, "Date");
	assert_non_null(date);
	time_t now = time(NULL), sent = http_date_parse(date, strlen(date));
	assert_true(sent >= now - 5 && sent <= now);
	assert_null(header(f, "Connection"));
	assert_null(header(f, "Content-Range"));
	assert_string_equal(body(f), ALPHABET);
	assert_true(f->keep);
}

static void test_serve_head(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(serve(f, "HEAD /s/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
	assert_int_equal(status(f), 200);
	assert_string_equal(header(f, "Content-Length"), "26");
	assert_string_equal(header(f, "ETag"), our_etag());
	assert_string_equal(body(f), "");
	assert_true(f->keep);
	/* Range is for GET only */
	assert_int_equal(serve(f, "HEAD /s/a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n"),
	                 1);
	assert_int_equal(status(f), 200);
	assert_string_equal(header(f, "Content-Length"), "26");
	assert_string_equal(body(f), "");
}

static void test_serve_empty_file(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(serve(f, GET("/s/empty.bin", "")), 1);
	assert_int_equal(status(f), 200);
	assert_string_equal(header(f, "Content-Length"), "0");
	assert_string_equal(header(f, "Content-Type"), "application/octet-stream");
	assert_string_equal(body(f), "");
	assert_int_equal(serve(f, GET("/s/empty.bin", "Range: bytes=0-\r\n")), 1);
	assert_int_equal(status(f), 416);
	assert_string_equal(header(f, "Content-Range"), "bytes */0");
}

static void test_serve_304_if_none_match(void **state)
{
	struct fixture *f = *state;
	/* before and after our ETag in the field */
	const char *const lists[][2] = {
	        {"", ""}, {"W/", ""}, {"\"zz\", ", ""}, {"\"zz\",W/", " , \"yy\""}};

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		char req[512];
		snprintf(req, sizeof(req), GET("/s/a.txt", "If-None-Match: %s%s%s\r\n"),
		         lists[i][0], our_etag(), lists[i][1]);
		assert_int_equal(serve(f, req), 1);
		assert_int_equal(status(f), 304);
		assert_string_equal(header(f, "ETag"), our_etag());
		assert_null(header(f, "Content-Length"));
		assert_string_equal(body(f), "");
		assert_true(f->keep);
	}
	assert_int_equal(serve(f, GET("/s/a.txt", "If-None-Match: *\r\n")), 1);
	assert_int_equal(status(f), 304);
	/* a second field counts as well */
	char req[512];
	snprintf(req, sizeof(req),
	         GET("/s/a.txt", "If-None-Match: \"zz\"\r\nIf-None-Match: %s\r\n"), our_etag());
	assert_int_equal(serve(f, req), 1);
	assert_int_equal(status(f), 304);
	/* no match: the file; If-Modified-Since is then not looked at */
	assert_int_equal(serve(f, GET("/s/a.txt", "If-None-Match: \"zz\"\r\n"
	                                          "If-Modified-Since: " MTIME_DATE "\r\n")),
	                 1);
	assert_int_equal(status(f), 200);
	assert_string_equal(body(f), ALPHABET);
}

static void test_serve_304_if_modified_since(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(serve(f, GET("/s/a.txt", "If-Modified-Since: " MTIME_DATE "\r\n")), 1);
	assert_int_equal(status(f), 304);
	assert_string_equal(header(f, "Last-Modified"), MTIME_DATE);
	assert_string_equal(body(f), "");
	assert_int_equal(
	        serve(f, GET("/s/a.txt", "If-Modified-Since: Wed, 15 Nov 2023 00:00:00 GMT\r\n")),
	        1);
	assert_int_equal(status(f), 304);
	/* older: the file */
	assert_int_equal(
	        serve(f, GET("/s/a.txt", "If-Modified-Since: Tue, 14 Nov 2023 22:13:19 GMT\r\n")),
	        1);
	assert_int_equal(status(f), 200);
	assert_string_equal(body(f), ALPHABET);
	/* a date in another format is ignored */
	assert_int_equal(serve(f, GET("/s/a.txt",
	                              "If-Modified-Since: Wednesday, 15-Nov-23 00:00:00 GMT\r\n")),
	                 1);
	assert_int_equal(status(f), 200);
	/* HEAD too */
	assert_int_equal(serve(f, "HEAD /s/a.txt HTTP/1.1\r\nHost: x\r\n"
	                          "If-Modified-Since: " MTIME_DATE "\r\n\r\n"),
	                 1);
	assert_int_equal(status(f), 304);
}

static void test_serve_206(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(serve(f, GET("/s/a.txt", "Range: bytes=2-5\r\n")), 1);
	assert_int_equal(status(f), 206);
	assert_string_equal(header(f, "Content-Range"), "bytes 2-5/26");
	assert_string_equal(header(f, "Content-Length"), "4");
	assert_string_equal(header(f, "Content-Type"), "text/plain");
	assert_string_equal(body(f), "cdef");
	assert_true(f->keep);

	assert_int_equal(serve(f, GET("/s/a.txt", "Range: bytes=-3\r\n")), 1);
	assert_int_equal(status(f), 206);
	assert_string_equal(header(f, "Content-Range"), "bytes 23-25/26");
	assert_string_equal(body(f), "xyz");

	assert_int_equal(serve(f, GET("/s/a.txt", "Range: bytes=24-\r\n")), 1);
	assert_string_equal(header(f, "Content-Range"), "bytes 24-25/26");
	assert_string_equal(body(f), "yz");

	assert_int_equal(serve(f, GET("/s/a.txt", "Range: bytes=20-99999999999999999999\r\n")), 1);
	assert_int_equal(status(f), 206);
	assert_string_equal(header(f, "Content-Range"), "bytes 20-25/26");
	assert_string_equal(body(f), "uvwxyz");
}

static void test_serve_416(void **state)
{
	struct fixture *f = *state;
	const char *const ranges[] = {"bytes=26-", "bytes=30-40", "bytes=-0",
	                              "bytes=99999999999999999999-"};

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		char req[256];
		snprintf(req, sizeof(req), GET("/s/a.txt", "Range: %s\r\n"), ranges[i]);
		assert_int_equal(serve(f, req), 1);
		assert_int_equal(status(f), 416);
		assert_string_equal(header(f, "Content-Range"), "bytes */26");
		assert_string_equal(header(f, "Content-Length"), "0");
		assert_string_equal(body(f), "");
		assert_true(f->keep);
	}
}

static void test_serve_range_ignored(void **state)
{
	struct fixture *f = *state;
	const char *const extra[] = {
	        "Range: bytes=0-1,4-5\r\n",
	        "Range: bytes=5-2\r\n",
	        "Range: pages=1-2\r\n",
	        "Range: bytes=0-1\r\nRange: bytes=3-4\r\n",
	        "Range: bytes=0-1\r\nIf-Range: \"other\"\r\n",
	        "Range: bytes=0-1\r\nIf-Range: Wed, 15 Nov 2023 00:00:00 GMT\r\n",
	        /* If-Range needs the strong comparison */
	        "Range: bytes=0-1\r\nIf-Range: W/\"6553f100-1a\"\r\n",
	};
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		char req[256];
		snprintf(req, sizeof(req), GET("/s/a.txt", "%s"), extra[i]);
		assert_int_equal(serve(f, req), 1);
		if (status(f) != 200)
			fail_msg("%s: status %d", extra[i], status(f));
		assert_string_equal(body(f), ALPHABET);
	}
}

static void test_serve_if_range_match(void **state)
{
	struct fixture *f = *state;
	char req[256];

	assert_string_equal(our_etag(), "\"6553f100-1a\"");
	snprintf(req, sizeof(req), GET("/s/a.txt", "Range: bytes=0-1\r\nIf-Range: %s\r\n"),
	         our_etag());
	assert_int_equal(serve(f, req), 1);
	assert_int_equal(status(f), 206);
	assert_string_equal(body(f), "ab");
	assert_int_equal(
	        serve(f, GET("/s/a.txt", "Range: bytes=0-1\r\nIf-Range: " MTIME_DATE "\r\n")), 1);
	assert_int_equal(status(f), 206);
	assert_string_equal(body(f), "ab");
}

static void test_serve_symlinks(void **state)
{
	struct fixture *f = *state;

	/* out of the root: logged, left to the app, nothing written */
	assert_int_equal(serve(f, GET("/s/link_out", "")), 0);
	assert_int_equal(f->resp_len, 0);
	assert_int_equal(serve(f, GET("/s/link_dir/secret.txt", "")), 0);
	assert_int_equal(f->resp_len, 0);
	/* inside the root */
	assert_int_equal(serve(f, GET("/s/link_in", "")), 1);
	assert_int_equal(status(f), 200);
	assert_string_equal(body(f), ALPHABET);
	/* into a --static-safe directory; the type is the requested name's */
	assert_int_equal(serve(f, GET("/s/link_safe", "")), 1);
	assert_int_equal(status(f), 200);
	assert_string_equal(header(f, "Content-Type"), "application/octet-stream");
	assert_string_equal(body(f), "body{}");
}

static void test_serve_traversal(void **state)
{
	struct fixture *f = *state;
	const char *const paths[] = {"/s/../outside/secret.txt", "/s/%2e%2e/outside/secret.txt",
	                             "/s%2f..%2foutside/secret.txt", "/s/..%5coutside%5csecret.txt",
	                             "/s/a.txt%00.png"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char req[256];
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i]);
		assert_int_equal(serve(f, req), 0);
		assert_int_equal(f->resp_len, 0);
	}
}

static void test_serve_index(void **state)
{
	struct fixture *f = *state;
	const char *const paths[] = {"/s/sub", "/s/sub/", "/s/sub//", "/s/./sub/."};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char req[256];
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i]);
		assert_int_equal(serve(f, req), 1);
		assert_int_equal(status(f), 200);
		assert_string_equal(header(f, "Content-Type"), "text/html");
		assert_string_equal(body(f), "<p>index</p>");
	}
	/* no index file: the app */
	assert_int_equal(serve(f, GET("/s/noindex/", "")), 0);
	assert_int_equal(f->resp_len, 0);
	/* the root itself has none either */
	assert_int_equal(serve(f, GET("/s", "")), 0);
	/* a file with a trailing slash is no file */
	assert_int_equal(serve(f, GET("/s/a.txt/", "")), 0);
}

static void test_serve_falls_through(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(serve(f, GET("/s/missing.txt", "")), 0);
	assert_int_equal(serve(f, GET("/other/a.txt", "")), 0);
	assert_int_equal(serve(f, GET("/", "")), 0);
	assert_int_equal(serve(f, "POST /s/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
	                 0);
	assert_int_equal(serve(f, "PUT /s/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
	                 0);
	assert_int_equal(serve(f, "get /s/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(serve(f, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(f->resp_len, 0);
}

static void test_serve_maps_in_order(void **state)
{
	struct fixture *f = *state;

	/* not in the first map's directory: the second one for "/s" */
	assert_int_equal(serve(f, GET("/s/only2.txt", "")), 1);
	assert_int_equal(status(f), 200);
	assert_string_equal(body(f), "two");
	/* --static-map2 /second=<tmp>: the whole path under <tmp> */
	assert_int_equal(serve(f, GET("/second/only2.txt", "")), 1);
	assert_string_equal(body(f), "two");
	/* the decoded path */
	assert_int_equal(serve(f, GET("/s/%61.txt", "")), 1);
	assert_string_equal(body(f), ALPHABET);
}

static void test_serve_connection(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(serve(f, GET("/s/a.txt", "Connection: close\r\n")), 1);
	assert_false(f->keep);
	assert_string_equal(header(f, "Connection"), "close");
	assert_string_equal(body(f), ALPHABET);

	assert_int_equal(serve(f, "GET /s/a.txt HTTP/1.0\r\n\r\n"), 1);
	assert_false(f->keep);
	assert_string_equal(header(f, "Connection"), "close");

	assert_int_equal(serve(f, "GET /s/a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 1);
	assert_true(f->keep);
	assert_string_equal(header(f, "Connection"), "keep-alive");
	assert_string_equal(body(f), ALPHABET);

	assert_int_equal(serve(f, "HEAD /s/a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 1);
	assert_true(f->keep);
	assert_string_equal(header(f, "Connection"), "keep-alive");
}

static void test_serve_peer_gone(void **state)
{
	struct fixture *f = *state;

	close(f->peer);
	f->peer = -1;
	load_request(f, GET("/s/a.txt", ""));
	assert_int_equal(static_serve(&f->sc, f->c, &f->keep), -1);
	/* a file that is not there is still not ours */
	load_request(f, GET("/s/missing", ""));
	assert_int_equal(static_serve(&f->sc, f->c, &f->keep), 0);
}

/* Appends a uwsgi var to the packet at <p> (after its 4-byte header). */
static size_t uwsgi_var(char *p, size_t n, const char *key, const char *value)
{
	size_t k = strlen(key), v = strlen(value);
	p[n] = (char)(k & 0xff);
	p[n + 1] = (char)(k >> 8);
	memcpy(p + n + 2, key, k);
	p[n + 2 + k] = (char)(v & 0xff);
	p[n + 3 + k] = (char)(v >> 8);
	memcpy(p + n + 4 + k, value, v);
	return n + 4 + k + v;
}

/* Serves a uwsgi packet (as nginx's uwsgi_pass sends) with GET <path_info>
 * and one more var <key>=<value> (when <key> is not NULL). */
static int serve_uwsgi(struct fixture *f, const char *path_info, const char *key, const char *value)
{
	char pkt[1024];
	size_t n = 4;

	n = uwsgi_var(pkt, n, "REQUEST_METHOD", "GET");
	n = uwsgi_var(pkt, n, "REQUEST_URI", "/ignored");
	n = uwsgi_var(pkt, n, "PATH_INFO", path_info);
	if (key != NULL)
		n = uwsgi_var(pkt, n, key, value);
	pkt[0] = 0;
	pkt[1] = (char)((n - 4) & 0xff);
	pkt[2] = (char)((n - 4) >> 8);
	pkt[3] = 0;
	f->c->l = &uwsgi_listener;
	f->c->len = f->c->head_len = 0;
	assert_int_equal(conn_reserve(f->c, n), 0);
	memcpy(f->c->buf, pkt, n);
	f->c->len = n;
	assert_int_equal(conn_parse_head(f->c), (ssize_t)n);
	f->keep = true;
	int rc = static_serve(&f->sc, f->c, &f->keep);
	read_response(f);
	return rc;
}

/* Behind nginx: PATH_INFO is decoded already, header fields are HTTP_*
 * vars, and the connection carries one request. */
static void test_serve_uwsgi_protocol(void **state)
{
	struct fixture *f = *state;
	char root[128];

	snprintf(root, sizeof(root), "%s/root", f->tmp);
	put_file(root, "100%.txt", "percent", 7);

	assert_int_equal(serve_uwsgi(f, "/s/a.txt", NULL, NULL), 1);
	assert_int_equal(status(f), 200);
	assert_string_equal(header(f, "Connection"), "close");
	assert_false(f->keep);
	assert_string_equal(body(f), ALPHABET);

	assert_int_equal(serve_uwsgi(f, "/s/a.txt", "HTTP_IF_NONE_MATCH", our_etag()), 1);
	assert_int_equal(status(f), 304);
	assert_int_equal(serve_uwsgi(f, "/s/a.txt", "HTTP_IF_MODIFIED_SINCE", MTIME_DATE), 1);
	assert_int_equal(status(f), 304);
	assert_int_equal(serve_uwsgi(f, "/s/a.txt", "HTTP_RANGE", "bytes=1-2"), 1);
	assert_int_equal(status(f), 206);
	assert_string_equal(body(f), "bc");

	/* not decoded a second time */
	assert_int_equal(serve_uwsgi(f, "/s/100%.txt", NULL, NULL), 1);
	assert_string_equal(body(f), "percent");
	assert_int_equal(serve_uwsgi(f, "/s/%61.txt", NULL, NULL), 0);
	assert_int_equal(serve_uwsgi(f, "/s/%2e%2e/outside/secret.txt", NULL, NULL), 0);
	assert_int_equal(serve_uwsgi(f, "/s/../outside/secret.txt", NULL, NULL), 0);
	assert_int_equal(f->resp_len, 0);
}

/* A client reading from its own thread, so that the server blocks on a
 * full socket buffer while it sends. */
struct reader {
	int fd;
	char *buf;
	size_t len, cap;
	pthread_t t;
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;
	for (;;) {
		ssize_t n = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);
		if (n <= 0)
			break;
		r->len += (size_t)n;
	}
	return NULL;
}

static void test_serve_large_file(void **state)
{
	struct fixture *f = *state;
	char root[128];
	char *data = malloc(BIG_SIZE);
	struct reader r = {.fd = f->peer, .cap = BIG_SIZE + 4096};

	assert_non_null(data);
	for (size_t i = 0; i < BIG_SIZE; i++)
		data[i] = (char)(i * 7 + i / 251);
	snprintf(root, sizeof(root), "%s/root", f->tmp);
	put_file(root, "big.bin", data, BIG_SIZE);
	r.buf = malloc(r.cap);
	assert_non_null(r.buf);
	assert_int_equal(pthread_create(&r.t, NULL, reader_run, &r), 0);

	load_request(f, GET("/s/big.bin", ""));
	/* More than a socket buffer: static_serve() leaves the rest to the
	 * worker's loop (2); do what the loop does: sendfile as it drains. */
	int rc = static_serve(&f->sc, f->c, &f->keep);
	assert_int_equal(rc, 2);
	assert_true(f->c->sf_fd >= 0 && f->c->sf_left > 0);
	while (f->c->sf_left > 0) {
		struct pollfd p = {.fd = f->c->fd, .events = POLLOUT};
		assert_int_equal(poll(&p, 1, 5000), 1);
		ssize_t n = sendfile(f->c->fd, f->c->sf_fd, &f->c->sf_off, f->c->sf_left);
		if (n == -1 && errno == EAGAIN)
			continue;
		assert_true(n > 0);
		f->c->sf_left -= (uint64_t)n;
	}
	assert_true(f->c->sf_keep);
	shutdown(f->c->fd, SHUT_WR); /* the reader sees the end */
	assert_int_equal(pthread_join(r.t, NULL), 0);

	char *end = memmem(r.buf, r.len, "\r\n\r\n", 4);
	assert_non_null(end);
	char expect[64];
	snprintf(expect, sizeof(expect), "Content-Length: %d\r\n", BIG_SIZE);
	assert_non_null(memmem(r.buf, (size_t)(end - r.buf) + 2, expect, strlen(expect)));
	assert_int_equal(r.len - (size_t)(end + 4 - r.buf), BIG_SIZE);
	assert_memory_equal(end + 4, data, BIG_SIZE);
	free(r.buf);
	free(data);
}

#define T(fn)  cmocka_unit_test(fn)
#define TF(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TA(fn) cmocka_unit_test_setup_teardown(fn, alarm_setup, alarm_teardown)

static int alarm_setup(void **state)
{
	alarm(TEST_TIMEOUT);
	return 0;
}

static int alarm_teardown(void **state)
{
	alarm(0);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        TA(test_resolve_table),
	        TA(test_resolve_writes_within_out),
	        TA(test_range_table),
	        TA(test_range_reads_only_the_slice),
	        TA(test_date_format),
	        TA(test_date_round_trip),
	        TA(test_date_parse_refuses),
	        TA(test_mime_from_file),
	        TA(test_mime_builtin_and_missing_file),
	        TA(test_etag_list),
	        TA(test_setup_errors),
	        TA(test_setup_builds_maps),
	        TA(test_setup_without_maps),
	        TF(test_serve_200),
	        TF(test_serve_head),
	        TF(test_serve_empty_file),
	        TF(test_serve_304_if_none_match),
	        TF(test_serve_304_if_modified_since),
	        TF(test_serve_206),
	        TF(test_serve_416),
	        TF(test_serve_range_ignored),
	        TF(test_serve_if_range_match),
	        TF(test_serve_symlinks),
	        TF(test_serve_traversal),
	        TF(test_serve_index),
	        TF(test_serve_falls_through),
	        TF(test_serve_maps_in_order),
	        TF(test_serve_connection),
	        TF(test_serve_peer_gone),
	        TF(test_serve_uwsgi_protocol),
	        TF(test_serve_large_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
