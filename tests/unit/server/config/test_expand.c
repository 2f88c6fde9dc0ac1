/*
 * test_expand.c - value expansion (expand.c), through cfg_expand() only,
 * on a temporary tree that is also the working directory:
 *
 *   <tmp>/one.txt            "root-one\n"
 *   <tmp>/cfg/app.conf.yml   the config file (its content is not read)
 *   <tmp>/cfg/one.txt        "cfg-one\n"
 *   <tmp>/cfg/sub/inner.txt  "inner\n"
 *   <tmp>/cfg/...            the @(file) cases, see files[]
 *   <tmp>/link -> cfg
 *
 * One table row per rule and per error message. In a row, "{R}" stands
 * for the real path of <tmp>, and {h} {k} {u} {U} {g} {G} for what the
 * test computes for %h %k %u %U %g %G.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/config_expand.h"

#define TEST_TIMEOUT 10 /* seconds; SIGALRM ends a hung test */
#define MAX          65536
#define VERSION      "2.0.18-mf"
#define KNOWN        " (known: d n p s e x h k t u U g G V %)"
#define BIG          40000 /* bytes of MF_EXPAND_BIG: two pass the cap */

/* The config file a row is read from. */
enum cfgf {
	F_NONE,    /* command line */
	F_REL,     /* "cfg/app.conf.yml" */
	F_ABS,     /* "<tmp>/cfg/app.conf.yml" */
	F_LINK,    /* "link/app.conf.yml", through the symlink */
	F_BARE,    /* "app.yml", in the working directory */
	F_ROOT,    /* "/app.ini" */
	F_NOEXT,   /* "cfg/Makefile" */
	F_DOTFILE, /* "cfg/.uwsgi" */
	F_PCTNAME, /* "cfg/%(name).yml" */
	F_NODIR,   /* "nodir/app.yml", a directory that does not exist */
	F__COUNT
};

struct row {
	const char *what;
	enum cfgf file;
	const char *in;
	const char *want; /* the result, or NULL: must fail with <msg> */
	const char *msg;
};

#define OK(what, file, in, want)                                                                   \
	{                                                                                          \
		what, file, in, want, NULL                                                         \
	}
#define BAD(what, file, in, msg)                                                                   \
	{                                                                                          \
		what, file, in, NULL, msg                                                          \
	}

