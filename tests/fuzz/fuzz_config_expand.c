/*
 * fuzz_config_expand.c - libFuzzer target for cfg_expand().
 *
 * expand.c is included with EXPAND_FUZZ, which leaves its env_get() and
 * file_append() to this file: a fixed environment (env[]) and fixed file
 * contents (stub_file()), so that no input reads the real environment or
 * file system. %(name) looks up placeholders[].
 *
 * Input: one selector byte, then the value (up to its first NUL).
 * Selector bits 0-1: the config file (NULL, "/tmp/app.conf.yml", "/app",
 * "nodir/a.b.ini"); bit 2: section NULL or "dev"; bit 3: version NULL or
 * "2.0.18"; bit 4: lookup NULL or placeholders[]; bits 5-6: <errlen> (0
 * with <err> NULL, 1, 17, 256).
 *
 * Checks that
 *  - the result is 0 or -1; with 0, *out is a string of at most 64 KiB;
 *    with -1, *out is NULL and the message is NUL-terminated within
 *    <errlen> (an exact-size heap buffer) and, with room, not empty;
 *  - a model written straight from the contract (four passes over plain
 *    strings, the '%' of "%%" held as an in-band 0x01 byte, which neither
 *    the input, when compared, nor a stub holds) gives the same result, or
 *    the same kind of error (by what the message says).
 */
#define EXPAND_FUZZ
#include "../../server/config/expand.c"

#include <limits.h>
#include <stdint.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define MODEL_MAX 65536 /* the contract's cap */
#define BIG       40000 /* bytes of $(BIG) and %(big): two pass the cap */
#define LIT       '\001'

static char big_x[BIG + 1], big_y[BIG + 1], big_file[MODEL_MAX + 100];
static char echo[2 * MODEL_MAX + 16];

static const char *const env[][2] = {
        {"HOME", "/home/fuzz"}, {"P", "%(a)"},    {"F", "@(pct)"}, {"D", "%d"},
        {"DL", "$(HOME)"},      {"OPEN", "%(a"},  {"AT", "@(x"},   {"E", ""},
        {"PCT", "%%(a)"},       {"%", "percent"}, {"BIG", big_x},
};

static const char *const placeholders[][2] = {
        {"a", "A"},         {"e", "$(HOME)"}, {"f", "@(x)"}, {"p", "%(a)"}, {"m", "%d%%"},
        {"a%b", "percent"}, {"big", big_y},   {"HOME", "h"}, {"empty", ""},
};

static const char *const files[4] = {NULL, "/tmp/app.conf.yml", "/app", "nodir/a.b.ini"};

static const char *table_get(const char *const (*t)[2], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i][0], name) == 0)
			return t[i][1];
	return NULL;
}

static const char *env_get(const char *name)
{
	return table_get(env, sizeof(env) / sizeof(env[0]), name);
}

static const char *lookup(void *arg, const char *name, size_t len)
{
	CHECK(strlen(name) == len);
	return table_get(placeholders, sizeof(placeholders) / sizeof(placeholders[0]), name);
}

/* The "file" at <path>, by its last component; anything else holds its
 * own path. Returns 0, or -1 with errno set. */
static int stub_file(const char *path, const char **data, size_t *len)
{
	static const char *const named[][2] = {
	        {"pct", "%(a)\n"},
	        {"env", "$(HOME)\n"},
	        {"nl", "x\n\n"},
	        {"empty", ""},
	};
	const char *slash = strrchr(path, '/'), *base = slash != NULL ? slash + 1 : path;
	const char *v = table_get(named, sizeof(named) / sizeof(named[0]), base);

	if (strcmp(base, "missing") == 0 || strcmp(base, "dir") == 0) {
		errno = base[0] == 'm' ? ENOENT : EISDIR;
		return -1;
	}
	if (strcmp(base, "nul") == 0) {
		*data = "a\0b";
		*len = 3;
	} else if (strcmp(base, "big") == 0) {
		*data = big_file;
		*len = sizeof(big_file);
	} else if (v != NULL) {
		*data = v;
		*len = strlen(v);
	} else {
		*len = (size_t)snprintf(echo, sizeof(echo), "<%s>\n", path);
		*data = echo;
	}
	return 0;
}

static int file_append(struct buf *b, const char *path)
{
	const char *data;
	size_t len;
	if (stub_file(path, &data, &len) == -1)
		return -1;
	return buf_put(b, data, len, NULL);
}

/*
 * The model
 */

enum kind { K_OK, K_MAGIC, K_NEEDS_FILE, K_RESOLVE, K_UNTERM, K_READ, K_NUL, K_UNKNOWN, K_LONG };

struct mstr {
	char s[MODEL_MAX + 1];
	size_t len;
};

static bool mput(struct mstr *o, const char *p, size_t n)
{
	if (o->len + n > MODEL_MAX)
		return false;
	memcpy(o->s + o->len, p, n);
	o->len += n;
	o->s[o->len] = '\0';
	return true;
}

