/*
 * test_cond.c - if-exists/if-not-exists/if-file/if-dir/if-env/endif
 * blocks (cond.c), through config_load() with an INI file, as users write
 * them. Each row: the [uwsgi] body, then the options that must remain
 * ("key=value" per line, in order) or the error the load must give.
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

#include "mulefarm/config_load.h"

#define TEST_TIMEOUT 10

static char dir[] = "/tmp/mulefarm-cond-XXXXXX";

struct row {
	const char *body;
	const char *want; /* the options left, or NULL when an error is expected */
	const char *err;  /* a substring of the error */
};

/* "@D" in a body stands for the test's directory (which exists). */
static const struct row rows[] = {
        {"if-exists = @D\nprocesses = 3\nendif =\n", "processes=3\n", NULL},
        {"if-exists = @D/nope\nprocesses = 3\nendif =\nthreads = 2\n", "threads=2\n", NULL},
        {"if-not-exists = @D/nope\nprocesses = 3\nendif =\n", "processes=3\n", NULL},
        {"if-dir = @D\nchdir = %(_)\nendif =\n", "chdir=@D\n", NULL},
        {"if-file = @D\nprocesses = 3\nendif =\n", "", NULL},
        {"if-not-file = @D\nprocesses = 3\nendif =\n", "processes=3\n", NULL},
        {"if-not-dir = @D\nprocesses = 3\nendif =\n", "", NULL},
        {"if-env = MF_COND_SET\nprocesses = 3\nendif =\n", "processes=3\n", NULL},
        {"if-env = MF_COND_EMPTY\nprocesses = 3\nendif =\n", "", NULL},
        {"if-not-env = MF_COND_UNSET\nprocesses = %(_)x\nendif =\n", "processes=MF_COND_UNSETx\n",
         "processes"},
        /* nesting: the inner block only counts when the outer one holds */
        {"if-exists = @D/nope\nif-exists = @D\nthreads = 5\nendif =\nendif =\n", "", NULL},
        {"if-exists = @D\nif-env = MF_COND_SET\nthreads = 5\nendif =\nprocesses = 2\nendif =\n",
         "threads=5\nprocesses=2\n", NULL},
        /* placeholders in a false block vanish with it */
        {"if-exists = @D/nope\nsite = x\nendif =\n", "", NULL},
        {"processes = 2\nendif =\n", NULL, ".ini:3: endif without"},
        {"if-exists = @D\nprocesses = 2\n", NULL, ".ini:2: this block has no endif"},
};

static void expand_dir(char *out, size_t len, const char *in)
{
	size_t n = 0;
	for (const char *p = in; *p && n + 1 < len; p++) {
		if (p[0] == '@' && p[1] == 'D') {
			n += (size_t)snprintf(out + n, len - n, "%s", dir);
			p++;
		} else {
			out[n++] = *p;
		}
	}
	out[n < len ? n : len - 1] = '\0';
}

static void test_rows(void **state)
{
	char path[256], body[1024], want[1024], got[4096], err[512];
	snprintf(path, sizeof(path), "%s/c.ini", dir);
	setenv("MF_COND_SET", "1", 1);
	setenv("MF_COND_EMPTY", "", 1);
	unsetenv("MF_COND_UNSET");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		expand_dir(body, sizeof(body), r->body);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fprintf(f, "[uwsgi]\n%s", body);
		fclose(f);
		struct options o = {0};
		char *argv[] = {"--ini", path};
		int rc = config_load(&o, 2, argv, NULL, "test", err, sizeof(err));
		if (r->want == NULL || (rc == -1 && r->err != NULL)) {
			if (rc != -1 || strstr(err, r->err) == NULL)
				fail_msg("row %zu: want an error with '%s', got rc %d '%s'", i,
				         r->err, rc, rc ? err : "");
			opt_free(&o);
			continue;
		}
		if (rc != 0)
			fail_msg("row %zu: unexpected error: %s", i, err);
		size_t n = 0;
		got[0] = '\0';
		for (size_t k = 0; k < o.n; k++)
			if (o.entries[k].id != OPT_INI)
				n += (size_t)snprintf(got + n, sizeof(got) - n, "%s=%s\n",
				                      o.entries[k].key,
				                      o.entries[k].value ? o.entries[k].value : "");
		expand_dir(want, sizeof(want), r->want);
		if (strcmp(got, want) != 0)
			fail_msg("row %zu: want\n%sgot\n%s", i, want, got);
		opt_free(&o);
	}
}

static int setup(void **state)
{
	alarm(TEST_TIMEOUT);
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/c.ini", dir);
	unlink(path);
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_rows)};
	return cmocka_run_group_tests(tests, setup, teardown);
}
