/*
 * test_options.c - the options table (options.c) and the command-line
 * parser and generated reference (cli.c).
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

#include "mulefarm/options.h"

#define TEST_TIMEOUT 10 /* seconds; SIGALRM ends a hung test */

/* Each test starts from an empty options object and a blank message. */
static struct options opts;
static char err[512];

static int setup(void **state)
{
	alarm(TEST_TIMEOUT);
	memset(&opts, 0, sizeof(opts));
	memset(err, 0, sizeof(err));
	return 0;
}

static int teardown(void **state)
{
	opt_free(&opts);
	alarm(0);
	return 0;
}

/* Parses a NULL-terminated argument list (argv[0] excluded). */
static int parse_argv(char **argv)
{
	int argc = 0;
	while (argv[argc] != NULL)
		argc++;
	return cli_parse(&opts, argc, argv, err, sizeof(err));
}

#define PARSE(...) parse_argv((char *[]){__VA_ARGS__, NULL})

/* Parses arguments that must be accepted. */
#define PARSE_OK(...)                                                                              \
	do {                                                                                       \
		if (PARSE(__VA_ARGS__) != 0)                                                       \
			fail_msg("cli_parse refused: %s", err);                                    \
	} while (0)

/* Parses arguments that must be refused with a message holding <a> and <b>. */
static void assert_refused(char **argv, const char *a, const char *b)
{
	opt_free(&opts);
	err[0] = '\0';
	if (parse_argv(argv) != -1)
		fail_msg("accepted '%s'", argv[0]);
	if (err[0] == '\0')
		fail_msg("no message for '%s'", argv[0]);
	if (strstr(err, a) == NULL || (b != NULL && strstr(err, b) == NULL))
		fail_msg("message \"%s\" does not name \"%s\"%s%s", err, a, b ? " and " : "",
		         b ? b : "");
}

#define REFUSED(a, b, ...) assert_refused((char *[]){__VA_ARGS__, NULL}, a, b)

static void assert_entry(size_t i, enum opt_id id, const char *key, const char *value)
{
	assert_true(i < opts.n);
	assert_int_equal(opts.entries[i].id, id);
	assert_string_equal(opts.entries[i].key, key);
	if (value == NULL)
		assert_null(opts.entries[i].value);
	else
		assert_string_equal(opts.entries[i].value, value);
}

/*
 * The table
 */

static void test_names_resolve(void **state)
{
	for (int i = 0; i < OPT__COUNT; i++)
		assert_int_equal(opt_lookup(opt_table[i].name), i);
	assert_int_equal(opt_lookup("no-such-option"), -1);
	assert_int_equal(opt_lookup(""), -1);
	assert_int_equal(opt_lookup("PROCESSES"), -1); /* names are case-sensitive */
}

