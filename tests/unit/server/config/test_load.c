/*
 * test_load.c - the loader's own messages (load.c): what a user sees when
 * the environment, the command line or a config file is wrong, through
 * config_load() as main() calls it.
 *
 * Each row writes its files into a fresh directory, runs config_load() on
 * its argv and environment, and then checks the message (every substring
 * in <want> must be in it, none of <absent>) or, for a row that must load,
 * one resulting "key=value" and what went to stderr. In argv, environment,
 * file texts and expected strings "{D}" stands for the row's directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mulefarm/config_load.h"

#define TEST_TIMEOUT 10 /* seconds; SIGALRM ends a hung test */
#define VERSION      "9.8.7-test"

#define MAX_ARGS  8
#define MAX_ENV   4
#define MAX_FILES 3
#define MAX_WANT  4

struct row {
	const char *name;
	const char *argv[MAX_ARGS];
	const char *env[MAX_ENV];
	struct {
		const char *name, *text;
	} files[MAX_FILES];
	enum { REFUSED, LOADED } expect;
	const char *want[MAX_WANT]; /* REFUSED: substrings of the message */
	const char *absent;         /* REFUSED: must not be in the message */
	const char *entry;          /* LOADED: "key=value" among the entries (value expanded) */
	const char *log;            /* LOADED: must be in what went to stderr */
};

static char tmpdir[] = "/tmp/mulefarm-load-XXXXXX";
static char dir[600]; /* the row's directory */
static struct options opts;
static char err[1024];
static char logbuf[4096];

