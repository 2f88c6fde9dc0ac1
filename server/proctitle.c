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

/* The title up to its state: "<prefix>mulefarm <role> <id> (", or the
 * whole title for a process without an id. Built when the role changes,
 * so that a worker's retitling per request (busy, idle) prints nothing. */
static char head[200];
static size_t head_len;

static void build_head(void)
{
	int n = cur_id > 0 ? snprintf(head, sizeof(head), "%smulefarm %s %d (", prefix, cur_role,
	                              cur_id)
	                   : snprintf(head, sizeof(head), "%smulefarm %s", prefix, cur_role);
	head_len = n < 0 ? 0 : (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1;
}

void proctitle_prefix(const char *p)
{
	prefix = p ? p : "";
	build_head();
}

static void put(size_t *at, const char *p, size_t n)
{
	if (*at >= area_len - 1)
		return;
	if (n > area_len - 1 - *at)
		n = area_len - 1 - *at;
	memcpy(area + *at, p, n);
	*at += n;
}

static void write_title(const char *state)
{
	if (area == NULL || area_len < 2)
		return;
	size_t len = 0;
	put(&len, head, head_len);
	if (cur_id > 0) {
		if (state)
			put(&len, state, strlen(state));
		put(&len, ")", 1);
	}
	/* Clear only what the previous title left, not the whole argv and
	 * environ area. */
	if (area_dirty > len)
		memset(area + len, 0, area_dirty - len);
	area_dirty = len;
}

void proctitle_set(const char *role, int id, const char *state)
{
	cur_role = role;
	cur_id = id;
	build_head();
	write_title(state);
	char comm[16];
	snprintf(comm, sizeof(comm), "mf %s %d", role, id);
	prctl(PR_SET_NAME, id > 0 ? comm : "mulefarm", 0, 0, 0);
}

void proctitle_state(const char *state)
{
	write_title(state);
}
