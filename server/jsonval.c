/*
 * jsonval.c - a small JSON DOM (see jsonval.h).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mulefarm/jsonval.h"

struct jparser {
	const char *p, *end;
	int depth;
};

void json_free(struct jval *v)
{
	for (size_t i = 0; i < v->n; i++) {
		json_free(&v->items[i]);
		if (v->keys != NULL)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
	memset(v, 0, sizeof(*v));
}

static void jp_ws(struct jparser *jp)
{
	while (jp->p < jp->end &&
	       (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

static int hex4(const char *p, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A \u escape at jp->p (past the 'u'), with its low surrogate if any; a
 * lone surrogate becomes U+FFFD. */
static int jp_unicode(struct jparser *jp, uint32_t *cp)
{
	if (jp->end - jp->p < 4 || hex4(jp->p, cp) == -1)
		return -1;
	jp->p += 4;
	if (*cp >= 0xd800 && *cp <= 0xdbff) {
		uint32_t lo;
		if (jp->end - jp->p >= 6 && jp->p[0] == '\\' && jp->p[1] == 'u' &&
		    hex4(jp->p + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
			*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
			jp->p += 6;
			return 0;
		}
		*cp = 0xfffd;
	} else if (*cp >= 0xdc00 && *cp <= 0xdfff) {
		*cp = 0xfffd;
	}
	return 0;
}

/* The string at jp->p (on its opening quote), decoded into *out. */
static int jp_string(struct jparser *jp, char **out)
{
	/* Decoding never lengthens a string: the encoded length bounds it. */
	const char *quote = jp->p + 1;
	while (quote < jp->end && *quote != '"')
		quote += *quote == '\\' && quote + 1 < jp->end ? 2 : 1;
	if (quote >= jp->end)
		return -1;
	char *s = malloc((size_t)(quote - jp->p));
	size_t len = 0;
	if (s == NULL)
		return -1;
	jp->p++;
	while (jp->p < quote) {
		unsigned char c = (unsigned char)*jp->p++;
		if (c < 0x20)
			goto fail;
		if (c != '\\') {
			s[len++] = (char)c;
			continue;
		}
		char e = *jp->p++;
		const char *plain = strchr("\"\\/bfnrt", e);
		if (e != '\0' && plain != NULL) {
			s[len++] = "\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"];
		} else if (e == 'u') {
			uint32_t cp;
			if (jp_unicode(jp, &cp) == -1 || jp->p > quote)
				goto fail;
			len += utf8_encode(cp, s + len);
		} else {
			goto fail;
		}
	}
	jp->p = quote + 1;
	s[len] = '\0';
	*out = s;
	return 0;
fail:
	free(s);
	return -1;
}

static int jp_number(struct jparser *jp, double *out)
{
	const char *p = jp->p, *e = jp->end;
	char buf[64];

	if (p < e && *p == '-')
		p++;
	if (p >= e || *p < '0' || *p > '9')
		return -1;
	while (p < e && *p >= '0' && *p <= '9')
		p++;
	if (p < e && *p == '.') {
		if (++p >= e || *p < '0' || *p > '9')
			return -1;
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || *p < '0' || *p > '9')
			return -1;
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	size_t len = (size_t)(p - jp->p);
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, jp->p, len);
	buf[len] = '\0';
	*out = strtod(buf, NULL);
	jp->p = p;
	return 0;
}

static int jp_value(struct jparser *jp, struct jval *v);