static int group_setup(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int group_teardown(void **state)
{
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
	alarm(TEST_TIMEOUT);
	memset(&opts, 0, sizeof(opts));
	err[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	opt_free(&opts);
	alarm(0);
	return 0;
}

/* <t> with every "{D}" replaced by the row's directory, in a new string. */
static char *subst(const char *t)
{
	size_t n = strlen(t) + 1, dl = strlen(dir);
	for (const char *p = strstr(t, "{D}"); p != NULL; p = strstr(p + 3, "{D}"))
		n += dl;
	char *out = malloc(n), *o = out;
	assert_non_null(out);
	while (*t != '\0') {
		if (strncmp(t, "{D}", 3) == 0) {
			memcpy(o, dir, dl);
			o += dl;
			t += 3;
		} else {
			*o++ = *t++;
		}
	}
	*o = '\0';
	return out;
}

static void write_file(const char *name, const char *text)
{
	char path[1024], *body = subst(text);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(body, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	free(body);
}

/* Runs config_load() on the row with stderr going to logbuf. */
static int load_row(const struct row *r, size_t idx)
{
	char *argv[MAX_ARGS + 1] = {0}, *envp[MAX_ENV + 1] = {0}, logpath[700];
	int argc = 0, envc = 0, rc, fd, saved;
	ssize_t n;

	snprintf(dir, sizeof(dir), "%s/%zu-%s", tmpdir, idx, r->name);
	assert_int_equal(mkdir(dir, 0700), 0);
	for (int i = 0; i < MAX_FILES && r->files[i].name != NULL; i++)
		write_file(r->files[i].name, r->files[i].text);
	for (; argc < MAX_ARGS && r->argv[argc] != NULL; argc++)
		argv[argc] = subst(r->argv[argc]);
	for (; envc < MAX_ENV && r->env[envc] != NULL; envc++)
		envp[envc] = subst(r->env[envc]);

	snprintf(logpath, sizeof(logpath), "%s/stderr", dir);
	fd = open(logpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved != -1 && dup2(fd, STDERR_FILENO) != -1);
	rc = config_load(&opts, argc, argv, envp, VERSION, err, sizeof(err));
	assert_true(dup2(saved, STDERR_FILENO) != -1);
	close(saved);
	n = pread(fd, logbuf, sizeof(logbuf) - 1, 0);
	logbuf[n > 0 ? n : 0] = '\0';
	close(fd);

	for (int i = 0; i < argc; i++)
		free(argv[i]);
	for (int i = 0; i < envc; i++)
		free(envp[i]);
	return rc;
}

/* Whether an entry "key=value" (or "key" for a bare flag) was loaded. */
static bool has_entry(const char *want)
{
	for (size_t i = 0; i < opts.n; i++) {
		const struct opt_entry *e = &opts.entries[i];
		char kv[2048];
		snprintf(kv, sizeof(kv), "%s%s%s", e->key, e->value ? "=" : "",
		         e->value ? e->value : "");
		if (strcmp(kv, want) == 0)
			return true;
	}
	return false;
}

static void check_row(const struct row *r, size_t idx)
{
	int rc = load_row(r, idx);

	if (r->expect == LOADED) {
		if (rc != 0)
			fail_msg("%s: refused: %s", r->name, err);
		if (r->entry != NULL) {
			char *want = subst(r->entry);
			if (!has_entry(want))
				fail_msg("%s: no entry '%s'", r->name, want);
			free(want);
		}
		if (r->log != NULL) {
			char *want = subst(r->log);
			if (strstr(logbuf, want) == NULL)
				fail_msg("%s: stderr \"%s\" does not hold \"%s\"", r->name, logbuf,
				         want);
			free(want);
		}
		return;
	}
	if (rc != -1)
		fail_msg("%s: accepted (rc %d)", r->name, rc);
	if (err[0] == '\0')
		fail_msg("%s: refused without a message", r->name);
	for (int i = 0; i < MAX_WANT && r->want[i] != NULL; i++) {
		char *want = subst(r->want[i]);
		if (strstr(err, want) == NULL)
			fail_msg("%s: message \"%s\" does not hold \"%s\"", r->name, err, want);
		free(want);
	}
	if (r->absent != NULL && strstr(err, r->absent) != NULL)
		fail_msg("%s: message \"%s\" holds \"%s\"", r->name, err, r->absent);
}

#define F(n, t)                                                                                    \
	{                                                                                          \
		n, t                                                                               \
	}

/*
 * The command line
 */

static const struct row cli_rows[] = {
        {"unknown_typo",
         {"--procesess", "4"},
         .want = {"unknown option --procesess", "(did you mean --processes?)"}},
        {"unknown_typo_with_value",
         {"--thread=4"},
         .want = {"unknown option --thread", "did you mean --threads?"}},
        {"unknown_alias_typo",
         {"--workrs", "2"},
         .want = {"unknown option --workrs", "did you mean --workers?"}},
        {"unknown_no_suggestion",
         {"--frobnicate-the-widgets"},
         .want = {"unknown option --frobnicate-the-widgets"},
         .absent = "did you mean"},
        {"unsupported_flag",
         {"--master", "--lazy-apps"},
         .want = {"command line: option 'lazy-apps' is not supported by mulefarm",
                  "the app is always loaded once in the master"}},
        {"unsupported_with_value",
         {"--emperor=/etc/uwsgi/vassals"},
         .want = {"option 'emperor' is not supported by mulefarm",
                  "run one mulefarm per app under systemd"}},
        {"unsupported_eval",
         {"--eval", "import os"},
         .want = {"option 'eval' is not supported by mulefarm", "load code with --module"}},
        {"set_unsupported",
         {"--set", "lazy-apps=true"},
         .want = {"option 'lazy-apps' is not supported by mulefarm",
                  "the app is always loaded once in the master"}},
        {"set_no_equals",
         {"--set", "processes"},
         .want = {"--set wants key=value, got 'processes'"}},
        {"set_no_key", {"--set", "=4"}, .want = {"--set wants key=value, got '=4'"}},
        {"set_placeholder_no_equals",
         {"--set-placeholder", "base"},
         .want = {"--set-placeholder wants key=value, got 'base'"}},
        {"set_bad_int",
         {"--set", "processes=many"},
         .want = {"option --processes: 'many' is not a non-negative integer"}},
        {"set_missing_include",
         {"--set", "ini={D}/missing.ini"},
         .want = {"{D}/missing.ini: cannot read: No such file or directory"}},
        {"bad_int",
         {"--processes", "-3"},
         .want = {"option --processes: '-3' is not a non-negative integer"}},
        {"bad_int_alias",
         {"--workers=4x"},
         .want = {"option --workers: '4x' is not a non-negative integer"}},
        {"bad_flag",
         {"--master=maybe"},
         .want = {"option --master: 'maybe' is not a boolean", "(true/false/1/0/yes/no/on/off)"}},
        {"needs_value", {"--master", "--processes"}, .want = {"option --processes needs a value"}},
        {"malformed", {"--=4"}, .want = {"malformed option '--=4'"}},
        {"unexpected_argument",
         {"app.txt"},
         .want = {"unexpected argument 'app.txt'", "must end in .yaml"}},
        {"magic_needs_file",
         {"--chdir", "%d/app"},
         .want = {"command line: option 'chdir': %d needs a config file"}},
        {"magic_unknown",
         {"--chdir", "/srv/%z"},
         .want = {"command line: option 'chdir': unknown magic variable %z"}},
        {"unterminated_placeholder",
         {"--set-placeholder", "base=/srv", "--chdir", "%(base/app"},
         .want = {"command line: option 'chdir': unterminated %( in \"%(base/app\""}},
        {"unterminated_env", {"--chdir", "$(HOME"}, .want = {"option 'chdir': unterminated $("}},
        {"unknown_placeholder",
         {"--module", "%(app).wsgi"},
         .want = {"command line: option 'module': unknown placeholder %(app)"}},
        {"at_file_missing",
         {"--chdir", "@({D}/nofile.txt)"},
         .want = {"command line: option 'chdir': @({D}/nofile.txt): cannot read",
                  "No such file or directory"}},
        {"include_magic_needs_file",
         {"--ini", "%d/x.ini"},
         .want = {"command line: option 'ini': %d needs a config file"}},
        {"include_no_path", {"--ini", ":app"}, .want = {"option 'ini' needs a file name"}},
        {"include_missing",
         {"--ini", "{D}/missing.ini"},
         .want = {"{D}/missing.ini: cannot read: No such file or directory"}},
        /* A ':' before the last '/' is part of the path, not a section:
         * the whole name is reported (found by fuzzing, where it looked
         * like a line of f.json). */
        {"include_missing_colon_in_directory",
         {"--json", "{D}/f.json:44/f.json"},
         {NULL},
         {F("f.json", "{\"uwsgi\": {}}\n")},
         .want = {"{D}/f.json:44/f.json: cannot read: No such file or directory"}},
        {"bare_missing",
         {"{D}/missing.yml"},
         .want = {"{D}/missing.yml: cannot read: No such file or directory"}},
        {"include_missing_section",
         {"--ini", "{D}/f.ini:app"},
         {NULL},
         {F("f.ini", "[uwsgi]\nmaster = true\n")},
         .want = {"{D}/f.ini: no 'app' section"}},
        {"yaml_missing_default_section",
         {"--yaml", "{D}/f.yml"},
         {NULL},
         {F("f.yml", "galaxy:\n  uwsgi:\n    master: true\n")},
         .want = {"{D}/f.yml: no 'uwsgi' section"}},
};

static void test_cli(void **state)
{
	for (size_t i = 0; i < sizeof(cli_rows) / sizeof(cli_rows[0]); i++) {
		check_row(&cli_rows[i], i);
		opt_free(&opts);
	}
}

/*
 * Config files: every message names the file and the line
 */

static const struct row file_rows[] = {
        {"ini_unsupported",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nprocesses = 2\nemperor = /etc/vassals\n")},
         .want = {"{D}/f.ini:3: option 'emperor' is not supported by mulefarm",
                  "run one mulefarm per app under systemd"}},
        {"yaml_unsupported",
         {"{D}/f.yml"},
         {NULL},
         {F("f.yml", "galaxy:\n  a: {b: c}\nuwsgi:\n  master: true\n  cheaper: 2\n")},
         .want = {"{D}/f.yml:5: option 'cheaper' is not supported by mulefarm",
                  "the number of workers is fixed"}},
        {"json_unsupported",
         {"--json", "{D}/f.json"},
         {NULL},
         {F("f.json", "{\n \"uwsgi\": {\n  \"master\": true,\n  \"spooler\": \"/tmp/s\"\n }\n}\n")},
         .want = {"{D}/f.json:4: option 'spooler' is not supported by mulefarm",
                  "use a database farm"}},
        {"ini_bad_int",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nmaster = true\nprocesses = four\n")},
         .want = {"{D}/f.ini:3: option --processes: 'four' is not a non-negative integer"}},
        {"ini_bad_int_later_section_block",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nmaster = true\n[app:main]\nx = 1\n[uwsgi]\nthreads = 2.5\n")},
         .want = {"{D}/f.ini:6: option --threads: '2.5' is not a non-negative integer"}},
        {"yaml_bad_flag",
         {"--yaml", "{D}/f.yml"},
         {NULL},
         {F("f.yml", "uwsgi:\n  processes: 2\n  master: maybe\n")},
         .want = {"{D}/f.yml:3: option --master: 'maybe' is not a boolean"}},
        {"yaml_bad_int_in_list",
         {"--yaml", "{D}/f.yml"},
         {NULL},
         {F("f.yml", "uwsgi:\n  listen:\n    - 100\n    - lots\n")},
         .want = {"{D}/f.yml:4: option --listen: 'lots' is not a non-negative integer"}},
        {"json_bad_int",
         {"--json", "{D}/f.json"},
         {NULL},
         {F("f.json", "{\"uwsgi\": {\n  \"threads\": \"x\"\n}}\n")},
         .want = {"{D}/f.json:2: option --threads: 'x' is not a non-negative integer"}},
        {"json_bad_flag_bool_ok_number_not",
         {"--json", "{D}/f.json"},
         {NULL},
         {F("f.json", "{\"uwsgi\": {\n  \"master\": true,\n  \"die-on-term\": 2\n}}\n")},
         .want = {"{D}/f.json:3: option --die-on-term: '2' is not a boolean"}},
        {"ini_bare_int",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nmaster\nprocesses\n")},
         .want = {"{D}/f.ini:3: option --processes needs a value"}},
        {"yaml_null_str",
         {"--yaml", "{D}/f.yml"},
         {NULL},
         {F("f.yml", "uwsgi:\n  module: app:application\n  chdir: ~\n")},
         .want = {"{D}/f.yml:3: option --chdir needs a value"}},
        {"yaml_section_not_mapping",
         {"--yaml", "{D}/f.yml"},
         {NULL},
         {F("f.yml", "uwsgi: [master, processes]\n")},
         .want = {"{D}/f.yml:1: section 'uwsgi' is not a mapping"}},
        {"yaml_nested_mapping",
         {"--yaml", "{D}/f.yml"},
         {NULL},
         {F("f.yml", "uwsgi:\n  master: true\n  static-map:\n    /static: static\n")},
         .want = {"{D}/f.yml:3: option 'static-map': expected a value or a list, found a "
                  "mapping"}},
        {"yaml_syntax",
         {"--yaml", "{D}/f.yml"},
         {NULL},
         {F("f.yml", "uwsgi:\n  master: true\n  mule: [a.py, b.py\n")},
         .want = {"{D}/f.yml:4: did not find expected ',' or ']'", "at line 3"}},
        /* libyaml adds a line break to a file that does not end in one; the
         * error is still on the file's last line (found by fuzzing). */
        {"yaml_syntax_at_end_without_newline",
         {"--yaml", "{D}/f.yml"},
         {NULL},
         {F("f.yml", "uwsgi:\n  master: true\n  module: \"app:application")},
         .want = {"{D}/f.yml:3: found unexpected end of stream", "at line 3"}},
        {"ini_syntax",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nmaster = true\n[broken\n")},
         .want = {"{D}/f.ini:3: "}},
        {"json_syntax",
         {"--json", "{D}/f.json"},
         {NULL},
         {F("f.json", "{\"uwsgi\": {\n  \"master\": true,\n}}\n")},
         .want = {"{D}/f.json:3: "}},
        {"yaml_named_section",
         {"--yaml", "{D}/f.yml:prod"},
         {NULL},
         {F("f.yml", "uwsgi:\n  threads: 2\nprod:\n  threads: 2\n  processes: -1\n")},
         .want = {"{D}/f.yml:5: option --processes: '-1' is not a non-negative integer"}},
        /* Expansion: the file and line of the value. */
        {"unterminated_placeholder",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nbase = /srv\nchdir = %(base/app\n")},
         .want = {"{D}/f.ini:3: option 'chdir': unterminated %( in \"%(base/app\""}},
        {"unterminated_at",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nchdir = @(dir.txt\n")},
         .want = {"{D}/f.ini:2: option 'chdir': unterminated @("}},
        {"at_file_missing",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nmaster = true\nchdir = @(nofile.txt)\n")},
         .want = {"{D}/f.ini:3: option 'chdir': @(nofile.txt): cannot read {D}/nofile.txt",
                  "No such file or directory"}},
        {"unknown_magic",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nchdir = /srv/%z\n")},
         .want = {"{D}/f.ini:2: option 'chdir': unknown magic variable %z"}},
        {"unknown_placeholder_yaml",
         {"--yaml", "{D}/f.yml"},
         {NULL},
         {F("f.yml", "uwsgi:\n  master: true\n  module: '%(app):application'\n")},
         .want = {"{D}/f.yml:3: option 'module': unknown placeholder %(app)"}},
        {"expanded_then_invalid",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nn = two\nprocesses = %(n)\n")},
         .want = {"{D}/f.ini:3: option --processes: 'two' is not a non-negative integer"}},
        /* Includes. */
        {"include_bare_key",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nmaster = true\nini\n")},
         .want = {"{D}/f.ini:3: option 'ini': needs a file name"}},
        {"include_no_path",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nyaml = :app\n")},
         .want = {"{D}/f.ini:2: option 'yaml' needs a file name"}},
        {"include_unknown_placeholder",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nini = %(env).ini\n")},
         .want = {"{D}/f.ini:2: option 'ini': unknown placeholder %(env)"}},
        {"include_missing",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nmaster = true\nini = %dnope.ini\n")},
         .want = {"{D}/f.ini:3: option 'ini': ",
                  "/nope.ini: cannot read: No such file or directory"}},
        {"include_missing_section",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nyaml = %dg.yml:app\n"), F("g.yml", "uwsgi:\n  master: true\n")},
         .want = {"{D}/f.ini:2: option 'yaml': ", "/g.yml: no 'app' section"}},
        {"include_self",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nmaster = true\nini = %p\n")},
         .want = {"{D}/f.ini:3: option 'ini'",
                  "config files include each other more than 16 deep"}},
        {"include_cycle",
         {"--ini", "{D}/a.ini"},
         {NULL},
         {F("a.ini", "[uwsgi]\nyaml = %db.yml\n"),
          F("b.yml", "uwsgi:\n  x: 1\n  ini: '%da.ini'\n")},
         .want = {"{D}/b.yml:3: option 'ini'",
                  "config files include each other more than 16 deep"}},
        {"error_in_included_file",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nmaster = true\nyaml = %dinc.yml\nprocesses = 2\n"),
          F("inc.yml", "uwsgi:\n  master: true\n  threads: many\n")},
         .want = {"/inc.yml:3: option --threads: 'many' is not a non-negative integer"}},
        {"unsupported_in_included_file",
         {"--yaml", "{D}/f.yml"},
         {NULL},
         {F("f.yml", "uwsgi:\n  ini: '%dinc.ini'\n"),
          F("inc.ini", "[uwsgi]\n\nattach-daemon = x\n")},
         .want = {"/inc.ini:3: option 'attach-daemon' is not supported by mulefarm",
                  "let systemd run other daemons"}},
};

static void test_files(void **state)
{
	for (size_t i = 0; i < sizeof(file_rows) / sizeof(file_rows[0]); i++) {
		check_row(&file_rows[i], 100 + i);
		opt_free(&opts);
	}
}

/*
 * The environment: UWSGI_<OPT> and MULEFARM_<OPT>
 */

static const struct row env_rows[] = {
        {"bad_int",
         {NULL},
         {"UWSGI_PROCESSES=lots"},
         .want = {"environment: option --processes: 'lots' is not a non-negative integer"}},
        {"bad_flag",
         {NULL},
         {"MULEFARM_MASTER=sure"},
         .want = {"environment: option --master: 'sure' is not a boolean"}},
        {"expansion",
         {NULL},
         {"MULEFARM_CHDIR=%(base"},
         .want = {"environment: option 'chdir': unterminated %("},
         .absent = "command line"},
        {"magic_needs_file",
         {NULL},
         {"UWSGI_CHDIR=%d"},
         .want = {"environment: option 'chdir': %d needs a config file"}},
        {"include_missing",
         {NULL},
         {"UWSGI_INI={D}/missing.ini"},
         .want = {"environment: option 'ini': {D}/missing.ini: cannot read: No such file or "
                  "directory"}},
        {"include_empty",
         {NULL},
         {"UWSGI_YAML="},
         .want = {"environment: option 'yaml' needs a file name"}},
        {"include_error_in_file",
         {NULL},
         {"UWSGI_INI={D}/f.ini"},
         {F("f.ini", "[uwsgi]\nprocesses = x\n")},
         .want = {"{D}/f.ini:2: option --processes: 'x' is not a non-negative integer"}},
};

static void test_env(void **state)
{
	for (size_t i = 0; i < sizeof(env_rows) / sizeof(env_rows[0]); i++) {
		check_row(&env_rows[i], 200 + i);
		opt_free(&opts);
	}
}

/*
 * What must load: accepted-and-ignored options, placeholders, and the
 * messages they log.
 */

static const struct row ok_rows[] = {
        {"ignored_in_ini",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nthunder-lock = true\nplugins = python3\n")},
         .expect = LOADED,
         .entry = "plugins=python3",
         .log = "{D}/f.ini:2: option 'thunder-lock' needs nothing in mulefarm: accepted and "
                "ignored"},
        {"ignored_in_yaml",
         {"{D}/f.yml"},
         {NULL},
         {F("f.yml", "uwsgi:\n  master: true\n  offload-threads: 2\n  vacuum: true\n")},
         .expect = LOADED,
         .entry = "offload-threads=2",
         .log = "{D}/f.yml:3: option 'offload-threads' needs nothing in mulefarm"},
        {"ignored_on_cli",
         {"--thunder-lock", "--plugin=python3", "--need-app"},
         .expect = LOADED,
         .entry = "plugin=python3",
         .log = "command line: option 'need-app' needs nothing in mulefarm"},
        {"ignored_on_cli_takes_next_word",
         {"--plugin", "python3", "--offload-threads", "2", "--master"},
         .expect = LOADED,
         .entry = "offload-threads=2",
         .log = "command line: option 'plugin' needs nothing in mulefarm"},
        {"ignored_on_cli_leaves_config_file",
         {"--vacuum", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nthreads = 7\n")},
         .expect = LOADED,
         .entry = "threads=7"},
        {"typo_in_file_is_placeholder",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nprocesess = 4\n")},
         .expect = LOADED,
         .entry = "procesess=4",
         .log = "{D}/f.ini:2: 'procesess' is not an option (did you mean 'processes'?): kept "
                "as a placeholder"},
        {"unknown_env_skipped",
         {"--master"},
         {"UWSGI_NO_SUCH_THING=1", "UWSGI_LAZY_APPS=1", "MULEFARM_THREADS=3"},
         .expect = LOADED,
         .entry = "threads=3"},
        {"include_expands_placeholder",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nenv = prod\nini = %d%(env).ini\n"),
          F("prod.ini", "[uwsgi]\nprocesses = 3\n")},
         .expect = LOADED,
         .entry = "processes=3"},
        /* A placeholder first read by an include's name is expanded with the
         * version like every other value. */
        {"include_lookup_keeps_version",
         {"--ini", "{D}/f.ini"},
         {NULL},
         {F("f.ini", "[uwsgi]\nver = v%V\nini = %d%(ver).ini\n"),
          F("v" VERSION ".ini", "[uwsgi]\nchdir = /srv/%(ver)\n")},
         .expect = LOADED,
         .entry = "chdir=/srv/v" VERSION},
};

static void test_loaded(void **state)
{
	for (size_t i = 0; i < sizeof(ok_rows) / sizeof(ok_rows[0]); i++) {
		check_row(&ok_rows[i], 300 + i);
		opt_free(&opts);
	}
}

/* The suggestion is the nearest option or alias, and nothing for far-off
 * names. */
static void test_suggest(void **state)
{
	assert_string_equal(config_suggest("procesess"), "processes");
	assert_string_equal(config_suggest("wsgifile"), "wsgi-file");
	assert_string_equal(config_suggest("static-mpa"), "static-map");
	assert_string_equal(config_suggest("theads"), "threads");
	assert_string_equal(config_suggest("workrs"), "workers"); /* an alias */
	assert_string_equal(config_suggest("pythonpth"), "pythonpath");
	assert_null(config_suggest("completely-unrelated-name"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_cli), T(test_files), T(test_env), T(test_loaded), T(test_suggest),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
