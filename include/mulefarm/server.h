/*
 * server.h - the process-wide object, made of parts; functions take the
 * narrowest part they need.
 */
#ifndef MULEFARM_SERVER_H
#define MULEFARM_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mulefarm/listener.h"
#include "mulefarm/options.h"

/* Settled from the options before any fork; read-only afterwards. */
struct config {
	int processes;
	int threads;
	size_t buffer_size;    /* request head limit */
	int64_t limit_post;    /* 0: none */
	int socket_timeout;    /* seconds */
	int keepalive_timeout; /* seconds */
	int worker_reload_mercy;
	long max_requests;     /* 0: never recycle */
	long reload_on_rss_mb; /* 0: never recycle */
	bool access_log;
	bool manage_script_name;
	bool sched_batch; /* workers run under SCHED_BATCH (proc.c) */
	const struct options *opts;
};

struct listeners {
	struct listener *l;
	size_t n;
};

struct static_config;

struct server {
	struct config cfg;
	struct listeners ls;
	const struct static_config *statics; /* --static-map and friends */
	pid_t master_pid;
	char **argv; /* argv[0] becomes sys.argv[0] */
	/* mulefarm-handler: no listeners, no workers, the app optional */
	bool webless;
	const char *version;
};

/* Fills <cfg> from <o>; returns -1 with a message on an invalid value. */
int config_settle(struct config *cfg, const struct options *o, char *err, size_t errlen);

#endif
