/*
 * config_expand.h - uWSGI's value expansion, in uWSGI's order, each pass
 * over the whole result of the one before:
 *   1. magic variables %d %n %p %s %e %x %h %k %t %u %U %g %G %V %%
 *      (from the config file being read; an unknown %X is an error, not
 *      an empty string as in uWSGI);
 *   2. $(NAME): the environment variable (unset: empty);
 *   3. @(path): the contents of a file, a trailing newline dropped;
 *   4. %(name): the first value of option or placeholder <name>.
 * What a pass inserts is read by the later passes only: a $(VAR) whose
 * value holds "%(x)" has it expanded by pass 4, a %(name) whose value holds
 * "$(X)" keeps it. No logging, no exits.
 */
#ifndef MULEFARM_CONFIG_EXPAND_H
#define MULEFARM_CONFIG_EXPAND_H

#include <stddef.h>

struct expand_ctx {
	const char *file;    /* the config file being read, or NULL (command line) */
	const char *section; /* its section, for %x (NULL: "uwsgi") */
	const char *version; /* for %V (NULL: "") */
	/* First value of option/placeholder <name,len>, or NULL if unknown.
	 * <name> is also NUL-terminated at <len>. NULL: every name is unknown. */
	const char *(*lookup)(void *arg, const char *name, size_t len);
	void *arg;
};

/*
 * Expands <in> into a new malloc'd string *<out> (the caller frees it).
 * Returns 0, or -1 with *<out> NULL and a message in <err> (if <errlen> is
 * not 0) naming what failed: an unknown magic variable, a magic variable
 * that needs a config file on the command line, a config directory that
 * realpath() cannot resolve, an unterminated $( @( %(, an unreadable
 * @(file) or one holding a NUL byte, an unknown %(name), a result (of any
 * pass, the input included) longer than 64 KiB, or no memory.
 *
 * %d absolute directory of the file (realpath() of its directory), with a
 * trailing '/'; %p %d followed by its name; %s its name; %n its name
 * without the last extension; %e that extension (without the dot; "" if
 * none); %x "name:section"; %h hostname; %k online CPUs; %t unix time
 * (seconds, one value per call); %u uid; %U user name; %g gid; %G group
 * name (%U %G: the number when there is no name); %V version; %% a '%'
 * that pass 4 does not read ("%%(x)" gives "%(x)"). A '%' not followed by
 * one of these or '(' is an error.
 *
 * Unlike uWSGI, which resolves the file itself, only its directory is
 * resolved: %s %n %e of a symlinked config file are the link's name.
 *
 * A name ends at the first ')'. @(path) is relative to the directory of
 * <file> as given, or to the working directory when <file> is NULL.
 * Calls getenv(), getpwuid_r() and getgrgid_r(): not alongside setenv()
 * in another thread.
 */
int cfg_expand(const struct expand_ctx *x, const char *in, char **out, char *err, size_t errlen);

#endif
