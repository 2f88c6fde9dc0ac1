/*
 * static.h - static files served in C, without Python: --static-map,
 * --static-map2, --check-static, --static-index, --static-safe.
 *
 * static_resolve() is pure (no file system access) and fuzzed; it maps a
 * request path to a candidate file name. static_serve() then checks the
 * real path stays under the mapped directory (or a --static-safe one),
 * and answers with sendfile(), Content-Type from /etc/mime.types,
 * Last-Modified / If-Modified-Since, ETag / If-None-Match, a single Range
 * (206, or 416 when unsatisfiable) and HEAD. A missing file falls through
 * to the app.
 *
 * As in uWSGI, a map's prefix is a plain string prefix of the decoded path
 * ("/static" also matches "/staticfoo", which maps to <dir>/foo), the
 * maps are tried in option order, and anything that is not served - no
 * such file, a directory without an index file, a file that resolves
 * (through a symlink) outside its directory and every --static-safe one,
 * a method other than GET and HEAD - goes to the app. A directory is
 * served through its first --static-index file, without a redirect to the
 * slash-terminated URL (uWSGI does the same).
 */
#ifndef MULEFARM_STATIC_H
#define MULEFARM_STATIC_H

#include <stdbool.h>
#include <stddef.h>

#include "mulefarm/conn.h"
#include "mulefarm/options.h"

enum static_kind {
	STATIC_MAP,  /* --static-map /prefix=/dir: /prefix/a/b -> /dir/a/b */
	STATIC_MAP2, /* --static-map2 /prefix=/dir: /prefix/a/b -> /dir/prefix/a/b */
	STATIC_CHECK /* --check-static /dir: /a/b -> /dir/a/b, for every path */
};

struct static_map {
	enum static_kind kind;
	char *prefix; /* "" for STATIC_CHECK */
	size_t prefix_len;
	char *dir;    /* as given */
	char *real;   /* realpath(dir) at start-up; NULL if it did not resolve
	               * (then resolved again for each request) */
	bool is_file; /* <dir> is a regular file (--static-map /favicon.ico=/x.ico):
	               * every path under the prefix serves that file, as uWSGI */
};

struct static_mime; /* the extension -> Content-Type table, opaque */

/* Everything static_serve() needs; built once in the master (before fork)
 * from the options, read-only afterwards. */
struct static_config {
	struct static_map *maps; /* in option order: tried in turn */
	size_t n_maps;
	char **index; /* --static-index names, tried in order for a directory */
	size_t n_index;
	char **safe; /* --static-safe directories (realpath'd) */
	size_t n_safe;
	struct static_mime *mime;
};

/* Builds <sc> from the options (--static-map "/prefix=/dir" etc.) and
 * loads /etc/mime.types (a small built-in table when it cannot be read).
 * A directory that does not resolve yet is logged, not refused (uWSGI
 * starts too); so is a --static-safe one, which is then left out. Returns
 * 0, or -1 with a message in <err> naming the bad option value (<sc> is
 * then empty). Master, before fork. Release with static_free(). */
int static_setup(struct static_config *sc, const struct options *o, char *err, size_t errlen);

/* Frees what static_setup() allocated; <sc> is then empty. */
void static_free(struct static_config *sc);

/* True when at least one map is configured. */
bool static_enabled(const struct static_config *sc);

/*
 * Pure: the file name for request path <path,len> (still percent-encoded,
 * without the query) under map <m>, written NUL-terminated to <out>.
 * Returns 1 when <m> applies and <out> is set, 0 when the prefix does not
 * match, -1 when the path is refused (a %00 or a NUL, another control
 * character, a backslash raw or as %5C, a ".." segment after decoding, or
 * <out> too small). Decodes %XX (a decoded '/' is a separator like any
 * other, then subject to the ".." rule); a '%' not followed by two hex
 * digits stands for itself. The prefix is compared with the decoded path.
 *
 * <out> is <dir> without its trailing slashes, then "/" and the segments
 * (after the prefix for STATIC_MAP, of the whole path otherwise) with
 * empty and "." segments dropped; it ends in '/' when the path does
 * (so "/prefix" gives "<dir>/" and "/prefix/a.css/" gives "<dir>/a.css/",
 * which is no regular file). For an <is_file> map <out> is <dir> as given.
 */
int static_resolve(const struct static_map *m, const char *path, size_t len, char *out,
                   size_t outlen);

/*
 * Serves the request on <c> if a map has a file for it. Runs on the thread
 * that owns <c>, without the GIL; never waits for the client. Only GET and
 * HEAD are served. Returns 1 when the response was written (*keep says
 * whether the connection can be reused), 2 when the head and part of the
 * body were written and the rest is pending in c->sf_fd/sf_off/sf_left
 * (the caller sends it as the socket drains, then honours c->sf_keep),
 * 0 when no file matched (the app gets the request), or -1 when the
 * client went away (close the connection).
 *
 * A file whose realpath() is outside the map's directory and every
 * --static-safe directory (a symlink escaping the root) is logged and not
 * served: 0, the app gets the request, as in uWSGI.
 *
 * Responses: 200 with Content-Type, Content-Length, Last-Modified, a
 * strong ETag "<hex mtime>-<hex size>" and Accept-Ranges; 304 when
 * If-None-Match matches (weak comparison, "*" or a list), else when
 * If-Modified-Since (IMF-fixdate only; other forms are ignored) is not
 * older than the file; for GET, a single "bytes=" Range gives 206 with
 * Content-Range, or 416 with a Content-Range that gives only the size
 * when it starts past the end (or is "-0", or the file is empty). Several
 * ranges, a malformed one, or one whose If-Range does not match give the
 * whole file. Numbers too big for 64 bits count as infinite (a last-byte
 * past the end is clamped). A request body is left for
 * conn_next_request() to skip.
 *
 * Behind nginx (the uwsgi protocol) the path is PATH_INFO, which nginx
 * has decoded already (it is not decoded again), the header fields are
 * the HTTP_* vars, and *keep is false.
 */
int static_serve(const struct static_config *sc, struct conn *c, bool *keep);

#endif
