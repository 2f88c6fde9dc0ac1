/*
 * options.c - the options table, its storage and typed accessors.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mulefarm/options.h"

const struct opt_info opt_table[OPT__COUNT] = {
#define X(id, name, kind, repeat, def, help) [OPT_##id] = {name, kind, repeat, def, help},
        MF_OPTIONS(X)
#undef X
};

static const struct {
	const char *alias;
	enum opt_id id;
} aliases[] = {
#define X(alias, id) {alias, OPT_##id},
        MF_ALIASES(X)
#undef X
};

int opt_lookup(const char *name)
{
	for (int i = 0; i < OPT__COUNT; i++)
		if (strcmp(opt_table[i].name, name) == 0)
			return i;
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(aliases[i].alias, name) == 0)
			return (int)aliases[i].id;
	return -1;
}

/* Returns 1 for true, 0 for false, -1 when <v> is neither. */
static int parse_bool(const char *v)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

static int parse_long(const char *v, long *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0')
		return -1;
	*out = n;
	return 0;
}

static int validate(enum opt_id id, const char *key, const char *value, char *err, size_t errlen)
{
	const struct opt_info *info = &opt_table[id];
	long n;

	if (value == NULL) {
		if (info->kind == OPT_STR || info->kind == OPT_INT) {
			snprintf(err, errlen, "option --%s needs a value", key);
			return -1;
		}
		return 0;
	}
	if (info->kind == OPT_INT && (parse_long(value, &n) == -1 || n < 0)) {
		snprintf(err, errlen, "option --%s: '%s' is not a non-negative integer", key,
		         value);
		return -1;
	}
	if (info->kind == OPT_FLAG && parse_bool(value) == -1) {
		snprintf(err, errlen,
		         "option --%s: '%s' is not a boolean (true/false/1/0/yes/no/on/off)", key,
		         value);
		return -1;
	}
	return 0;
}

int opt_append(struct options *o, int id, const char *key, const char *value,
               enum opt_origin origin, const char *where)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 16;
		struct opt_entry *e = realloc(o->entries, cap * sizeof(*e));
		if (e == NULL)
			return -1;
		o->entries = e;
		o->cap = cap;
	}
	struct opt_entry *e = &o->entries[o->n];
	e->id = (enum opt_id)id;
	e->origin = origin;
	e->key = strdup(key);
	e->value = value ? strdup(value) : NULL;
	e->where = where ? strdup(where) : NULL;
	e->section = NULL;
	e->expanded = false;
	if (e->key == NULL || (value && e->value == NULL) || (where && e->where == NULL)) {
		free(e->key);
		free(e->value);
		free(e->where);
		return -1;
	}
	o->n++;
	return 0;
}

int opt_add(struct options *o, const char *key, const char *value, char *err, size_t errlen)
{
	int id = opt_lookup(key);
	if (id < 0) {
		snprintf(err, errlen, "unknown option --%s", key);
		return -1;
	}
	if (validate((enum opt_id)id, key, value, err, errlen) == -1)
		return -1;
	if (opt_append(o, id, key, value, ORIGIN_CLI, NULL) == -1) {
		snprintf(err, errlen, "out of memory storing option --%s", key);
		return -1;
	}
	return 0;
}

int opt_validate(const struct options *o, char *err, size_t errlen)
{
	for (size_t i = 0; i < o->n; i++) {
		const struct opt_entry *e = &o->entries[i];
		char msg[512];
		if (e->id == OPT_PLACEHOLDER ||
		    validate(e->id, e->key, e->value, msg, sizeof(msg)) == 0)
			continue;
		const char *at = e->where                  ? e->where
		                 : e->origin == ORIGIN_ENV ? "environment"
		                                           : NULL;
		snprintf(err, errlen, "%s%s%s", at ? at : "", at ? ": " : "", msg);
		return -1;
	}
	return 0;
}

void opt_free(struct options *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->entries[i].key);
		free(o->entries[i].value);
		free(o->entries[i].where);
		free(o->entries[i].section);
	}
	free(o->entries);
	o->entries = NULL;
	o->n = o->cap = 0;
}

/* The occurrence that counts: the last one of the strongest origin. */
static const struct opt_entry *last(const struct options *o, enum opt_id id)
{
	const struct opt_entry *best = NULL;
	for (size_t i = 0; i < o->n; i++)
		if (o->entries[i].id == id &&
		    (best == NULL || o->entries[i].origin >= best->origin))
			best = &o->entries[i];
	return best;
}

bool opt_given(const struct options *o, enum opt_id id)
{
	return last(o, id) != NULL;
}

const char *opt_str(const struct options *o, enum opt_id id)
{
	const struct opt_entry *e = last(o, id);
	if (e == NULL || e->value == NULL)
		return opt_table[id].def;
	return e->value;
}

long opt_int(const struct options *o, enum opt_id id)
{
	const char *v = opt_str(o, id);
	long n = 0;
	if (v != NULL)
		parse_long(v, &n); /* validated when added */
	return n;
}

bool opt_flag(const struct options *o, enum opt_id id)
{
	const struct opt_entry *e = last(o, id);
	if (e == NULL)
		return opt_table[id].def != NULL && parse_bool(opt_table[id].def) == 1;
	return e->value == NULL || parse_bool(e->value) == 1;
}
