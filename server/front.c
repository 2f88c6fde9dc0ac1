/*
 * front.c - the start of both binaries (front.h).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mulefarm/config_load.h"
#include "mulefarm/daemon.h"
#include "mulefarm/front.h"
#include "mulefarm/master.h"
#include "mulefarm/proctitle.h"
#include "mulefarm/reload.h"

int front_begin(const char *prog, const char *version, int argc, char **argv, struct options *o)
{
	char err[512];
	if (reload_prepare(argc, argv) == -1) {
		fprintf(stderr, "%s: cannot read /proc/self/exe or the working directory\n", prog);
		return 1;
	}
	if (config_load(o, argc - 1, argv + 1, environ, version, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s (see --help)\n", prog, err);
		return 2;
	}
	if (opt_flag(o, OPT_HELP)) {
		cli_print_help(stdout);
		return 0;
	}
	if (opt_flag(o, OPT_VERSION)) {
		puts(version);
		return 0;
	}
	if (opt_flag(o, OPT_OPTIONS_MD)) {
		cli_print_markdown(stdout);
		return 0;
	}
	if (opt_flag(o, OPT_PRINT_CONFIG)) {
		config_print(o, stdout);
		return 0;
	}
	/* Controls of a running master: act and exit. */
	if (opt_given(o, OPT_STOP))
		return daemon_signal_pidfile(opt_str(o, OPT_STOP), SIGINT);
	if (opt_given(o, OPT_GRACEFUL_STOP))
		return daemon_signal_pidfile(opt_str(o, OPT_GRACEFUL_STOP), SIGTERM);
	if (opt_given(o, OPT_RELOAD))
		return daemon_signal_pidfile(opt_str(o, OPT_RELOAD), SIGHUP);
	return -1;
}

int front_launch(const char *version, const char *title, int argc, char **argv, struct options *o,
                 struct server *srv)
{
	static char *py_argv[2];
	py_argv[0] = strdup(argv[0]); /* sys.argv[0]; the title overwrites argv */
	srv->argv = py_argv;
	srv->version = version;
	proctitle_init(argc, argv);
	proctitle_prefix(opt_str(o, OPT_PROCNAME_PREFIX));
	proctitle_set(title, 0, NULL);
	return master_run(srv);
}
