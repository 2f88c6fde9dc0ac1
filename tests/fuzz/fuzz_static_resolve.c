/*
 * fuzz_static_resolve.c - libFuzzer target for static_resolve().
 *
 * Input: one selector byte, then the request path (percent-encoded).
 * Selector bits 0-1: the map kind (--static-map, --static-map2,
 * --check-static, or --static-map to a file); bits 2-3: the directory
 * ("/srv/www", "/srv/www//", "/", "rel/dir"); bits 4-7: the size of
 * <out> (0: PATH_MAX, else 2 * n + 1 bytes, to reach "too small").
 *
 * Checks that
 *  - the result is -1, 0 or 1, and calling again gives the same;
 *  - <out> is written within its size (an exact-size heap buffer);
 *  - with 1, <out> is NUL-terminated, starts with the directory and
 *    holds no "/../" nor a trailing "/..", no "/./", no "//", no backslash,
 *    no control character;
 *  - a reference written straight from the contract (decode everything,
 *    compare the prefix, split at '/', drop "" and ".", refuse "..")
 *    gives the same answer and the same name.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mulefarm/static.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define PREFIX "/static"

static const char *const dirs[4] = {"/srv/www", "/srv/www//", "/", "rel/dir"};

static int ref_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes all of <p,len> into <d>; returns the length. */
static size_t ref_decode(const uint8_t *p, size_t len, uint8_t *d)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '%' && i + 2 < len && ref_hex(p[i + 1]) >= 0 &&
		    ref_hex(p[i + 2]) >= 0) {
			d[n++] = (uint8_t)(ref_hex(p[i + 1]) * 16 + ref_hex(p[i + 2]));
			i += 2;
		} else {
			d[n++] = p[i];
		}
	}
	return n;
}

/* The contract, naively. Returns -1, 0 or 1; with 1, the name in <exp>
 * (big enough for any answer). */
static int reference(const struct static_map *m, const uint8_t *path, size_t len, size_t outlen,
                     char *exp)
{
	uint8_t *d = malloc(len + 1);
	size_t n = ref_decode(path, len, d), start = 0, e = 0;
	int rc = 1;

	if (m->kind != STATIC_CHECK) {
		if (n < m->prefix_len || memcmp(d, m->prefix, m->prefix_len) != 0) {
			free(d);
			return 0;
		}
		if (m->kind == STATIC_MAP)
			start = m->prefix_len;
	}
	if (m->is_file) {
		strcpy(exp, m->dir);
		e = strlen(exp);
		goto out;
	}
	e = strlen(m->dir);
	while (e > 0 && m->dir[e - 1] == '/')
		e--;
	memcpy(exp, m->dir, e);
	exp[e++] = '/';
	for (size_t i = start; i < n; i++)
		if (d[i] < 0x20 || d[i] == 0x7f || d[i] == '\\')
			rc = -1;
	bool last_empty = true; /* the last segment was "" or "." */
	for (size_t i = start; rc == 1 && i <= n;) {
		size_t j = i;
		while (j < n && d[j] != '/')
			j++;
		size_t sl = j - i;
		if (sl == 2 && d[i] == '.' && d[i + 1] == '.') {
			rc = -1;
		} else if (sl == 0 || (sl == 1 && d[i] == '.')) {
			last_empty = true;
		} else {
			if (exp[e - 1] != '/')
				exp[e++] = '/';
			memcpy(exp + e, d + i, sl);
			e += sl;
			last_empty = false;
		}
		i = j + 1;
	}
	/* a path ending in a separator (after dropping) keeps one '/' */
	if (rc == 1 && last_empty && exp[e - 1] != '/')
		exp[e++] = '/';
out:
	exp[e] = '\0';
	free(d);
	if (rc == 1 && e + 1 > outlen)
		rc = -1;
	return rc;
}

static bool contains(const char *s, const char *sub)
{
	return strstr(s, sub) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char exp[2 * PATH_MAX + 65536];
	if (size == 0 || size > 60000)
		return 0;
	uint8_t sel = data[0];
	struct static_map m = {.kind = (enum static_kind)(sel & 3),
	                       .prefix = PREFIX,
	                       .prefix_len = strlen(PREFIX),
	                       .dir = (char *)dirs[(sel >> 2) & 3]};
	if ((sel & 3) == 3) {
		m.kind = STATIC_MAP;
		m.is_file = true;
		m.dir = "/srv/favicon.ico";
	}
	if (m.kind == STATIC_CHECK) {
		m.prefix = "";
		m.prefix_len = 0;
	}
	size_t outlen = (sel >> 4) ? 2 * (size_t)(sel >> 4) + 1 : PATH_MAX;
	size_t len = size - 1;
	char *path = malloc(len ? len : 1), *out = malloc(outlen), *out2 = malloc(outlen);
	memcpy(path, data + 1, len);

	int rc = static_resolve(&m, path, len, out, outlen);
	CHECK(rc == -1 || rc == 0 || rc == 1);
	CHECK(static_resolve(&m, path, len, out2, outlen) == rc);
	if (rc == 1) {
		CHECK(memchr(out, '\0', outlen) != NULL);
		CHECK(strcmp(out, out2) == 0);
		size_t n = strlen(out), dl = strlen(m.dir);
		while (!m.is_file && dl > 0 && m.dir[dl - 1] == '/')
			dl--;
		CHECK(strncmp(out, m.dir, dl) == 0);
		CHECK(m.is_file || out[dl] == '/');
		CHECK(!contains(out, "/../") && !(n >= 3 && strcmp(out + n - 3, "/..") == 0));
		CHECK(!contains(out, "/./") && !(n >= 2 && strcmp(out + n - 2, "/.") == 0));
		CHECK(!contains(out, "//") && !contains(out, "\\"));
		for (size_t i = 0; i < n; i++)
			CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
	}
	CHECK(reference(&m, (const uint8_t *)path, len, outlen, exp) == rc);
	if (rc == 1)
		CHECK(strcmp(out, exp) == 0);
	free(path);
	free(out);
	free(out2);
	return 0;
}
