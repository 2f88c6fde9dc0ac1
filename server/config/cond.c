/*
 * cond.c - uWSGI's conditional blocks in configs:
 *
 *   if-exists = /etc/site.ini      if-not-exists = PATH
 *   if-file = PATH / if-not-file   if-dir = PATH / if-not-dir
 *   if-env = NAME / if-not-env     (set and non-empty)
 *   ...options...
 *   endif =
 *
 * Blocks nest. Inside a block, %(_) is the value tested. The condition
 * and endif entries themselves leave the options, as in uWSGI (they are
 * not in uwsgi.opt). Runs on the expanded options, before validation.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mulefarm/config_load.h"

#define MAX_NESTING  32
#define OPT_IF__MARK (OPT__COUNT + 1) /* a condition entry, removed at the end */

static bool holds(enum opt_id id, const char *v)
{
	struct stat st;
	const char *env;
	switch (id) {
	case OPT_IF_EXISTS:
		return stat(v, &st) == 0;
	case OPT_IF_NOT_EXISTS:
		return stat(v, &st) != 0;
	case OPT_IF_FILE:
		return stat(v, &st) == 0 && S_ISREG(st.st_mode);
	case OPT_IF_NOT_FILE:
		return !(stat(v, &st) == 0 && S_ISREG(st.st_mode));
	case OPT_IF_DIR:
		return stat(v, &st) == 0 && S_ISDIR(st.st_mode);
	case OPT_IF_NOT_DIR:
		return !(stat(v, &st) == 0 && S_ISDIR(st.st_mode));
	case OPT_IF_ENV:
		return (env = getenv(v)) != NULL && env[0] != '\0';
	case OPT_IF_NOT_ENV:
		return (env = getenv(v)) == NULL || env[0] == '\0';
	default:
		return true;
	}
}

static bool is_condition(enum opt_id id)
{
	return id == OPT_IF_EXISTS || id == OPT_IF_NOT_EXISTS || id == OPT_IF_FILE ||
	       id == OPT_IF_NOT_FILE || id == OPT_IF_DIR || id == OPT_IF_NOT_DIR ||
	       id == OPT_IF_ENV || id == OPT_IF_NOT_ENV;
}

static void drop(struct opt_entry *e)
{
	free(e->key);
	free(e->value);
	free(e->where);
	free(e->section);
}

/* Replaces every %(_) in <*value> with <subject>. Returns 0 or -1. */
static int substitute(char **value, const char *subject)
{
	const char *tag = "%(_)";
	if (*value == NULL || strstr(*value, tag) == NULL)
		return 0;
	size_t n = 0;
	for (const char *p = *value; (p = strstr(p, tag)) != NULL; p += 4)
		n++;
	char *out = malloc(strlen(*value) + n * strlen(subject) + 1);
	if (out == NULL)
		return -1;
	char *w = out;
	for (const char *p = *value;;) {
		const char *hit = strstr(p, tag);
		size_t len = hit ? (size_t)(hit - p) : strlen(p);
		memcpy(w, p, len);
		w += len;
		if (hit == NULL)
			break;
		strcpy(w, subject);
		w += strlen(subject);
		p = hit + 4;
	}
	*w = '\0';
	free(*value);
	*value = out;
	return 0;
}

int config_conditions(struct options *o, char *err, size_t errlen)
{
	struct {
		bool on;
		const char *subject;
		const char *where;
	} stack[MAX_NESTING];
	int depth = 0;
	bool on = true;
	size_t out = 0;
	size_t i;
	for (i = 0; i < o->n; i++) {
		struct opt_entry e = o->entries[i];
		const char *at = e.where ? e.where : "command line";
		if (e.id != OPT_PLACEHOLDER && is_condition(e.id)) {
			if (depth == MAX_NESTING) {
				snprintf(err, errlen, "%s: %s: more than %d nested blocks", at,
				         e.key, MAX_NESTING);
				goto fail_at;
			}
			stack[depth].on = on;
			stack[depth].subject = e.value ? e.value : "";
			stack[depth].where = at;
			depth++;
			on = on && holds(e.id, e.value ? e.value : "");
			o->entries[out++] = e; /* kept until the end for %(_) and messages */
			o->entries[out - 1].id = OPT_IF__MARK;
			continue;
		}
		if (e.id == OPT_ENDIF) {
			if (depth == 0) {
				snprintf(err, errlen,
				         "%s: endif without an if-exists/if-env/... block", at);
				goto fail_at;
			}
			on = stack[--depth].on;
			drop(&e);
			continue;
		}
		if (!on) {
			drop(&e);
			continue;
		}
		if (depth > 0 && substitute(&e.value, stack[depth - 1].subject) == -1) {
			snprintf(err, errlen, "out of memory");
			goto fail_at;
		}
		o->entries[out++] = e;
	}
	if (depth > 0) {
		snprintf(err, errlen, "%s: this block has no endif", stack[depth - 1].where);
		goto fail;
	}
	o->n = out;
	/* Now the condition entries can go. */
	out = 0;
	for (size_t k = 0; k < o->n; k++) {
		if (o->entries[k].id == OPT_IF__MARK)
			drop(&o->entries[k]);
		else
			o->entries[out++] = o->entries[k];
	}
	o->n = out;
	return 0;
fail_at: /* keep entry <i> and the rest, so that opt_free() frees them */
	for (size_t j = i; j < o->n; j++)
		o->entries[out++] = o->entries[j];
fail:
	o->n = out;
	return -1;
}
