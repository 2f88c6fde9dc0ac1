/*
 * static_resolve.c - request path to file name for one static map. Pure
 * (no file system access, no globals) so that the fuzzer links it alone;
 * static.c does the I/O.
 */
#include <string.h>

#include "mulefarm/static.h"

static int hex_value(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The decoded byte at *<i> in <p,len>, advancing *<i> past it. A '%' not
 * followed by two hex digits stands for itself. */
static int next_byte(const char *p, size_t len, size_t *i)
{
	unsigned char ch = (unsigned char)p[*i];
	if (ch == '%' && len - *i >= 3) {
		int hi = hex_value((unsigned char)p[*i + 1]);
		int lo = hex_value((unsigned char)p[*i + 2]);
		if (hi >= 0 && lo >= 0) {
			*i += 3;
			return hi << 4 | lo;
		}
	}
	(*i)++;
	return ch;
}

/*
 * Appends the decoded segments of <p,len> from <i> to <out> after its
 * first <o> bytes, each after a '/'. Empty and "." segments are dropped
 * and ".." is refused; a segment's leading dots are held back until it is
 * known not to be one of those, so that only bytes of the result are
 * written and "too small" means exactly that. Returns 1 or -1.
 */
static int append_path(const char *p, size_t len, size_t i, char *out, size_t outlen, size_t o)
{
	size_t seg = 0;  /* bytes in the current segment, held-back dots included */
	size_t dots = 0; /* held-back leading dots: seg == dots while only dots */

	if (o + 1 >= outlen)
		return -1;
	out[o++] = '/';
	while (i < len) {
		int ch = next_byte(p, len, &i);
		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			return -1;
		if (ch == '/' && seg == dots) {
			if (dots == 2)
				return -1; /* ".." */
			seg = dots = 0;    /* "" or ".": dropped */
			continue;
		}
		if (ch == '.' && seg == dots && dots < 2) {
			seg = ++dots;
			continue;
		}
		size_t held = seg == dots ? dots : 0;
		if (o + held + 1 >= outlen)
			return -1;
		memset(out + o, '.', held);
		o += held;
		out[o++] = (char)ch;
		seg = ch == '/' ? 0 : seg + 1;
		dots = ch == '/' ? 0 : dots;
	}
	if (seg == dots && dots == 2)
		return -1;
	out[o] = '\0';
	return 1;
}

int static_resolve(const struct static_map *m, const char *path, size_t len, char *out,
                   size_t outlen)
{
	size_t i = 0;

	if (m->kind != STATIC_CHECK) {
		for (size_t k = 0; k < m->prefix_len; k++)
			if (i == len || next_byte(path, len, &i) != (unsigned char)m->prefix[k])
				return 0;
	}
	if (m->kind != STATIC_MAP)
		i = 0; /* the whole path goes under <dir> */

	size_t dir_len = strlen(m->dir);
	if (m->is_file) {
		if (dir_len >= outlen)
			return -1;
		memcpy(out, m->dir, dir_len + 1);
		return 1;
	}
	while (dir_len > 0 && m->dir[dir_len - 1] == '/')
		dir_len--;
	if (dir_len >= outlen)
		return -1;
	memcpy(out, m->dir, dir_len);
	return append_path(path, len, i, out, outlen, dir_len);
}
