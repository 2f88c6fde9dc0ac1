/*
 * config_expand.h - uWSGI's value expansion, in uWSGI's order:
 *   1. magic variables %d %n %p %s %e %x %h %k %t %u %U %g %G %V %%
 *      (from the config file being read; an unknown %X is an error, not
 *      an empty string as in uWSGI);
 *   2. $(NAME): the environment variable (unset: empty);
 *   3. @(path): the contents of a file, a trailing newline dropped;
 *   4. %(name): the first value of option or placeholder <name>.
 * No logging, no exits.
 */
#ifndef MULEFARM_CONFIG_EXPAND_H
#define MULEFARM_CONFIG_EXPAND_H

#include <stddef.h>

struct expand_ctx {
	const char *file;    /* the config file being read, or NULL (command line) */
	const char *section; /* its section, for %x */
	const char *version; /* for %V */
	/* First value of option/placeholder <name,len>, or NULL if unknown. */
	const char *(*lookup)(void *arg, const char *name, size_t len);
	void *arg;
};

/*
 * Expands <in> into a new malloc'd string *<out> (the caller frees it).
 * Returns 0, or -1 with a message in <err> naming what failed: an unknown
 * magic variable, a magic variable that needs a config file on the
 * command line, an unterminated $( @( %(, an unreadable @(file), an
 * unknown %(name).
 *
 * %d absolute directory of the file, with a trailing '/'; %p its absolute
 * path; %s its name; %n its name without extension; %e its extension
 * (without the dot); %x "file:section"; %h hostname; %k CPU cores; %t unix
 * time (seconds); %u uid; %U user name; %g gid; %G group name; %V version;
 * %% a '%'. A '%' not followed by one of these or '(' is an error.
 */
int cfg_expand(const struct expand_ctx *x, const char *in, char **out, char *err, size_t errlen);

#endif
