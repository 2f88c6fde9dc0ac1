/*
 * static.c - static files: set-up from the options, the Content-Type
 * table, HTTP dates, Range and conditional requests, and the response.
 * The path mapping itself is static_resolve.c (pure, fuzzed).
 */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/log.h"
#include "mulefarm/static.h"

#define MIME_FILE       "/etc/mime.types"
#define MIME_DEFAULT    "application/octet-stream"
#define MIME_EXT_MAX    32  /* longer extensions are not looked up */
#define MIME_TYPE_MAX   127 /* longer types in the file are skipped */
#define HTTP_DATE_LEN   29  /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define STATIC_HEAD_MAX 1024

/* ---- Content-Type ------------------------------------------------------ */

struct mime_entry {
	char *ext; /* lower case */
	char *type;
	size_t order; /* position in the file: the first wins */
};

struct static_mime {
	struct mime_entry *e;
	size_t n, cap;
};

/* Used when /etc/mime.types cannot be read (a minimal container). */
static const char *const mime_builtin[] = {
        "text/html html htm",    "text/css css",        "text/javascript js mjs",
        "application/json json", "application/xml xml", "text/plain txt",
        "image/svg+xml svg",     "image/png png",       "image/jpeg jpg jpeg",
        "image/gif gif",         "image/webp webp",     "image/vnd.microsoft.icon ico",
        "font/woff woff",        "font/woff2 woff2",    "application/wasm wasm",
        "application/pdf pdf",
};

static int mime_add(struct static_mime *t, const char *ext, size_t ext_len, const char *type,
                    size_t type_len)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct mime_entry *e = realloc(t->e, cap * sizeof(*e));
		if (e == NULL)
			return -1;
		t->e = e;
		t->cap = cap;
	}
	struct mime_entry *m = &t->e[t->n];
	m->ext = strndup(ext, ext_len);
	m->type = strndup(type, type_len);
	if (m->ext == NULL || m->type == NULL) {
		free(m->ext);
		free(m->type);
		return -1;
	}
	for (char *p = m->ext; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	m->order = t->n++;
	return 0;
}

/* One line of mime.types: "type ext ext ...", '#' starts a comment. */
static int mime_line(struct static_mime *t, const char *line)
{
	static const char ws[] = " \t\r\n";
	const char *p = line + strspn(line, ws);
	size_t type_len = strcspn(p, ws);

	if (*p == '#' || type_len == 0 || type_len > MIME_TYPE_MAX ||
	    memchr(p, '/', type_len) == NULL)
		return 0;
	const char *type = p;
	for (p += type_len;;) {
		p += strspn(p, ws);
		size_t n = strcspn(p, ws);
		if (n == 0 || *p == '#')
			return 0;
		if (n <= MIME_EXT_MAX && mime_add(t, p, n, type, type_len) == -1)
			return -1;
		p += n;
	}
}

static int mime_cmp(const void *a, const void *b)
{
	const struct mime_entry *x = a, *y = b;
	int r = strcmp(x->ext, y->ext);
	return r ? r : (x->order > y->order) - (x->order < y->order);
}

/* Sorts by extension and keeps the first entry for each. */
static void mime_finish(struct static_mime *t)
{
	size_t w = 0;
	qsort(t->e, t->n, sizeof(*t->e), mime_cmp);
	for (size_t r = 0; r < t->n; r++) {
		if (w > 0 && strcmp(t->e[w - 1].ext, t->e[r].ext) == 0) {
			free(t->e[r].ext);
			free(t->e[r].type);
			continue;
		}
		t->e[w++] = t->e[r];
	}
	t->n = w;
}

static void mime_free(struct static_mime *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].ext);
		free(t->e[i].type);
	}
	free(t->e);
	free(t);
}

/* Reads <file> (or the built-in table when <file> is NULL). Returns the
 * table, or NULL with errno set. */
static struct static_mime *mime_load(const char *file)
{
	struct static_mime *t = calloc(1, sizeof(*t));
	char *line = NULL;
	size_t cap = 0;
	FILE *f = NULL;
	int saved;

	if (t == NULL)
		return NULL;
	if (file == NULL) {
		for (size_t i = 0; i < sizeof(mime_builtin) / sizeof(mime_builtin[0]); i++)
			if (mime_line(t, mime_builtin[i]) == -1)
				goto fail;
	} else {
		if ((f = fopen(file, "re")) == NULL)
			goto fail;
		while (getline(&line, &cap, f) != -1)
			if (mime_line(t, line) == -1)
				goto fail;
		if (ferror(f))
			goto fail;
		fclose(f);
		free(line);
	}
	mime_finish(t);
	return t;
fail:
	saved = errno;
	if (f != NULL)
		fclose(f);
	free(line);
	mime_free(t);
	errno = saved;
	return NULL;
}

