/*
 * config.c - settles the typed configuration from the options.
 */
#include <stdio.h>

#include "mulefarm/config_load.h"
#include "mulefarm/server.h"

static int range(long v, long lo, long hi, const char *name, char *err, size_t errlen)
{
	if (v >= lo && v <= hi)
		return 0;
	snprintf(err, errlen, "option --%s: %ld is out of range (%ld..%ld)", name, v, lo, hi);
	return -1;
}

int config_settle(struct config *cfg, const struct options *o, char *err, size_t errlen)
{
	long processes = opt_given(o, OPT_PROCESSES) ? opt_int(o, OPT_PROCESSES)
	                                             : config_default_processes();
	long threads = opt_int(o, OPT_THREADS);
	long bufsize = opt_int(o, OPT_BUFFER_SIZE), timeout = opt_int(o, OPT_SOCKET_TIMEOUT);
	long keepalive = opt_int(o, OPT_KEEPALIVE_TIMEOUT);
	long mercy = opt_int(o, OPT_WORKER_RELOAD_MERCY);
	long max_requests = opt_int(o, OPT_MAX_REQUESTS), rss = opt_int(o, OPT_RELOAD_ON_RSS);

	if (range(processes, 1, 1024, "processes", err, errlen) ||
	    range(threads, 1, 1024, "threads", err, errlen) ||
	    range(bufsize, 512, 1 << 20, "buffer-size", err, errlen) ||
	    range(timeout, 1, 86400, "socket-timeout", err, errlen) ||
	    range(keepalive, 1, 86400, "keepalive-timeout", err, errlen) ||
	    range(mercy, 0, 86400, "worker-reload-mercy", err, errlen) ||
	    range(opt_int(o, OPT_MULE_RELOAD_MERCY), 0, 86400, "mule-reload-mercy", err, errlen) ||
	    range(opt_int(o, OPT_RELOAD_MERCY), 0, 86400, "reload-mercy", err, errlen) ||
	    range(opt_int(o, OPT_HARAKIRI), 0, 86400, "harakiri", err, errlen) ||
	    range(max_requests, 0, 1L << 40, "max-requests", err, errlen) ||
	    range(rss, 0, 1L << 30, "reload-on-rss", err, errlen))
		return -1;
	cfg->processes = (int)processes;
	cfg->threads = (int)threads;
	cfg->buffer_size = (size_t)bufsize;
	cfg->limit_post = opt_int(o, OPT_LIMIT_POST);
	cfg->socket_timeout = (int)timeout;
	cfg->keepalive_timeout = (int)keepalive;
	cfg->worker_reload_mercy = (int)mercy;
	cfg->access_log = !opt_flag(o, OPT_DISABLE_LOGGING);
	cfg->manage_script_name = opt_flag(o, OPT_MANAGE_SCRIPT_NAME);
	cfg->sched_batch = opt_flag(o, OPT_SCHED_BATCH);
	cfg->max_requests = max_requests;
	cfg->reload_on_rss_mb = rss;
	cfg->opts = o;
	return 0;
}
