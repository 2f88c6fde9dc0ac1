/*
 * cli.c - command-line parsing and the generated help and reference.
 */
#include <stdio.h>
#include <string.h>

#include "mulefarm/options.h"

/* Whether <arg> can be the value of the option before it: anything but
 * another option. A lone "-" is a value. */
static bool is_value(const char *arg)
{
	return arg != NULL && (arg[0] != '-' || arg[1] == '\0');
}

/* A bare argument names a config file (or the app) by its extension, as
 * in uWSGI: the option it stands for, or NULL. */
static const char *bare_option(const char *arg)
{
	static const char *const ext[][2] = {
	        {".yaml", "yaml"}, {".yml", "yaml"}, {".ini", "ini"},
	        {".json", "json"}, {".js", "json"},  {".py", "wsgi-file"},
	};
	size_t n = strlen(arg);
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		size_t el = strlen(ext[i][0]);
		if (n > el && strcmp(arg + n - el, ext[i][0]) == 0)
			return ext[i][1];
		/* "file.ini:section" */
		const char *colon = strrchr(arg, ':');
		if (colon && (size_t)(colon - arg) > el && strncmp(colon - el, ext[i][0], el) == 0)
			return ext[i][1];
	}
	return NULL;
}

int cli_walk(int argc, char **argv, cli_add_fn add, void *ctx, char *err, size_t errlen)
{
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		char key[128];
		const char *value = NULL;

		if (arg[0] != '-' || arg[1] == '\0') {
			const char *opt = bare_option(arg);
			if (opt == NULL) {
				snprintf(err, errlen,
				         "unexpected argument '%s' (a config file must end in "
				         ".yaml, "
				         ".yml, .ini, .json or .js; an app in .py)",
				         arg);
				return -1;
			}
			if (add(ctx, opt, arg, err, errlen) == -1)
				return -1;
			continue;
		}
		const char *name = arg + (arg[1] == '-' ? 2 : 1);
		const char *eq = strchr(name, '=');
		size_t klen = eq ? (size_t)(eq - name) : strlen(name);
		if (klen == 0 || klen >= sizeof(key)) {
			snprintf(err, errlen, "malformed option '%s'", arg);
			return -1;
		}
		memcpy(key, name, klen);
		key[klen] = '\0';
		int id = opt_lookup(key);
		if (eq != NULL) {
			value = eq + 1;
		} else if (id < 0) {
			/* The callback judges unknown names. uWSGI's own options take
			 * their value as the next word ("--plugin python3"), unless
			 * that word is an option or a config file or app. */
			if (i + 1 < argc && is_value(argv[i + 1]) &&
			    bare_option(argv[i + 1]) == NULL)
				value = argv[++i];
		} else if (opt_table[id].kind == OPT_STR || opt_table[id].kind == OPT_INT) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "option --%s needs a value", key);
				return -1;
			}
			value = argv[++i];
		} else if (opt_table[id].kind == OPT_OPT &&
		           is_value(argv[i + 1 < argc ? i + 1 : i]) && i + 1 < argc) {
			value = argv[++i];
		}
		if (add(ctx, key, value, err, errlen) == -1)
			return -1;
	}
	return 0;
}

static int add_option(void *ctx, const char *key, const char *value, char *err, size_t errlen)
{
	return opt_add(ctx, key, value, err, errlen);
}

int cli_parse(struct options *o, int argc, char **argv, char *err, size_t errlen)
{
	return cli_walk(argc, argv, add_option, o, err, errlen);
}

static const char *kind_arg(enum opt_kind k)
{
	switch (k) {
	case OPT_STR:
		return " VALUE";
	case OPT_INT:
		return " N";
	case OPT_OPT:
		return "[=VALUE]";
	case OPT_FLAG:
		return "";
	}
	return "";
}

void cli_print_help(FILE *f)
{
	fprintf(f, "Usage: mulefarm [OPTIONS]\n\nOptions (uWSGI-compatible names):\n");
	for (int i = 0; i < OPT__COUNT; i++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s", opt_table[i].name,
		         kind_arg(opt_table[i].kind));
		fprintf(f, "  %-28s %s%s\n", left, opt_table[i].help,
		        opt_table[i].repeat ? " (repeatable)" : "");
	}
}

void cli_print_markdown(FILE *f)
{
	fprintf(f, "# mulefarm options\n\n"
	           "Generated from the options table (`include/mulefarm/options.h`) by\n"
	           "`mulefarm --options-md`; do not edit by hand.\n\n"
	           "| option | value | default | repeatable | meaning |\n"
	           "| --- | --- | --- | --- | --- |\n");
	for (int i = 0; i < OPT__COUNT; i++) {
		const struct opt_info *o = &opt_table[i];
		fprintf(f, "| `--%s` | %s | %s | %s | %s |\n", o->name,
		        o->kind == OPT_FLAG  ? "flag"
		        : o->kind == OPT_INT ? "integer"
		        : o->kind == OPT_OPT ? "optional"
		                             : "string",
		        o->def ? o->def : "", o->repeat ? "yes" : "", o->help);
	}
	fprintf(f, "\n## Aliases\n\n| alias | option |\n| --- | --- |\n");
#define X(alias, id)                                                                               \
	fprintf(f, "| `%s%s` | `--%s` |\n", alias[1] ? "--" : "-", alias, opt_table[OPT_##id].name);
	MF_ALIASES(X)
#undef X
}
