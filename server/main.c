/*
 * main.c - the mulefarm binary: options in, master out.
 */
#include <stdio.h>
#include <stdlib.h>

#include <unistd.h>

#include "mulefarm/config_load.h"
#include "mulefarm/master.h"
#include "mulefarm/server.h"

#define MULEFARM_VERSION "0.1.0"

int main(int argc, char **argv)
{
	static struct options opts;
	static struct server srv;
	char err[512];

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
	if (config_settle(&srv.cfg, &opts, err, sizeof(err)) == -1) {
		fprintf(stderr, "mulefarm: %s\n", err);
		return 2;
	}
	srv.argv = argv;
	return master_run(&srv);
}
