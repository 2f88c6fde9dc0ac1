/*
 * spec.c - "file[:section]" as given to --yaml, --ini and --json.
 *
 * The ':' must come after the last '/' so that a directory name holding a
 * ':' ("/srv/a:b/uwsgi.ini") is not cut. A path whose file name holds a ':'
 * cannot be named without a section ("x:y.ini:uwsgi" is fine), as in uWSGI.
 * Also the file reading the three readers share.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int cfg__slurp(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	size_t cap = 4096, n = 0;
	char *b = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		goto fail;
	for (;;) {
		if (b == NULL || n == cap) {
			if (b != NULL && cap >= CFG_MAX_FILE) {
				errno = EFBIG;
				goto fail;
			}
			cap = b == NULL ? cap : cap * 2;
			char *nb = realloc(b, cap);
			if (nb == NULL)
				goto fail;
			b = nb;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r == 0)
			break;
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			goto fail;
		n += (size_t)r;
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
fail:;
	int e = errno;
	if (errlen > 0)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
	if (fd != -1)
		close(fd);
	free(b);
	return -1;
}

int cfg__read(const char *path, cfg_parse_fn parse, const char *section, cfg_emit_fn emit,
              void *ctx, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	if (cfg__slurp(path, &buf, &len, err, errlen) == -1)
		return -1;
	int rc = parse(buf, len, path, section, emit, ctx, err, errlen);
	free(buf);
	return rc;
}

void cfg__errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
