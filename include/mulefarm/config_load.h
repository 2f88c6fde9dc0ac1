/*
 * config_load.h - builds the options from every source, in uWSGI's way:
 * UWSGI_<OPT> and MULEFARM_<OPT> environment variables first, then argv
 * with each config file (--yaml/--ini/--json, or a bare file argument)
 * spliced in where it is named, its unknown keys kept as placeholders;
 * then every value is expanded (config_expand.h) and validated. A value
 * from the command line beats one from a file whatever their order.
 */
#ifndef MULEFARM_CONFIG_LOAD_H
#define MULEFARM_CONFIG_LOAD_H

#include <stdio.h>

#include "mulefarm/options.h"

/* Returns 0, or -1 with a message naming the file and line, the option,
 * what was expected and what was found (with the nearest known option for
 * a typo). <envp> is the environment to read (NULL: none). */
int config_load(struct options *o, int argc, char **argv, char **envp, const char *version,
                char *err, size_t errlen);

/* --print-config: the effective options as an INI [uwsgi] section that
 * can be fed back, given values first (placeholders included), then every
 * other option that has a default. */
void config_print(const struct options *o, FILE *f);

/* Defaults that are not constants: one worker per CPU core, and an HTTP
 * socket on 127.0.0.1:8080 when no socket is given. */
#define CONFIG_DEFAULT_SOCKET "127.0.0.1:8080"
long config_default_processes(void);

/* Applies if-exists/if-env/.../endif blocks (cond.c): drops the options
 * of false blocks and the block markers, fills %(_). Returns 0, or -1
 * with a message naming where an unbalanced block starts or ends. */
int config_conditions(struct options *o, char *err, size_t errlen);

/* The nearest known option name to <name> (edit distance <= 3), or NULL. */
const char *config_suggest(const char *name);

#endif
