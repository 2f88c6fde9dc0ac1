/*
 * fuzz_config_load.c - libFuzzer target for the loader (load.c) with the
 * real readers, expansion, options table and command-line walk linked in.
 *
 * Input: an optional header, then a config file. When the input holds an
 * empty line, the lines before it are the header: each "UWSGI_..." or
 * "MULEFARM_..." line is an environment entry, every other line one
 * argument. Without a header (or without arguments in it) the arguments
 * are "--ini {D}/f.ini". "{D}" in the header is the process's scratch
 * directory, which also is $(MF_FUZZ_DIR). The rest of the input is
 * written to {D}/f, which {D}/f.ini, f.yml and f.json link to, once per
 * run. The directory also holds inc.ini, inc.yml, inc.json and p.txt for
 * includes and @(file) (see fixtures[]).
 *
 * Checked: no crash, leak or undefined behaviour; the result is 0 or -1;
 * on failure a non-empty message, and one about a line of f names a line
 * the body has; on success every entry has a valid id (its key resolving
 * to it unless it is a placeholder), a key, an origin, a "file:line" or no
 * place, an expanded value that validates again, and the accessors and
 * --print-config work on the result.
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mulefarm/config_load.h"
#include "mulefarm/log.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define MAX_ARGS  32
#define INPUT_MAX (1 << 16)

static char dir[] = "/tmp/mulefarm-fuzz-load-XXXXXX";
static int body_fd = -1;
static FILE *devnull;

static const char *const fixtures[][2] = {
        {"inc.ini", "[uwsgi]\nthreads = 3\nbase = /srv\n[dev]\nprocesses = 2\nchdir = %(base)\n"},
        {"inc.yml", "uwsgi:\n  master: true\n  pythonpath: [a, b]\ndev:\n  listen: 64\n"},
        {"inc.json", "{\"uwsgi\": {\"processes\": 2, \"mule\": [\"a.py\", \"b.py\"]}}\n"},
        {"p.txt", "/srv/app\n"},
};

/* The loader logs ignored options and likely typos: formatted (so that a
 * bad format would show), then dropped. */
void log_info(const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	CHECK(f != NULL && fputs(text, f) >= 0 && fclose(f) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const links[] = {"f.ini", "f.yml", "f.json"};
	char path[256];

	CHECK(mkdtemp(dir) != NULL);
	atexit(cleanup);
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++)
		write_file(fixtures[i][0], fixtures[i][1]);
	snprintf(path, sizeof(path), "%s/f", dir);
	body_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(body_fd != -1);
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, links[i]);
		CHECK(symlink("f", path) == 0);
	}
	CHECK(setenv("MF_FUZZ_DIR", dir, 1) == 0);
	devnull = fopen("/dev/null", "w");
	CHECK(devnull != NULL);
	return 0;
}

/* <s,n> with "{D}" replaced by the directory, in a new string. */
static char *subst(const char *s, size_t n)
{
	size_t dl = strlen(dir), cap = n + 1, len = 0;
	char *out;

	for (size_t i = 0; i + 3 <= n; i++)
		cap += memcmp(s + i, "{D}", 3) == 0 ? dl : 0;
	out = malloc(cap);
	CHECK(out != NULL);
	for (size_t i = 0; i < n;) {
		if (i + 3 <= n && memcmp(s + i, "{D}", 3) == 0) {
			memcpy(out + len, dir, dl);
			len += dl;
			i += 3;
		} else {
			out[len++] = s[i] == '\0' ? '?' : s[i];
			i++;
		}
	}
	out[len] = '\0';
	return out;
}

/* Splits the header into argv and envp (NULL-terminated). */
static void split_header(const char *h, size_t n, char **argv, int *argc, char **envp)
{
	int envc = 0;

	*argc = 0;
	for (size_t i = 0; i < n;) {
		const char *nl = memchr(h + i, '\n', n - i);
		size_t end = nl != NULL ? (size_t)(nl - h) : n;
		char *word = subst(h + i, end - i);

		if (strncmp(word, "UWSGI_", 6) == 0 || strncmp(word, "MULEFARM_", 9) == 0) {
			if (envc < MAX_ARGS)
				envp[envc++] = word;
			else
				free(word);
		} else if (*argc < MAX_ARGS) {
			argv[(*argc)++] = word;
		} else {
			free(word);
		}
		i = end + 1;
	}
	envp[envc] = NULL;
	if (*argc == 0) {
		argv[(*argc)++] = strdup("--ini");
		argv[(*argc)++] = subst("{D}/f.ini", 9);
	}
	argv[*argc] = NULL;
}

