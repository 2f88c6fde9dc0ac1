/*
 * load.c - options from the environment, argv and config files.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mulefarm/config_expand.h"
#include "mulefarm/config_file.h"
#include "mulefarm/config_load.h"
#include "mulefarm/log.h"

#define MAX_DEPTH 16 /* config files including config files */

/* uWSGI options mulefarm refuses on purpose, with the reason. */
static const struct {
	const char *name;
	const char *why;
} unsupported[] = {
        {"eval", "it runs code from the configuration; load code with --module"},
        {"lazy-apps", "the app is always loaded once in the master; use uwsgi.post_fork_hook"},
        {"lazy", "the app is always loaded once in the master; use uwsgi.post_fork_hook"},
        {"emperor", "run one mulefarm per app under systemd"},
        {"spooler", "use a database farm (--db-farm) for background jobs"},
        {"cheaper", "the number of workers is fixed (--processes)"},
        {"attach-daemon", "let systemd run other daemons"},
        {"pyshell", "no interactive shell in the server"},
        {"cron", "use systemd timers"},
};

/* Tuning flags of uWSGI that need no behaviour here: accepted, logged. */
static const char *const ignored[] = {
        "thunder-lock",        "plugin",           "plugins",  "vacuum", "single-interpreter",
        "offload-threads",     "memory-report",    "need-app", "strict", "no-orphans",
        "log-x-forwarded-for", "harakiri-verbose",
};

long config_default_processes(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? n : 1;
}

struct loader {
	struct options *o;
	const char *version;
	int depth;
	const char *section; /* of the file being read */
};

/* Expansion state: %(name) may name an option defined later, which is
 * then expanded first (a cycle gets the raw text). */
struct expander {
	struct options *o;
	const char *version;
	int depth;
};

static int edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int row[64];
	if (lb >= 64)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int prev = row[0];
		row[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int cur = row[j];
			int sub = prev + (a[i - 1] != b[j - 1]);
			int best = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;
			row[j] = sub < best ? sub : best;
			prev = cur;
		}
	}
	return row[lb];
}

/* Aliases count too ("workrs" is nearest to "workers"), but not the
 * one- and two-letter ones, which are near to any short word. */
const char *config_suggest(const char *name)
{
	static const char *const aliases[] = {
#define X(alias, id) alias,
	        MF_ALIASES(X)
#undef X
	};
	const char *best = NULL;
	int best_d = 4;
	for (size_t i = 0; i < OPT__COUNT + sizeof(aliases) / sizeof(aliases[0]); i++) {
		const char *cand = i < OPT__COUNT ? opt_table[i].name : aliases[i - OPT__COUNT];
		int d = i < OPT__COUNT || strlen(cand) > 2 ? edit_distance(name, cand) : 99;
		if (d < best_d) {
			best_d = d;
			best = cand;
		}
	}
	return best;
}

static const char *unsupported_reason(const char *name)
{
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
		if (strcmp(unsupported[i].name, name) == 0)
			return unsupported[i].why;
	return NULL;
}

static bool is_ignored(const char *name)
{
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		if (strcmp(ignored[i], name) == 0)
			return true;
	return false;
}

static int include(struct loader *ld, int id, const char *spec, const char *where, char *err,
                   size_t errlen);

/* One option from any source. Unknown names are placeholders in files and
 * errors on the command line (with a suggestion). */
