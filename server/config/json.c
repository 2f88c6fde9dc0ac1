/*
 * json.c - uWSGI's JSON config files (core/json.c rules, see
 * config_file.h), with a small recursive-descent parser of RFC 8259 JSON.
 *
 * Nothing is built in memory: the parser walks the buffer (json_parse_buf(),
 * reached by the fuzz target) twice, first to check the whole document and
 * the section's shape, then to hand out the options. So a file with an
 * error anywhere gives an error and no options, not half of them.
 *
 * Strings are decoded (escapes, \uXXXX to UTF-8, surrogate pairs joined; a
 * lone surrogate is an error); other bytes pass through unchecked. Numbers
 * are checked against the grammar and kept as written ("1e3" stays "1e3").
 * Nesting is limited to JSON_MAX_DEPTH so that recursion stays bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mulefarm/config_file.h"

#define JSON_MAX_DEPTH 64

/* A growable NUL-terminated string. */
struct json_buf {
	char *s;
	size_t len, cap;
};

struct json {
	const char *p, *end;
	int line;
	int depth;
	bool emitting;
	bool found;
	const char *file, *section;
	cfg_emit_fn emit;
	void *ctx;
	char *err;
	size_t errlen;
	struct json_buf key, val;
};

/* "file:line: <what>"; always returns -1. */
__attribute__((format(printf, 3, 4))) static int json_fail(struct json *j, int line,
                                                           const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	cfg__errf(j->err, j->errlen, "%s:%d: %s", j->file, line, what);
	return -1;
}

static int json_put(struct json *j, struct json_buf *b, const char *s, size_t n)
{
	if (b->cap - b->len <= n) {
		size_t cap = b->cap ? b->cap : 64;
		char *ns;

		while (cap - b->len <= n)
			cap *= 2;
		ns = realloc(b->s, cap);
		if (ns == NULL) {
			cfg__errf(j->err, j->errlen, "%s: out of memory", j->file);
			return -1;
		}
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

static void json_skip_ws(struct json *j)
{
	for (; j->p < j->end; j->p++) {
		if (*j->p == '\n')
			j->line++;
		else if (*j->p != ' ' && *j->p != '\t' && *j->p != '\r')
			break;
	}
}

/* The next significant byte, or -1 at the end of the input. */
static int json_peek(struct json *j)
{
	json_skip_ws(j);
	return j->p < j->end ? (unsigned char)*j->p : -1;
}

/* Names the byte at the cursor for a message. */
static const char *json_found(struct json *j, char *buf, size_t len)
{
	unsigned char c;

	if (j->p >= j->end)
		return "the end of the file";
	c = (unsigned char)*j->p;
	if (c > 0x20 && c < 0x7f)
		snprintf(buf, len, "'%c'", c);
	else
		snprintf(buf, len, "byte 0x%02x", c);
	return buf;
}

static int json_expected(struct json *j, const char *what)
{
	char b[16];

	return json_fail(j, j->line, "expected %s, found %s", what, json_found(j, b, sizeof(b)));
}

static int json_hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static int json_put_utf8(struct json *j, struct json_buf *b, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return json_put(j, b, u, n);
}

/* After "\u" at <j->p>: one code point, or a surrogate pair, as UTF-8. */
static int json_unicode(struct json *j, struct json_buf *b)
{
	unsigned hi, lo;

	if (j->end - j->p < 4 || json_hex4(j->p, &hi) == -1)
		return json_fail(j, j->line, "\\u must be followed by 4 hex digits");
	j->p += 4;
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return json_fail(j, j->line, "lone low surrogate \\u%04X", hi);
	if (hi >= 0xd800 && hi <= 0xdbff) {
		if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
		    json_hex4(j->p + 2, &lo) == -1 || lo < 0xdc00 || lo > 0xdfff)
			return json_fail(j, j->line, "high surrogate \\u%04X without a low one",
			                 hi);
		j->p += 6;
		hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
	}
	return json_put_utf8(j, b, hi);
}

/* A string at the cursor (on its '"'), decoded into <b>. */
static int json_string(struct json *j, struct json_buf *b)
{
	b->len = 0;
	if (json_put(j, b, "", 0) == -1)
		return -1;
	j->p++;
	for (;;) {
		const char *run = j->p;
		char c;

		while (j->p < j->end && *j->p != '"' && *j->p != '\\' &&
		       (unsigned char)*j->p >= 0x20)
			j->p++;
		if (json_put(j, b, run, (size_t)(j->p - run)) == -1)
			return -1;
		if (j->p >= j->end)
			return json_fail(j, j->line, "unterminated string");
		c = *j->p++;
		if (c == '"')
			return 0;
		if (c != '\\')
			return json_fail(j, j->line, "control character 0x%02x in a string",
			                 (unsigned char)c);
		if (j->p >= j->end)
			return json_fail(j, j->line, "unterminated string");
		c = *j->p++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			break;
		case 'b':
			c = '\b';
			break;
		case 'f':
			c = '\f';
			break;
		case 'n':
			c = '\n';
			break;
		case 'r':
			c = '\r';
			break;
		case 't':
			c = '\t';
			break;
		case 'u':
			if (json_unicode(j, b) == -1)
				return -1;
			continue;
		default:
			j->p--;
			return json_expected(j,
			                     "an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
		}
		if (json_put(j, b, &c, 1) == -1)
			return -1;
	}
}

static bool json_digit(struct json *j)
{
	return j->p < j->end && *j->p >= '0' && *j->p <= '9';
}

/* A number at the cursor, its text copied into <b>. */
static int json_number(struct json *j, struct json_buf *b)
{
	const char *start = j->p;

	if (*j->p == '-')
		j->p++;
	if (!json_digit(j))
		return json_expected(j, "a digit");
	if (*j->p++ != '0')
		while (json_digit(j))
			j->p++;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!json_digit(j))
			return json_expected(j, "a digit after '.'");
		while (json_digit(j))
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!json_digit(j))
			return json_expected(j, "a digit in the exponent");
		while (json_digit(j))
			j->p++;
	}
	b->len = 0;
	return json_put(j, b, start, (size_t)(j->p - start));
}