/* An array or object at jp->p (on its bracket). */
static int jp_container(struct jparser *jp, struct jval *v, bool obj)
{
	size_t cap = 0;
	char closer = obj ? '}' : ']';

	if (++jp->depth > JSON_MAX_DEPTH)
		return -1;
	v->type = obj ? JOBJ : JARR;
	jp->p++;
	jp_ws(jp);
	if (jp->p < jp->end && *jp->p == closer) {
		jp->p++;
		jp->depth--;
		return 0;
	}
	for (;;) {
		if (v->n == cap) {
			cap = cap ? cap * 2 : 8;
			struct jval *items = realloc(v->items, cap * sizeof(*items));
			if (items == NULL)
				return -1;
			v->items = items;
			if (obj) {
				char **keys = realloc(v->keys, cap * sizeof(*keys));
				if (keys == NULL)
					return -1;
				v->keys = keys;
			}
		}
		struct jval *item = &v->items[v->n];
		memset(item, 0, sizeof(*item));
		if (obj) {
			jp_ws(jp);
			v->keys[v->n] = NULL;
			if (jp->p >= jp->end || *jp->p != '"')
				return -1;
			/* Counted before parsing, so that json_free() frees a
			 * half-made item and its key. */
			v->n++;
			if (jp_string(jp, &v->keys[v->n - 1]) == -1)
				return -1;
			jp_ws(jp);
			if (jp->p >= jp->end || *jp->p++ != ':')
				return -1;
		} else {
			v->n++;
		}
		if (jp_value(jp, item) == -1)
			return -1;
		jp_ws(jp);
		if (jp->p >= jp->end)
			return -1;
		char c = *jp->p++;
		if (c == closer)
			break;
		if (c != ',')
			return -1;
	}
	jp->depth--;
	return 0;
}

static int jp_literal(struct jparser *jp, const char *word)
{
	size_t len = strlen(word);
	if ((size_t)(jp->end - jp->p) < len || memcmp(jp->p, word, len) != 0)
		return -1;
	jp->p += len;
	return 0;
}

static int jp_value(struct jparser *jp, struct jval *v)
{
	jp_ws(jp);
	if (jp->p >= jp->end)
		return -1;
	switch (*jp->p) {
	case '{':
		return jp_container(jp, v, true);
	case '[':
		return jp_container(jp, v, false);
	case '"':
		v->type = JSTR;
		return jp_string(jp, &v->str);
	case 't':
		v->type = JBOOL;
		v->num = 1;
		return jp_literal(jp, "true");
	case 'f':
		v->type = JBOOL;
		return jp_literal(jp, "false");
	case 'n':
		v->type = JNULL;
		return jp_literal(jp, "null");
	default:
		v->type = JNUM;
		return jp_number(jp, &v->num);
	}
}

/* Parses the whole of <s> (<len> bytes) into *v (json_free() it). Returns
 * 0, or -1 with the offset of the error in *err_at and *v empty. */
int json_parse(const char *s, size_t len, struct jval *v, size_t *err_at)
{
	struct jparser jp = {.p = s, .end = s + len};

	memset(v, 0, sizeof(*v));
	if (jp_value(&jp, v) == 0) {
		jp_ws(&jp);
		if (jp.p == jp.end)
			return 0;
	}
	*err_at = (size_t)(jp.p - s);
	json_free(v);
	return -1;
}

/* Member <key> of object <o>, or NULL. */
const struct jval *json_get(const struct jval *o, const char *key)
{
	if (o == NULL || o->type != JOBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->keys[i], key) == 0)
			return &o->items[i];
	return NULL;
}

/* A number member as an integer; <dflt> when missing or not a number. */
long long json_int(const struct jval *o, const char *key, long long dflt)
{
	const struct jval *v = json_get(o, key);
	if (v == NULL || (v->type != JNUM && v->type != JBOOL) ||
	    !(v->num > -9e18 && v->num < 9e18))
		return dflt;
	return (long long)v->num;
}

double json_num(const struct jval *o, const char *key, double dflt)
{
	const struct jval *v = json_get(o, key);
	return v != NULL && v->type == JNUM ? v->num : dflt;
}

const char *json_str(const struct jval *o, const char *key, const char *dflt)
{
	const struct jval *v = json_get(o, key);
	return v != NULL && v->type == JSTR ? v->str : dflt;
}

/* An array member, or NULL. */
const struct jval *json_arr(const struct jval *o, const char *key)
{
	const struct jval *v = json_get(o, key);
	return v != NULL && v->type == JARR ? v : NULL;
}