static int add_item(struct loader *ld, const char *key, const char *value, enum opt_origin origin,
                    const char *where, char *err, size_t errlen)
{
	const char *at = where ? where : "command line";
	int id = opt_lookup(key);
	const char *why = id < 0 ? unsupported_reason(key) : NULL;
	if (why != NULL) {
		snprintf(err, errlen, "%s: option '%s' is not supported by mulefarm: %s", at, key,
		         why);
		return -1;
	}
	if (id < 0 && is_ignored(key)) {
		log_info("%s: option '%s' needs nothing in mulefarm: accepted and ignored", at,
		         key);
		id = OPT_PLACEHOLDER;
	} else if (id < 0 && origin == ORIGIN_CLI) {
		const char *near = config_suggest(key);
		snprintf(err, errlen, "unknown option --%s%s%s%s", key,
		         near ? " (did you mean --" : "", near ? near : "", near ? "?)" : "");
		return -1;
	} else if (id < 0) {
		/* uWSGI keeps unknown file keys as placeholders; say so when the
		 * key looks like a misspelt option. */
		const char *near = config_suggest(key);
		if (near != NULL && strcmp(near, key) != 0 && strlen(key) > 3)
			log_info("%s: '%s' is not an option (did you mean '%s'?): kept as a "
			         "placeholder",
			         at, key, near);
		id = OPT_PLACEHOLDER;
	}
	if (opt_append(ld->o, id, key, value, origin, where) == -1) {
		snprintf(err, errlen, "%s: out of memory", at);
		return -1;
	}
	if (id == OPT_YAML || id == OPT_INI || id == OPT_JSON)
		return include(ld, id, value, where, err, errlen);
	return 0;
}

static int from_file(void *ctx, const struct cfg_item *it, char *err, size_t errlen)
{
	struct loader *ld = ctx;
	char where[1024];
	size_t idx = ld->o->n;
	snprintf(where, sizeof(where), "%s:%d", it->file, it->line);
	int rc = add_item(ld, it->key, it->value, ORIGIN_FILE, where, err, errlen);
	if (idx < ld->o->n && ld->section != NULL)
		ld->o->entries[idx].section = strdup(ld->section);
	return rc;
}

static const char *lookup(void *arg, const char *name, size_t len);

/* A reader's message about <path> itself ("<path>: cannot read: ...",
 * "<path>: no 'x' section"), not about one of its lines, gets the place
 * that named the file in front. */
static void name_includer(const char *at, int id, const char *path, char *err, size_t errlen)
{
	size_t n = strlen(path);
	if (strncmp(err, path, n) != 0 || strncmp(err + n, ": ", 2) != 0)
		return;
	char *msg = strdup(err);
	if (msg != NULL)
		snprintf(err, errlen, "%s: option '%s': %s", at, opt_table[id].name, msg);
	free(msg);
}

/* An included file's name is expanded when it is read (so that
 * "ini = %dcommon.ini" works), with the placeholders known so far. */
static int include(struct loader *ld, int id, const char *raw, const char *where, char *err,
                   size_t errlen)
{
	char path[4096], section[256], file[4096] = "", msg[512];
	const char *at = where ? where : "command line";
	const char *colon = where ? strrchr(where, ':') : NULL;
	if (colon != NULL)
		snprintf(file, sizeof(file), "%.*s", (int)(colon - where), where);
	struct expander ex = {.o = ld->o, .version = ld->version};
	struct expand_ctx x = {.file = file[0] ? file : NULL,
	                       .section = ld->section,
	                       .version = ld->version,
	                       .lookup = lookup,
	                       .arg = &ex};
	char *spec = NULL;
	if (raw == NULL || cfg_expand(&x, raw, &spec, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "%s: option '%s': %s", at, opt_table[id].name,
		         raw ? msg : "needs a file name");
		return -1;
	}
	int rc = cfg_split_spec(spec, path, sizeof(path), section, sizeof(section));
	free(spec);
	if (rc == -1 || path[0] == '\0') {
		snprintf(err, errlen, "%s: option '%s' needs a file name", at, opt_table[id].name);
		return -1;
	}
	if (++ld->depth > MAX_DEPTH) {
		snprintf(err, errlen,
		         "%s: option '%s': %s: config files include each other more than %d deep",
		         at, opt_table[id].name, path, MAX_DEPTH);
		return -1;
	}
	const char *sec = section[0] ? section : NULL, *outer = ld->section;
	ld->section = sec ? sec : "uwsgi";
	rc = id == OPT_YAML  ? cfg_read_yaml(path, sec, from_file, ld, err, errlen)
	     : id == OPT_INI ? cfg_read_ini(path, sec, from_file, ld, err, errlen)
	                     : cfg_read_json(path, sec, from_file, ld, err, errlen);
	ld->depth--;
	ld->section = outer;
	if (rc != 0 && where != NULL)
		name_includer(at, id, path, err, errlen);
	return rc == 0 ? 0 : -1;
}

