/*
 * ini.c - uWSGI's INI files (core/ini.c rules, see config_file.h).
 *
 * The parser works on a memory buffer (ini_parse_buf(), reached by the fuzz
 * target) and makes two passes over it: the first checks every line and
 * whether the section exists, the second hands the options out. So a file
 * with a bad line anywhere gives an error and no options, not half of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mulefarm/config_file.h"

struct ini {
	const char *file, *section;
	cfg_emit_fn emit;
	void *ctx;
	char *err;
	size_t errlen;
	char *scratch; /* the current key and value, NUL-terminated */
};

static bool ini_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Narrows [*<b>, *<e>) to exclude leading and trailing white space. */
static void ini_trim(const char **b, const char **e)
{
	while (*b < *e && ini_space(**b))
		(*b)++;
	while (*e > *b && ini_space((*e)[-1]))
		(*e)--;
}

/*
 * One pass over <buf>; emits the options when <emitting>. Returns 0 and sets
 * *<found> when a header names the section, -1 (message in err) on a bad
 * line, or the callback's non-zero result.
 */
static int ini_walk(struct ini *s, const char *buf, size_t len, bool emitting, bool *found)
{
	const char *p = buf, *end = buf + len;
	bool in_section = false;
	int line = 0;

	/* A UTF-8 byte order mark, as editors on Windows write it. */
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	for (; p < end; p++) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *b = p, *e = eol != NULL ? eol : end, *eq;

		line++;
		p = e;
		if (memchr(b, '\0', (size_t)(e - b)) != NULL) {
			cfg__errf(s->err, s->errlen, "%s:%d: NUL byte in the line", s->file, line);
			return -1;
		}
		ini_trim(&b, &e);
		if (b == e || *b == ';' || *b == '#')
			continue;
		if (*b == '[') {
			/* The name is not trimmed: "[ uwsgi ]" is not [uwsgi], as in uWSGI. */
			if (e[-1] != ']' || e - b < 2) {
				cfg__errf(s->err, s->errlen,
				          "%s:%d: section header without ']' at its end", s->file,
				          line);
				return -1;
			}
			in_section = (size_t)(e - b - 2) == strlen(s->section) &&
			             memcmp(b + 1, s->section, (size_t)(e - b - 2)) == 0;
			*found = *found || in_section;
			continue;
		}
		eq = memchr(b, '=', (size_t)(e - b));
		if (eq == b) {
			cfg__errf(s->err, s->errlen, "%s:%d: expected a key before '='", s->file,
			          line);
			return -1;
		}
		if (emitting && in_section) {
			const char *kb = b, *ke = eq != NULL ? eq : e, *vb, *ve = e;
			struct cfg_item item = {s->scratch, NULL, s->file, line};
			size_t klen;
			int rc;

			ini_trim(&kb, &ke);
			klen = (size_t)(ke - kb);
			memcpy(s->scratch, kb, klen);
			s->scratch[klen] = '\0';
			if (eq != NULL) {
				vb = eq + 1;
				ini_trim(&vb, &ve);
				memcpy(s->scratch + klen + 1, vb, (size_t)(ve - vb));
				s->scratch[klen + 1 + (size_t)(ve - vb)] = '\0';
				item.value = s->scratch + klen + 1;
			}
			rc = s->emit(s->ctx, &item, s->err, s->errlen);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

/* cfg_read_ini() over a buffer; <file> only names it in items and messages. */
static int ini_parse_buf(const char *buf, size_t len, const char *file, const char *section,
                         cfg_emit_fn emit, void *ctx, char *err, size_t errlen)
{
	struct ini s = {file, section, emit, ctx, err, errlen, NULL};
	bool found = false;
	int rc;

	if (s.section == NULL || s.section[0] == '\0')
		s.section = "uwsgi";
	rc = ini_walk(&s, buf, len, false, &found);
	if (rc != 0)
		return rc;
	if (!found) {
		cfg__errf(err, errlen, "%s: no '%s' section", file, s.section);
		return -1;
	}
	/* A key and its value are never longer than their line. */
	s.scratch = malloc(len + 2);
	if (s.scratch == NULL) {
		cfg__errf(err, errlen, "%s: out of memory", file);
		return -1;
	}
	rc = ini_walk(&s, buf, len, true, &found);
	free(s.scratch);
	return rc;
}

int cfg_read_ini(const char *path, const char *section, cfg_emit_fn emit, void *ctx, char *err,
                 size_t errlen)
{
	return cfg__read(path, ini_parse_buf, section, emit, ctx, err, errlen);
}
