/*
 * fuzz_config_json.c - libFuzzer target for the JSON config reader (json.c,
 * included to reach json_parse_buf(), so no temporary file is needed).
 *
 * Input: a JSON file. It is read as is and as the value of "uwsgi" in an
 * object around it, for the default section and for "a". Checked:
 *   - items obey the contract (non-empty keys, a value always, the file's
 *     name, a line inside the input) and come out only on success;
 *   - errors start "fuzz.json:<line>: " with a line inside the input, or
 *     are exactly "fuzz.json: no '<section>' section";
 *   - the items, written back out as a JSON object whose strings escape
 *     every non-ASCII code point as \uXXXX (surrogate pairs above the BMP),
 *     read back the same, one key per line;
 *   - a callback that stops half way sees that many items and gets its
 *     result back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/config/json.c"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define FILE_NAME "fuzz.json"

/* Items serialized: line (4 bytes), key, NUL, value, NUL. */
struct out {
	char *b;
	size_t len, cap;
	int n;
	int max_line;
	int stop_at; /* the item (1-based) whose callback returns 7; 0: none */
};

static void out_put(struct out *o, const void *p, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2 + 64;
		o->b = realloc(o->b, o->cap);
		CHECK(o->b != NULL);
	}
	memcpy(o->b + o->len, p, n);
	o->len += n;
}

static int collect(void *ctx, const struct cfg_item *item, char *err, size_t errlen)
{
	struct out *o = ctx;

	CHECK(strcmp(item->file, FILE_NAME) == 0);
	CHECK(item->line >= 1 && item->line <= o->max_line);
	CHECK(item->key[0] != '\0' && item->value != NULL);
	out_put(o, &item->line, sizeof(item->line));
	out_put(o, item->key, strlen(item->key) + 1);
	out_put(o, item->value, strlen(item->value) + 1);
	if (++o->n == o->stop_at) {
		snprintf(err, errlen, "stop");
		return 7;
	}
	return 0;
}

static int count_lines(const char *in, size_t len)
{
	int n = 1;

	for (size_t i = 0; i < len; i++)
		n += in[i] == '\n';
	return n;
}

/* Length of the valid UTF-8 sequence at <s> (code point in *<cp>), or 0. */
static size_t utf8_seq(const unsigned char *s, unsigned *cp)
{
	size_t n, i;
	unsigned c = s[0], min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, c &= 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, c &= 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, c &= 0x07, min = 0x10000;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* <s> as a JSON string: ASCII controls and every valid non-ASCII code
 * point escaped, any other byte (>= 0x80, not valid UTF-8) as is. */
static void put_string(struct out *o, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[16];

	out_put(o, "\"", 1);
	while (*p != '\0') {
		unsigned cp;
		size_t n = utf8_seq(p, &cp);

		if (n == 0) {
			out_put(o, p, 1);
			p++;
			continue;
		}
		p += n;
		if (cp == '"' || cp == '\\') {
			esc[0] = '\\';
			esc[1] = (char)cp;
			out_put(o, esc, 2);
		} else if (cp >= 0x20 && cp < 0x7f) {
			esc[0] = (char)cp;
			out_put(o, esc, 1);
		} else if (cp < 0x10000) {
			snprintf(esc, sizeof(esc), "\\u%04x", cp);
			out_put(o, esc, 6);
		} else {
			cp -= 0x10000;
			snprintf(esc, sizeof(esc), "\\u%04X\\u%04x", 0xd800 + (cp >> 10),
			         0xdc00 + (cp & 0x3ff));
			out_put(o, esc, 12);
		}
	}
	out_put(o, "\"", 1);
}

/* Writes the items back out, one member per line, and reads them again. */
static void check_round_trip(const struct out *o)
{
	struct out text = {0}, again = {0}, want = {0};
	char err[256];
	size_t pos = 0;
	int line = 1;

	out_put(&text, "{\"uwsgi\": {", 11);
	while (pos < o->len) {
		const char *k = o->b + pos + sizeof(int), *v = k + strlen(k) + 1;

		pos = (size_t)(v + strlen(v) + 1 - o->b);
		out_put(&text, line > 1 ? ",\n" : "\n", line > 1 ? 2 : 1);
		line++;
		put_string(&text, k);
		out_put(&text, ": ", 2);
		put_string(&text, v);
		out_put(&want, &line, sizeof(line));
		out_put(&want, k, strlen(k) + 1);
		out_put(&want, v, strlen(v) + 1);
	}
	out_put(&text, "\n}}", 3);
	again.max_line = line + 1;
	CHECK(json_parse_buf(text.b, text.len, FILE_NAME, NULL, collect, &again, err,
	                     sizeof(err)) == 0);
	CHECK(again.len == want.len && (want.len == 0 || memcmp(again.b, want.b, want.len) == 0));
	free(text.b);
	free(again.b);
	free(want.b);
}

static void check_error(const char *err, const char *section, int max_line)
{
	char want[256];
	const char *p;
	long line;

	snprintf(want, sizeof(want), FILE_NAME ": no '%s' section", section);
	if (strcmp(err, want) == 0)
		return;
	CHECK(strncmp(err, FILE_NAME ":", sizeof(FILE_NAME)) == 0);
	p = err + sizeof(FILE_NAME);
	CHECK(*p >= '1' && *p <= '9');
	line = strtol(p, (char **)&p, 10);
	CHECK(line >= 1 && line <= max_line && p[0] == ':' && p[1] == ' ' && p[2] != '\0');
}

static void check(const char *in, size_t len, const char *section)
{
	const char *name = section != NULL ? section : "uwsgi";
	struct out got = {0}, again = {0}, stopped = {0};
	char err[256] = "";
	int rc;

	got.max_line = again.max_line = stopped.max_line = count_lines(in, len);
	rc = json_parse_buf(in, len, FILE_NAME, section, collect, &got, err, sizeof(err));
	CHECK(rc == 0 || rc == -1);
	if (rc == -1) {
		CHECK(got.n == 0);
		check_error(err, name, got.max_line);
		goto out;
	}
	/* The same answer every time. */
	CHECK(json_parse_buf(in, len, FILE_NAME, section, collect, &again, err, sizeof(err)) == 0);
	CHECK(again.len == got.len && (got.len == 0 || memcmp(again.b, got.b, got.len) == 0));
	check_round_trip(&got);
	if (got.n > 0) {
		stopped.stop_at = (got.n + 1) / 2;
		CHECK(json_parse_buf(in, len, FILE_NAME, section, collect, &stopped, err,
		                     sizeof(err)) == 7);
		CHECK(stopped.n == stopped.stop_at && strcmp(err, "stop") == 0);
		CHECK(memcmp(stopped.b, got.b, stopped.len) == 0);
	}
out:
	free(got.b);
	free(again.b);
	free(stopped.b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char head[] = "{\"uwsgi\": ", tail[] = "}";
	char *wrapped = malloc(sizeof(head) - 1 + size + sizeof(tail) - 1);
	size_t n = 0;

	check((const char *)data, size, NULL);
	check((const char *)data, size, "a");
	CHECK(wrapped != NULL);
	memcpy(wrapped, head, sizeof(head) - 1);
	n += sizeof(head) - 1;
	if (size > 0)
		memcpy(wrapped + n, data, size);
	n += size;
	memcpy(wrapped + n, tail, sizeof(tail) - 1);
	n += sizeof(tail) - 1;
	check(wrapped, n, NULL);
	free(wrapped);
	return 0;
}
