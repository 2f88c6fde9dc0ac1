/*
 * expand.c - uWSGI's value expansion (config_expand.h).
 *
 * Four passes over the whole value, each reading the previous one's
 * result: magic variables, then $(ENV), then @(file), then %(name). What a
 * pass inserts is read again by the later passes only, never by its own
 * (a $(VAR) holding "%(x)" is then expanded; a %(name) holding "$(X)" is
 * not), which is uWSGI's order and its consequences.
 *
 * "%%" must give a '%' that the %( pass does not read, so that "%%(x)"
 * stays "%(x)". An in-band escape byte could be forged by an environment
 * variable or a file, so every byte carries an out-of-band flag instead:
 * lit[i] is set on a '%' made by "%%" and nowhere else.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/config_expand.h"

#define EXPAND_MAX   65536 /* bytes in the result of any pass, the input included */
#define MAGIC_KNOWN  "d n p s e x h k t u U g G V %"
#define EXCERPT      40 /* bytes of the value quoted in "unterminated" */
#define ID_BUF_LIMIT (1 << 20)

struct buf {
	char *s;   /* NUL-terminated once allocated */
	bool *lit; /* lit[i]: s[i] is a '%' from "%%", which starts no %( */
	size_t len, cap;
	bool too_long; /* an append would have passed EXPAND_MAX */
};

struct run {
	const struct expand_ctx *x;
	char *err;
	size_t errlen;
	char *dir;  /* %d: realpath of the file's directory and a '/', once */
	time_t now; /* %t: one moment per call, (time_t)-1 until read */
};