static const struct row rows[] = {
        /* no construct */
        OK("plain text is copied", F_NONE, "hello world", "hello world"),
        OK("empty value", F_NONE, "", ""),
        OK("$ and @ without ( are literal", F_NONE, "a$b@c$ @ (x) $", "a$b@c$ @ (x) $"),

        /* magic variables */
        OK("%d: real directory and '/'", F_REL, "%d", "{R}/cfg/"),
        OK("%d: absolute file", F_ABS, "%d", "{R}/cfg/"),
        OK("%d: symlinked directory resolved", F_LINK, "%d", "{R}/cfg/"),
        OK("%d: file without a directory", F_BARE, "%d", "{R}/"),
        OK("%d: file in /", F_ROOT, "%d", "/"),
        OK("%p: %d and the name", F_LINK, "%p", "{R}/cfg/app.conf.yml"),
        OK("%p: file in /", F_ROOT, "%p", "/app.ini"),
        OK("%s: the name", F_LINK, "%s", "app.conf.yml"),
        OK("%n: drops the last extension only", F_REL, "%n", "app.conf"),
        OK("%e: the last extension", F_REL, "%e", "yml"),
        OK("%n: no extension", F_NOEXT, "%n", "Makefile"),
        OK("%e: no extension", F_NOEXT, "[%e]", "[]"),
        OK("%n %e: a dot file", F_DOTFILE, "[%n][%e]", "[][uwsgi]"),
        OK("%x: name and section", F_REL, "%x", "app.conf.yml:dev"),
        OK("%h: host name", F_NONE, "%h", "{h}"),
        OK("%k: online CPUs", F_NONE, "%k", "{k}"),
        OK("%u: uid", F_NONE, "%u", "{u}"),
        OK("%U: user name", F_NONE, "%U", "{U}"),
        OK("%g: gid", F_NONE, "%g", "{g}"),
        OK("%G: group name", F_NONE, "%G", "{G}"),
        OK("%V: version", F_NONE, "v%V", "v" VERSION),
        OK("%%: a '%'", F_NONE, "100%%", "100%"),
        OK("%%(: not a placeholder", F_NONE, "%%(name)", "%(name)"),
        OK("%%%(: a '%' then a placeholder", F_NONE, "%%%(name)", "%value"),
        OK("magic inside text", F_REL, "%dlog/%n.log", "{R}/cfg/log/app.conf.log"),
        OK("magic values are read by later passes", F_PCTNAME, "%n", "value"),

        /* $(ENV) */
        OK("$(VAR)", F_NONE, "$(MF_EXPAND_A)", "alpha"),
        OK("$(VAR) twice", F_NONE, "$(MF_EXPAND_A)-$(MF_EXPAND_A)", "alpha-alpha"),
        OK("$(UNSET) is empty", F_NONE, "[$(MF_EXPAND_UNSET)]", "[]"),
        OK("$() is empty", F_NONE, "[$()]", "[]"),
        OK("$(: the first ) ends the name", F_NONE, "$(MF_EXPAND_A))", "alpha)"),
        OK("$ value is read by the %( pass", F_NONE, "$(MF_EXPAND_P)", "value"),
        OK("$ value is read by the @( pass", F_REL, "$(MF_EXPAND_F)", "cfg-one"),
        OK("$ value is not read by the magic pass", F_REL, "$(MF_EXPAND_D)", "%d"),
        OK("$ value is not read by its own pass", F_NONE, "$(MF_EXPAND_DOLLAR)", "$(MF_EXPAND_A)"),
        OK("%% in a $ value is no escape", F_NONE, "$(MF_EXPAND_PCT)", "%value"),
        OK("$ name from a magic variable", F_NONE, "$(MF_EXPAND_%%)", "percent"),

        /* @(file) */
        OK("@(rel): the config file's directory", F_REL, "@(one.txt)", "cfg-one"),
        OK("@(rel): absolute config file", F_ABS, "@(one.txt)", "cfg-one"),
        OK("@(rel): config file through a symlink", F_LINK, "@(one.txt)", "cfg-one"),
        OK("@(rel): command line: working directory", F_NONE, "@(one.txt)", "root-one"),
        OK("@(rel): config file without a directory", F_BARE, "@(one.txt)", "root-one"),
        OK("@(abs)", F_REL, "@({R}/one.txt)", "root-one"),
        OK("@(rel/sub)", F_REL, "@(sub/inner.txt)", "inner"),
        OK("@: one trailing newline dropped", F_REL, "@(two.txt)", "two\n"),
        OK("@: \\r is kept", F_REL, "@(crlf.txt)", "x\r"),
        OK("@: no trailing newline", F_REL, "@(plain.txt)", "plain"),
        OK("@: empty file", F_REL, "[@(empty.txt)]", "[]"),
        OK("@ content is read by the %( pass", F_REL, "@(pct.txt)", "value"),
        OK("@ content is not read by the $( pass", F_REL, "@(env.txt)", "$(MF_EXPAND_A)"),
        OK("@ content is not read by the magic pass", F_REL, "@(magic.txt)", "%d"),

        /* %(name) */
        OK("%(name)", F_NONE, "%(name)", "value"),
        OK("%(: the first ) ends the name", F_NONE, "%(name))", "value)"),
        OK("% value is not read for $(", F_NONE, "%(env)", "$(MF_EXPAND_A)"),
        OK("% value is not read for @(", F_NONE, "%(at)", "@(one.txt)"),
        OK("% value is not read for %(", F_NONE, "%(pct)", "%(name)"),
        OK("% value is not read for magic", F_NONE, "%(magic)", "%d"),
        OK("% empty value", F_NONE, "[%(empty)]", "[]"),
        OK("% name holding %%", F_NONE, "%(a%%b)", "percent"),
        OK("% name from $(", F_NONE, "%($(MF_EXPAND_NAME))", "value"),
        OK("all four, in order", F_REL, "%n-$(MF_EXPAND_A)-@(one.txt)-%(name)",
           "app.conf-alpha-cfg-one-value"),

        /* errors */
        BAD("unknown magic variable", F_REL, "%q", "unknown magic variable %q" KNOWN),
        BAD("magic variables are case-sensitive", F_REL, "%D", "unknown magic variable %D" KNOWN),
        BAD("unknown magic control byte", F_REL, "%\001", "unknown magic variable %\\x01" KNOWN),
        BAD("'%' at the end", F_REL, "50%",
            "unknown magic variable % at the end of the value" KNOWN),
        BAD("%d needs a file", F_NONE, "%d",
            "%d needs a config file (it was given on the command line)"),
        BAD("%p needs a file", F_NONE, "%p",
            "%p needs a config file (it was given on the command line)"),
        BAD("%s needs a file", F_NONE, "%s",
            "%s needs a config file (it was given on the command line)"),
        BAD("%n needs a file", F_NONE, "%n",
            "%n needs a config file (it was given on the command line)"),
        BAD("%e needs a file", F_NONE, "%e",
            "%e needs a config file (it was given on the command line)"),
        BAD("%x needs a file", F_NONE, "%x",
            "%x needs a config file (it was given on the command line)"),
        BAD("%d: directory not found", F_NODIR, "%d",
            "%d: cannot resolve the directory of nodir/app.yml: No such file or directory"),
        BAD("%p: directory not found", F_NODIR, "%p",
            "%p: cannot resolve the directory of nodir/app.yml: No such file or directory"),
        BAD("unterminated $(", F_NONE, "a $(HOME", "unterminated $( in \"$(HOME\""),
        BAD("unterminated @(", F_NONE, "@(one.txt", "unterminated @( in \"@(one.txt\""),
        BAD("unterminated %(", F_NONE, "%(name", "unterminated %( in \"%(name\""),
        BAD("unterminated %( from $(", F_NONE, "$(MF_EXPAND_OPEN)",
            "unterminated %( in \"%(name\""),
        BAD("unterminated: 40 bytes quoted", F_NONE, "$(0123456789012345678901234567890123456789",
            "unterminated $( in \"$(01234567890123456789012345678901234567\""),
        BAD("@(missing)", F_REL, "@(missing.txt)",
            "@(missing.txt): cannot read cfg/missing.txt: No such file or directory"),
        BAD("@(directory)", F_REL, "@(sub)", "@(sub): cannot read cfg/sub: Is a directory"),
        BAD("@(file) holding NUL", F_REL, "@(nul.bin)", "@(nul.bin): cfg/nul.bin holds a NUL byte"),
        BAD("@(file) over 64 KiB", F_REL, "@(big.txt)",
            "value longer than 65536 bytes after expansion"),
        BAD("$(VAR)s over 64 KiB", F_NONE, "$(MF_EXPAND_BIG)$(MF_EXPAND_BIG)",
            "value longer than 65536 bytes after expansion"),
        BAD("unknown placeholder", F_NONE, "%(nope)", "unknown placeholder %(nope)"),
        BAD("placeholders are case-sensitive", F_NONE, "%(NAME)", "unknown placeholder %(NAME)"),
        BAD("%() is unknown", F_NONE, "%()", "unknown placeholder %()"),
        BAD("passes in order: magic first", F_REL, "%(nope)@(missing.txt)%q",
            "unknown magic variable %q" KNOWN),
        BAD("passes in order: @( before %(", F_REL, "%(nope)@(missing.txt)",
            "@(missing.txt): cannot read cfg/missing.txt: No such file or directory"),
};

