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
	const char *key;   /* as written; never empty */
	const char *value; /* NULL for a bare flag (an INI key without '=', a YAML null) */
	const char *file;  /* the path as given */
	int line;          /* 1-based */
};

/* Called for each option; a non-zero return stops the reader, which then
 * returns that value (the callback writes its own message to <err>). The
 * strings in <item> live only until the callback returns: copy them. */
typedef int (*cfg_emit_fn)(void *ctx, const struct cfg_item *item, char *err, size_t errlen);

/*
 * Reads section <section> ("uwsgi" when NULL or "") of <path>. Returns 0, -1
 * with a message in <err> (unreadable file, syntax error, missing section, a
 * value of the wrong shape), or the callback's non-zero result. The whole
 * file is checked before the first option goes out: a file with an error
 * anywhere gives no options at all. The readers keep no state, so a
 * callback may read another file (an include). Messages start
 * "<path>:<line>: " when a line is known, else "<path>: "; an unreadable
 * file gives "<path>: cannot read: <strerror>", a missing section
 * "<path>: no '<section>' section". A section that appears more than once
 * counts every time, in order, in all three formats. A UTF-8 byte order
 * mark is skipped. Any process may call these.
 *
 * YAML: real YAML through libyaml. The section is a top-level mapping key;
 * its value must be a mapping (or null: an empty section). Scalars (plain
 * or quoted) are values, as YAML unquotes them; a YAML null (empty, "~",
 * "null" unquoted) is a bare flag; booleans and numbers stay their text
 * ("true", "027"). A sequence gives one item per element (elements must be
 * scalars). A key repeated in the mapping gives repeated items, as uWSGI's
 * own reader does; a nested mapping inside the section is an error naming
 * the key. Other top-level keys are skipped whatever their shape. Comments
 * are comments. Line numbers are the key's, or each element's for a
 * sequence. Only one document: a second non-empty one is an error. A
 * syntax error gives libyaml's problem at its line, and its context.
 *
 * INI: uWSGI's rules: "[name]" starts a section and every block with that
 * name counts (they merge, in order; the name is not trimmed); "key =
 * value" (split at the first '=', whitespace around key and value trimmed,
 * no quote processing, no inline comments); a line that is only a key is a
 * bare flag (value NULL); full lines starting with ';' or '#' (after
 * leading white space) are comments; blank lines are skipped; lines before
 * the first header belong to no section. A line that is none of these ("[x"
 * without ']', "= v" without a key, a NUL byte) is an error with its line
 * number.
 *
 * JSON: the file is one object; the section is a key whose value is an
 * object; strings are values, numbers their text, true "1", false and
 * null "0", an array gives one item per element (elements must be
 * scalars); nested objects inside the section are an error; a repeated key
 * gives repeated items. Line numbers are those of the key. Nesting deeper
 * than 64 levels anywhere is an error.
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

/* Shared by the readers (not for other modules): reads all of <path>, at
 * most CFG_MAX_FILE bytes, into a malloc'd *<buf> the caller frees.
 * Returns 0, or -1 with "<path>: cannot read: <reason>" in <err>. */
#define CFG_MAX_FILE (64u << 20)
int cfg__slurp(const char *path, char **buf, size_t *len, char *err, size_t errlen);

/* snprintf into <err> when there is room (err may be NULL with errlen 0). */
void cfg__errf(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Reads <path> and hands its bytes to a reader's buffer parser. */
typedef int (*cfg_parse_fn)(const char *buf, size_t len, const char *file, const char *section,
                            cfg_emit_fn emit, void *ctx, char *err, size_t errlen);
int cfg__read(const char *path, cfg_parse_fn parse, const char *section, cfg_emit_fn emit,
              void *ctx, char *err, size_t errlen);

#endif