/* Whether a header word holds the <n> bytes of <s>. */
static int in_header(char *const *words, const char *s, size_t n)
{
	for (; *words != NULL; words++)
		if (memmem(*words, strlen(*words), s, n) != NULL)
			return 1;
	return 0;
}

/* A message about a line of f ("f.ini:3: ...") names one that the body
 * has. A file the header names itself can look like one: a missing
 * "{D}/f.json:44/x" is reported as "{D}/f.json:44/x: cannot read: ...". */
static void check_error(const char *err, size_t errlen, const char *body, size_t blen,
                        char *const *argv, char *const *envp)
{
	static const char *const exts[] = {":", ".ini:", ".yml:", ".json:"};
	char prefix[256];
	long lines = 1;

	CHECK(err[0] != '\0' && memchr(err, '\0', errlen) != NULL);
	/* Line breaks for any reader: YAML's NEL, LS and PS by their last
	 * byte, and any byte of UTF-16. */
	if (blen >= 2 && (memcmp(body, "\xfe\xff", 2) == 0 || memcmp(body, "\xff\xfe", 2) == 0))
		lines += (long)blen;
	for (size_t i = 0; i < blen; i++)
		lines += body[i] != '\0' && strchr("\n\r\x85\xa8\xa9", body[i]) != NULL;
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		int n = snprintf(prefix, sizeof(prefix), "%s/f%s", dir, exts[i]);
		if (strncmp(err, prefix, (size_t)n) == 0 && err[n] >= '0' && err[n] <= '9') {
			char *end;
			long line = strtol(err + n, &end, 10);
			size_t named = (size_t)(end + 1 - err);

			if (*end == ':' && !in_header(argv, err, named) &&
			    !in_header(envp, err, named))
				CHECK(line >= 1 && line <= lines);
		}
	}
}

/* A loaded result is whole and usable. */
static void check_loaded(const struct options *o)
{
	char err[512];

	for (size_t i = 0; i < o->n; i++) {
		const struct opt_entry *e = &o->entries[i];

		CHECK((int)e->id >= 0 && (int)e->id <= OPT_PLACEHOLDER);
		CHECK(e->key != NULL && e->key[0] != '\0');
		CHECK(e->id == OPT_PLACEHOLDER || opt_lookup(e->key) == (int)e->id);
		CHECK(e->origin == ORIGIN_ENV || e->origin == ORIGIN_FILE ||
		      e->origin == ORIGIN_CLI);
		CHECK(e->expanded);
		if (e->where != NULL) {
			const char *colon = strrchr(e->where, ':');
			CHECK(e->origin == ORIGIN_FILE && colon != NULL && colon[1] >= '1' &&
			      colon[1] <= '9');
		}
	}
	CHECK(opt_validate(o, err, sizeof(err)) == 0);
	for (int id = 0; id < OPT__COUNT; id++) {
		(void)opt_str(o, (enum opt_id)id);
		(void)opt_int(o, (enum opt_id)id);
		(void)opt_flag(o, (enum opt_id)id);
	}
	config_print(o, devnull);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *body = in, *sep;
	char *argv[MAX_ARGS + 3], *envp[MAX_ARGS + 1], err[1024];
	struct options o = {0};
	size_t hlen = 0, blen = size;
	int argc, rc;

	if (size > INPUT_MAX)
		return 0;
	sep = size >= 2 ? memmem(in, size, "\n\n", 2) : NULL;
	if (sep != NULL) {
		hlen = (size_t)(sep - in);
		body = sep + 2;
		blen = size - hlen - 2;
	}
	split_header(in, hlen, argv, &argc, envp);
	CHECK(ftruncate(body_fd, 0) == 0);
	CHECK(blen == 0 || pwrite(body_fd, body, blen, 0) == (ssize_t)blen);

	memset(err, 0, sizeof(err));
	rc = config_load(&o, argc, argv, envp, "1.0-fuzz", err, sizeof(err));
	CHECK(rc == 0 || rc == -1);
	if (rc == -1)
		check_error(err, sizeof(err), body, blen, argv, envp);
	else
		check_loaded(&o);

	opt_free(&o);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	for (char **e = envp; *e != NULL; e++)
		free(*e);
	return 0;
}
