/*
 * fuzz_config_yaml.c - libFuzzer target for the YAML config reader (yaml.c,
 * included to reach yml_parse_buf(), so no temporary file is needed).
 *
 * Input: a YAML file. It is read as is, for the default section and for
 * "a", and indented two spaces under a "uwsgi:" line. libyaml is the only
 * YAML parser at hand, so there is no reference reader; instead:
 *   - items obey the contract: a non-empty key without NUL, the file's
 *     name, a line inside the input; they come out only on success;
 *   - errors start "fuzz.yml:<line>: " with a line inside the input and
 *     some text after it, or are exactly "fuzz.yml: no '<section>'
 *     section" (or "fuzz.yml: out of memory");
 *   - a second read gives the same answer, items, lines and message;
 *   - the items, written back out as explicit double-quoted keys and
 *     values (every non-ASCII code point as \uXXXX or \UXXXXXXXX, a bare
 *     flag as an empty value) under "uwsgi:", read back the same, each at
 *     its key's new line;
 *   - a callback that stops half way sees that many items and gets its
 *     result back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/config/yaml.c"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define FILE_NAME "fuzz.yml"
#define INPUT_MAX (1 << 16)

/* Items serialized: line (4 bytes), key, NUL, 'v' value NUL or '-'. */
struct out {
	char *b;
	size_t len, cap;
	int n;
	int max_line; /* no item or message may name a later line */
	int stop_at;  /* the item (1-based) whose callback returns 7; 0: none */
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

static void out_str(struct out *o, const char *s)
{
	out_put(o, s, strlen(s));
}

static void out_item(struct out *o, int line, const char *k, const char *v)
{
	out_put(o, &line, sizeof(line));
	out_put(o, k, strlen(k) + 1);
	if (v == NULL) {
		out_put(o, "-", 1);
	} else {
		out_put(o, "v", 1);
		out_put(o, v, strlen(v) + 1);
	}
}

static int collect(void *ctx, const struct cfg_item *item, char *err, size_t errlen)
{
	struct out *o = ctx;

	CHECK(item->key != NULL && item->key[0] != '\0');
	CHECK(strcmp(item->file, FILE_NAME) == 0);
	CHECK(item->line >= 1 && item->line <= o->max_line);
	out_item(o, item->line, item->key, item->value);
	if (++o->n == o->stop_at) {
		snprintf(err, errlen, "stop");
		return 7;
	}
	return 0;
}

/* A bound on the lines libyaml can count: '\n', '\r' and the UTF-8 NEL,
 * LS and PS (whose last bytes are counted); any byte in UTF-16. */
static int max_line(const char *in, size_t len)
{
	int n = 1;

	if (len >= 2 &&
	    ((in[0] == '\xfe' && in[1] == '\xff') || (in[0] == '\xff' && in[1] == '\xfe')))
		return (int)len + 1;
	for (size_t i = 0; i < len; i++)
		n += strchr("\n\r\x85\xa8\xa9", in[i]) != NULL && in[i] != '\0';
	return n;
}

/* "fuzz.yml:<line>: <text>", "fuzz.yml: no '<section>' section" or
 * "fuzz.yml: out of memory". */
static void check_error(const char *err, const char *section, int lines)
{
	const char *p = err + strlen(FILE_NAME ":");
	char want[300];
	long line;
	char *end;

	CHECK(strncmp(err, FILE_NAME ":", strlen(FILE_NAME ":")) == 0);
	if (*p == ' ') {
		snprintf(want, sizeof(want), FILE_NAME ": no '%s' section", section);
		CHECK(strcmp(err, want) == 0 || strcmp(err, FILE_NAME ": out of memory") == 0);
		return;
	}
	CHECK(*p >= '1' && *p <= '9');
	line = strtol(p, &end, 10);
	CHECK(line >= 1 && line <= lines);
	CHECK(end[0] == ':' && end[1] == ' ' && end[2] != '\0');
}

/* Appends <s> as a YAML double-quoted scalar. It must be valid UTF-8:
 * libyaml hands out nothing else. */
static void out_quoted(struct out *o, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[16];

	out_put(o, "\"", 1);
	while (*p != '\0') {
		uint32_t cp = *p;
		int n = cp < 0x80 ? 0 : cp >= 0xf0 ? 3 : cp >= 0xe0 ? 2 : 1;

		CHECK(cp < 0x80 || (cp >= 0xc2 && cp <= 0xf4));
		cp &= n == 0 ? 0x7f : n == 1 ? 0x1f : n == 2 ? 0x0f : 0x07;
		for (int i = 1; i <= n; i++) {
			CHECK((p[i] & 0xc0) == 0x80);
			cp = cp << 6 | (p[i] & 0x3f);
		}
		CHECK(cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff));
		p += n + 1;
		if (cp == '"' || cp == '\\')
			snprintf(esc, sizeof(esc), "\\%c", (char)cp);
		else if (cp < 0x20 || cp == 0x7f)
			snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp);
		else if (cp >= 0x80 && cp <= 0xffff)
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
		else if (cp > 0xffff)
			snprintf(esc, sizeof(esc), "\\U%08x", (unsigned)cp);
		else
			snprintf(esc, sizeof(esc), "%c", (char)cp);
		out_str(o, esc);
	}
	out_put(o, "\"", 1);
}

