/*
 * test_config_file.c - the YAML, INI and JSON config readers (yaml.c, ini.c,
 * json.c) and cfg_split_spec() (spec.c).
 *
 * Each case writes its file into a fresh temporary directory and reads it
 * through the public API; the items come back serialized one per line as
 * "<line> <key>=<value>" ("<line> <key>" for a bare flag, a newline in a
 * value shown as "\n") so that a table entry shows the whole answer,
 * order and line numbers included. Errors are compared whole, after the
 * path the message must start with.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mulefarm/config_file.h"

#define TEST_TIMEOUT 10 /* seconds; SIGALRM ends a hung test */

enum fmt { YAML, INI, JSON };

typedef int (*reader_fn)(const char *path, const char *section, cfg_emit_fn emit, void *ctx,
                         char *err, size_t errlen);

static const reader_fn readers[] = {cfg_read_yaml, cfg_read_ini, cfg_read_json};
static const char *const exts[] = {"yml", "ini", "json"};

/* What a reader handed out. */
struct collector {
	const char *path;  /* every item must name it as given */
	char out[1 << 17]; /* the items, serialized */
	size_t len;
	int n;
	int stop_at; /* the item (1-based) whose callback returns 42; 0: none */
};

static char tmpdir[] = "/tmp/mulefarm-cfg-XXXXXX";
static char path[512];
static char err[512];
static struct collector col;