/* --set key=value (an option, else a placeholder), --set-placeholder. */
static int from_cli(void *ctx, const char *key, const char *value, char *err, size_t errlen)
{
	struct loader *ld = ctx;
	int id = opt_lookup(key);
	if (id != OPT_SET && id != OPT_SET_PLACEHOLDER)
		return add_item(ld, key, value, ORIGIN_CLI, NULL, err, errlen);
	const char *eq = value ? strchr(value, '=') : NULL;
	if (eq == NULL || eq == value) {
		snprintf(err, errlen, "--%s wants key=value, got '%s'", key, value ? value : "");
		return -1;
	}
	char name[256];
	snprintf(name, sizeof(name), "%.*s", (int)(eq - value), value);
	const char *why = id == OPT_SET && opt_lookup(name) < 0 ? unsupported_reason(name) : NULL;
	if (why != NULL) {
		snprintf(err, errlen, "command line: option '%s' is not supported by mulefarm: %s",
		         name, why);
		return -1;
	}
	if (opt_append(ld->o, id, key, value, ORIGIN_CLI, NULL) == -1)
		return -1;
	int target = id == OPT_SET ? opt_lookup(name) : -1;
	if (opt_append(ld->o, target >= 0 ? target : OPT_PLACEHOLDER, name, eq + 1, ORIGIN_CLI,
	               NULL) == -1)
		return -1;
	if (target == OPT_YAML || target == OPT_INI || target == OPT_JSON)
		return include(ld, target, eq + 1, NULL, err, errlen);
	return 0;
}

/* UWSGI_PROCESSES=4 or MULEFARM_PROCESSES=4; unknown names are skipped
 * (uWSGI itself sets some UWSGI_* variables). */
