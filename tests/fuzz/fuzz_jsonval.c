/*
 * fuzz_jsonval.c - the JSON DOM that --top reads stats snapshots with.
 *
 * Invariants: no crash, leak or undefined behaviour; an error offset lies
 * within the input; a parsed value written back out (by the independent
 * writer below) parses again, and writing that gives the same text: the
 * writer's output is a fixed point from the first generation on.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mulefarm/jsonval.h"

struct out {
	char *s;
	size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->s = realloc(o->s, o->cap);
		if (o->s == NULL)
			abort();
	}
	memcpy(o->s + o->len, s, n);
	o->len += n;
	o->s[o->len] = '\0';
}

static void put_str(struct out *o, const char *s)
{
	char esc[8];
	put(o, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == '"' || *p == '\\') {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			put(o, esc, 6);
		} else {
			put(o, (const char *)p, 1); /* UTF-8 bytes pass as they are */
		}
	}
	put(o, "\"", 1);
}

static void write_value(struct out *o, const struct jval *v)
{
	char num[64];
	switch (v->type) {
	case JNULL:
		put(o, "null", 4);
		break;
	case JBOOL:
		put(o, v->num != 0 ? "true" : "false", v->num != 0 ? 4 : 5);
		break;
	case JNUM:
		snprintf(num, sizeof(num), "%.17g", v->num);
		put(o, num, strlen(num));
		break;
	case JSTR:
		put_str(o, v->str);
		break;
	case JARR:
	case JOBJ:
		put(o, v->type == JARR ? "[" : "{", 1);
		for (size_t i = 0; i < v->n; i++) {
			if (i > 0)
				put(o, ",", 1);
			if (v->type == JOBJ) {
				put_str(o, v->keys[i]);
				put(o, ":", 1);
			}
			write_value(o, &v->items[i]);
		}
		put(o, v->type == JARR ? "]" : "}", 1);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jval v;
	size_t at = 0;
	if (json_parse((const char *)data, size, &v, &at) == -1) {
		if (at > size)
			abort();
		return 0;
	}
	struct out a = {0}, b = {0};
	write_value(&a, &v);
	struct jval w;
	if (json_parse(a.s, a.len, &w, &at) == 0) {
		write_value(&b, &w);
		if (b.len != a.len || memcmp(a.s, b.s, a.len) != 0)
			abort();
		json_free(&w);
	} else if (strstr(a.s, "inf") == NULL && strstr(a.s, "nan") == NULL) {
		abort(); /* only a number out of JSON's range can fail to come back */
	}
	json_free(&v);
	free(a.s);
	free(b.s);
	return 0;
}
