/*
 * main.c - the mulefarm binary: options in, master out (main.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mulefarm/config_load.h"
#include "mulefarm/front.h"
#include "mulefarm/main.h"
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

	int rc = front_begin("mulefarm", MULEFARM_VERSION, argc, argv, &opts);
	if (rc != -1)
		return rc;
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
	return front_launch(MULEFARM_VERSION, "master", argc, argv, &opts, &srv);
}

#ifndef MULEFARM_NO_MAIN
int main(int argc, char **argv)
{
	return mulefarm_main(argc, argv);
}
#endif