static int from_env(struct loader *ld, char **envp, char *err, size_t errlen)
{
	for (char **e = envp; e && *e; e++) {
		const char *p = *e;
		size_t skip = strncmp(p, "UWSGI_", 6) == 0      ? 6
		              : strncmp(p, "MULEFARM_", 9) == 0 ? 9
		                                                : 0;
		const char *eq = strchr(p, '=');
		char name[128];
		if (skip == 0 || eq == NULL || (size_t)(eq - p) - skip >= sizeof(name))
			continue;
		size_t n = (size_t)(eq - p) - skip;
		for (size_t i = 0; i < n; i++) {
			char ch = p[skip + i];
			name[i] = ch == '_' ? '-' : (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
		}
		name[n] = '\0';
		int id = opt_lookup(name);
		if (id < 0)
			continue;
		if (opt_append(ld->o, id, name, eq + 1, ORIGIN_ENV, NULL) == -1)
			return -1;
		if (id == OPT_YAML || id == OPT_INI || id == OPT_JSON)
			if (include(ld, id, eq + 1, "environment", err, errlen) == -1)
				return -1;
	}
	return 0;
}

/* %(name): the first value of that option or placeholder. */
static int expand_entry(struct expander *ex, size_t i, char *err, size_t errlen);

/* %(name): the first value of that option or placeholder, expanded. */
static const char *lookup(void *arg, const char *name, size_t len)
{
	struct expander *ex = arg;
	for (size_t i = 0; i < ex->o->n; i++) {
		struct opt_entry *e = &ex->o->entries[i];
		if (strlen(e->key) != len || memcmp(e->key, name, len) != 0)
			continue;
		char msg[256];
		if (!e->expanded && ex->depth < 8) {
			ex->depth++;
			int rc = expand_entry(ex, i, msg, sizeof(msg));
			ex->depth--;
			if (rc == -1)
				return NULL;
		}
		return e->value ? e->value : "true";
	}
	return NULL;
}

static int expand_entry(struct expander *ex, size_t i, char *err, size_t errlen)
{
	struct opt_entry *e = &ex->o->entries[i];
	if (e->expanded)
		return 0;
	e->expanded = true; /* before expanding: a cycle sees the raw text */
	if (e->value == NULL || strpbrk(e->value, "%$@") == NULL)
		return 0;
	char file[4096] = "";
	const char *colon = e->where ? strrchr(e->where, ':') : NULL;
	if (colon != NULL)
		snprintf(file, sizeof(file), "%.*s", (int)(colon - e->where), e->where);
	struct expand_ctx x = {.file = file[0] ? file : NULL,
	                       .section = e->section ? e->section : "uwsgi",
	                       .version = ex->version,
	                       .lookup = lookup,
	                       .arg = ex};
	char *out, msg[512];
	if (cfg_expand(&x, e->value, &out, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "%s: option '%s': %s",
		         e->where                  ? e->where
		         : e->origin == ORIGIN_ENV ? "environment"
		                                   : "command line",
		         e->key, msg);
		return -1;
	}
	free(ex->o->entries[i].value); /* entries[] does not move while expanding */
	ex->o->entries[i].value = out;
	return 0;
}

static int expand_all(struct options *o, const char *version, char *err, size_t errlen)
{
	struct expander ex = {.o = o, .version = version};
	for (size_t i = 0; i < o->n; i++)
		if (expand_entry(&ex, i, err, errlen) == -1)
			return -1;
	return 0;
}

int config_load(struct options *o, int argc, char **argv, char **envp, const char *version,
                char *err, size_t errlen)
{
	struct loader ld = {.o = o, .version = version};
	if (from_env(&ld, envp, err, errlen) == -1 ||
	    cli_walk(argc, argv, from_cli, &ld, err, errlen) == -1 ||
	    expand_all(o, version, err, errlen) == -1 || config_conditions(o, err, errlen) == -1)
		return -1;
	return opt_validate(o, err, errlen);
}

/* One line of --print-config; '%' doubled so that reading it back does
 * not expand it again. */
static void print_value(FILE *f, const char *key, const char *value)
{
	fputs(key, f);
	if (value != NULL) {
		fputs(" = ", f);
		for (const char *p = value; *p; p++) {
			if (*p == '%')
				fputc('%', f);
			fputc(*p, f);
		}
	}
	fputc('\n', f);
}

/* Whether entry <i> is the one that counts (repeatable options: all). */
static bool effective(const struct options *o, size_t i)
{
	const struct opt_entry *e = &o->entries[i];
	if (e->id == OPT_PLACEHOLDER || opt_table[e->id].repeat)
		return true;
	for (size_t j = 0; j < o->n; j++) {
		const struct opt_entry *f = &o->entries[j];
		if (j != i && f->id == e->id &&
		    (f->origin > e->origin || (f->origin == e->origin && j > i)))
			return false;
	}
	return true;
}

void config_print(const struct options *o, FILE *f)
{
	fprintf(f, "[uwsgi]\n");
	for (size_t i = 0; i < o->n; i++) {
		const struct opt_entry *e = &o->entries[i];
		if (e->id == OPT_PRINT_CONFIG || e->id == OPT_YAML || e->id == OPT_INI ||
		    e->id == OPT_JSON || e->id == OPT_SET || e->id == OPT_SET_PLACEHOLDER ||
		    !effective(o, i))
			continue; /* spliced in already, or overridden */
		print_value(f, e->key, e->value);
	}
	fprintf(f, "; defaults\n");
	if (!opt_given(o, OPT_PROCESSES))
		fprintf(f, "processes = %ld\n", config_default_processes());
	if (!opt_given(o, OPT_HTTP_SOCKET) && !opt_given(o, OPT_HTTP) && !opt_given(o, OPT_SOCKET))
		fprintf(f, "http-socket = %s\n", CONFIG_DEFAULT_SOCKET);
	for (int id = 0; id < OPT__COUNT; id++)
		if (!opt_given(o, (enum opt_id)id) && opt_table[id].def != NULL &&
		    opt_table[id].kind != OPT_OPT)
			print_value(f, opt_table[id].name, opt_table[id].def);
}