__attribute__((format(printf, 2, 3))) static int fail(struct run *r, const char *fmt, ...)
{
	va_list ap;
	if (r->errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Appends <p,n> to <b>, each byte flagged from <lit> (NULL: none).
 * Returns 0, or -1 when over EXPAND_MAX (b->too_long) or out of memory. */
static int buf_put(struct buf *b, const char *p, size_t n, const bool *lit)
{
	if (n > EXPAND_MAX - b->len) {
		b->too_long = true;
		return -1;
	}
	if (b->s == NULL || b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (s == NULL)
			return -1;
		b->s = s;
		bool *l = realloc(b->lit, cap);
		if (l == NULL)
			return -1;
		b->lit = l;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	if (lit != NULL)
		memcpy(b->lit + b->len, lit, n * sizeof(bool));
	else
		memset(b->lit + b->len, 0, n * sizeof(bool));
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

static void buf_free(struct buf *b)
{
	free(b->s);
	free(b->lit);
	b->s = NULL;
	b->lit = NULL;
}

/* The message for a failed buf_put(). */
static int put_failed(struct run *r, const struct buf *b)
{
	if (b->too_long)
		return fail(r, "value longer than %d bytes after expansion", EXPAND_MAX);
	return fail(r, "out of memory");
}

static int add(struct run *r, struct buf *b, const char *p, size_t n)
{
	return buf_put(b, p, n, NULL) == -1 ? put_failed(r, b) : 0;
}

static int adds(struct run *r, struct buf *b, const char *s)
{
	return add(r, b, s, strlen(s));
}

#ifdef EXPAND_FUZZ
/* tests/fuzz/fuzz_config_expand.c defines these: no environment, no files. */
static const char *env_get(const char *name);
static int file_append(struct buf *b, const char *path);
#else
static const char *env_get(const char *name)
{
	return getenv(name);
}

/* Appends the contents of <path> to <b>. Returns 0, or -1 with errno set
 * (or b->too_long). */
static int file_append(struct buf *b, const char *path)
{
	char chunk[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	if (fd == -1)
		return -1;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0)
			break;
		if (n == -1 || buf_put(b, chunk, (size_t)n, NULL) == -1) {
			rc = -1;
			break;
		}
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}
#endif

/* Sets r->dir once: the real directory of the config file, with a '/'. */
static int file_dir(struct run *r, char c)
{
	const char *f = r->x->file, *slash = strrchr(f, '/');
	if (r->dir != NULL)
		return 0;
	char *d = slash == NULL ? strdup(".") : strndup(f, slash == f ? 1 : (size_t)(slash - f));
	if (d == NULL)
		return fail(r, "out of memory");
	char *real = realpath(d, NULL);
	int saved = errno;
	free(d);
	if (real == NULL)
		return fail(r, "%%%c: cannot resolve the directory of %s: %s", c, f,
		            strerror(saved));
	size_t n = strlen(real);
	r->dir = malloc(n + 2);
	if (r->dir != NULL)
		snprintf(r->dir, n + 2, "%s%s", real, real[n - 1] == '/' ? "" : "/");
	free(real);
	return r->dir != NULL ? 0 : fail(r, "out of memory");
}

/* %d %p %s %n %e %x, all from x->file. */
static int magic_file(struct run *r, char c, struct buf *out)
{
	const char *f = r->x->file, *base, *dot;
	if (f == NULL)
		return fail(r, "%%%c needs a config file (it was given on the command line)", c);
	base = strrchr(f, '/');
	base = base != NULL ? base + 1 : f;
	dot = strrchr(base, '.');
	switch (c) {
	case 's':
		return adds(r, out, base);
	case 'n':
		return add(r, out, base, dot != NULL ? (size_t)(dot - base) : strlen(base));
	case 'e':
		return adds(r, out, dot != NULL ? dot + 1 : "");
	case 'x':
		if (adds(r, out, base) == -1 || adds(r, out, ":") == -1)
			return -1;
		return adds(r, out, r->x->section != NULL ? r->x->section : "uwsgi");
	}
	if (file_dir(r, c) == -1 || adds(r, out, r->dir) == -1)
		return -1;
	return c == 'p' ? adds(r, out, base) : 0;
}

/* Points *<name> into <mem> at the name of user (or group) <id>. Returns
 * what getpwuid_r()/getgrgid_r() return. */
static int id_name(bool group, unsigned long id, char *mem, size_t size, const char **name)
{
	int rc;
	if (group) {
		struct group gr, *res = NULL;
		rc = getgrgid_r((gid_t)id, &gr, mem, size, &res);
		if (rc == 0 && res != NULL)
			*name = gr.gr_name;
	} else {
		struct passwd pw, *res = NULL;
		rc = getpwuid_r((uid_t)id, &pw, mem, size, &res);
		if (rc == 0 && res != NULL)
			*name = pw.pw_name;
	}
	return rc;
}

/* %U %G: the name of the real user (group), or its number without one. */
static int magic_id_name(struct run *r, bool group, struct buf *out)
{
	unsigned long id = group ? (unsigned long)getgid() : (unsigned long)getuid();
	const char *name = NULL;
	char num[32], *mem = NULL;
	int rc = ERANGE;

	for (size_t size = 1024; rc == ERANGE && size <= ID_BUF_LIMIT; size *= 2) {
		free(mem);
		mem = malloc(size);
		if (mem == NULL)
			break;
		rc = id_name(group, id, mem, size, &name);
	}
	snprintf(num, sizeof(num), "%lu", id);
	rc = adds(r, out, name != NULL ? name : num);
	free(mem);
	return rc;
}

static int magic_unknown(struct run *r, char c)
{
	unsigned char u = (unsigned char)c;
	char name[8];
	if (c == '\0')
		snprintf(name, sizeof(name), "%%");
	else if (u < 0x20 || u >= 0x7f)
		snprintf(name, sizeof(name), "%%\\x%02x", u);
	else
		snprintf(name, sizeof(name), "%%%c", c);
	return fail(r, "unknown magic variable %s%s (known: %s)", name,
	            c == '\0' ? " at the end of the value" : "", MAGIC_KNOWN);
}

/* Appends what "%<c>" stands for. */
static int magic_one(struct run *r, char c, struct buf *out)
{
	static const bool literal = true;
	char v[256];
	switch (c) {
	case '(':
		return adds(r, out, "%("); /* for the %( pass */
	case '%':
		return buf_put(out, "%", 1, &literal) == -1 ? put_failed(r, out) : 0;
	case 'd':
	case 'p':
	case 's':
	case 'n':
	case 'e':
	case 'x':
		return magic_file(r, c, out);
	case 'U':
	case 'G':
		return magic_id_name(r, c == 'G', out);
	case 'V':
		return adds(r, out, r->x->version != NULL ? r->x->version : "");
	case 'h':
		if (gethostname(v, sizeof(v)) == -1)
			return fail(r, "%%h: gethostname() failed: %s", strerror(errno));
		v[sizeof(v) - 1] = '\0';
		return adds(r, out, v);
	case 'k': {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		snprintf(v, sizeof(v), "%ld", n > 0 ? n : 1L); /* unknown: one */
		return adds(r, out, v);
	}
	case 't':
		if (r->now == (time_t)-1)
			r->now = time(NULL);
		snprintf(v, sizeof(v), "%lld", (long long)r->now);
		return adds(r, out, v);
	case 'u':
	case 'g':
		snprintf(v, sizeof(v), "%lu",
		         c == 'u' ? (unsigned long)getuid() : (unsigned long)getgid());
		return adds(r, out, v);
	}
	return magic_unknown(r, c);
}

/* Pass 1: magic variables of <in> into <out>. */
static int magic_pass(struct run *r, const char *in, struct buf *out)
{
	if (add(r, out, "", 0) == -1)
		return -1;
	for (const char *p = in;;) {
		size_t n = strcspn(p, "%");
		if (add(r, out, p, n) == -1)
			return -1;
		p += n;
		if (*p == '\0')
			return 0;
		if (magic_one(r, p[1], out) == -1)
			return -1;
		p += 2;
	}
}

/* @(<name>): the file, relative to the config file's directory (as
 * given) when there is one, less one trailing newline. */
static int ref_file(struct run *r, const char *name, struct buf *out)
{
	const char *f = r->x->file, *slash = f != NULL ? strrchr(f, '/') : NULL;
	size_t pre = name[0] != '/' && slash != NULL ? (size_t)(slash - f) + 1 : 0;
	size_t start = out->len;
	char *path = malloc(pre + strlen(name) + 1);
	int rc = 0;

	if (path == NULL)
		return fail(r, "out of memory");
	snprintf(path, pre + strlen(name) + 1, "%.*s%s", (int)pre, pre ? f : "", name);
	if (file_append(out, path) == -1)
		rc = out->too_long
		             ? put_failed(r, out)
		             : fail(r, "@(%s): cannot read %s: %s", name, path, strerror(errno));
	else if (memchr(out->s + start, '\0', out->len - start) != NULL)
		rc = fail(r, "@(%s): %s holds a NUL byte", name, path);
	else if (out->len > start && out->s[out->len - 1] == '\n')
		out->s[--out->len] = '\0';
	free(path);
	return rc;
}

/* Appends what "<sigil>(<name,len>)" stands for. */
static int ref_one(struct run *r, char sigil, const char *name, size_t len, struct buf *out)
{
	const struct expand_ctx *x = r->x;
	const char *v;
	if (sigil == '@')
		return ref_file(r, name, out);
	if (sigil == '$') {
		v = env_get(name);
		return adds(r, out, v != NULL ? v : "");
	}
	if (len == 1 && name[0] == '_')
		return adds(r, out, "%(_)"); /* an if-* block's subject, filled in by cond.c */
	v = x->lookup != NULL ? x->lookup(x->arg, name, len) : NULL;
	if (v == NULL)
		return fail(r, "unknown placeholder %%(%s)", name);
	return adds(r, out, v);
}

static bool is_ref(const struct buf *b, size_t i, char sigil)
{
	return b->s[i] == sigil && b->s[i + 1] == '(' && !b->lit[i];
}

/* Passes 2-4: every "<sigil>(name)" of <in> into <out>, the name ending
 * at the first ')'. */
static int ref_pass(struct run *r, const struct buf *in, struct buf *out, char sigil)
{
	out->len = 0;
	out->too_long = false;
	if (add(r, out, "", 0) == -1)
		return -1;
	for (size_t i = 0, j = 0; i < in->len; i = j) {
		while (j < in->len && !is_ref(in, j, sigil))
			j++;
		if (buf_put(out, in->s + i, j - i, in->lit + i) == -1)
			return put_failed(r, out);
		if (j == in->len)
			break;
		const char *name = in->s + j + 2;
		const char *end = memchr(name, ')', in->len - (j + 2));
		if (end == NULL)
			return fail(r, "unterminated %c( in \"%.*s\"", sigil, EXCERPT, in->s + j);
		char *z = strndup(name, (size_t)(end - name));
		if (z == NULL)
			return fail(r, "out of memory");
		int rc = ref_one(r, sigil, z, (size_t)(end - name), out);
		free(z);
		if (rc == -1)
			return -1;
		j = (size_t)(end - in->s) + 1;
	}
	return 0;
}

int cfg_expand(const struct expand_ctx *x, const char *in, char **out, char *err, size_t errlen)
{
	static const char sigils[] = "$@%";
	struct run r = {.x = x, .err = err, .errlen = errlen, .now = (time_t)-1};
	struct buf a = {0}, b = {0};
	int rc = magic_pass(&r, in, &a);

	for (int i = 0; rc == 0 && sigils[i] != '\0'; i++) {
		struct buf t = a;
		rc = ref_pass(&r, &a, &b, sigils[i]);
		a = b;
		b = t;
	}
	*out = NULL;
	if (rc == 0) {
		*out = a.s;
		a.s = NULL;
	}
	buf_free(&a);
	buf_free(&b);
	free(r.dir);
	return rc;
}
