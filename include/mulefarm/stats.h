/*
 * stats.h - the stats server (--stats, --stats-http) and its terminal
 * viewer (--top).
 *
 * The snapshot is JSON with uWSGI's field names where they exist, so
 * uwsgitop and other tools read it. Farms are the farmq queues whose name
 * does not start with "mule:" (those are the mules' own queues).
 * Everything here runs in the master, except stats_top (its own process).
 */
#ifndef MULEFARM_STATS_H
#define MULEFARM_STATS_H

#include <stdbool.h>

#include "mulefarm/farmq.h"
#include "mulefarm/scoreboard.h"
#include "mulefarm/server.h"

/* Renders the snapshot: uWSGI's top-level keys, "sockets" (queue from
 * TCP_INFO), "workers" (one "cores" entry per thread), plus "mulefarm",
 * "uptime", "mules" and "farms". <q> may be NULL (no farmq region: no
 * farms, mules' "queue" 0); <ls> may be NULL (no sockets). Pure ASCII.
 * Returns a malloc()ed NUL-terminated string, or NULL on ENOMEM. */
char *stats_json(const struct scoreboard *sb, struct farmq *q, const struct listeners *ls,
                 const char *version);

/* Binds <addr> (host:port, :port -> 127.0.0.1:port, or a unix path) for
 * the stats server. Returns the listening fd (non-blocking, close-on-exec)
 * or -1 after writing the reason to <err>. */
int stats_listen(const char *addr, char *err, size_t errlen);

/* Accepts every pending connection on <fd> (until EAGAIN) and writes
 * <json> to each, wrapped in an HTTP/1.0 200 response when <http> (after
 * reading the request head, 100 ms at most), then closes it; a NULL
 * <json> closes them unanswered. Never blocks the caller for long: a
 * client that does not read within 1 s is dropped. */
void stats_serve(int fd, bool http, const char *json);

/* --top ADDR: connects every second, renders a table of the master,
 * workers, mules and farms on stdout (clearing the screen first when it
 * is a terminal) until interrupted or until <count> refreshes (0:
 * forever). Reads uWSGI's stats servers too, plain or --stats-http. An
 * unreachable server or a malformed snapshot is an error line. Returns
 * the exit status: 0 if the last refresh rendered, 1 if not. */
int stats_top(const char *addr, int count);

#endif