static void test_aliases_resolve(void **state)
{
	/* An alias spelled like another option's name would be shadowed. */
#define X(alias, id)                                                                               \
	if (opt_lookup(alias) != OPT_##id)                                                         \
		fail_msg("alias %s resolves to %d, not --%s", alias, opt_lookup(alias),            \
		         opt_table[OPT_##id].name);
	MF_ALIASES(X)
#undef X
}

static void test_defaults_are_valid(void **state)
{
	/* Every default must pass the validation a given value would. */
	for (int i = 0; i < OPT__COUNT; i++) {
		const struct opt_info *info = &opt_table[i];
		char *end;
		if (info->kind == OPT_INT && i != OPT_PROCESSES) { /* processes: CPU cores */
			assert_non_null(info->def);
			strtol(info->def, &end, 10);
			assert_true(end != info->def && *end == '\0');
		}
		if (info->kind == OPT_OPT && i != OPT_MULE) /* a bare --mule is the default loop */
			assert_non_null(info->def);
		assert_non_null(info->help);
	}
}

/*
 * Accessors without arguments: the table defaults
 */

static void test_absent_defaults(void **state)
{
	PARSE_OK("--master");
	for (int i = 0; i < OPT__COUNT; i++) {
		if (i == OPT_MASTER)
			continue;
		assert_false(opt_given(&opts, (enum opt_id)i));
		/* an absent flag is its default: off unless the table says "1" */
		bool on = opt_table[i].kind == OPT_FLAG && opt_table[i].def != NULL &&
		          strcmp(opt_table[i].def, "1") == 0;
		assert_int_equal(opt_flag(&opts, (enum opt_id)i), on);
		const char *v = opt_str(&opts, (enum opt_id)i);
		if (opt_table[i].def == NULL)
			assert_null(v);
		else
			assert_string_equal(v, opt_table[i].def);
		if (opt_table[i].kind == OPT_INT && opt_table[i].def != NULL)
			assert_int_equal(opt_int(&opts, (enum opt_id)i),
			                 strtol(opt_table[i].def, NULL, 10));
	}
	/* No table default: config_settle() uses one worker per CPU core. */
	assert_int_equal(opt_int(&opts, OPT_PROCESSES), 0);
	assert_int_equal(opt_int(&opts, OPT_THREADS), 4);
	assert_int_equal(opt_int(&opts, OPT_LISTEN), 100);
	assert_int_equal(opt_int(&opts, OPT_BUFFER_SIZE), 4096);
	assert_int_equal(opt_int(&opts, OPT_LIMIT_POST), 0);
	assert_int_equal(opt_int(&opts, OPT_SOCKET_TIMEOUT), 4);
	assert_string_equal(opt_str(&opts, OPT_CALLABLE), "application");
	assert_null(opt_str(&opts, OPT_MODULE));
	assert_null(opt_str(&opts, OPT_HTTP_SOCKET));
	assert_int_equal(opt_int(&opts, OPT_MODULE), 0); /* no default: 0 */
}

static void test_empty_argv(void **state)
{
	assert_int_equal(cli_parse(&opts, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(opts.n, 0);
	assert_false(opt_given(&opts, OPT_PROCESSES));
	assert_int_equal(opt_int(&opts, OPT_PROCESSES), 0);
}

/*
 * Value forms
 */

static void test_separate_value(void **state)
{
	PARSE_OK("--processes", "4", "--http-socket", ":8080", "--module", "pkg.mod:app");
	assert_int_equal(opts.n, 3);
	assert_entry(0, OPT_PROCESSES, "processes", "4");
	assert_entry(1, OPT_HTTP_SOCKET, "http-socket", ":8080");
	assert_entry(2, OPT_MODULE, "module", "pkg.mod:app");
	assert_true(opt_given(&opts, OPT_PROCESSES));
	assert_int_equal(opt_int(&opts, OPT_PROCESSES), 4);
	assert_string_equal(opt_str(&opts, OPT_HTTP_SOCKET), ":8080");
}

static void test_equals_value(void **state)
{
	PARSE_OK("--processes=4", "--pythonpath=/a=b", "--threads=0");
	assert_int_equal(opts.n, 3);
	assert_entry(0, OPT_PROCESSES, "processes", "4");
	assert_entry(1, OPT_PYTHONPATH, "pythonpath", "/a=b"); /* split at the first '=' */
	assert_int_equal(opt_int(&opts, OPT_PROCESSES), 4);
	assert_int_equal(opt_int(&opts, OPT_THREADS), 0);
}

static void test_str_takes_next_argument(void **state)
{
	/* A string option takes the next argument whatever it is; a lone "-"
	 * is a value. */
	PARSE_OK("--wsgi-file", "-", "--chdir", "-x");
	assert_string_equal(opt_str(&opts, OPT_WSGI_FILE), "-");
	assert_string_equal(opt_str(&opts, OPT_CHDIR), "-x");
}

static void test_every_option_in_every_form(void **state)
{
	for (int i = 0; i < OPT__COUNT; i++) {
		const struct opt_info *info = &opt_table[i];
		const char *value = info->kind == OPT_INT    ? "7"
		                    : info->kind == OPT_FLAG ? "yes"
		                    : info->kind == OPT_OPT  ? "640"
		                                             : "v";
		char name[128], joined[160];
		snprintf(name, sizeof(name), "--%s", info->name);
		snprintf(joined, sizeof(joined), "--%s=%s", info->name, value);

		opt_free(&opts);
		if (PARSE(joined) != 0)
			fail_msg("%s: %s", joined, err);
		assert_true(opt_given(&opts, (enum opt_id)i));
		assert_string_equal(opt_str(&opts, (enum opt_id)i), value);

		opt_free(&opts);
		int rc = info->kind == OPT_FLAG ? PARSE(name) : PARSE(name, (char *)value);
		if (rc != 0)
			fail_msg("%s %s: %s", name, value, err);
		assert_int_equal(opts.n, 1);
		assert_true(opt_given(&opts, (enum opt_id)i));
	}
}

/*
 * Aliases
 */

static void test_flag_on_by_default(void **state)
{
	PARSE_OK("--master");
	assert_true(opt_flag(&opts, OPT_SCHED_BATCH)); /* absent: the default */
	opt_free(&opts);
	PARSE_OK("--sched-batch=0");
	assert_false(opt_flag(&opts, OPT_SCHED_BATCH));
	opt_free(&opts);
	PARSE_OK("--sched-batch", "--sched-batch=off", "--sched-batch");
	assert_true(opt_flag(&opts, OPT_SCHED_BATCH)); /* the last one wins */
}

static void test_short_alias(void **state)
{
	PARSE_OK("-p", "2", "-M", "-l", "50", "-b=8192");
	assert_int_equal(opts.n, 4);
	assert_entry(0, OPT_PROCESSES, "p", "2"); /* the key is kept as typed */
	assert_entry(1, OPT_MASTER, "M", NULL);
	assert_int_equal(opt_int(&opts, OPT_PROCESSES), 2);
	assert_true(opt_flag(&opts, OPT_MASTER));
	assert_int_equal(opt_int(&opts, OPT_LISTEN), 50);
	assert_int_equal(opt_int(&opts, OPT_BUFFER_SIZE), 8192);
}

static void test_short_alias_is_case_sensitive(void **state)
{
	PARSE_OK("-l", "5", "-L");
	assert_int_equal(opt_int(&opts, OPT_LISTEN), 5);
	assert_true(opt_flag(&opts, OPT_DISABLE_LOGGING));
}

static void test_long_alias(void **state)
{
	PARSE_OK("--workers", "3", "--home", "/srv/venv", "--pp", "/srv/lib");
	assert_int_equal(opts.n, 3);
	assert_entry(0, OPT_PROCESSES, "workers", "3");
	assert_entry(1, OPT_VIRTUALENV, "home", "/srv/venv");
	assert_entry(2, OPT_PYTHONPATH, "pp", "/srv/lib");
	assert_int_equal(opt_int(&opts, OPT_PROCESSES), 3);
	assert_string_equal(opt_str(&opts, OPT_VIRTUALENV), "/srv/venv");
	assert_string_equal(opt_str(&opts, OPT_PYTHONPATH), "/srv/lib");
}

static void test_alias_with_equals(void **state)
{
	PARSE_OK("--venv=/v", "--wsgi=app:make()");
	assert_string_equal(opt_str(&opts, OPT_VIRTUALENV), "/v");
	assert_string_equal(opt_str(&opts, OPT_MODULE), "app:make()");
}

/*
 * Repetition
 */

static void test_repeated_keeps_order(void **state)
{
	PARSE_OK("--http-socket", ":1", "--http", ":2", "--pythonpath", "/a", "--http-socket", ":3",
	         "--python-path", "/b");
	assert_int_equal(opts.n, 5);
	assert_entry(0, OPT_HTTP_SOCKET, "http-socket", ":1");
	assert_entry(1, OPT_HTTP, "http", ":2");
	assert_entry(2, OPT_PYTHONPATH, "pythonpath", "/a");
	assert_entry(3, OPT_HTTP_SOCKET, "http-socket", ":3");
	assert_entry(4, OPT_PYTHONPATH, "python-path", "/b");
	assert_string_equal(opt_str(&opts, OPT_HTTP_SOCKET), ":3");
	assert_string_equal(opt_str(&opts, OPT_PYTHONPATH), "/b");
}

static void test_last_wins_across_aliases(void **state)
{
	PARSE_OK("--processes", "2", "--workers", "7", "-p", "3", "--threads", "4");
	assert_int_equal(opts.n, 4);
	assert_int_equal(opt_int(&opts, OPT_PROCESSES), 3);
	assert_int_equal(opt_int(&opts, OPT_THREADS), 4);
}

static void test_many_entries(void **state)
{
	/* More occurrences than the first allocation holds. */
	char *argv[201];
	char vals[100][16];
	for (int i = 0; i < 100; i++) {
		snprintf(vals[i], sizeof(vals[i]), "/p%d", i);
		argv[2 * i] = "--pp";
		argv[2 * i + 1] = vals[i];
	}
	argv[200] = NULL;
	assert_int_equal(parse_argv(argv), 0);
	assert_int_equal(opts.n, 100);
	for (size_t i = 0; i < 100; i++)
		assert_string_equal(opts.entries[i].value, vals[i]);
	assert_string_equal(opt_str(&opts, OPT_PYTHONPATH), "/p99");
}

/*
 * Flags
 */

static void test_flag_bare(void **state)
{
	PARSE_OK("--master", "--processes", "2", "--enable-threads");
	assert_int_equal(opts.n, 3);
	assert_entry(0, OPT_MASTER, "master", NULL);
	assert_true(opt_flag(&opts, OPT_MASTER));
	assert_true(opt_flag(&opts, OPT_ENABLE_THREADS));
	assert_int_equal(opt_int(&opts, OPT_PROCESSES), 2);
	assert_false(opt_flag(&opts, OPT_DIE_ON_TERM));
}

static void test_flag_values(void **state)
{
	static const struct {
		const char *v;
		bool set;
	} cases[] = {
	        {"true", true}, {"TRUE", true}, {"1", true},      {"yes", true},    {"Yes", true},
	        {"on", true},   {"ON", true},   {"false", false}, {"False", false}, {"0", false},
	        {"no", false},  {"NO", false},  {"off", false},   {"oFf", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char arg[64];
		snprintf(arg, sizeof(arg), "--master=%s", cases[i].v);
		opt_free(&opts);
		if (PARSE(arg) != 0)
			fail_msg("%s: %s", arg, err);
		assert_true(opt_given(&opts, OPT_MASTER));
		if (opt_flag(&opts, OPT_MASTER) != cases[i].set)
			fail_msg("%s read as %d", arg, !cases[i].set);
	}
}

static void test_flag_last_wins(void **state)
{
	PARSE_OK("--master", "--master=false");
	assert_false(opt_flag(&opts, OPT_MASTER));
	assert_true(opt_given(&opts, OPT_MASTER));
	opt_free(&opts);
	PARSE_OK("--master=off", "-M");
	assert_true(opt_flag(&opts, OPT_MASTER));
}

static void test_flag_does_not_take_next_argument(void **state)
{
	/* A flag's value is only ever given with '='. */
	REFUSED("true", NULL, "--master", "true");
}

/*
 * Optional values (OPT_OPT)
 */

static void test_opt_bare_means_default(void **state)
{
	PARSE_OK("--chmod-socket");
	assert_int_equal(opts.n, 1);
	assert_entry(0, OPT_CHMOD_SOCKET, "chmod-socket", NULL);
	assert_true(opt_given(&opts, OPT_CHMOD_SOCKET));
	assert_string_equal(opt_str(&opts, OPT_CHMOD_SOCKET), "666");
}

static void test_opt_equals(void **state)
{
	PARSE_OK("--chmod-socket=660");
	assert_entry(0, OPT_CHMOD_SOCKET, "chmod-socket", "660");
	assert_string_equal(opt_str(&opts, OPT_CHMOD_SOCKET), "660");
}

static void test_opt_separate_value(void **state)
{
	PARSE_OK("--chmod-socket", "660", "--processes", "2");
	assert_int_equal(opts.n, 2);
	assert_entry(0, OPT_CHMOD_SOCKET, "chmod-socket", "660");
	assert_string_equal(opt_str(&opts, OPT_CHMOD_SOCKET), "660");
	assert_int_equal(opt_int(&opts, OPT_PROCESSES), 2);
}

static void test_opt_does_not_swallow_option(void **state)
{
	PARSE_OK("--chmod-socket", "--master");
	assert_int_equal(opts.n, 2);
	assert_entry(0, OPT_CHMOD_SOCKET, "chmod-socket", NULL);
	assert_entry(1, OPT_MASTER, "master", NULL);
	assert_string_equal(opt_str(&opts, OPT_CHMOD_SOCKET), "666");
	assert_true(opt_flag(&opts, OPT_MASTER));

	opt_free(&opts);
	PARSE_OK("--chmod-socket", "-p", "2");
	assert_string_equal(opt_str(&opts, OPT_CHMOD_SOCKET), "666");
	assert_int_equal(opt_int(&opts, OPT_PROCESSES), 2);
}

static void test_opt_bare_at_end(void **state)
{
	PARSE_OK("--master", "--chmod-socket");
	assert_int_equal(opts.n, 2);
	assert_string_equal(opt_str(&opts, OPT_CHMOD_SOCKET), "666");
}

static void test_opt_bare_after_value(void **state)
{
	/* Bare after a value: the default again, not the earlier value. */
	PARSE_OK("--chmod-socket=600", "--chmod-socket");
	assert_string_equal(opt_str(&opts, OPT_CHMOD_SOCKET), "666");
}

/*
 * Errors
 */

static void test_unknown_option(void **state)
{
	REFUSED("bogus", NULL, "--bogus");
	REFUSED("bogus", NULL, "--processes", "2", "--bogus=1");
	REFUSED("-z", NULL, "-z");
	REFUSED("---master", NULL, "---master");
}

static void test_missing_value(void **state)
{
	REFUSED("processes", NULL, "--processes");
	REFUSED("http-socket", NULL, "--master", "--http-socket");
	REFUSED("module", NULL, "--module");
	REFUSED("workers", NULL, "--workers"); /* named as typed */
}

static void test_not_an_integer(void **state)
{
	REFUSED("processes", "abc", "--processes", "abc");
	REFUSED("processes", "12x", "--processes=12x");
	REFUSED("processes", "-1", "--processes", "-1");
	REFUSED("listen", "''", "--listen=");
	REFUSED("threads", "1.5", "--threads", "1.5");
	REFUSED("buffer-size", "99999999999999999999999", "--buffer-size",
	        "99999999999999999999999");
	REFUSED("abc", NULL, "-p", "abc");
}

static void test_not_a_boolean(void **state)
{
	REFUSED("master", "maybe", "--master=maybe");
	REFUSED("master", "2", "--master=2");
	REFUSED("master", "''", "--master=");
	REFUSED("disable-logging", "tru", "--disable-logging=tru");
}

static void test_unexpected_argument(void **state)
{
	REFUSED("app.txt", NULL, "app.txt");
	REFUSED("'-'", NULL, "--master", "-");
}

/* A bare argument names a config file or the app by its extension. */
static void test_bare_argument_by_extension(void **state)
{
	static const char *const cases[][2] = {
	        {"app.py", "wsgi-file"}, {"site.yaml", "yaml"},    {"site.yml", "yaml"},
	        {"site.ini", "ini"},     {"site.ini:prod", "ini"}, {"site.json", "json"},
	        {"site.js", "json"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct options o = {0};
		char msg[256];
		char *argv[] = {(char *)cases[i][0]};
		assert_int_equal(cli_parse(&o, 1, argv, msg, sizeof(msg)), 0);
		assert_int_equal(o.n, 1);
		assert_string_equal(o.entries[0].key, cases[i][1]);
		assert_string_equal(o.entries[0].value, cases[i][0]);
		opt_free(&o);
	}
}

static void test_malformed_option(void **state)
{
	REFUSED("--=1", NULL, "--=1");
	REFUSED("'--'", NULL, "--");
}

static void test_opt_add_validates(void **state)
{
	assert_int_equal(opt_add(&opts, "threads", "8", err, sizeof(err)), 0);
	assert_int_equal(opt_add(&opts, "threads", "x", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "threads"));
	assert_int_equal(opt_add(&opts, "nope", "1", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nope"));
	assert_int_equal(opt_add(&opts, "threads", NULL, err, sizeof(err)), -1);
	assert_int_equal(opts.n, 1); /* refused values are not stored */
	assert_int_equal(opt_int(&opts, OPT_THREADS), 8);
}

/*
 * Generated help and reference
 */

static char *capture(void (*print)(FILE *))
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_non_null(f);
	print(f);
	assert_int_equal(fclose(f), 0);
	assert_non_null(out);
	return out;
}

static void test_markdown_lists_every_option(void **state)
{
	char *md = capture(cli_print_markdown);
	for (int i = 0; i < OPT__COUNT; i++) {
		char want[160];
		snprintf(want, sizeof(want), "| `--%s` |", opt_table[i].name);
		if (strstr(md, want) == NULL)
			fail_msg("options.md lacks %s", want);
	}
#define X(alias, id)                                                                               \
	{                                                                                          \
		char want[160];                                                                    \
		snprintf(want, sizeof(want), "`%s%s` | `--%s` |", alias[1] ? "--" : "-", alias,    \
		         opt_table[OPT_##id].name);                                                \
		if (strstr(md, want) == NULL)                                                      \
			fail_msg("options.md lacks alias row %s", want);                           \
	}
	MF_ALIASES(X)
#undef X
	free(md);
}

static void test_markdown_rows_are_well_formed(void **state)
{
	/* A '|' or newline in a help text would break the table. */
	char *md = capture(cli_print_markdown);
	int rows = 0;
	for (char *line = strtok(md, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		if (strncmp(line, "| `--", 5) != 0 || strstr(line, "` | `--") != NULL)
			continue;
		int bars = 0;
		for (char *p = line; *p; p++)
			bars += *p == '|';
		if (bars != 6)
			fail_msg("row with %d cells: %s", bars - 1, line);
		rows++;
	}
	assert_int_equal(rows, OPT__COUNT);
	free(md);
}

static void test_help_lists_every_option(void **state)
{
	char *help = capture(cli_print_help);
	for (int i = 0; i < OPT__COUNT; i++) {
		char want[160];
		snprintf(want, sizeof(want), "--%s", opt_table[i].name);
		if (strstr(help, want) == NULL)
			fail_msg("--help lacks %s", want);
	}
	free(help);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_names_resolve),
	        T(test_aliases_resolve),
	        T(test_defaults_are_valid),
	        T(test_absent_defaults),
	        T(test_empty_argv),
	        T(test_separate_value),
	        T(test_equals_value),
	        T(test_str_takes_next_argument),
	        T(test_every_option_in_every_form),
	        T(test_flag_on_by_default),
	        T(test_short_alias),
	        T(test_short_alias_is_case_sensitive),
	        T(test_long_alias),
	        T(test_alias_with_equals),
	        T(test_repeated_keeps_order),
	        T(test_last_wins_across_aliases),
	        T(test_many_entries),
	        T(test_flag_bare),
	        T(test_flag_values),
	        T(test_flag_last_wins),
	        T(test_flag_does_not_take_next_argument),
	        T(test_opt_bare_means_default),
	        T(test_opt_equals),
	        T(test_opt_separate_value),
	        T(test_opt_does_not_swallow_option),
	        T(test_opt_bare_at_end),
	        T(test_opt_bare_after_value),
	        T(test_unknown_option),
	        T(test_missing_value),
	        T(test_not_an_integer),
	        T(test_not_a_boolean),
	        T(test_unexpected_argument),
	        T(test_bare_argument_by_extension),
	        T(test_malformed_option),
	        T(test_opt_add_validates),
	        T(test_markdown_lists_every_option),
	        T(test_markdown_rows_are_well_formed),
	        T(test_help_lists_every_option),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