/* @(file) contents under <tmp>/cfg. */
static const struct {
	const char *name, *data;
	size_t len;
} files[] = {
        {"one.txt", "cfg-one\n", 8}, {"sub/inner.txt", "inner\n", 6},     {"two.txt", "two\n\n", 5},
        {"crlf.txt", "x\r\n", 3},    {"plain.txt", "plain", 5},           {"empty.txt", "", 0},
        {"pct.txt", "%(name)\n", 8}, {"env.txt", "$(MF_EXPAND_A)\n", 15}, {"magic.txt", "%d\n", 3},
        {"nul.bin", "a\0b\n", 4},    {"app.conf.yml", "uwsgi:\n", 7},
};

static const char *const placeholders[][2] = {
        {"name", "value"},  {"env", "$(MF_EXPAND_A)"}, {"at", "@(one.txt)"},
        {"pct", "%(name)"}, {"magic", "%d"},           {"empty", ""},
        {"a%b", "percent"},
};

static char tmp[] = "/tmp/mf_expand.XXXXXX";
static char real_tmp[4096], oldcwd[4096];
static char *cfg_files[F__COUNT];
static char host[256], cpus[32], uid[32], user[256], gid[32], group[256];

static const char *lookup(void *arg, const char *name, size_t len)
{
	assert_int_equal(strlen(name), len);
	for (size_t i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++)
		if (strcmp(placeholders[i][0], name) == 0)
			return placeholders[i][1];
	return NULL;
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void make_tree(void)
{
	char path[4200];
	assert_non_null(mkdtemp(tmp));
	assert_non_null(realpath(tmp, real_tmp));
	assert_non_null(getcwd(oldcwd, sizeof(oldcwd)));
	assert_int_equal(chdir(tmp), 0);
	assert_int_equal(mkdir("cfg", 0755), 0);
	assert_int_equal(mkdir("cfg/sub", 0755), 0);
	assert_int_equal(symlink("cfg", "link"), 0);
	write_file("one.txt", "root-one\n", 9);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "cfg/%s", files[i].name);
		write_file(path, files[i].data, files[i].len);
	}
	char *big = malloc(MAX + 1);
	assert_non_null(big);
	memset(big, 'b', MAX + 1);
	write_file("cfg/big.txt", big, MAX + 1);
	free(big);
}

