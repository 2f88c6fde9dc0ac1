/*
 * fuzz_config_ini.c - libFuzzer target for the INI config reader (ini.c,
 * included to reach ini_parse_buf(), so no temporary file is needed).
 *
 * Input: an INI file. It is read as is and behind a "[uwsgi]" line, for
 * the default section and for [a]. Every answer must equal that of a
 * reference reader written from the rules in config_file.h over byte
 * offsets: the same result, the same error line, the same items in the
 * same order. The items, written back out as "key = value" lines, must
 * read back the same; and a callback that stops the reader half way must
 * see exactly that many items and get its result back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/config/ini.c"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define FILE_NAME "fuzz.ini"

/* Items serialized: line (4 bytes), key, NUL, 'v' value NUL or '-'. */
struct out {
	char *b;
	size_t len, cap;
	int n;
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

static void out_item(struct out *o, int line, const char *k, size_t klen, const char *v,
                     size_t vlen)
{
	out_put(o, &line, sizeof(line));
	out_put(o, k, klen);
	out_put(o, "", 1);
	if (v == NULL) {
		out_put(o, "-", 1);
	} else {
		out_put(o, "v", 1);
		out_put(o, v, vlen);
		out_put(o, "", 1);
	}
}

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* The item's strings obey the rules: what the reference cannot see. */
static int collect(void *ctx, const struct cfg_item *item, char *err, size_t errlen)
{
	struct out *o = ctx;
	size_t klen = strlen(item->key);

	CHECK(strcmp(item->file, FILE_NAME) == 0 && item->line >= 1);
	CHECK(klen > 0 && !space(item->key[0]) && !space(item->key[klen - 1]));
	CHECK(strchr(item->key, '=') == NULL && strchr(item->key, '\n') == NULL);
	CHECK(strchr("[;#", item->key[0]) == NULL);
	if (item->value != NULL) {
		size_t vlen = strlen(item->value);

		CHECK(strchr(item->value, '\n') == NULL);
		CHECK(vlen == 0 || (!space(item->value[0]) && !space(item->value[vlen - 1])));
		out_item(o, item->line, item->key, klen, item->value, vlen);
	} else {
		out_item(o, item->line, item->key, klen, NULL, 0);
	}
	if (++o->n == o->stop_at) {
		snprintf(err, errlen, "stop");
		return 7;
	}
	return 0;
}

static void trim(const char **b, const char **e)
{
	while (*b < *e && space(**b))
		(*b)++;
	while (*e > *b && space((*e)[-1]))
		(*e)--;
}

/* The rules over offsets. Returns 0, or -1 with *<eline> the bad line (0:
 * no section); items go to <o> only on success. */
static int reference(const char *in, size_t len, const char *section, struct out *o, int *eline)
{
	size_t pos = 0, slen = strlen(section);
	bool in_sec = false, found = false;
	struct out tmp = {0};
	int line = 0;

	*eline = 0;
	if (len >= 3 && memcmp(in, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		size_t eol = pos;
		const char *b, *e, *eq = NULL;

		while (eol < len && in[eol] != '\n')
			eol++;
		line++;
		b = in + pos;
		e = in + eol;
		pos = eol + 1;
		for (const char *c = b; c < e; c++)
			if (*c == '\0')
				goto bad;
		trim(&b, &e);
		if (b == e || *b == ';' || *b == '#')
			continue;
		if (*b == '[') {
			if (e - b < 2 || e[-1] != ']')
				goto bad;
			in_sec = (size_t)(e - b - 2) == slen && memcmp(b + 1, section, slen) == 0;
			found |= in_sec;
			continue;
		}
		for (const char *c = b; c < e && eq == NULL; c++)
			if (*c == '=')
				eq = c;
		if (eq == b)
			goto bad;
		if (in_sec) {
			const char *kb = b, *ke = eq ? eq : e, *vb = eq ? eq + 1 : e, *ve = e;

			trim(&kb, &ke);
			trim(&vb, &ve);
			out_item(&tmp, line, kb, (size_t)(ke - kb), eq ? vb : NULL,
			         (size_t)(ve - vb));
			tmp.n++;
		}
	}
	if (!found) {
		free(tmp.b);
		return -1;
	}
	if (tmp.len > 0)
		out_put(o, tmp.b, tmp.len);
	o->n = tmp.n;
	free(tmp.b);
	return 0;
bad:
	free(tmp.b);
	*eline = line;
	return -1;
}

/* The message names the file, then the line or the missing section. */
static void check_error(const char *err, const char *section, int eline)
{
	char want[256];

	if (eline == 0)
		snprintf(want, sizeof(want), FILE_NAME ": no '%s' section", section);
	else
		snprintf(want, sizeof(want), FILE_NAME ":%d: ", eline);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	if (eline == 0)
		CHECK(strcmp(err, want) == 0);
}

/* Writes the items back out under [uwsgi] and reads them again. */
static void check_round_trip(const struct out *o)
{
	struct out text = {0}, again = {0}, want = {0};
	char err[256];
	size_t pos = 0;
	int line = 1;

	out_put(&text, "[uwsgi]\n", 8);
	while (pos < o->len) {
		const char *k = o->b + pos + sizeof(int), *v;
		size_t klen = strlen(k);

		pos += sizeof(int) + klen + 2;
		out_put(&text, k, klen);
		line++;
		if (o->b[pos - 1] == 'v') {
			v = o->b + pos;
			pos += strlen(v) + 1;
			out_put(&text, " = ", 3);
			out_put(&text, v, strlen(v));
			out_item(&want, line, k, klen, v, strlen(v));
		} else {
			out_item(&want, line, k, klen, NULL, 0);
		}
		out_put(&text, "\n", 1);
	}
	CHECK(ini_parse_buf(text.b, text.len, FILE_NAME, "uwsgi", collect, &again, err,
	                    sizeof(err)) == 0);
	CHECK(again.len == want.len && (want.len == 0 || memcmp(again.b, want.b, want.len) == 0));
	free(text.b);
	free(again.b);
	free(want.b);
}

static void check(const char *in, size_t len, const char *section)
{
	struct out got = {0}, want = {0}, stopped = {0};
	char err[256] = "";
	int rc, ref, eline;

	ref = reference(in, len, section[0] ? section : "uwsgi", &want, &eline);
	rc = ini_parse_buf(in, len, FILE_NAME, section, collect, &got, err, sizeof(err));
	CHECK(rc == ref);
	CHECK(got.n == want.n && got.len == want.len);
	CHECK(got.len == 0 || memcmp(got.b, want.b, got.len) == 0);
	if (rc == -1) {
		CHECK(got.n == 0);
		check_error(err, section[0] ? section : "uwsgi", eline);
	} else {
		check_round_trip(&got);
	}
	if (rc == 0 && got.n > 0) {
		stopped.stop_at = (got.n + 1) / 2;
		CHECK(ini_parse_buf(in, len, FILE_NAME, section, collect, &stopped, err,
		                    sizeof(err)) == 7);
		CHECK(stopped.n == stopped.stop_at && strcmp(err, "stop") == 0);
		CHECK(memcmp(stopped.b, got.b, stopped.len) == 0);
	}
	free(got.b);
	free(want.b);
	free(stopped.b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *wrapped = malloc(size + 8);

	check((const char *)data, size, "");
	check((const char *)data, size, "a");
	CHECK(wrapped != NULL);
	memcpy(wrapped, "[uwsgi]\n", 8);
	if (size > 0)
		memcpy(wrapped + 8, data, size);
	check(wrapped, size + 8, "");
	free(wrapped);
	return 0;
}
