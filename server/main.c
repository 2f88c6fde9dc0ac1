/*
 * main.c - the mulefarm binary: options in, master out (main.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <signal.h>

#include "mulefarm/config_load.h"
#include "mulefarm/daemon.h"
#include "mulefarm/main.h"
#include "mulefarm/master.h"
#include "mulefarm/proctitle.h"
#include "mulefarm/reload.h"
#include "mulefarm/restart.h"
#include "mulefarm/stats.h"
#include "mulefarm/server.h"
#include "mulefarm/zerg.h"

#define MULEFARM_VERSION "0.1.0"

int mulefarm_main(int argc, char **argv)
{
	static struct options opts;
	static struct server srv;
	char err[512];

	if (reload_prepare(argc, argv) == -1) {
		fprintf(stderr, "mulefarm: cannot read /proc/self/exe or the working directory\n");
		return 1;
	}
	if (config_load(&opts, argc - 1, argv + 1, environ, MULEFARM_VERSION, err, sizeof(err)) ==
	    -1) {
		fprintf(stderr, "mulefarm: %s (see --help)\n", err);
		return 2;
	}
	if (opt_flag(&opts, OPT_HELP)) {
		cli_print_help(stdout);
		return 0;
	}
	if (opt_flag(&opts, OPT_VERSION)) {
		puts(MULEFARM_VERSION);
		return 0;
	}
	if (opt_flag(&opts, OPT_OPTIONS_MD)) {
		cli_print_markdown(stdout);
		return 0;
	}
	if (opt_flag(&opts, OPT_PRINT_CONFIG)) {
		config_print(&opts, stdout);
		return 0;
	}
	/* Controls of a running master: act and exit. */
	if (opt_given(&opts, OPT_STOP))
		return daemon_signal_pidfile(opt_str(&opts, OPT_STOP), SIGINT);
	if (opt_given(&opts, OPT_GRACEFUL_STOP))
		return daemon_signal_pidfile(opt_str(&opts, OPT_GRACEFUL_STOP), SIGTERM);
	if (opt_given(&opts, OPT_RELOAD))
		return daemon_signal_pidfile(opt_str(&opts, OPT_RELOAD), SIGHUP);
	if (opt_given(&opts, OPT_TOP))
		return stats_top(opt_str(&opts, OPT_TOP), 0);
	if (opt_given(&opts, OPT_TRANSPARENT_RESTART))
		return restart_command(opt_str(&opts, OPT_TRANSPARENT_RESTART));
	if (opt_given(&opts, OPT_ZERGPOOL))
		return zergpool_run(&opts);
	if (config_settle(&srv.cfg, &opts, err, sizeof(err)) == -1) {
		fprintf(stderr, "mulefarm: %s\n", err);
		return 2;
	}
	static char *py_argv[2];
	py_argv[0] = strdup(argv[0]); /* sys.argv[0]; the title overwrites argv */
	srv.argv = py_argv;
	proctitle_init(argc, argv);
	proctitle_prefix(opt_str(&opts, OPT_PROCNAME_PREFIX));
	proctitle_set("master", 0, NULL);
	srv.version = MULEFARM_VERSION;
	return master_run(&srv);
}

#ifndef MULEFARM_NO_MAIN
int main(int argc, char **argv)
{
	return mulefarm_main(argc, argv);
}
#endif
