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
	char *dir;  /* as given */
	char *real; /* realpath(dir) at start-up; NULL if it did not resolve */
};

/* Everything static_serve() needs; built once in the master (before fork)
 * from the options, read-only afterwards. */
struct static_config {
	struct static_map *maps; /* in option order: tried in turn */
	size_t n_maps;
	char **index; /* --static-index names, tried in order for a directory */
	size_t n_index;
	char **safe; /* --static-safe directories (realpath'd) */
	size_t n_safe;
};

/* Builds <sc> from the options (--static-map "/prefix=/dir" etc.) and
 * loads /etc/mime.types. Returns 0, or -1 with a message in <err> naming
 * the bad option value. Master, before fork. */
int static_setup(struct static_config *sc, const struct options *o, char *err, size_t errlen);

bool static_enabled(const struct static_config *sc);

/*
 * Pure: the file name for request path <path,len> (still percent-encoded,
 * without the query) under map <m>, written NUL-terminated to <out>.
 * Returns 1 when <m> applies and <out> is set, 0 when the prefix does not
 * match, -1 when the path is refused (a %00 or a NUL, a backslash, a ".."
 * segment after decoding, or <out> too small). Decodes %XX (a decoded '/'
 * is a separator like any other, then subject to the ".." rule).
 */
int static_resolve(const struct static_map *m, const char *path, size_t len, char *out,
                   size_t outlen);

/*
 * Serves the request on <c> if a map has a file for it. Runs on the thread
 * that owns <c>, without the GIL. Only GET and HEAD are served. Returns 1
 * when a response was written (*keep says whether the connection can be
 * reused), 0 when no file matched (the app gets the request), or -1 when
 * the client went away (close the connection).
 */
int static_serve(const struct static_config *sc, struct conn *c, bool *keep);

#endif
