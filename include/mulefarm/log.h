/*
 * log.h - log lines on stderr, each prefixed with the process's role, id and
 * pid ("[worker 2 pid 4242] ..."), written with one write(2) so lines from
 * many processes and threads never interleave mid-line.
 *
 * Any thread may call these; log_set_identity() is called once per process
 * (right after fork) before threads start.
 */
#ifndef MULEFARM_LOG_H
#define MULEFARM_LOG_H

#include <stddef.h>

/* <role> is a string literal ("master", "worker"); <id> 0 omits the id. */
void log_set_identity(const char *role, int id);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Appends ": <strerror(err)>" when <err> is not 0. */
void log_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --log-date: prefixes lines with the local time in strftime <fmt>
 * (NULL: no date). Call before threads start. */
void log_set_date_format(const char *fmt);

/* Formats the "[role id pid N] " prefix into <buf>; returns its length. */
size_t log_prefix(char *buf, size_t size);

/* Writes <len> bytes as they are (they should end in '\n'). */
void log_write(const char *buf, size_t len);

#endif
