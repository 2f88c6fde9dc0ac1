/*
 * spec.c - "file[:section]" as given to --yaml, --ini and --json.
 *
 * The ':' must come after the last '/' so that a directory name holding a
 * ':' ("/srv/a:b/uwsgi.ini") is not cut. A path whose file name holds a ':'
 * cannot be named without a section ("x:y.ini:uwsgi" is fine), as in uWSGI.
 */
#include <string.h>

#include "mulefarm/config_file.h"

/* Copies <n> bytes of <s> and a NUL into <dst> of <dstlen> bytes. */
static int copy_slice(char *dst, size_t dstlen, const char *s, size_t n)
{
	if (n >= dstlen)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

int cfg_split_spec(const char *spec, char *path, size_t pathlen, char *section, size_t seclen)
{
	const char *colon = strrchr(spec, ':');
	const char *slash = strrchr(spec, '/');
	size_t n = strlen(spec);

	if (colon != NULL && (slash == NULL || colon > slash)) {
		if (copy_slice(path, pathlen, spec, (size_t)(colon - spec)) == -1)
			return -1;
		return copy_slice(section, seclen, colon + 1, n - (size_t)(colon + 1 - spec));
	}
	if (copy_slice(path, pathlen, spec, n) == -1)
		return -1;
	return copy_slice(section, seclen, "", 0);
}
