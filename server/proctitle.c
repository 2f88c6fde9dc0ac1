/*
 * proctitle.c - process titles (see proctitle.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "mulefarm/proctitle.h"

extern char **environ;

static char *area;
static size_t area_len;
static size_t area_dirty; /* bytes of <area> that may be non-zero */
static const char *prefix = "";
static const char *cur_role = "master";
static int cur_id;

void proctitle_init(int argc, char **argv)
{
	if (area != NULL || argc < 1 || argv[0] == NULL)
		return; /* claimed already (the wheel claims the interpreter's argv) */
	char *end = argv[0] + strlen(argv[0]) + 1;
	for (int i = 1; i < argc; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	size_t n = 0;
	while (environ[n] != NULL)
		n++;
	char **copy = calloc(n + 1, sizeof(char *));
	if (copy == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;
		copy[i] = strdup(environ[i]);
		if (copy[i] == NULL)
			return;
	}
	environ = copy;
	area = argv[0];
	area_len = (size_t)(end - argv[0]);
	area_dirty = area_len;
}

void proctitle_prefix(const char *p)
{
	prefix = p ? p : "";
}

static void write_title(const char *state)
{
	char title[256];
	int n = cur_id > 0 ? snprintf(title, sizeof(title), "%smulefarm %s %d (%s)", prefix,
	                              cur_role, cur_id, state)
	                   : snprintf(title, sizeof(title), "%smulefarm %s", prefix, cur_role);
	if (n < 0 || area == NULL || area_len < 2)
		return;
	/* Workers retitle themselves per request (busy, idle): clear only
	 * what the previous title left, not the whole argv and environ area. */
	size_t len = (size_t)n < area_len - 1 ? (size_t)n : area_len - 1;
	memcpy(area, title, len);
	if (area_dirty > len)
		memset(area + len, 0, area_dirty - len);
	area_dirty = len;
}

void proctitle_set(const char *role, int id, const char *state)
{
	cur_role = role;
	cur_id = id;
	write_title(state);
	char comm[16];
	snprintf(comm, sizeof(comm), "mf %s %d", role, id);
	prctl(PR_SET_NAME, id > 0 ? comm : "mulefarm", 0, 0, 0);
}

void proctitle_state(const char *state)
{
	write_title(state);
}
