/*
 * jsonval.h - a small JSON DOM, used by --top to read a stats snapshot.
 *
 * Unlike the server's parsers it allocates (one node array per container):
 * it reads one snapshot a second in an interactive viewer. Malformed input,
 * or nesting deeper than JSON_MAX_DEPTH, is refused with the offset where
 * it was found. Pure: no I/O, no globals. Fuzzed (tests/fuzz/fuzz_jsonval.c).
 */
#ifndef MULEFARM_JSONVAL_H
#define MULEFARM_JSONVAL_H

#include <stddef.h>

#define JSON_MAX_DEPTH 32

enum jtype { JNULL, JBOOL, JNUM, JSTR, JARR, JOBJ };

struct jval {
	enum jtype type;
	double num;         /* JNUM; JBOOL: 0 or 1 */
	char *str;          /* JSTR: decoded UTF-8, NUL-terminated */
	size_t n;           /* JARR, JOBJ: number of items */
	struct jval *items; /* JARR, JOBJ */
	char **keys;        /* JOBJ: the key of each item */
};

/* Parses <len> bytes of <s> into <v>. Returns 0, or -1 with *err_at the
 * offset of the problem (v is then empty). */
int json_parse(const char *s, size_t len, struct jval *v, size_t *err_at);

/* Frees what json_parse() allocated in <v>. */
void json_free(struct jval *v);

/* Member <key> of object <o>, or NULL. */
const struct jval *json_get(const struct jval *o, const char *key);

/* Typed members, or <dflt> when missing or of another type. */
long long json_int(const struct jval *o, const char *key, long long dflt);
double json_num(const struct jval *o, const char *key, double dflt);
const char *json_str(const struct jval *o, const char *key, const char *dflt);

/* An array member, or NULL. */
const struct jval *json_arr(const struct jval *o, const char *key);

#endif
