/*
 * main.c - the mulefarm-handler binary: the webless handler.
 *
 * It reads the same options and config files as mulefarm (the same
 * galaxy.yml) and runs the same master with no listeners and no workers:
 * the app is loaded as in mulefarm (when one is configured) and the
 * configured mules are forked from it; the mules of a --db-farm claim
 * jobs from the database. Web options are ignored (one log line says
 * which). --migrate and --status act on the database and exit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <unistd.h>

#include "mulefarm/config_load.h"
#include "mulefarm/daemon.h"
#include "mulefarm/dbqueue.h"
#include "mulefarm/front.h"
#include "mulefarm/log.h"
#include "mulefarm/main.h"
#include "mulefarm/server.h"

#define HANDLER_VERSION "0.1.0"

/* What only web workers use. */
static const enum opt_id web_options[] = {
        OPT_HTTP_SOCKET,
        OPT_HTTP,
        OPT_SOCKET,
        OPT_CHOWN_SOCKET,
        OPT_CHMOD_SOCKET,
        OPT_REUSE_PORT,
        OPT_LISTEN,
        OPT_PROCESSES,
        OPT_THREADS,
        OPT_BUFFER_SIZE,
        OPT_LIMIT_POST,
        OPT_SOCKET_TIMEOUT,
        OPT_KEEPALIVE_TIMEOUT,
        OPT_DISABLE_LOGGING,
        OPT_STATIC_MAP,
        OPT_STATIC_MAP2,
        OPT_CHECK_STATIC,
        OPT_STATIC_INDEX,
        OPT_STATIC_SAFE,
        OPT_MANAGE_SCRIPT_NAME,
        OPT_WORKER_RELOAD_MERCY,
        OPT_HARAKIRI,
        OPT_MAX_REQUESTS,
        OPT_RELOAD_ON_RSS,
        OPT_HOOK_ACCEPTING,
        OPT_HOOK_ACCEPTING1,
        OPT_HOOK_ACCEPTING_ONCE,
        OPT_HOOK_ACCEPTING1_ONCE,
        OPT_ZERG,
        OPT_ZERG_FALLBACK,
        OPT_ZERG_SERVER,
        OPT_CHMOD_ZERG,
        OPT_ZERGPOOL,
};

static bool is_web_option(enum opt_id id)
{
	for (size_t i = 0; i < sizeof(web_options) / sizeof(web_options[0]); i++)
		if (web_options[i] == id)
			return true;
	return false;
}

/* One line naming the web options given (each once, in order). */
static void log_ignored(const struct options *o)
{
	char line[1024];
	size_t len = 0;
	bool seen[OPT__COUNT] = {false};
	for (size_t i = 0; i < o->n; i++) {
		enum opt_id id = o->entries[i].id;
		if (id == OPT_PLACEHOLDER || !is_web_option(id) || seen[id])
			continue;
		seen[id] = true;
		int n = snprintf(line + len, sizeof(line) - len, "%s%s", len ? ", " : "",
		                 opt_table[id].name);
		len += n > 0 && (size_t)n < sizeof(line) - len ? (size_t)n : 0;
	}
	if (len > 0)
		log_info("mulefarm-handler runs no web workers: ignoring %s", line);
}

static int db_farms(const struct options *o, const char **names, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < o->n && n < max; i++)
		if (o->entries[i].id == OPT_DB_FARM)
			names[n++] = o->entries[i].value;
	return (int)n;
}

/* Connects for --migrate and --status: within --dbqueue-timeout. */
static struct dbq *connect_db(const struct options *o)
{
	const char *conninfo = opt_str(o, OPT_DBQUEUE);
	if (conninfo == NULL) {
		fprintf(stderr, "mulefarm-handler: no database: give --dbqueue CONNINFO\n");
		return NULL;
	}
	long t = opt_int(o, OPT_DBQUEUE_TIMEOUT);
	struct dbq *q = dbq_connect(conninfo, (int)(t > 0 ? t * 1000 : 10000));
	if (q == NULL || dbq_status(q) != DBQ_OK) {
		fprintf(stderr, "mulefarm-handler: cannot connect to the database: %s\n",
		        q ? dbq_errmsg(q) : "out of memory");
		dbq_close(q);
		return NULL;
	}
	return q;
}

static int migrate(const struct options *o)
{
	struct dbq *q = connect_db(o);
	if (q == NULL)
		return 1;
	int rc = dbq_migrate(q);
	if (rc == DBQ_OK)
		printf("database queue schema: up to date\n");
	else
		fprintf(stderr, "mulefarm-handler: migrations failed: %s\n", dbq_errmsg(q));
	dbq_close(q);
	return rc == DBQ_OK ? 0 : 1;
}

/* --status: one line per database farm. */
static int status(const struct options *o)
{
	const char *names[256];
	int n = db_farms(o, names, 256);
	if (n == 0) {
		fprintf(stderr, "mulefarm-handler: no --db-farm is configured\n");
		return 1;
	}
	struct dbq *q = connect_db(o);
	if (q == NULL)
		return 1;
	int rc = dbq_migrate(q);
	for (int i = 0; rc == DBQ_OK && i < n; i++) {
		struct dbq_stats st;
		rc = dbq_stats(q, names[i], &st);
		if (rc == DBQ_OK)
			printf("%s: %lld queued, %lld running, %lld failed, %lld discarded, %lld "
			       "done "
			       "(retained); oldest queued %.1f s; %lld live handlers\n",
			       names[i], (long long)st.queued, (long long)st.running,
			       (long long)st.failed, (long long)st.discarded,
			       (long long)st.done_retained, st.oldest_queued_s,
			       (long long)st.handlers);
	}
	if (rc != DBQ_OK)
		fprintf(stderr, "mulefarm-handler: %s\n", dbq_errmsg(q));
	dbq_close(q);
	return rc == DBQ_OK ? 0 : 1;
}

/* A handler without database farms or mules has nothing to do. */
static int check_config(const struct options *o)
{
	const char *names[1];
	if (db_farms(o, names, 1) == 0 || opt_str(o, OPT_DBQUEUE) == NULL) {
		fprintf(stderr, "mulefarm-handler: give --db-farm NAME and --dbqueue CONNINFO (its "
		                "mules take the jobs of database farms)\n");
		return -1;
	}
	bool mules = opt_int(o, OPT_MULES) > 0;
	for (size_t i = 0; i < o->n; i++)
		mules = mules || o->entries[i].id == OPT_MULE;
	if (!mules) {
		fprintf(stderr, "mulefarm-handler: no --mule is configured: nothing would take "
		                "jobs\n");
		return -1;
	}
	return 0;
}

int mulefarm_handler_main(int argc, char **argv)
{
	static struct options opts;
	static struct server srv;
	char err[512];

	int rc = front_begin("mulefarm-handler", HANDLER_VERSION, argc, argv, &opts);
	if (rc != -1)
		return rc;
	if (opt_flag(&opts, OPT_MIGRATE))
		return migrate(&opts);
	if (opt_flag(&opts, OPT_STATUS))
		return status(&opts);
	if (check_config(&opts) == -1)
		return 2;
	if (config_settle(&srv.cfg, &opts, err, sizeof(err)) == -1) {
		fprintf(stderr, "mulefarm-handler: %s\n", err);
		return 2;
	}
	srv.cfg.processes = 0;
	srv.webless = true;
	log_ignored(&opts);
	return front_launch(HANDLER_VERSION, "handler master", argc, argv, &opts, &srv);
}

#ifndef MULEFARM_NO_MAIN
int main(int argc, char **argv)
{
	return mulefarm_handler_main(argc, argv);
}
#endif