static int group_setup(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	char name[600];
	struct dirent *d;
	DIR *dir = opendir(tmpdir);

	if (dir == NULL)
		return -1;
	while ((d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		snprintf(name, sizeof(name), "%s/%s", tmpdir, d->d_name);
		unlink(name);
	}
	closedir(dir);
	return rmdir(tmpdir);
}

static int setup(void **state)
{
	alarm(TEST_TIMEOUT);
	memset(&col, 0, sizeof(col));
	memset(err, 0, sizeof(err));
	return 0;
}

static int teardown(void **state)
{
	alarm(0);
	return 0;
}

static void out_puts(struct collector *c, const char *s)
{
	for (; *s != '\0'; s++) {
		assert_true(c->len + 3 < sizeof(c->out));
		if (*s == '\n') {
			c->out[c->len++] = '\\';
			c->out[c->len++] = 'n';
		} else {
			c->out[c->len++] = *s;
		}
	}
	c->out[c->len] = '\0';
}

static int collect(void *ctx, const struct cfg_item *item, char *e, size_t elen)
{
	struct collector *c = ctx;
	char line[32];

	assert_non_null(item->key);
	if (c->path != NULL)
		assert_string_equal(item->file, c->path);
	assert_true(item->line >= 1);
	c->n++;
	snprintf(line, sizeof(line), "%d ", item->line);
	out_puts(c, line);
	out_puts(c, item->key);
	if (item->value != NULL) {
		out_puts(c, "=");
		out_puts(c, item->value);
	}
	c->out[c->len++] = '\n';
	c->out[c->len] = '\0';
	if (c->n == c->stop_at) {
		snprintf(e, elen, "stopped at %s", item->key);
		return 42;
	}
	return 0;
}

/* Writes <len> bytes of <text> to <name> in the temporary directory, and
 * sets <path> to it. */
static void write_fixture_n(const char *name, const char *text, size_t len)
{
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void write_fixture(const char *name, const char *text)
{
	write_fixture_n(name, text, strlen(text));
}

static int read_fixture(enum fmt fmt, const char *section)
{
	col.path = path;
	return readers[fmt](path, section, collect, &col, err, sizeof(err));
}

/* The reader must have failed with "<path><suffix>" and handed out nothing. */
static void assert_error(int rc, const char *suffix)
{
	char want[1024];

	snprintf(want, sizeof(want), "%s%s", path, suffix);
	if (rc != -1)
		fail_msg("%s: rc %d, expected -1 (items: %s)", path, rc, col.out);
	assert_string_equal(err, want);
	assert_int_equal(col.n, 0);
}

/*
 * A file, the section asked for (NULL: the default) and either the items
 * (serialized, "" for none) or the message after the path.
 */
struct file_case {
	const char *name;
	enum fmt fmt;
	const char *section;
	const char *text;
	enum { ITEMS, ERROR } want;
	const char *expect;
};

static void run_cases(const struct file_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct file_case *t = &cases[i];
		char name[128];
		int rc;

		memset(&col, 0, sizeof(col));
		err[0] = '\0';
		snprintf(name, sizeof(name), "%s.%s", t->name, exts[t->fmt]);
		write_fixture(name, t->text);
		rc = read_fixture(t->fmt, t->section);
		if (t->want == ITEMS) {
			if (rc != 0)
				fail_msg("%s: rc %d: %s", t->name, rc, err);
			if (strcmp(col.out, t->expect) != 0)
				fail_msg("%s: items\n%s\nexpected\n%s", t->name, col.out,
				         t->expect);
		} else {
			assert_error(rc, t->expect);
		}
	}
}

#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))

/* --- YAML --- */

static const struct file_case yaml_cases[] = {
        {"y_plain", YAML, NULL, "uwsgi:\n  http: 127.0.0.1:8080\n  module: pkg.mod:app()\n", ITEMS,
         "2 http=127.0.0.1:8080\n3 module=pkg.mod:app()\n"},
        /* Real YAML unquoting: quotes do not stay in the value (unlike uWSGI's
         * line-oriented reader). */
        {"y_quoted", YAML, NULL,
         "uwsgi:\n  a: 'it''s \"x\"'\n  b: \"tab\\there \\u00e9 \\\"q\\\"\"\n  c: ''\n  d: "
         "\"\"\n",
         ITEMS, "2 a=it's \"x\"\n3 b=tab\there \xc3\xa9 \"q\"\n4 c=\n5 d=\n"},
        /* Null is a bare flag; a quoted "null" or an empty string is a value. */
        {"y_null", YAML, NULL,
         "uwsgi:\n  master:\n  a: ~\n  b: null\n  c: NULL\n  d: 'null'\n  e: !!null x\n  f: "
         "\"~\"\n",
         ITEMS, "2 master\n3 a\n4 b\n5 c\n6 d=null\n7 e\n8 f=~\n"},
        /* Booleans and numbers stay their text, YAML 1.1 octal included. */
        {"y_text", YAML, NULL,
         "uwsgi:\n  master: true\n  die-on-term: yes\n  thunder-lock: Off\n  umask: 027\n"
         "  buffer-size: 16384\n  x: 0x1f\n  y: 1e3\n",
         ITEMS,
         "2 master=true\n3 die-on-term=yes\n4 thunder-lock=Off\n5 umask=027\n"
         "6 buffer-size=16384\n7 x=0x1f\n8 y=1e3\n"},
        /* A flow list: one item per element on the key's line. */
        {"y_flow_list", YAML, NULL, "uwsgi:\n  mule: [a.py, 'b.py', \"c.py\"]\n  farm: []\n", ITEMS,
         "2 mule=a.py\n2 mule=b.py\n2 mule=c.py\n"},
        /* A block list: each element's own line; a null element is a flag. */
        {"y_block_list", YAML, NULL,
         "uwsgi:\n  hook-master-start:\n    - unix_signal:2 gracefully_kill_them_all\n"
         "    - unix_signal:15 gracefully_kill_them_all\n  x:\n  - one\n  -\n",
         ITEMS,
         "3 hook-master-start=unix_signal:2 gracefully_kill_them_all\n"
         "4 hook-master-start=unix_signal:15 gracefully_kill_them_all\n6 x=one\n7 x\n"},
        /* Repeated keys are repeated items, in file order, mixed with lists. */
        {"y_repeated", YAML, NULL,
         "uwsgi:\n  static-map: /static=static\n  processes: 2\n  static-map: [/a=a, /b=b]\n"
         "  static-map: /favicon.ico=static/favicon.ico\n",
         ITEMS,
         "2 static-map=/static=static\n3 processes=2\n4 static-map=/a=a\n4 static-map=/b=b\n"
         "5 static-map=/favicon.ico=static/favicon.ico\n"},
        /* Comments are comments; '#' without a space before it is text. */
        {"y_comments", YAML, NULL,
         "# top\nuwsgi:   # the section\n  # a comment line\n  a: b # trailing\n  c: d#e\n"
         "  f: 'g # h'\n",
         ITEMS, "4 a=b\n5 c=d#e\n6 f=g # h\n"},
        /* Block scalars keep YAML's meaning; the item has the key's line. */
        {"y_block_scalar", YAML, NULL,
         "uwsgi:\n  a: |\n    l1\n    l2\n  b: >-\n    f1\n    f2\n  c: end\n", ITEMS,
         "2 a=l1\\nl2\\n\n5 b=f1 f2\n8 c=end\n"},
        /* Other top-level keys of any shape are skipped; the section may come
         * anywhere, and every occurrence counts. */
        {"y_other_sections", YAML, NULL,
         "a: [1, {b: c}]\nd: {e: [f]}\ng: scalar\nuwsgi:\n  x: 1\nh:\n  - i: j\n    k: l\n"
         "uwsgi:\n  y: 2\n",
         ITEMS, "5 x=1\n10 y=2\n"},
        {"y_section", YAML, "app", "uwsgi:\n  a: 1\napp:\n  b: 2\n", ITEMS, "4 b=2\n"},
        {"y_section_empty_name", YAML, "", "uwsgi:\n  a: 1\napp:\n  b: 2\n", ITEMS, "2 a=1\n"},
        /* Aliases to anchors anywhere before. A list's items have its
         * elements' lines, where the anchored list was written. */
        {"y_alias", YAML, NULL,
         "paths:\n  venv: &venv /srv/venv\n  libs: &libs [lib, plugins]\n"
         "uwsgi:\n  virtualenv: *venv\n  pythonpath: *libs\n",
         ITEMS, "5 virtualenv=/srv/venv\n3 pythonpath=lib\n3 pythonpath=plugins\n"},
        {"y_whole_section_alias", YAML, NULL, "base: &b\n  a: 1\nuwsgi: *b\n", ITEMS, "2 a=1\n"},
        {"y_empty_section", YAML, NULL, "uwsgi:\n  # nothing yet\ngalaxy:\n  a: 1\n", ITEMS, ""},
        {"y_empty_mapping", YAML, NULL, "uwsgi: {}\n", ITEMS, ""},
        {"y_flow_section", YAML, NULL, "uwsgi: {a: 1, b: [x, y]}\n", ITEMS,
         "1 a=1\n1 b=x\n1 b=y\n"},
        {"y_crlf", YAML, NULL, "uwsgi:\r\n  a: b\r\n  c: d\r\n", ITEMS, "2 a=b\n3 c=d\n"},
        {"y_bom", YAML, NULL, "\xef\xbb\xbfuwsgi:\n  a: b\n", ITEMS, "2 a=b\n"},
        {"y_doc_markers", YAML, NULL, "%YAML 1.1\n---\nuwsgi:\n  a: b\n...\n", ITEMS, "4 a=b\n"},
        {"y_trailing_empty_doc", YAML, NULL, "uwsgi:\n  a: b\n---\n", ITEMS, "2 a=b\n"},

        /* Shapes the section may not have. */
        {"y_nested_mapping", YAML, NULL, "uwsgi:\n  a: 1\n  route:\n    b: c\n", ERROR,
         ":3: option 'route': expected a value or a list, found a mapping"},
        {"y_list_of_mappings", YAML, NULL, "uwsgi:\n  a:\n    - x\n    - b: c\n", ERROR,
         ":4: option 'a': a list may hold only values, found a mapping"},
        {"y_list_of_lists", YAML, NULL, "uwsgi:\n  a: [x, [y]]\n", ERROR,
         ":2: option 'a': a list may hold only values, found a list"},
        {"y_merge_key", YAML, NULL, "base: &b {a: 1}\nuwsgi:\n  <<: *b\n", ERROR,
         ":3: option '<<': expected a value or a list, found a mapping"},
        {"y_complex_key", YAML, NULL, "uwsgi:\n  ? [a, b]\n  : c\n", ERROR,
         ":2: expected a key, found a list"},
        {"y_empty_key", YAML, NULL, "uwsgi:\n  a: 1\n  '': x\n", ERROR, ":3: empty key"},
        {"y_nul_value", YAML, NULL, "uwsgi:\n  a: \"x\\0y\"\n", ERROR,
         ":2: option 'a': NUL character in the value"},
        {"y_section_list", YAML, NULL, "uwsgi:\n  - a\n", ERROR,
         ":1: section 'uwsgi' is not a mapping"},
        {"y_section_scalar", YAML, NULL, "uwsgi: yes\n", ERROR,
         ":1: section 'uwsgi' is not a mapping"},
        {"y_top_list", YAML, NULL, "- uwsgi\n", ERROR,
         ":1: expected a mapping at the top level, found a list"},
        {"y_top_scalar", YAML, NULL, "just text\n", ERROR,
         ":1: expected a mapping at the top level, found a value"},
        {"y_missing", YAML, NULL, "galaxy:\n  uwsgi:\n    a: 1\n", ERROR, ": no 'uwsgi' section"},
        {"y_missing_named", YAML, "app", "uwsgi:\n  a: 1\n", ERROR, ": no 'app' section"},
        {"y_empty_file", YAML, NULL, "", ERROR, ": no 'uwsgi' section"},
        {"y_comments_only", YAML, NULL, "# nothing\n", ERROR, ": no 'uwsgi' section"},
        {"y_second_doc", YAML, NULL, "uwsgi:\n  a: b\n---\nx: 1\n", ERROR,
         ":4: a second YAML document; a config file holds one"},

        /* Syntax errors: libyaml's problem, at its line; nothing handed out even
         * when the error comes after valid options. */
        {"y_unclosed_flow", YAML, NULL, "uwsgi:\n  a: b\n  c: [1, 2\n", ERROR,
         ":4: did not find expected ',' or ']' (while parsing a flow sequence at line 3)"},
        {"y_tab_indent", YAML, NULL, "uwsgi:\n  a: b\n\tc: d\n", ERROR,
         ":3: found a tab character that violates indentation (while scanning a plain "
         "scalar at line 2)"},
        {"y_bad_indent", YAML, NULL, "uwsgi:\n  a: b\n c: d\n", ERROR,
         ":3: did not find expected key (while parsing a block mapping at line 1)"},
        {"y_undefined_alias", YAML, NULL, "uwsgi:\n  a: b\n  c: *nope\n", ERROR,
         ":3: found undefined alias"},
        {"y_unterminated_quote", YAML, NULL, "uwsgi:\n  a: \"x\n", ERROR,
         ":3: found unexpected end of stream (while scanning a quoted scalar at line 2)"},
        {"y_bad_utf8", YAML, NULL, "uwsgi:\n  a: b\n  \xff: 1\n", ERROR,
         ":3: invalid leading UTF-8 octet"},
        {"y_error_in_other_section", YAML, NULL, "uwsgi:\n  a: b\ngalaxy:\n  x: [1\n", ERROR,
         ":5: did not find expected ',' or ']' (while parsing a flow sequence at line 4)"},
};

static void test_yaml_rules(void **state)
{
	RUN(yaml_cases);
}

/* Galaxy 20.09's galaxy.yml as the Ansible role writes it: the uwsgi
 * section beside a deeply nested galaxy section and a few others. */
static const char galaxy_yml[] =
        "---\n"                                                                       /* 1 */
        "# Managed by Ansible (galaxyproject.galaxy)\n"                               /* 2 */
        "uwsgi:\n"                                                                    /* 3 */
        "  http: 127.0.0.1:8080\n"                                                    /* 4 */
        "  buffer-size: 16384\n"                                                      /* 5 */
        "  processes: 1\n"                                                            /* 6 */
        "  threads: 4\n"                                                              /* 7 */
        "  offload-threads: 2\n"                                                      /* 8 */
        "  static-map: /static/style=/srv/galaxy/server/static/style/blue\n"          /* 9 */
        "  static-map: /static=/srv/galaxy/server/static\n"                           /* 10 */
        "  master: false\n"                                                           /* 11 */
        "  virtualenv: &venv /srv/galaxy/venv\n"                                      /* 12 */
        "  pythonpath: lib\n"                                                         /* 13 */
        "  module: 'galaxy.webapps.galaxy.buildapp:uwsgi_app()'\n"                    /* 14 */
        "  thunder-lock: false\n"                                                     /* 15 */
        "  die-on-term: true\n"                                                       /* 16 */
        "  hook-master-start:\n"                                                      /* 17 */
        "    - unix_signal:2 gracefully_kill_them_all\n"                              /* 18 */
        "    - unix_signal:15 gracefully_kill_them_all\n"                             /* 19 */
        "  py-call-osafterfork: false\n"                                              /* 20 */
        "  enable-threads: true\n"                                                    /* 21 */
        "  umask: \"027\"\n"                                                          /* 22 */
        "  mule: lib/galaxy/main.py\n"                                                /* 23 */
        "  mule: lib/galaxy/main.py\n"                                                /* 24 */
        "  farm: job-handlers:1,2\n"                                                  /* 25 */
        "  galaxy_config_file: /srv/galaxy/config/galaxy.yml  # read via uwsgi.opt\n" /* 26 */
        "\n"                                                                          /* 27 */
        "galaxy:\n"                                                                   /* 28 */
        "  admin_users: &admins\n"                                                    /* 29 */
        "    - admin@example.org\n"                                                   /* 30 */
        "    - ops@example.org\n"                                                     /* 31 */
        "  brand: \"Galaxy: Example\"\n"                                              /* 32 */
        "  database_connection: postgresql:///galaxy?host=/var/run/postgresql\n"      /* 33 */
        "  file_path: /srv/galaxy/data/datasets\n"                                    /* 34 */
        "  virtualenv: *venv\n"                                                       /* 35 */
        "  job_config:\n"                                                             /* 36 */
        "    runners:\n"                                                              /* 37 */
        "      local:\n"                                                              /* 38 */
        "        load: galaxy.jobs.runners.local:LocalJobRunner\n"                    /* 39 */
        "        workers: 4\n"                                                        /* 40 */
        "      slurm: &slurm_runner\n"                                                /* 41 */
        "        load: galaxy.jobs.runners.slurm:SlurmJobRunner\n"                    /* 42 */
        "        drmaa_library_path: /usr/lib/slurm-drmaa/lib/libdrmaa.so.1\n"        /* 43 */
        "      slurm_gpu: *slurm_runner\n"                                            /* 44 */
        "    handling:\n"                                                             /* 45 */
        "      assign: [db-skip-locked]\n"                                            /* 46 */
        "      max_grab: 8\n"                                                         /* 47 */
        "    execution:\n"                                                            /* 48 */
        "      default: slurm\n"                                                      /* 49 */
        "      environments:\n"                                                       /* 50 */
        "        - id: local\n"                                                       /* 51 */
        "          runner: local\n"                                                   /* 52 */
        "        - id: slurm\n"                                                       /* 53 */
        "          runner: slurm\n"                                                   /* 54 */
        "          native_specification: >-\n"                                        /* 55 */
        "            --nodes=1\n"                                                     /* 56 */
        "            --ntasks=4\n"                                                    /* 57 */
        "          env:\n"                                                            /* 58 */
        "            - name: GALAXY_MEMORY_MB\n"                                      /* 59 */
        "              value: 8192\n"                                                 /* 60 */
        "            - execute: \". /srv/galaxy/venv/bin/activate\"\n"                /* 61 */
        "  tool_config_file: [tool_conf.xml, shed_tool_conf.xml]\n"                   /* 62 */
        "  object_store_config_file: /srv/galaxy/config/object_store_conf.xml\n"      /* 63 */
        "  allow_user_impersonation: true\n"                                          /* 64 */
        "  require_login: false\n"                                                    /* 65 */
        "  static_enabled: false   # nginx serves /static\n"                          /* 66 */
        "  motd: |\n"                                                                 /* 67 */
        "    Maintenance on Saturday.\n"                                              /* 68 */
        "    Jobs: submitted after 18:00 wait.\n"                                     /* 69 */
        "  bootstrap_admin_api_key: ~\n"                                              /* 70 */
        "  admin_email_list: *admins\n"                                               /* 71 */
        "  cleanup: {purge: true, days: 30, lists: [a, b]}\n"                         /* 72 */
        "  uwsgi:\n"                                                                  /* 73 */
        "    not: the section\n"                                                      /* 74 */
        "\n"                                                                          /* 75 */
        "reports: ~\n"                                                                /* 76 */
        "tool_shed:\n"                                                                /* 77 */
        "  - {url: https://toolshed.g2.bx.psu.edu/, name: main}\n";                   /* 78 */

static void test_yaml_galaxy(void **state)
{
	write_fixture("galaxy.yml", galaxy_yml);
	assert_int_equal(read_fixture(YAML, NULL), 0);
	assert_string_equal(col.out,
	                    "4 http=127.0.0.1:8080\n"
	                    "5 buffer-size=16384\n"
	                    "6 processes=1\n"
	                    "7 threads=4\n"
	                    "8 offload-threads=2\n"
	                    "9 static-map=/static/style=/srv/galaxy/server/static/style/blue\n"
	                    "10 static-map=/static=/srv/galaxy/server/static\n"
	                    "11 master=false\n"
	                    "12 virtualenv=/srv/galaxy/venv\n"
	                    "13 pythonpath=lib\n"
	                    "14 module=galaxy.webapps.galaxy.buildapp:uwsgi_app()\n"
	                    "15 thunder-lock=false\n"
	                    "16 die-on-term=true\n"
	                    "18 hook-master-start=unix_signal:2 gracefully_kill_them_all\n"
	                    "19 hook-master-start=unix_signal:15 gracefully_kill_them_all\n"
	                    "20 py-call-osafterfork=false\n"
	                    "21 enable-threads=true\n"
	                    "22 umask=027\n"
	                    "23 mule=lib/galaxy/main.py\n"
	                    "24 mule=lib/galaxy/main.py\n"
	                    "25 farm=job-handlers:1,2\n"
	                    "26 galaxy_config_file=/srv/galaxy/config/galaxy.yml\n");
	assert_int_equal(col.n, 22);

	/* The same file read for another top-level section. */
	memset(&col, 0, sizeof(col));
	assert_int_equal(read_fixture(YAML, "reports"), 0);
	assert_int_equal(col.n, 0);
	assert_error(read_fixture(YAML, "tool_shed"), ":77: section 'tool_shed' is not a mapping");
}

/* --- INI --- */

static const struct file_case ini_cases[] = {
        {"i_basic", INI, NULL,
         "[uwsgi]\nhttp = 127.0.0.1:8080\n  processes=4  \nmaster\n\tthreads =\t2\t\nempty =\n",
         ITEMS, "2 http=127.0.0.1:8080\n3 processes=4\n4 master\n5 threads=2\n6 empty=\n"},
        /* No quote processing and no inline comments, as in uWSGI; the split is
         * at the first '='. */
        {"i_literal", INI, NULL,
         "[uwsgi]\nmodule = 'app:make()'\nenv = A=\"b c\" ; not a comment\nroute = ^/x # y\n"
         "key with space = v\nkey: value\n",
         ITEMS,
         "2 module='app:make()'\n3 env=A=\"b c\" ; not a comment\n4 route=^/x # y\n"
         "5 key with space=v\n6 key: value\n"},
        {"i_comments", INI, NULL,
         "; leading\n[uwsgi]\n# hash\n; semicolon\n   # indented\n\n  \t\na = 1\n", ITEMS,
         "8 a=1\n"},
        /* Every [uwsgi] block counts, in order; other sections and lines
         * before the first header are skipped. */
        {"i_merge", INI, NULL,
         "stray = 0\n[uwsgi]\na = 1\n[app:main]\nuse = egg:galaxy\n  continued line\n"
         "[uwsgi]\na = 2\nb = 3\n[server:main]\nport = 8080\n",
         ITEMS, "3 a=1\n8 a=2\n9 b=3\n"},
        {"i_section", INI, "app:main", "[uwsgi]\na = 1\n[app:main]\nuse = egg:galaxy\n", ITEMS,
         "4 use=egg:galaxy\n"},
        {"i_section_empty_name", INI, "", "[x]\na = 1\n[uwsgi]\nb = 2\n", ITEMS, "4 b=2\n"},
        {"i_header_spaces", INI, NULL, "[ uwsgi ]\na = 1\n[uwsgi]\nb = 2\n", ITEMS, "4 b=2\n"},
        {"i_header_trimmed_line", INI, NULL, "  [uwsgi]  \na = 1\n", ITEMS, "2 a=1\n"},
        {"i_repeated", INI, NULL, "[uwsgi]\nmule = a.py\nmule = b.py\nstatic-map = /s=s\n", ITEMS,
         "2 mule=a.py\n3 mule=b.py\n4 static-map=/s=s\n"},
        {"i_crlf", INI, NULL, "[uwsgi]\r\na = b\r\nflag\r\n", ITEMS, "2 a=b\n3 flag\n"},
        {"i_bom", INI, NULL, "\xef\xbb\xbf[uwsgi]\na = b\n", ITEMS, "2 a=b\n"},
        {"i_no_newline_at_end", INI, NULL, "[uwsgi]\na = b", ITEMS, "2 a=b\n"},
        {"i_empty_section", INI, NULL, "[uwsgi]\n; nothing\n[other]\nx = 1\n", ITEMS, ""},

        {"i_missing", INI, NULL, "[app:main]\nuwsgi = 1\n", ERROR, ": no 'uwsgi' section"},
        {"i_missing_named", INI, "app", "[uwsgi]\na = 1\n", ERROR, ": no 'app' section"},
        {"i_empty_file", INI, NULL, "", ERROR, ": no 'uwsgi' section"},
        {"i_unclosed_header", INI, NULL, "[uwsgi]\na = 1\n[app\n", ERROR,
         ":3: section header without ']' at its end"},
        {"i_header_trailing_text", INI, NULL, "[uwsgi] ; main\na = 1\n", ERROR,
         ":1: section header without ']' at its end"},
        {"i_lone_bracket", INI, NULL, "[\n", ERROR, ":1: section header without ']' at its end"},
        {"i_no_key", INI, NULL, "[uwsgi]\na = 1\n  = 2\n", ERROR, ":3: expected a key before '='"},
        /* Lines are checked in every section, not only the one asked for. */
        {"i_bad_line_elsewhere", INI, NULL, "[uwsgi]\na = 1\n[x]\n=y\n", ERROR,
         ":4: expected a key before '='"},
};

static void test_ini_rules(void **state)
{
	RUN(ini_cases);
}

static void test_ini_nul_byte(void **state)
{
	static const char text[] = "[uwsgi]\na = 1\nb = x\0y\n";

	write_fixture_n("nul.ini", text, sizeof(text) - 1);
	assert_error(read_fixture(INI, NULL), ":3: NUL byte in the line");
}

/* --- JSON --- */

static const struct file_case json_cases[] = {
        {"j_basic", JSON, NULL,
         "{\n  \"uwsgi\": {\n    \"http\": \"127.0.0.1:8080\",\n    \"processes\": 4,\n"
         "    \"master\": true,\n    \"thunder-lock\": false,\n    \"x\": null\n  }\n}\n",
         ITEMS, "3 http=127.0.0.1:8080\n4 processes=4\n5 master=1\n6 thunder-lock=0\n7 x=0\n"},
        /* Numbers are their source text. */
        {"j_numbers", JSON, NULL,
         "{\"uwsgi\": {\"a\": 0, \"b\": -12, \"c\": 1.50, \"d\": 1e3, \"e\": -0.5E-07, "
         "\"f\": 12345678901234567890}}",
         ITEMS, "1 a=0\n1 b=-12\n1 c=1.50\n1 d=1e3\n1 e=-0.5E-07\n1 f=12345678901234567890\n"},
        /* An array is one item per element, each on the key's line. */
        {"j_arrays", JSON, NULL,
         "{\"uwsgi\": {\n\"mule\": [\n\"a.py\",\n\"b.py\"\n],\n\"mix\": [1, true, false, null, "
         "\"s\"],"
         "\n\"none\": []}}",
         ITEMS, "2 mule=a.py\n2 mule=b.py\n6 mix=1\n6 mix=1\n6 mix=0\n6 mix=0\n6 mix=s\n"},
        {"j_escapes", JSON, NULL,
         "{\"uwsgi\": {\"a\": \"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t.\", "
         "\"b\": \"\\u00e9\\u20AC\\ud83d\\ude00\", \"c\\u0041\": \"raw \xc3\xa9\"}}",
         ITEMS,
         "1 a=q\" b\\ s/ \b\f\\n\r\t.\n1 b=\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n1 cA=raw "
         "\xc3\xa9\n"},
        {"j_repeated", JSON, NULL,
         "{\"uwsgi\": {\"static-map\": \"/a=a\", \"x\": 1, \"static-map\": [\"/b=b\"]}}", ITEMS,
         "1 static-map=/a=a\n1 x=1\n1 static-map=/b=b\n"},
        /* Other top-level keys are skipped whatever their shape; every
         * occurrence of the section counts. */
        {"j_other_keys", JSON, NULL,
         "{\"galaxy\": {\"a\": [1, {\"b\": [[]]}], \"c\": {}}, \"uwsgi\": {\"x\": \"1\"},\n"
         "\"n\": null, \"s\": \"uwsgi\", \"uwsgi\": {\"y\": \"2\"}}",
         ITEMS, "1 x=1\n2 y=2\n"},
        {"j_section", JSON, "app", "{\"uwsgi\": {\"a\": 1}, \"app\": {\"b\": 2}}", ITEMS,
         "1 b=2\n"},
        {"j_section_empty_name", JSON, "", "{\"uwsgi\": {\"a\": 1}, \"app\": {\"b\": 2}}", ITEMS,
         "1 a=1\n"},
        {"j_empty_section", JSON, NULL, "{\"uwsgi\": {}}", ITEMS, ""},
        {"j_whitespace", JSON, NULL, "\xef\xbb\xbf \r\n\t{ \"uwsgi\" :\r\n{\"a\"\n:\n\"b\" } }\r\n",
         ITEMS, "3 a=b\n"},
        /* \u0000 is fine where it is skipped. */
        {"j_nul_elsewhere", JSON, NULL, "{\"x\": \"\\u0000\", \"uwsgi\": {\"a\": 1}}", ITEMS,
         "1 a=1\n"},

        {"j_nested_object", JSON, NULL, "{\"uwsgi\": {\n\"a\": 1,\n\"route\": {\"b\": 1}}}", ERROR,
         ":3: option 'route': expected a value or a list, found an object"},
        {"j_array_of_objects", JSON, NULL, "{\"uwsgi\": {\"a\":\n [1, {}]}}", ERROR,
         ":1: option 'a': a list may hold only values, found an object"},
        {"j_array_of_arrays", JSON, NULL, "{\"uwsgi\": {\"a\": [[1]]}}", ERROR,
         ":1: option 'a': a list may hold only values, found a list"},
        {"j_section_array", JSON, NULL, "{\"uwsgi\":\n [\"a\"]}", ERROR,
         ":1: section 'uwsgi' is not an object"},
        {"j_section_null", JSON, NULL, "{\"uwsgi\": null}", ERROR,
         ":1: section 'uwsgi' is not an object"},
        {"j_top_array", JSON, NULL, "[{\"uwsgi\": {}}]", ERROR,
         ":1: expected an object at the top level, found '['"},
        {"j_empty_file", JSON, NULL, "\n\n", ERROR,
         ":3: expected an object at the top level, found the end of the file"},
        {"j_missing", JSON, NULL, "{\"galaxy\": {\"uwsgi\": {\"a\": 1}}}", ERROR,
         ": no 'uwsgi' section"},
        {"j_empty_key", JSON, NULL, "{\"uwsgi\": {\"\": 1}}", ERROR, ":1: empty key"},
        {"j_nul_key", JSON, NULL, "{\"uwsgi\": {\"a\\u0000\": 1}}", ERROR, ":1: \\u0000 in a key"},
        {"j_nul_value", JSON, NULL, "{\"uwsgi\": {\"a\": [\"\\u0000\"]}}", ERROR,
         ":1: option 'a': \\u0000 in the value"},

        /* Syntax errors, after valid options too: nothing is handed out. */
        {"j_trailing_comma", JSON, NULL, "{\"uwsgi\": {\"a\": 1,\n}}", ERROR,
         ":2: expected a string key, found '}'"},
        {"j_trailing_array_comma", JSON, NULL, "{\"uwsgi\": {\"a\": [1,]}}", ERROR,
         ":1: expected a value, found ']'"},
        {"j_missing_colon", JSON, NULL, "{\"uwsgi\" {}}", ERROR,
         ":1: expected ':' after the key, found '{'"},
        {"j_missing_comma", JSON, NULL, "{\"uwsgi\": {\"a\": 1\n\"b\": 2}}", ERROR,
         ":2: expected ',' or '}', found '\"'"},
        {"j_single_quotes", JSON, NULL, "{'uwsgi': {}}", ERROR,
         ":1: expected a string key, found '''"},
        {"j_comment", JSON, NULL, "{\"uwsgi\": {} // no\n}", ERROR,
         ":1: expected ',' or '}', found '/'"},
        {"j_trailing_data", JSON, NULL, "{\"uwsgi\": {}}\n{}", ERROR,
         ":2: expected the end of the file after the top-level object, found '{'"},
        {"j_unterminated_object", JSON, NULL, "{\"uwsgi\": {\"a\": 1}\n", ERROR,
         ":2: expected ',' or '}', found the end of the file"},
        {"j_unterminated_string", JSON, NULL, "{\"uwsgi\": {\"a\": \"b", ERROR,
         ":1: unterminated string"},
        {"j_raw_newline", JSON, NULL, "{\"uwsgi\": {\"a\": \"b\nc\"}}", ERROR,
         ":1: control character 0x0a in a string"},
        {"j_bad_escape", JSON, NULL, "{\"uwsgi\": {\"a\": \"\\x41\"}}", ERROR,
         ":1: expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u), found 'x'"},
        {"j_short_unicode", JSON, NULL, "{\"uwsgi\": {\"a\": \"\\u12\"}}", ERROR,
         ":1: \\u must be followed by 4 hex digits"},
        {"j_lone_high", JSON, NULL, "{\"uwsgi\": {\"a\": \"\\ud83dx\"}}", ERROR,
         ":1: high surrogate \\uD83D without a low one"},
        {"j_high_high", JSON, NULL, "{\"uwsgi\": {\"a\": \"\\ud83d\\ud83d\"}}", ERROR,
         ":1: high surrogate \\uD83D without a low one"},
        {"j_lone_low", JSON, NULL, "{\"uwsgi\": {\"a\": \"\\ude00\"}}", ERROR,
         ":1: lone low surrogate \\uDE00"},
        {"j_leading_zero", JSON, NULL, "{\"uwsgi\": {\"a\": 01}}", ERROR,
         ":1: expected ',' or '}', found '1'"},
        {"j_bare_minus", JSON, NULL, "{\"uwsgi\": {\"a\": -}}", ERROR,
         ":1: expected a digit, found '}'"},
        {"j_no_fraction", JSON, NULL, "{\"uwsgi\": {\"a\": 1.}}", ERROR,
         ":1: expected a digit after '.', found '}'"},
        {"j_no_exponent", JSON, NULL, "{\"uwsgi\": {\"a\": 1e+}}", ERROR,
         ":1: expected a digit in the exponent, found '}'"},
        {"j_leading_dot", JSON, NULL, "{\"uwsgi\": {\"a\": .5}}", ERROR,
         ":1: expected a value, found '.'"},
        {"j_plus", JSON, NULL, "{\"uwsgi\": {\"a\": +1}}", ERROR,
         ":1: expected a value, found '+'"},
        {"j_bad_literal", JSON, NULL, "{\"uwsgi\": {\"a\": tru}}", ERROR,
         ":1: expected a value, found 't'"},
        {"j_capital_literal", JSON, NULL, "{\"uwsgi\": {\"a\": True}}", ERROR,
         ":1: expected a value, found 'T'"},
        {"j_error_elsewhere", JSON, NULL, "{\"uwsgi\": {\"a\": 1},\n\"galaxy\": [1 2]}", ERROR,
         ":2: expected ',' or ']', found '2'"},
};

static void test_json_rules(void **state)
{
	RUN(json_cases);
}

/* Nesting: 64 levels anywhere are fine, 65 are not. */
static void test_json_depth(void **state)
{
	char text[512];
	size_t n = 0;
	int i;

	/* The top object is level 1, "x"'s arrays are levels 2..<depth>. */
	for (int depth = 64; depth <= 65; depth++) {
		n = (size_t)snprintf(text, sizeof(text), "{\"uwsgi\": {\"a\": 1}, \"x\": ");
		for (i = 1; i < depth; i++)
			text[n++] = '[';
		for (i = 1; i < depth; i++)
			text[n++] = ']';
		text[n++] = '}';
		write_fixture_n("depth.json", text, n);
		memset(&col, 0, sizeof(col));
		err[0] = '\0';
		if (depth == 64) {
			assert_int_equal(read_fixture(JSON, NULL), 0);
			assert_string_equal(col.out, "1 a=1\n");
		} else {
			assert_error(read_fixture(JSON, NULL), ":1: nested deeper than 64 levels");
		}
	}
}

static void test_json_nul_byte(void **state)
{
	static const char text[] = "{\"uwsgi\": {\"a\": \"x\0\"}}";

	write_fixture_n("nul.json", text, sizeof(text) - 1);
	assert_error(read_fixture(JSON, NULL), ":1: control character 0x00 in a string");
}

/* --- all three --- */

static const char *const three[] = {
        "uwsgi:\n  a: 1\n  b: [2, 3]\n  c: 4\n",
        "[uwsgi]\na = 1\nb = 2\nb = 3\nc = 4\n",
        "{\"uwsgi\": {\"a\": 1, \"b\": [2, 3], \"c\": 4}}",
};

/* A non-zero callback result stops the reader, which returns it and leaves
 * the callback's message alone. */
static void test_callback_stops(void **state)
{
	for (int f = YAML; f <= JSON; f++) {
		char name[32];

		snprintf(name, sizeof(name), "stop.%s", exts[f]);
		write_fixture(name, three[f]);
		memset(&col, 0, sizeof(col));
		col.stop_at = 3;
		assert_int_equal(read_fixture((enum fmt)f, NULL), 42);
		assert_string_equal(err, "stopped at b");
		assert_int_equal(col.n, 3);
	}
}

static void test_unreadable(void **state)
{
	char want[600];

	for (int f = YAML; f <= JSON; f++) {
		snprintf(path, sizeof(path), "%s/does-not-exist.%s", tmpdir, exts[f]);
		assert_int_equal(read_fixture((enum fmt)f, NULL), -1);
		snprintf(want, sizeof(want), "%s: cannot read: %s", path, strerror(ENOENT));
		assert_string_equal(err, want);

		snprintf(path, sizeof(path), "%s", tmpdir);
		assert_int_equal(read_fixture((enum fmt)f, NULL), -1);
		snprintf(want, sizeof(want), "%s: cannot read: %s", path, strerror(EISDIR));
		assert_string_equal(err, want);
		assert_int_equal(col.n, 0);
	}
}

/* A short message buffer truncates; none at all is allowed. */
static void test_small_err_buffer(void **state)
{
	static const char *const bad[] = {"uwsgi: [\n", "[uwsgi\n", "{"};
	char small[8];

	for (int f = YAML; f <= JSON; f++) {
		char name[32];

		snprintf(name, sizeof(name), "bad.%s", exts[f]);
		write_fixture(name, bad[f]);
		col.path = path;
		memset(small, 'x', sizeof(small));
		assert_int_equal(readers[f](path, NULL, collect, &col, small, sizeof(small)), -1);
		assert_int_equal(strlen(small), sizeof(small) - 1);
		assert_memory_equal(small, path, sizeof(small) - 1);
		assert_int_equal(readers[f](path, NULL, collect, &col, NULL, 0), -1);
	}
}

/* The same options in the three formats give the same items. */
static void test_same_items(void **state)
{
	static const char *const want[] = {
	        "2 a=1\n3 b=2\n3 b=3\n4 c=4\n",
	        "2 a=1\n3 b=2\n4 b=3\n5 c=4\n",
	        "1 a=1\n1 b=2\n1 b=3\n1 c=4\n",
	};

	for (int f = YAML; f <= JSON; f++) {
		char name[32];

		snprintf(name, sizeof(name), "same.%s", exts[f]);
		write_fixture(name, three[f]);
		memset(&col, 0, sizeof(col));
		assert_int_equal(read_fixture((enum fmt)f, NULL), 0);
		assert_string_equal(col.out, want[f]);
	}
}

/* For test_include: "ini" names a file read on the spot. */
static int include_cb(void *ctx, const struct cfg_item *item, char *e, size_t elen)
{
	int rc = collect(ctx, item, e, elen);

	if (rc == 0 && strcmp(item->key, "ini") == 0)
		rc = cfg_read_ini(item->value, NULL, include_cb, ctx, e, elen);
	return rc;
}

/* The readers keep no state: a callback may read another file (as the
 * loader does for includes), and an error there stops the outer reader. */
static void test_include(void **state)
{
	char inner[512], outer[512], want[2048];

	write_fixture("inner.ini", "[uwsgi]\nx = 1\ny\n");
	snprintf(inner, sizeof(inner), "%s", path);
	snprintf(want, sizeof(want), "uwsgi:\n  a: 1\n  ini: %s\n  b: 2\n", inner);
	write_fixture("outer.yml", want);
	snprintf(outer, sizeof(outer), "%s", path);
	assert_int_equal(cfg_read_yaml(outer, NULL, include_cb, &col, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "2 a=1\n3 ini=%s\n2 x=1\n3 y\n4 b=2\n", inner);
	assert_string_equal(col.out, want);

	write_fixture("inner.ini", "[uwsgi]\nx = 1\n[bad\n");
	memset(&col, 0, sizeof(col));
	assert_int_equal(cfg_read_yaml(outer, NULL, include_cb, &col, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:3: section header without ']' at its end", inner);
	assert_string_equal(err, want);
	assert_int_equal(col.n, 2); /* a, ini: the inner file gave nothing */
}

/* Files far larger than one read() come in whole. */
static void test_large_file(void **state)
{
	static const char *const head[] = {"uwsgi:\n", "[uwsgi]\n", "{\"uwsgi\": {\n"};
	static const char *const tail[] = {"", "", "\"end\": 0}}\n"};
	enum { N = 5000 };
	char *text = malloc(N * 32), last[64], name[32];

	assert_non_null(text);
	for (int f = YAML; f <= JSON; f++) {
		size_t n = (size_t)sprintf(text, "%s", head[f]);

		for (int i = 1; i <= N; i++)
			n += (size_t)(f == YAML  ? sprintf(text + n, "  k%d: v%d\n", i, i)
			              : f == INI ? sprintf(text + n, "k%d = v%d\n", i, i)
			                         : sprintf(text + n, "\"k%d\": \"v%d\",\n", i, i));
		n += (size_t)sprintf(text + n, "%s", tail[f]);
		assert_true(n > 16 * 4096);
		snprintf(name, sizeof(name), "large.%s", exts[f]);
		write_fixture_n(name, text, n);
		memset(&col, 0, sizeof(col));
		assert_int_equal(read_fixture((enum fmt)f, NULL), 0);
		assert_int_equal(col.n, f == JSON ? N + 1 : N);
		snprintf(last, sizeof(last), "\n%d k%d=v%d\n%s", N + 1, N, N,
		         f == JSON ? "5002 end=0\n" : "");
		assert_non_null(strstr(col.out, last));
	}
	free(text);
}

/* --- cfg_split_spec --- */

static void test_split_spec(void **state)
{
	static const struct {
		const char *spec, *path, *section;
	} cases[] = {
	        {"galaxy.yml", "galaxy.yml", ""},
	        {"galaxy.yml:uwsgi", "galaxy.yml", "uwsgi"},
	        {"config/galaxy.yml:app", "config/galaxy.yml", "app"},
	        {"/srv/a:b/uwsgi.ini", "/srv/a:b/uwsgi.ini", ""},
	        {"/srv/a:b/uwsgi.ini:main", "/srv/a:b/uwsgi.ini", "main"},
	        {"x:y.ini:uwsgi", "x:y.ini", "uwsgi"},
	        {"file.ini:", "file.ini", ""},
	        {":section", "", "section"},
	        {"", "", ""},
	        {"dir/", "dir/", ""},
	        {"a:/b.ini", "a:/b.ini", ""},
	        {"http://host/uwsgi.yml", "http://host/uwsgi.yml", ""},
	        {"http://host/uwsgi.yml:app", "http://host/uwsgi.yml", "app"},
	};
	char p[64], s[16];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(p, 'x', sizeof(p));
		memset(s, 'x', sizeof(s));
		assert_int_equal(cfg_split_spec(cases[i].spec, p, sizeof(p), s, sizeof(s)), 0);
		assert_string_equal(p, cases[i].path);
		assert_string_equal(s, cases[i].section);
	}
	/* Exactly fitting buffers work; one byte less does not. */
	assert_int_equal(cfg_split_spec("abc:de", p, 4, s, 3), 0);
	assert_string_equal(p, "abc");
	assert_string_equal(s, "de");
	assert_int_equal(cfg_split_spec("abc:de", p, 3, s, 3), -1);
	assert_int_equal(cfg_split_spec("abc:de", p, 4, s, 2), -1);
	assert_int_equal(cfg_split_spec("abc", p, 3, s, 1), -1);
	assert_int_equal(cfg_split_spec("abc", p, 4, s, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_yaml_rules, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_yaml_galaxy, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ini_rules, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ini_nul_byte, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_json_rules, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_json_depth, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_json_nul_byte, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_callback_stops, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_small_err_buffer, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_same_items, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_large_file, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_include, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_split_spec, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