/* The Content-Type for file name <name>: by the extension of its last
 * component, case-insensitive. */
static const char *mime_type(const struct static_mime *t, const char *name)
{
	const char *base = strrchr(name, '/');
	const char *dot = strrchr(base ? base + 1 : name, '.');
	char ext[MIME_EXT_MAX + 1];
	size_t n;

	if (t == NULL || dot == NULL || (n = strlen(dot + 1)) == 0 || n > MIME_EXT_MAX)
		return MIME_DEFAULT;
	for (size_t i = 0; i <= n; i++)
		ext[i] = (char)tolower((unsigned char)dot[1 + i]);
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(ext, t->e[mid].ext);
		if (r == 0)
			return t->e[mid].type;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return MIME_DEFAULT;
}

/* ---- HTTP dates (RFC 9110 5.6.7) --------------------------------------- */

static const char week_days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Writes the IMF-fixdate of <t> and a NUL to <out>. Returns 0, or -1 when
 * <t> has no such form (before year 0 or after 9999). */
static int http_date_format(time_t t, char out[HTTP_DATE_LEN + 1])
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return -1;
	snprintf(out, HTTP_DATE_LEN + 1, "%s, %02d %s %04d %02d:%02d:%02d GMT",
	         week_days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
	         tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* The number in the <n> digits at <p>, or -1 if one is not a digit. */
static int digits(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). The obsolete
 * RFC 850 and asctime() forms are not accepted (If-Modified-Since is then
 * ignored, which only costs a full response). Returns the time, or -1. */
static time_t http_date_parse(const char *p, size_t len)
{
	struct tm tm = {0};
	int day = -1, mon = -1;

	if (len != HTTP_DATE_LEN || memcmp(p + 3, ", ", 2) != 0 || p[7] != ' ' || p[11] != ' ' ||
	    p[16] != ' ' || p[19] != ':' || p[22] != ':' || memcmp(p + 25, " GMT", 4) != 0)
		return -1;
	for (int i = 0; i < 7; i++)
		if (memcmp(p, week_days[i], 3) == 0)
			day = i;
	for (int i = 0; i < 12; i++)
		if (memcmp(p + 8, months[i], 3) == 0)
			mon = i;
	tm.tm_mday = digits(p + 5, 2);
	tm.tm_year = digits(p + 12, 4);
	tm.tm_hour = digits(p + 17, 2);
	tm.tm_min = digits(p + 20, 2);
	tm.tm_sec = digits(p + 23, 2);
	if (day < 0 || mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_year < 0 ||
	    tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
	    tm.tm_sec > 60)
		return -1;
	tm.tm_mon = mon;
	tm.tm_year -= 1900;
	return timegm(&tm);
}

/* ---- Range (RFC 9110 14) ----------------------------------------------- */

enum range_result {
	RANGE_IGNORE,        /* absent, malformed or several ranges: whole file */
	RANGE_OK,            /* [*from, *from + *count) */
	RANGE_UNSATISFIABLE, /* 416 */
};

static bool is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Reads 1*DIGIT at *<p> (before <end>); a value past 64 bits saturates at
 * UINT64_MAX (the grammar has no limit, and any such number is past the
 * end of a file). Returns false when there is no digit. */
static bool range_number(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	*v = 0;
	for (; *p < end && **p >= '0' && **p <= '9'; (*p)++) {
		unsigned d = (unsigned)(**p - '0');
		*v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
	}
	return *p > s;
}

/*
 * Parses a Range field value <p,len> for a representation of <size>
 * bytes. Only "bytes=" with exactly one range-spec counts: "a-b" (a <= b),
 * "a-" or "-n"; OWS is allowed around it and empty list elements are
 * skipped (RFC 9110 5.6.1). Pure.
 */
static enum range_result range_parse(const char *p, size_t len, uint64_t size, uint64_t *from,
                                     uint64_t *count)
{
	const char *end = p + len;
	uint64_t a = 0, b = UINT64_MAX;
	bool suffix = false, seen = false;

	if (len < 6 || strncasecmp(p, "bytes=", 6) != 0)
		return RANGE_IGNORE;
	for (p += 6; p < end;) {
		while (p < end && (is_ows(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		if (seen)
			return RANGE_IGNORE; /* a second range */
		seen = true;
		suffix = *p == '-';
		if (!suffix && !range_number(&p, end, &a))
			return RANGE_IGNORE;
		if (p == end || *p++ != '-')
			return RANGE_IGNORE;
		if (p < end && *p >= '0' && *p <= '9')
			range_number(&p, end, &b);
		else if (suffix)
			return RANGE_IGNORE; /* "-" alone */
		while (p < end && is_ows(*p))
			p++;
		if (p < end && *p != ',')
			return RANGE_IGNORE;
	}
	if (!seen || (!suffix && a > b))
		return RANGE_IGNORE;
	if (suffix) {
		if (b == 0 || size == 0)
			return RANGE_UNSATISFIABLE;
		*count = b < size ? b : size;
		*from = size - *count;
		return RANGE_OK;
	}
	if (a >= size)
		return RANGE_UNSATISFIABLE;
	*from = a;
	*count = (b < size - 1 ? b : size - 1) - a + 1;
	return RANGE_OK;
}

/* ---- Conditional requests (RFC 9110 13) -------------------------------- */

/* Walks a list of entity-tags (If-None-Match); true when one is "*" or
 * equals <etag> after its "W/" (the weak comparison). A malformed element
 * ends the walk. */
static bool etag_list_match(struct http_slice v, const char *etag)
{
	const char *p = v.p, *end = v.p + v.len;
	size_t etag_len = strlen(etag);

	while (p < end) {
		while (p < end && (is_ows(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		if (*p == '*')
			return true;
		if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
			p += 2;
		if (p == end || *p != '"')
			return false;
		const char *close = memchr(p + 1, '"', (size_t)(end - p - 1));
		if (close == NULL)
			return false;
		size_t n = (size_t)(close - p + 1);
		if (n == etag_len && memcmp(p, etag, n) == 0)
			return true;
		p = close + 1;
	}
	return false;
}

static bool is_uwsgi(const struct conn *c)
{
	return c->l != NULL && c->l->proto == PROTO_UWSGI;
}

/* The value of the <k>th request header field <name> (lower case), or a
 * slice with p == NULL. Behind nginx (the uwsgi protocol) the field is
 * the var <var>, and there is at most one. */
static struct http_slice req_field(const struct conn *c, const char *name, const char *var,
                                   size_t k)
{
	if (is_uwsgi(c))
		return k == 0 ? uwsgi_packet_get(&c->pkt, var) : (struct http_slice){NULL, 0};
	for (size_t i = 0; i < c->req.num_headers; i++)
		if (http_slice_eq_nocase(c->req.headers[i].name, name) && k-- == 0)
			return c->req.headers[i].value;
	return (struct http_slice){NULL, 0};
}

/* 304 or not: If-None-Match (every field) when present, else
 * If-Modified-Since. */
static bool not_modified(const struct conn *c, const char *etag, time_t mtime)
{
	struct http_slice v;
	size_t k = 0;

	while ((v = req_field(c, "if-none-match", "HTTP_IF_NONE_MATCH", k)).p != NULL) {
		if (etag_list_match(v, etag))
			return true;
		k++;
	}
	if (k > 0)
		return false;
	v = req_field(c, "if-modified-since", "HTTP_IF_MODIFIED_SINCE", 0);
	if (v.p == NULL)
		return false;
	time_t t = http_date_parse(v.p, v.len);
	return t != -1 && mtime <= t;
}

/* If-Range: the Range applies when absent, or when it names our strong
 * ETag or exactly our Last-Modified date. */
static bool if_range_ok(const struct conn *c, const char *etag, time_t mtime)
{
	struct http_slice v = req_field(c, "if-range", "HTTP_IF_RANGE", 0);
	if (v.p == NULL)
		return true;
	if (req_field(c, "if-range", "HTTP_IF_RANGE", 1).p != NULL || v.len == 0)
		return false;
	if (v.p[0] == '"' || v.p[0] == 'W')
		return v.len == strlen(etag) && memcmp(v.p, etag, v.len) == 0;
	return http_date_parse(v.p, v.len) == mtime;
}

/* ---- Set-up ------------------------------------------------------------ */

static int add_map(struct static_config *sc, const struct opt_entry *e, char *err, size_t errlen)
{
	enum static_kind kind = e->id == OPT_STATIC_MAP    ? STATIC_MAP
	                        : e->id == OPT_STATIC_MAP2 ? STATIC_MAP2
	                                                   : STATIC_CHECK;
	const char *v = e->value ? e->value : "", *dir = v;
	size_t prefix_len = 0;
	struct stat st;

	if (kind != STATIC_CHECK) {
		const char *eq = strchr(v, '=');
		if (eq == NULL || eq == v || eq[1] == '\0') {
			snprintf(err, errlen, "--%s %s: expected /prefix=/dir", e->key, v);
			return -1;
		}
		prefix_len = (size_t)(eq - v);
		dir = eq + 1;
	} else if (*v == '\0') {
		snprintf(err, errlen, "--%s: expected a directory", e->key);
		return -1;
	}
	struct static_map *maps = realloc(sc->maps, (sc->n_maps + 1) * sizeof(*maps));
	if (maps == NULL)
		goto nomem;
	sc->maps = maps;
	struct static_map *m = &maps[sc->n_maps];
	memset(m, 0, sizeof(*m));
	m->kind = kind;
	m->prefix = strndup(v, prefix_len);
	m->prefix_len = prefix_len;
	m->dir = strdup(dir);
	sc->n_maps++; /* owned by <sc> from here on, even half built */
	if (m->prefix == NULL || m->dir == NULL)
		goto nomem;
	m->real = realpath(dir, NULL);
	if (m->real == NULL)
		log_err(errno, "--%s %s: realpath(%s) failed; tried again for each request", e->key,
		        v, dir);
	else
		m->is_file = stat(m->real, &st) == 0 && S_ISREG(st.st_mode);
	return 0;
nomem:
	snprintf(err, errlen, "--%s %s: out of memory", e->key, v);
	return -1;
}

/* Appends a copy of <s> to the array <*arr> of <*n>. Returns 0 or -1. */
static int add_string(char ***arr, size_t *n, char *s)
{
	char **a = s ? realloc(*arr, (*n + 1) * sizeof(*a)) : NULL;
	if (a == NULL) {
		free(s);
		return -1;
	}
	a[(*n)++] = s;
	*arr = a;
	return 0;
}

static int add_option(struct static_config *sc, const struct opt_entry *e, char *err, size_t errlen)
{
	const char *v = e->value ? e->value : "";
	char *real;

	switch (e->id) {
	case OPT_STATIC_MAP:
	case OPT_STATIC_MAP2:
	case OPT_CHECK_STATIC:
		return add_map(sc, e, err, errlen);
	case OPT_STATIC_INDEX:
		if (*v == '\0' || strchr(v, '/') != NULL) {
			snprintf(err, errlen, "--%s %s: expected a file name", e->key, v);
			return -1;
		}
		if (add_string(&sc->index, &sc->n_index, strdup(v)) == -1)
			break;
		return 0;
	case OPT_STATIC_SAFE:
		/* uWSGI does not check these either: a directory that does
		 * not exist yet allows nothing. */
		if ((real = realpath(v, NULL)) == NULL) {
			log_err(errno, "--%s %s: realpath() failed; ignored", e->key, v);
			return 0;
		}
		if (add_string(&sc->safe, &sc->n_safe, real) == -1)
			break;
		return 0;
	default:
		return 0;
	}
	snprintf(err, errlen, "--%s %s: out of memory", e->key, v);
	return -1;
}

int static_setup(struct static_config *sc, const struct options *o, char *err, size_t errlen)
{
	memset(sc, 0, sizeof(*sc));
	for (size_t i = 0; i < o->n; i++)
		if (add_option(sc, &o->entries[i], err, errlen) == -1)
			goto fail;
	if (sc->n_maps == 0)
		return 0;
	sc->mime = mime_load(MIME_FILE);
	if (sc->mime == NULL) {
		log_err(errno, "cannot read %s; a built-in table of %zu types is used", MIME_FILE,
		        sizeof(mime_builtin) / sizeof(mime_builtin[0]));
		sc->mime = mime_load(NULL);
	}
	if (sc->mime == NULL) {
		snprintf(err, errlen, "static files: out of memory");
		goto fail;
	}
	return 0;
fail:
	static_free(sc);
	return -1;
}

void static_free(struct static_config *sc)
{
	for (size_t i = 0; i < sc->n_maps; i++) {
		free(sc->maps[i].prefix);
		free(sc->maps[i].dir);
		free(sc->maps[i].real);
	}
	free(sc->maps);
	for (size_t i = 0; i < sc->n_index; i++)
		free(sc->index[i]);
	free(sc->index);
	for (size_t i = 0; i < sc->n_safe; i++)
		free(sc->safe[i]);
	free(sc->safe);
	mime_free(sc->mime);
	memset(sc, 0, sizeof(*sc));
}

bool static_enabled(const struct static_config *sc)
{
	return sc->n_maps > 0;
}

/* ---- Finding the file -------------------------------------------------- */

/* True when <real> is <root> or inside it (both canonical). */
static bool path_under(const char *real, const char *root)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return true;
	return strncmp(real, root, n) == 0 && (real[n] == '\0' || real[n] == '/');
}

/* Follows <name> to a regular file: itself, or for a directory its first
 * --static-index file (appended to <name>). Sets *<st>. */
static bool find_file(const struct static_config *sc, char *name, size_t cap, struct stat *st)
{
	if (stat(name, st) == -1)
		return false;
	if (S_ISREG(st->st_mode))
		return true;
	if (!S_ISDIR(st->st_mode))
		return false;
	size_t n = strlen(name);
	const char *sep = n > 0 && name[n - 1] == '/' ? "" : "/";
	for (size_t i = 0; i < sc->n_index; i++) {
		int w = snprintf(name + n, cap - n, "%s%s", sep, sc->index[i]);
		if (w > 0 && (size_t)w < cap - n && stat(name, st) == 0 && S_ISREG(st->st_mode))
			return true;
		name[n] = '\0';
	}
	return false;
}

/*
 * Opens <name> when its real path is under map <m>'s directory or a
 * --static-safe one. Returns the fd (*<st> from fstat()), or -1 when the
 * file is not to be served. The check and the open() are not atomic: a
 * symlink swapped in between is followed only for its last component
 * (O_NOFOLLOW) - whoever can swap links in the tree can place files too.
 */
static int open_checked(const struct static_config *sc, const struct static_map *m,
                        const char *name, struct stat *st)
{
	char real[PATH_MAX], root_buf[PATH_MAX];
	const char *root = m->real ? m->real : realpath(m->dir, root_buf);

	if (realpath(name, real) == NULL)
		return -1;
	bool ok = root != NULL && path_under(real, root);
	for (size_t i = 0; !ok && i < sc->n_safe; i++)
		ok = path_under(real, sc->safe[i]);
	if (!ok) {
		log_info("static: %s is %s, outside %s and every --static-safe directory: "
		         "left to the app",
		         name, real, m->dir);
		return -1;
	}
	/* O_NONBLOCK: a FIFO swapped in after the stat() must not hang us. */
	int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1)
		return -1;
	if (fstat(fd, st) == -1 || !S_ISREG(st->st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- The response ------------------------------------------------------ */

struct reply {
	char buf[STATIC_HEAD_MAX];
	size_t len;
	bool overflow;
};

__attribute__((format(printf, 2, 3))) static void reply_add(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(r->buf) - r->len)
		r->overflow = true;
	else
		r->len += (size_t)n;
}

/* The status for a file with <etag> and <mtime> of <size> bytes; sets
 * the range to send for 200 and 206. */
static int choose_status(const struct conn *c, bool head, const char *etag, time_t mtime,
                         uint64_t size, uint64_t *from, uint64_t *count)
{
	*from = 0;
	*count = size;
	if (not_modified(c, etag, mtime))
		return 304;
	/* RFC 9110 14.2: Range is defined for GET only. */
	if (head)
		return 200;
	struct http_slice range = req_field(c, "range", "HTTP_RANGE", 0);
	if (range.p == NULL || req_field(c, "range", "HTTP_RANGE", 1).p != NULL ||
	    !if_range_ok(c, etag, mtime))
		return 200;
	switch (range_parse(range.p, range.len, size, from, count)) {
	case RANGE_OK:
		return 206;
	case RANGE_UNSATISFIABLE:
		*count = 0;
		return 416;
	default:
		*from = 0;
		*count = size;
		return 200;
	}
}

static int respond(const struct static_config *sc, struct conn *c, const char *name, int fd,
                   const struct stat *st, bool head, bool *keep)
{
	const struct http_request *req = &c->req;
	uint64_t size = (uint64_t)st->st_size, from, count;
	char etag[48], modified[HTTP_DATE_LEN + 1], now[HTTP_DATE_LEN + 1];
	struct reply r = {.len = 0};

	snprintf(etag, sizeof(etag), "\"%" PRIx64 "-%" PRIx64 "\"", (uint64_t)st->st_mtime, size);
	int status = choose_status(c, head, etag, st->st_mtime, size, &from, &count);
	*keep = req->keep_alive;

	reply_add(&r, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
	if (http_date_format(time(NULL), now) == 0)
		reply_add(&r, "Date: %s\r\n", now);
	if (status == 200 || status == 206)
		reply_add(&r, "Content-Type: %s\r\nContent-Length: %" PRIu64 "\r\n",
		          mime_type(sc->mime, name), count);
	if (status == 206)
		reply_add(&r, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", from,
		          from + count - 1, size);
	if (status == 416)
		reply_add(&r, "Content-Range: bytes */%" PRIu64 "\r\nContent-Length: 0\r\n", size);
	if (status != 416 && http_date_format(st->st_mtime, modified) == 0)
		reply_add(&r, "Last-Modified: %s\r\n", modified);
	if (status != 416)
		reply_add(&r, "ETag: %s\r\n", etag);
	reply_add(&r, "Accept-Ranges: bytes\r\n");
	if (!*keep)
		reply_add(&r, "Connection: close\r\n");
	else if (req->minor_version == 0)
		reply_add(&r, "Connection: keep-alive\r\n");
	reply_add(&r, "\r\n");
	if (r.overflow) { /* cannot happen with the limits above */
		conn_send_error(c, 500);
		*keep = false;
		return 1;
	}

	struct iovec iov = {.iov_base = r.buf, .iov_len = r.len};
	bool body = !head && count > 0 && (status == 200 || status == 206);
	if (body)
		conn_cork(c, true); /* nginx's tcp_nopush */
	if (conn_writev(c, &iov, 1) == -1)
		return -1;
	if (head || count == 0 || (status != 200 && status != 206))
		return 1;
	/* Send what the socket takes now; the worker's loop sends the rest as
	 * the client drains it (return 2), so one slow or large download
	 * never holds the worker. */
	off_t off = (off_t)from;
	while (count > 0) {
		ssize_t n = sendfile(c->fd, fd, &off, (size_t)count);
		if (n > 0) {
			count -= (uint64_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		if (n == -1)
			return -1;
		*keep = false; /* the file shrank: only closing tells the client */
		return 1;
	}
	conn_cork(c, false);
	if (count == 0)
		return 1;
	c->sf_fd = dup(fd);
	if (c->sf_fd == -1)
		return -1;
	c->sf_off = off;
	c->sf_left = count;
	c->sf_keep = *keep;
	return 2;
}

/* Behind nginx the path is PATH_INFO, already decoded: its '%'s are
 * escaped again so that static_resolve() decodes it once. Returns the
 * path to resolve (<*buf> when one was allocated, to be freed), or NULL
 * when out of memory. */
static const char *request_path(const struct conn *c, size_t *len, char **buf)
{
	struct http_slice p = c->req.path;
	*buf = NULL;
	*len = p.len;
	if (!is_uwsgi(c) || memchr(p.p, '%', p.len) == NULL)
		return p.p;
	if ((*buf = malloc(p.len * 3)) == NULL)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < p.len; i++) {
		(*buf)[n++] = p.p[i];
		if (p.p[i] == '%') {
			(*buf)[n++] = '2';
			(*buf)[n++] = '5';
		}
	}
	*len = n;
	return *buf;
}

int static_serve(const struct static_config *sc, struct conn *c, bool *keep)
{
	const struct http_request *req = &c->req;
	bool head = http_slice_eq(req->method, "HEAD");
	char name[PATH_MAX], *buf;
	struct stat st;
	size_t len;
	int r = 0;

	if (!head && !http_slice_eq(req->method, "GET"))
		return 0;
	const char *path = request_path(c, &len, &buf);
	for (size_t i = 0; path != NULL && i < sc->n_maps; i++) {
		/* Resolve under the canonical directory, so that a later
		 * chdir() (by the app) does not move a relative one. */
		struct static_map m = sc->maps[i];
		if (m.real != NULL)
			m.dir = m.real;
		if (static_resolve(&m, path, len, name, sizeof(name)) != 1 ||
		    !find_file(sc, name, sizeof(name), &st))
			continue;
		int fd = open_checked(sc, &sc->maps[i], name, &st);
		if (fd == -1)
			continue;
		r = respond(sc, c, name, fd, &st, head, keep);
		close(fd);
		break;
	}
	free(buf);
	return r;
}
