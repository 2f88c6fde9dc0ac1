/*
 * test_zerg_wire.c - the zerg messages as bytes: uWSGI's head and
 * mulefarm's description (zerg_wire.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mulefarm/zerg_wire.h"

static void test_head_is_uwsgis(void **state)
{
	unsigned char head[ZERG_HEAD_LEN];
	bool announced;
	zerg_wire_head(head, 3);
	assert_int_equal(sizeof(head), 14);
	assert_memory_equal(head, "uwsgi-zerg", 10);
	int n;
	memcpy(&n, head + 10, sizeof(int)); /* a host-order C int, as uWSGI sends */
	assert_int_equal(n, 3);
	assert_int_equal(zerg_wire_parse_head(head, sizeof(head), &announced), 3);
	assert_true(announced);
}

static void test_head_variants(void **state)
{
	unsigned char head[ZERG_HEAD_LEN];
	bool announced = true;
	zerg_wire_head(head, 0);
	assert_int_equal(zerg_wire_parse_head(head, 10, &announced), 0); /* the bare tag */
	assert_false(announced);
	assert_int_equal(zerg_wire_parse_head(head, 9, &announced), -1);
	head[3] = 'X';
	assert_int_equal(zerg_wire_parse_head(head, sizeof(head), &announced), -1);
	zerg_wire_head(head, -1);
	assert_int_equal(zerg_wire_parse_head(head, sizeof(head), &announced), -1);
}

static void test_roundtrip(void **state)
{
	char buf[1024];
	size_t len = 0, n;
	assert_int_equal(
	        zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_LISTENER, 3, 0, "127.0.0.1:8080"),
	        0);
	assert_int_equal(
	        zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_LISTENER, 1, 0, "/run/a.sock"), 0);
	assert_int_equal(zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_FARMQ, 1, 0, NULL), 0);
	assert_int_equal(zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_STATS, 1, 0, NULL), 0);
	assert_int_equal(zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_MASTER, 1, 4242, NULL), 0);
	assert_false(zerg_wire_complete(buf, len));
	assert_int_equal(zerg_wire_end(buf, sizeof(buf), &len), 0);
	assert_true(zerg_wire_complete(buf, len));
	assert_int_equal(len, strlen("mulefarm-zerg 1\nL3\t127.0.0.1:8080\nL1\t/run/a.sock\nQ\nS\n"
	                             "P4242\n\n"));
	struct zerg_rec r[8];
	assert_int_equal(zerg_wire_parse(buf, len, r, 8, &n), 7);
	assert_int_equal(n, 5);
	assert_int_equal(r[0].kind, ZERG_REC_LISTENER);
	assert_int_equal(r[0].nfds, 3);
	assert_int_equal(r[0].name_len, strlen("127.0.0.1:8080"));
	assert_memory_equal(r[0].name, "127.0.0.1:8080", r[0].name_len);
	assert_memory_equal(r[1].name, "/run/a.sock", r[1].name_len);
	assert_int_equal(r[2].kind, ZERG_REC_FARMQ);
	assert_int_equal(r[3].kind, ZERG_REC_STATS);
	assert_int_equal(r[4].kind, ZERG_REC_MASTER);
	assert_int_equal(r[4].pid, 4242);
	assert_int_equal(r[4].nfds, 1);
}

static void test_master_without_pidfd_and_empty(void **state)
{
	char buf[64];
	size_t len = 0, n;
	struct zerg_rec r[2];
	assert_int_equal(zerg_wire_end(buf, sizeof(buf), &len), 0);
	assert_int_equal(zerg_wire_parse(buf, len, r, 2, &n), 0);
	assert_int_equal(n, 0);
	len = 0;
	assert_int_equal(zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_MASTER, 0, 7, NULL), 0);
	assert_int_equal(zerg_wire_end(buf, sizeof(buf), &len), 0);
	assert_int_equal(zerg_wire_parse(buf, len, r, 2, &n), 0);
	assert_int_equal(r[0].pid, 7);
	assert_int_equal(r[0].nfds, 0);
}

static void test_put_refuses(void **state)
{
	char buf[40];
	size_t len = 0;
	char longname[ZERG_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_LISTENER, 1, 0, "a\tb"),
	                 -1);
	assert_int_equal(zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_LISTENER, 1, 0, ""), -1);
	assert_int_equal(zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_LISTENER, 0, 0, "x"), -1);
	assert_int_equal(zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_LISTENER, 1, 0, longname),
	                 -1);
	/* full: the record does not fit, the message stays as it was */
	assert_int_equal(zerg_wire_put(buf, sizeof(buf), &len, ZERG_REC_LISTENER, 1, 0,
	                               "a-name-longer-than-what-is-left"),
	                 -1);
	assert_int_equal(len, strlen(ZERG_EXTRA_TAG));
}

static void test_parse_refuses(void **state)
{
	static const char *const bad[] = {
	        "",
	        "mulefarm-zerg 2\n\n",                  /* another version */
	        "mulefarm-zerg 1\n",                    /* no end */
	        "mulefarm-zerg 1\nQ\n",                 /* no end */
	        "mulefarm-zerg 1\nX\n\n",               /* unknown record */
	        "mulefarm-zerg 1\nL0\tname\n\n",        /* no fd */
	        "mulefarm-zerg 1\nL1name\n\n",          /* no tab */
	        "mulefarm-zerg 1\nL1\t\n\n",            /* no name */
	        "mulefarm-zerg 1\nL1\ta\tb\n\n",        /* a tab in the name */
	        "mulefarm-zerg 1\nP\n\n",               /* no pid */
	        "mulefarm-zerg 1\nP0\n\n",              /* pid 0 */
	        "mulefarm-zerg 1\nQx\n\n",              /* trailing bytes */
	        "mulefarm-zerg 1\nL200\ta\nL60\tb\n\n", /* 260 fds: more than SCM_MAX_FD */
	        "mulefarm-zerg 1\n\nQ\n\n",             /* bytes after the end */
	};
	struct zerg_rec r[8];
	size_t n;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(zerg_wire_parse(bad[i], strlen(bad[i]), r, 8, &n), -1);
	const char *many = "mulefarm-zerg 1\nQ\nS\nQ\n\n";
	assert_int_equal(zerg_wire_parse(many, strlen(many), r, 2, &n), -1); /* room for 2 */
	assert_int_equal(zerg_wire_parse(many, strlen(many), r, 3, &n), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_head_is_uwsgis),
	        cmocka_unit_test(test_head_variants),
	        cmocka_unit_test(test_roundtrip),
	        cmocka_unit_test(test_master_without_pidfd_and_empty),
	        cmocka_unit_test(test_put_refuses),
	        cmocka_unit_test(test_parse_refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
