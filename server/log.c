/*
 * log.c - prefixed, single-write log lines on stderr.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/log.h"

static const char *log_role = "master";
static int log_id;
static pid_t log_pid;
static const char *date_format; /* --log-date */

void log_set_date_format(const char *fmt)
{
	date_format = fmt;
}

void log_set_identity(const char *role, int id)
{
	log_role = role;
	log_id = id;
	log_pid = getpid();
}

size_t log_prefix(char *buf, size_t size)
{
	int n;
	size_t d = 0;
	if (log_pid == 0)
		log_pid = getpid();
	if (date_format != NULL) {
		time_t now = time(NULL);
		struct tm tm;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		d = strftime(buf, size / 2, date_format, localtime_r(&now, &tm));
#pragma GCC diagnostic pop
		if (d > 0 && d < size / 2)
			buf[d++] = ' ';
	}
	if (log_id > 0)
		n = snprintf(buf + d, size - d, "[%s %d pid %d] ", log_role, log_id, (int)log_pid);
	else
		n = snprintf(buf + d, size - d, "[%s pid %d] ", log_role, (int)log_pid);
	n = n < 0 ? 0 : (size_t)n < size - d ? n : (int)(size - d - 1);
	return d + (size_t)n;
}

void log_write(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void log_vline(int err, const char *fmt, va_list ap)
{
	char line[4096];
	int saved = errno;
	size_t n = log_prefix(line, sizeof(line));
	int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m > 0)
		n += (size_t)m < sizeof(line) - n ? (size_t)m : sizeof(line) - n - 1;
	if (err != 0 && n < sizeof(line) - 1) {
		m = snprintf(line + n, sizeof(line) - n, ": %s", strerror(err));
		if (m > 0)
			n += (size_t)m < sizeof(line) - n ? (size_t)m : sizeof(line) - n - 1;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	log_write(line, n);
	errno = saved;
}

void log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vline(0, fmt, ap);
	va_end(ap);
}

void log_err(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vline(err, fmt, ap);
	va_end(ap);
}