static void set_env(void)
{
	char *big = malloc(BIG + 1);
	assert_non_null(big);
	memset(big, 'x', BIG);
	big[BIG] = '\0';
	setenv("MF_EXPAND_A", "alpha", 1);
	setenv("MF_EXPAND_P", "%(name)", 1);
	setenv("MF_EXPAND_F", "@(one.txt)", 1);
	setenv("MF_EXPAND_D", "%d", 1);
	setenv("MF_EXPAND_DOLLAR", "$(MF_EXPAND_A)", 1);
	setenv("MF_EXPAND_PCT", "%%(name)", 1);
	setenv("MF_EXPAND_%", "percent", 1);
	setenv("MF_EXPAND_OPEN", "%(name", 1);
	setenv("MF_EXPAND_NAME", "name", 1);
	setenv("MF_EXPAND_BIG", big, 1);
	unsetenv("MF_EXPAND_UNSET");
	free(big);
}

/* What %h %k %u %U %g %G should give, found another way. */
static void compute_magic(void)
{
	struct passwd *pw = getpwuid(getuid());
	struct group *gr = getgrgid(getgid());
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	snprintf(cpus, sizeof(cpus), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
	snprintf(uid, sizeof(uid), "%u", (unsigned)getuid());
	snprintf(gid, sizeof(gid), "%u", (unsigned)getgid());
	snprintf(user, sizeof(user), "%s", pw != NULL ? pw->pw_name : uid);
	snprintf(group, sizeof(group), "%s", gr != NULL ? gr->gr_name : gid);
}

static int group_setup(void **state)
{
	static const char *const rel[F__COUNT] = {
	        [F_REL] = "cfg/app.conf.yml",
	        [F_LINK] = "link/app.conf.yml",
	        [F_BARE] = "app.yml",
	        [F_ROOT] = "/app.ini",
	        [F_NOEXT] = "cfg/Makefile",
	        [F_DOTFILE] = "cfg/.uwsgi",
	        [F_PCTNAME] = "cfg/%(name).yml",
	        [F_NODIR] = "nodir/app.yml",
	};
	make_tree();
	set_env();
	compute_magic();
	for (int i = 0; i < F__COUNT; i++)
		cfg_files[i] = rel[i] != NULL ? strdup(rel[i]) : NULL;
	cfg_files[F_ABS] = malloc(strlen(tmp) + 32);
	sprintf(cfg_files[F_ABS], "%s/cfg/app.conf.yml", tmp);
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int group_teardown(void **state)
{
	if (chdir(oldcwd) != 0)
		return -1;
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	for (int i = 0; i < F__COUNT; i++)
		free(cfg_files[i]);
	return 0;
}

static int setup(void **state)
{
	alarm(TEST_TIMEOUT);
	return 0;
}

static int teardown(void **state)
{
	alarm(0);
	return 0;
}

/* <t> with its {R} {h} {k} {u} {U} {g} {G}, in a new string. */
static char *subst(const char *t)
{
	const char *keys = "RhkuUgG";
	const char *vals[] = {real_tmp, host, cpus, uid, user, gid, group};
	size_t cap = strlen(t) + 1, n = 0;
	char *s = NULL;
	for (int pass = 0; pass < 2; pass++, n = 0) {
		for (const char *p = t; *p != '\0'; p++) {
			const char *k = p[0] == '{' && p[1] != '\0' && p[2] == '}'
			                        ? strchr(keys, p[1])
			                        : NULL;
			const char *v = k != NULL ? vals[k - keys] : NULL;
			size_t len = v != NULL ? strlen(v) : 1;
			if (s != NULL)
				memcpy(s + n, v != NULL ? v : p, len);
			n += len;
			p += v != NULL ? 2 : 0;
		}
		if (s == NULL)
			s = malloc(cap = n + 1);
	}
	s[cap - 1] = '\0';
	return s;
}

static struct expand_ctx ctx(enum cfgf f)
{
	return (struct expand_ctx){.file = cfg_files[f],
	                           .section = "dev",
	                           .version = VERSION,
	                           .lookup = lookup,
	                           .arg = NULL};
}

/* Runs one row; returns 0, or -1 after printing what went wrong. */
static int run_row(const struct row *r)
{
	struct expand_ctx x = ctx(r->file);
	char err[512] = "", *out = (char *)"unset";
	char *in = subst(r->in), *want = subst(r->want != NULL ? r->want : r->msg);
	int rc = cfg_expand(&x, in, &out, err, sizeof(err)), bad = 0;

	if (r->want != NULL && (rc != 0 || out == NULL || strcmp(out, want) != 0)) {
		print_error("%s: \"%s\" gave %d \"%s\" (%s), not \"%s\"\n", r->what, in, rc,
		            rc == 0 && out ? out : "", err, want);
		bad = -1;
	}
	if (r->want == NULL && (rc != -1 || out != NULL || strcmp(err, want) != 0)) {
		print_error("%s: \"%s\" gave %d \"%s\", not -1 \"%s\"\n", r->what, in, rc, err,
		            want);
		bad = -1;
	}
	if (rc == 0)
		free(out);
	free(in);
	free(want);
	return bad;
}

static void test_rows(void **state)
{
	int bad = 0;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		bad += run_row(&rows[i]);
	assert_int_equal(bad, 0);
}

/* %t: unix time, the same for every %t of one value. */
static void test_time(void **state)
{
	struct expand_ctx x = ctx(F_NONE);
	char err[256], *out, *end;
	time_t before = time(NULL);
	assert_int_equal(cfg_expand(&x, "%t %t", &out, err, sizeof(err)), 0);
	time_t after = time(NULL);
	long long t = strtoll(out, &end, 10);
	assert_true(t >= (long long)before && t <= (long long)after);
	assert_int_equal(*end, ' ');
	assert_int_equal(strtoll(end + 1, NULL, 10), t);
	free(out);
}

/* The cap is on the input and on the result of every pass: 64 KiB exactly. */
static void test_cap(void **state)
{
	struct expand_ctx x = ctx(F_NONE);
	char err[256], *out, *in = malloc(MAX + 2);
	assert_non_null(in);
	memset(in, 'x', MAX + 1);
	in[MAX] = '\0';
	assert_int_equal(cfg_expand(&x, in, &out, err, sizeof(err)), 0);
	assert_int_equal(strlen(out), MAX);
	free(out);
	in[MAX] = 'x';
	in[MAX + 1] = '\0';
	assert_int_equal(cfg_expand(&x, in, &out, err, sizeof(err)), -1);
	assert_string_equal(err, "value longer than 65536 bytes after expansion");
	assert_null(out);
	/* BIG bytes from $(MF_EXPAND_BIG), then x up to the cap, then one more */
	memcpy(in, "$(MF_EXPAND_BIG)", 16);
	in[16 + MAX - BIG] = '\0';
	assert_int_equal(cfg_expand(&x, in, &out, err, sizeof(err)), 0);
	assert_int_equal(strlen(out), MAX);
	free(out);
	in[16 + MAX - BIG] = 'x';
	in[16 + MAX - BIG + 1] = '\0';
	assert_int_equal(cfg_expand(&x, in, &out, err, sizeof(err)), -1);
	assert_string_equal(err, "value longer than 65536 bytes after expansion");
	free(in);
}

/* NULL section, version and lookup. */
static void test_ctx_defaults(void **state)
{
	struct expand_ctx x = {.file = cfg_files[F_REL]};
	char err[256], *out;
	assert_int_equal(cfg_expand(&x, "%x[%V]", &out, err, sizeof(err)), 0);
	assert_string_equal(out, "app.conf.yml:uwsgi[]");
	free(out);
	assert_int_equal(cfg_expand(&x, "%(name)", &out, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown placeholder %(name)");
	assert_null(out);
}

/* The message is cut to <errlen>, and not written with 0. */
static void test_err_buffer(void **state)
{
	struct expand_ctx x = ctx(F_NONE);
	char err[8], *out;
	memset(err, '#', sizeof(err));
	assert_int_equal(cfg_expand(&x, "%(nope)", &out, err, 5), -1);
	assert_string_equal(err, "unkn");
	assert_int_equal(err[5], '#');
	assert_int_equal(cfg_expand(&x, "%(nope)", &out, NULL, 0), -1);
	assert_null(out);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_rows), T(test_time), T(test_cap), T(test_ctx_defaults), T(test_err_buffer),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
