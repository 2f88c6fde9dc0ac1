/*
 * config_file.h - uWSGI's config files: YAML (libyaml), INI and JSON.
 *
 * Each reader walks one section of one file and hands every option to a
 * callback, in file order, with the file and line it came from. Readers do
 * not know the options table and do not expand anything: the caller
 * validates keys and expands values (config_expand.h). No logging, no
 * exits: errors come back as "file:line: message" in <err>.
 */
#ifndef MULEFARM_CONFIG_FILE_H
#define MULEFARM_CONFIG_FILE_H

#include <stddef.h>

struct cfg_item {
	const char *key;   /* as written */
	const char *value; /* NULL for a bare flag (an INI key without '=') */
	const char *file;  /* the path as given */
	int line;          /* 1-based */
};

/* Called for each option; a non-zero return stops the reader, which then
 * returns that value (the callback writes its own message to <err>). */
typedef int (*cfg_emit_fn)(void *ctx, const struct cfg_item *item, char *err, size_t errlen);

/*
 * Reads section <section> ("uwsgi" when NULL) of <path>. Returns 0, -1 with
 * a message in <err> (unreadable file, syntax error, missing section, a
 * value of the wrong shape), or the callback's non-zero result.
 *
 * YAML: real YAML through libyaml. The section is a top-level mapping key;
 * its value must be a mapping. Scalars (plain or quoted) are values; a
 * sequence gives one item per element; a key repeated in the mapping gives
 * repeated items, as uWSGI's own reader does; a nested mapping inside the
 * section is an error naming the key. Other top-level keys are skipped
 * whatever their shape. Comments are comments.
 *
 * INI: uWSGI's rules: "[name]" starts a section and every block with that
 * name counts (they merge, in order); "key = value" (whitespace around key
 * and value trimmed, no quote processing); a line that is only a key is a
 * bare flag (value NULL); full lines starting with ';' or '#' are
 * comments; blank lines are skipped. A line that is none of these is an
 * error with its line number.
 *
 * JSON: the file is one object; the section is a key whose value is an
 * object; strings are values, numbers their text, true "1", false and
 * null "0", an array gives one item per element (elements must be
 * scalars); nested objects inside the section are an error. Line numbers
 * are those of the key.
 */
int cfg_read_yaml(const char *path, const char *section, cfg_emit_fn emit, void *ctx, char *err,
                  size_t errlen);
int cfg_read_ini(const char *path, const char *section, cfg_emit_fn emit, void *ctx, char *err,
                 size_t errlen);
int cfg_read_json(const char *path, const char *section, cfg_emit_fn emit, void *ctx, char *err,
                  size_t errlen);

/* Splits "file[:section]" into <path> and <section> ("" when absent): the
 * section is whatever follows the last ':' when that ':' comes after the
 * last '/'. Returns 0, or -1 when the buffers are too small. Pure. */
int cfg_split_spec(const char *spec, char *path, size_t pathlen, char *section, size_t seclen);

#endif