/* true, false or null at the cursor; <b> gets uWSGI's "1" or "0". */
static int json_literal(struct json *j, struct json_buf *b)
{
	static const char *const lit[] = {"true", "false", "null"};
	size_t i;

	for (i = 0; i < 3; i++) {
		size_t n = strlen(lit[i]);

		if ((size_t)(j->end - j->p) >= n && memcmp(j->p, lit[i], n) == 0) {
			j->p += n;
			b->len = 0;
			return json_put(j, b, i == 0 ? "1" : "0", 1);
		}
	}
	return json_expected(j, "a value");
}

/* A string, number or literal at the cursor into <b>; 1 if none is there. */
static int json_scalar(struct json *j, struct json_buf *b)
{
	int c = json_peek(j);

	if (c == '"')
		return json_string(j, b);
	if (c == '-' || (c >= '0' && c <= '9'))
		return json_number(j, b);
	if (c == 't' || c == 'f' || c == 'n')
		return json_literal(j, b);
	if (c == '[' || c == '{')
		return 1;
	return json_expected(j, "a value");
}

static int json_value(struct json *j);

/* An object's members at the cursor (after its '{'), keys into j->key;
 * <member> parses each value. */
static int json_members(struct json *j, int (*member)(struct json *j, int line))
{
	int c = json_peek(j), line, rc;

	if (c == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		if (c != '"')
			return json_expected(j, "a string key");
		line = j->line;
		if (json_string(j, &j->key) == -1)
			return -1;
		if (json_peek(j) != ':')
			return json_expected(j, "':' after the key");
		j->p++;
		rc = member(j, line);
		if (rc != 0)
			return rc;
		c = json_peek(j);
		if (c != ',' && c != '}')
			return json_expected(j, "',' or '}'");
		j->p++;
		if (c == '}')
			return 0;
		c = json_peek(j);
	}
}

/* An array's elements at the cursor (after its '['); <element> parses each. */
static int json_elements(struct json *j, int (*element)(struct json *j, void *arg), void *arg)
{
	int c = json_peek(j), rc;

	if (c == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		rc = element(j, arg);
		if (rc != 0)
			return rc;
		c = json_peek(j);
		if (c != ',' && c != ']')
			return json_expected(j, "',' or ']'");
		j->p++;
		if (c == ']')
			return 0;
	}
}

static int json_enter(struct json *j)
{
	if (j->depth >= JSON_MAX_DEPTH)
		return json_fail(j, j->line, "nested deeper than %d levels", JSON_MAX_DEPTH);
	j->depth++;
	j->p++;
	return 0;
}