/* Writes the items back out, one explicit key per two lines, and reads
 * them again. */
static void check_round_trip(const struct out *o)
{
	struct out text = {0}, again = {0}, want = {0};
	char err[512];
	size_t pos = 0;
	int line = 2;

	out_str(&text, "uwsgi:\n");
	while (pos < o->len) {
		const char *k = o->b + pos + sizeof(int), *v = NULL;

		pos += sizeof(int) + strlen(k) + 2;
		if (o->b[pos - 1] == 'v') {
			v = o->b + pos;
			pos += strlen(v) + 1;
		}
		out_str(&text, "  ? ");
		out_quoted(&text, k);
		out_str(&text, "\n  :");
		if (v != NULL) {
			out_str(&text, " ");
			out_quoted(&text, v);
		}
		out_str(&text, "\n");
		out_item(&want, line, k, v);
		line += 2;
	}
	again.max_line = line;
	if (yml_parse_buf(text.b, text.len, FILE_NAME, "uwsgi", collect, &again, err,
	                  sizeof(err)) != 0)
		abort();
	CHECK(again.len == want.len && (want.len == 0 || memcmp(again.b, want.b, want.len) == 0));
	free(text.b);
	free(again.b);
	free(want.b);
}

static void check(const char *in, size_t len, const char *section)
{
	struct out got = {0}, second = {0}, stopped = {0};
	char err[512] = "", err2[512] = "";
	const char *sec = section[0] ? section : "uwsgi";
	int rc, lines = max_line(in, len);

	got.max_line = second.max_line = stopped.max_line = lines;
	rc = yml_parse_buf(in, len, FILE_NAME, section, collect, &got, err, sizeof(err));
	CHECK(rc == 0 || rc == -1);
	if (rc == -1) {
		CHECK(got.n == 0);
		check_error(err, sec, lines);
	}
	CHECK(yml_parse_buf(in, len, FILE_NAME, section, collect, &second, err2, sizeof(err2)) ==
	      rc);
	CHECK(strcmp(err, err2) == 0);
	CHECK(second.len == got.len && (got.len == 0 || memcmp(second.b, got.b, got.len) == 0));
	if (rc == 0)
		check_round_trip(&got);
	if (rc == 0 && got.n > 0) {
		stopped.stop_at = (got.n + 1) / 2;
		CHECK(yml_parse_buf(in, len, FILE_NAME, section, collect, &stopped, err,
		                    sizeof(err)) == 7);
		CHECK(stopped.n == stopped.stop_at && strcmp(err, "stop") == 0);
		CHECK(memcmp(stopped.b, got.b, stopped.len) == 0);
	}
	free(got.b);
	free(second.b);
	free(stopped.b);
}

/* "uwsgi:\n" and every line of <in> behind two spaces. */
static char *indent(const char *in, size_t len, size_t *outlen)
{
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += in[i] == '\n';
	char *w = malloc(7 + len + 2 * lines), *p = w;
	CHECK(w != NULL);
	memcpy(p, "uwsgi:\n", 7);
	p += 7;
	for (size_t i = 0; i <= len; i++) {
		if (i == 0 || in[i - 1] == '\n') {
			if (i == len)
				break;
			memcpy(p, "  ", 2);
			p += 2;
		}
		if (i < len)
			*p++ = in[i];
	}
	*outlen = (size_t)(p - w);
	return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t wlen;
	char *wrapped;

	if (size > INPUT_MAX)
		return 0;
	check((const char *)data, size, "");
	check((const char *)data, size, "a");
	wrapped = indent((const char *)data, size, &wlen);
	check(wrapped, wlen, "");
	free(wrapped);
	return 0;
}