/* The name, name without extension, extension and directory of <f>. */
static int model_file_parts(const char *f, char c, char *v, size_t vlen)
{
	const char *slash = strrchr(f, '/'), *base = slash ? slash + 1 : f;
	const char *dot = strrchr(base, '.');
	char dir[PATH_MAX], real[PATH_MAX];

	if (c == 's' || c == 'x')
		snprintf(v, vlen, "%s", base);
	if (c == 'n')
		snprintf(v, vlen, "%.*s", (int)(dot ? dot - base : (long)strlen(base)), base);
	if (c == 'e')
		snprintf(v, vlen, "%s", dot ? dot + 1 : "");
	if (c != 'd' && c != 'p')
		return K_OK;
	snprintf(dir, sizeof(dir), "%.*s",
	         slash == NULL ? 1
	         : slash == f  ? 1
	                       : (int)(slash - f),
	         slash == NULL ? "." : f);
	if (realpath(dir, real) == NULL)
		return K_RESOLVE;
	snprintf(v, vlen, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", c == 'p' ? base : "");
	return K_OK;
}

static int model_magic(const struct expand_ctx *x, char c, time_t now, char *v, size_t vlen)
{
	struct passwd *pw;
	struct group *gr;
	if (c != '\0' && strchr("dpsnex", c) != NULL) {
		if (x->file == NULL)
			return K_NEEDS_FILE;
		int k = model_file_parts(x->file, c, v, vlen);
		if (c == 'x')
			snprintf(v + strlen(v), vlen - strlen(v), ":%s",
			         x->section ? x->section : "uwsgi");
		return k;
	}
	switch (c) {
	case '%':
		snprintf(v, vlen, "%c", LIT);
		break;
	case '(':
		snprintf(v, vlen, "%%(");
		break;
	case 'h':
		gethostname(v, vlen);
		break;
	case 'k':
		snprintf(v, vlen, "%ld", sysconf(_SC_NPROCESSORS_ONLN));
		break;
	case 't':
		snprintf(v, vlen, "%lld", (long long)now);
		break;
	case 'u':
		snprintf(v, vlen, "%u", (unsigned)getuid());
		break;
	case 'g':
		snprintf(v, vlen, "%u", (unsigned)getgid());
		break;
	case 'U':
		pw = getpwuid(getuid());
		if (pw != NULL)
			snprintf(v, vlen, "%s", pw->pw_name);
		else
			snprintf(v, vlen, "%u", (unsigned)getuid());
		break;
	case 'G':
		gr = getgrgid(getgid());
		if (gr != NULL)
			snprintf(v, vlen, "%s", gr->gr_name);
		else
			snprintf(v, vlen, "%u", (unsigned)getgid());
		break;
	case 'V':
		snprintf(v, vlen, "%s", x->version ? x->version : "");
		break;
	default:
		return K_MAGIC;
	}
	return K_OK;
}

static int model_pass1(const struct expand_ctx *x, const char *in, time_t now, struct mstr *o)
{
	char v[2 * PATH_MAX];
	o->len = 0;
	o->s[0] = '\0';
	for (size_t i = 0; in[i] != '\0'; i++) {
		if (in[i] != '%') {
			if (!mput(o, in + i, 1))
				return K_LONG;
			continue;
		}
		int k = model_magic(x, in[i + 1], now, v, sizeof(v));
		if (k != K_OK)
			return k;
		if (!mput(o, v, strlen(v)))
			return K_LONG;
		i++;
	}
	return K_OK;
}

static int model_file(const struct expand_ctx *x, const char *name, struct mstr *o)
{
	const char *slash = x->file ? strrchr(x->file, '/') : NULL, *data;
	size_t len;
	char *path = malloc(strlen(name) + 64);
	sprintf(path, "%.*s%s", name[0] != '/' && slash ? (int)(slash - x->file + 1) : 0,
	        x->file ? x->file : "", name);
	int rc = stub_file(path, &data, &len);
	free(path);
	if (rc == -1)
		return K_READ;
	if (!mput(o, data, len))
		return K_LONG;
	if (memchr(data, '\0', len) != NULL)
		return K_NUL;
	if (len > 0 && data[len - 1] == '\n')
		o->s[--o->len] = '\0';
	return K_OK;
}

static int model_value(const struct expand_ctx *x, char sigil, const char *name, struct mstr *o)
{
	const char *v;
	if (sigil == '@')
		return model_file(x, name, o);
	if (sigil == '$') {
		v = env_get(name);
		return mput(o, v ? v : "", v ? strlen(v) : 0) ? K_OK : K_LONG;
	}
	if (strcmp(name, "_") == 0) /* an if-* block's subject: kept for cond.c */
		return mput(o, "%(_)", 4) ? K_OK : K_LONG;
	v = x->lookup ? x->lookup(x->arg, name, strlen(name)) : NULL;
	if (v == NULL)
		return K_UNKNOWN;
	return mput(o, v, strlen(v)) ? K_OK : K_LONG;
}

static int model_refs(const struct expand_ctx *x, const struct mstr *in, char sigil, struct mstr *o)
{
	o->len = 0;
	o->s[0] = '\0';
	for (size_t i = 0; i < in->len; i++) {
		if (in->s[i] != sigil || in->s[i + 1] != '(') {
			if (!mput(o, in->s + i, 1))
				return K_LONG;
			continue;
		}
		const char *end = strchr(in->s + i + 2, ')');
		if (end == NULL)
			return K_UNTERM;
		char *name = strndup(in->s + i + 2, (size_t)(end - in->s) - i - 2);
		for (char *q = name; *q != '\0'; q++)
			*q = *q == LIT ? '%' : *q;
		int k = model_value(x, sigil, name, o);
		free(name);
		if (k != K_OK)
			return k;
		i = (size_t)(end - in->s);
	}
	return K_OK;
}

/* Returns the kind; the result in <res>, the failing sigil in *<sigil>. */
static int model(const struct expand_ctx *x, const char *in, time_t now, char *sigil,
                 struct mstr **res)
{
	static struct mstr a, b;
	static const char sigils[] = "$@%";
	struct mstr *cur = &a, *next = &b, *t;
	int k = model_pass1(x, in, now, cur);
	for (int i = 0; k == K_OK && i < 3; i++) {
		*sigil = sigils[i];
		k = model_refs(x, cur, sigils[i], next);
		t = cur;
		cur = next;
		next = t;
	}
	for (size_t i = 0; k == K_OK && i < cur->len; i++)
		cur->s[i] = cur->s[i] == LIT ? '%' : cur->s[i];
	*res = cur;
	return k;
}

/* Whether message <err> says what kind <k> means. */
static bool says(const char *err, int k, char sigil)
{
	char unterm[32];
	snprintf(unterm, sizeof(unterm), "unterminated %c(", sigil);
	switch (k) {
	case K_MAGIC:
		return strncmp(err, "unknown magic variable %", 24) == 0;
	case K_NEEDS_FILE:
		return strstr(err, " needs a config file") != NULL;
	case K_RESOLVE:
		return strstr(err, ": cannot resolve the directory of ") != NULL;
	case K_UNTERM:
		return strncmp(err, unterm, strlen(unterm)) == 0;
	case K_READ:
		return strncmp(err, "@(", 2) == 0 && strstr(err, ": cannot read ") != NULL;
	case K_NUL:
		return strncmp(err, "@(", 2) == 0 && strstr(err, " holds a NUL byte") != NULL;
	case K_UNKNOWN:
		return strncmp(err, "unknown placeholder %(", 22) == 0;
	case K_LONG:
		return strcmp(err, "value longer than 65536 bytes after expansion") == 0;
	}
	return false;
}

/* Compares with the model at <before>, the time just before cfg_expand()
 * ran, then at the time now: %t is one of the two. */
static bool same_as_model(const struct expand_ctx *x, const char *in, time_t before, int rc,
                          const char *out, const char *err, size_t errlen)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct mstr *res;
		char sigil = 0;
		int k = model(x, in, attempt == 0 ? before : time(NULL), &sigil, &res);
		if (k == K_OK && rc == 0 && strcmp(out, res->s) == 0)
			return true;
		if (k != K_OK && rc == -1 && (errlen < 256 || says(err, k, sigil)))
			return true;
	}
	return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	memset(big_x, 'x', BIG);
	memset(big_y, 'y', BIG);
	memset(big_file, 'b', sizeof(big_file));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t errlens[4] = {0, 1, 17, 256};
	if (size == 0 || size > MODEL_MAX + 16)
		return 0;
	uint8_t sel = data[0];
	struct expand_ctx x = {.file = files[sel & 3],
	                       .section = sel & 4 ? "dev" : NULL,
	                       .version = sel & 8 ? "2.0.18" : NULL,
	                       .lookup = sel & 16 ? lookup : NULL};
	size_t errlen = errlens[(sel >> 5) & 3];
	char *in = malloc(size), *err = errlen ? malloc(errlen) : NULL, *out = (char *)"unset";
	memcpy(in, data + 1, size - 1);
	in[size - 1] = '\0';
	if (err != NULL)
		memset(err, '#', errlen);

	time_t before = time(NULL);
	int rc = cfg_expand(&x, in, &out, err, errlen);
	CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		CHECK(out != NULL && strlen(out) <= MODEL_MAX);
	} else {
		CHECK(out == NULL);
		CHECK(err == NULL || memchr(err, '\0', errlen) != NULL);
		CHECK(errlen < 2 || err[0] != '\0');
	}
	if (strchr(in, LIT) == NULL)
		CHECK(same_as_model(&x, in, before, rc, out, err, errlen));
	if (rc == 0)
		free(out);
	free(in);
	free(err);
	return 0;
}