static int json_skip_member(struct json *j, int line)
{
	return json_value(j);
}

static int json_skip_element(struct json *j, void *arg)
{
	return json_value(j);
}

/* Any value at the cursor, checked and skipped. */
static int json_value(struct json *j)
{
	int c = json_peek(j), rc;

	if (c != '[' && c != '{')
		return json_scalar(j, &j->val);
	if (json_enter(j) == -1)
		return -1;
	if (c == '[')
		rc = json_elements(j, json_skip_element, NULL);
	else
		rc = json_members(j, json_skip_member);
	j->depth--;
	return rc;
}

static int json_emit(struct json *j, int line)
{
	struct cfg_item item = {j->key.s, j->val.s, j->file, line};

	if (strlen(j->val.s) != j->val.len)
		return json_fail(j, line, "option '%s': \\u0000 in the value", j->key.s);
	if (!j->emitting)
		return 0;
	return j->emit(j->ctx, &item, j->err, j->errlen);
}

/* An element of an option's list; <arg> points to the key's line. */
static int json_option_element(struct json *j, void *arg)
{
	int line = *(const int *)arg, rc = json_scalar(j, &j->val);

	if (rc == 1)
		return json_fail(j, line, "option '%s': a list may hold only values, found %s",
		                 j->key.s, *j->p == '[' ? "a list" : "an object");
	if (rc != 0)
		return rc;
	return json_emit(j, line);
}

/* One option of the section: the key is in j->key, the value at the cursor. */
static int json_option(struct json *j, int line)
{
	int rc;

	if (j->key.len == 0)
		return json_fail(j, line, "empty key");
	if (strlen(j->key.s) != j->key.len)
		return json_fail(j, line, "\\u0000 in a key");
	rc = json_scalar(j, &j->val);
	if (rc == 0)
		return json_emit(j, line);
	if (rc != 1)
		return rc;
	if (*j->p == '{')
		return json_fail(j, line,
		                 "option '%s': expected a value or a list, found an object",
		                 j->key.s);
	if (json_enter(j) == -1)
		return -1;
	rc = json_elements(j, json_option_element, &line);
	j->depth--;
	return rc;
}

/* A member of the top-level object: the section, or anything to skip. */
static int json_top_member(struct json *j, int line)
{
	int rc;

	if (j->key.len != strlen(j->section) || memcmp(j->key.s, j->section, j->key.len) != 0)
		return json_value(j);
	if (json_peek(j) != '{')
		return json_fail(j, line, "section '%s' is not an object", j->section);
	j->found = true;
	if (json_enter(j) == -1)
		return -1;
	rc = json_members(j, json_option);
	j->depth--;
	return rc;
}

/* One pass over the document. */
static int json_walk(struct json *j, const char *buf, size_t len)
{
	int rc;

	j->p = buf;
	j->end = buf + len;
	j->line = 1;
	j->depth = 0;
	/* A UTF-8 byte order mark, which RFC 8259 lets a parser ignore. */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		j->p += 3;
	if (json_peek(j) != '{')
		return json_expected(j, "an object at the top level");
	j->depth = 1;
	j->p++;
	rc = json_members(j, json_top_member);
	if (rc != 0)
		return rc;
	if (json_peek(j) != -1)
		return json_expected(j, "the end of the file after the top-level object");
	return 0;
}

/* cfg_read_json() over a buffer; <file> only names it in items and messages. */
static int json_parse_buf(const char *buf, size_t len, const char *file, const char *section,
                          cfg_emit_fn emit, void *ctx, char *err, size_t errlen)
{
	struct json j = {0};
	int rc;

	j.file = file;
	j.section = section != NULL && section[0] != '\0' ? section : "uwsgi";
	j.emit = emit;
	j.ctx = ctx;
	j.err = err;
	j.errlen = errlen;
	rc = json_walk(&j, buf, len);
	if (rc == 0 && !j.found) {
		cfg__errf(err, errlen, "%s: no '%s' section", file, j.section);
		rc = -1;
	}
	if (rc == 0) {
		j.emitting = true;
		rc = json_walk(&j, buf, len);
	}
	free(j.key.s);
	free(j.val.s);
	return rc;
}

int cfg_read_json(const char *path, const char *section, cfg_emit_fn emit, void *ctx, char *err,
                  size_t errlen)
{
	return cfg__read(path, json_parse_buf, section, emit, ctx, err, errlen);
}
