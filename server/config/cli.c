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

int cli_parse(struct options *o, int argc, char **argv, char *err, size_t errlen)
{
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		char key[128];
		const char *value = NULL;

		if (arg[0] != '-' || arg[1] == '\0') {
			snprintf(err, errlen, "unexpected argument '%s'", arg);
			return -1;
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
		if (id < 0) {
			snprintf(err, errlen, "unknown option %s", arg);
			return -1;
		}
		if (eq != NULL) {
			value = eq + 1;
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
		if (opt_add(o, key, value, err, errlen) == -1)
			return -1;
	}
	return 0;
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
