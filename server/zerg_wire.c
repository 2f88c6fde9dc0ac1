/*
 * zerg_wire.c - zerg messages as bytes (see zerg_wire.h).
 */
#include <stdio.h>
#include <string.h>

#include "mulefarm/zerg_wire.h"

void zerg_wire_head(unsigned char out[ZERG_HEAD_LEN], int nfds)
{
	memcpy(out, ZERG_TAG, ZERG_TAG_LEN);
	memcpy(out + ZERG_TAG_LEN, &nfds, sizeof(int)); /* host order, as uWSGI */
}

int zerg_wire_parse_head(const unsigned char *buf, size_t len, bool *announced)
{
	*announced = false;
	if (len < ZERG_TAG_LEN || memcmp(buf, ZERG_TAG, ZERG_TAG_LEN) != 0)
		return -1;
	if (len < ZERG_HEAD_LEN)
		return 0;
	int n;
	memcpy(&n, buf + ZERG_TAG_LEN, sizeof(int));
	*announced = true;
	return n < 0 ? -1 : n;
}

int zerg_wire_put(char *buf, size_t cap, size_t *len, enum zerg_rec_kind kind, int nfds, int pid,
                  const char *name)
{
	size_t tag = strlen(ZERG_EXTRA_TAG);
	if (*len == 0) {
		if (cap < tag)
			return -1;
		memcpy(buf, ZERG_EXTRA_TAG, tag);
		*len = tag;
	}
	int n;
	switch (kind) {
	case ZERG_REC_LISTENER:
		if (name == NULL || name[0] == '\0' || strlen(name) > ZERG_NAME_MAX ||
		    strpbrk(name, "\t\n") != NULL || nfds < 1)
			return -1;
		n = snprintf(buf + *len, cap - *len, "L%d\t%s\n", nfds, name);
		break;
	case ZERG_REC_FARMQ:
		n = snprintf(buf + *len, cap - *len, "Q\n");
		break;
	case ZERG_REC_STATS:
		n = snprintf(buf + *len, cap - *len, "S\n");
		break;
	case ZERG_REC_MASTER:
		n = snprintf(buf + *len, cap - *len, "%c%d\n", nfds ? 'P' : 'p', pid);
		break;
	default:
		return -1;
	}
	if (n < 0 || (size_t)n >= cap - *len)
		return -1;
	*len += (size_t)n;
	return 0;
}

int zerg_wire_end(char *buf, size_t cap, size_t *len)
{
	size_t tag = strlen(ZERG_EXTRA_TAG);
	if (*len == 0) {
		if (cap < tag)
			return -1;
		memcpy(buf, ZERG_EXTRA_TAG, tag);
		*len = tag;
	}
	if (*len + 1 > cap)
		return -1;
	buf[(*len)++] = '\n';
	return 0;
}

bool zerg_wire_complete(const char *buf, size_t len)
{
	size_t tag = strlen(ZERG_EXTRA_TAG);
	return len > tag && buf[len - 1] == '\n' && buf[len - 2] == '\n';
}

/* A decimal number of up to 9 digits at <p> (before <end>); -1 if none. */
static long number(const char *p, const char *end, const char **after)
{
	long v = 0;
	const char *q = p;
	while (q < end && q - p < 9 && *q >= '0' && *q <= '9')
		v = v * 10 + (*q++ - '0');
	*after = q;
	return q == p ? -1 : v;
}

/* One record: the line [p, nl). */
static int parse_line(const char *p, const char *nl, struct zerg_rec *r)
{
	const char *after;
	memset(r, 0, sizeof(*r));
	switch (*p) {
	case 'L': {
		long n = number(p + 1, nl, &after);
		if (n < 1 || after >= nl || *after != '\t')
			return -1;
		r->kind = ZERG_REC_LISTENER;
		r->nfds = (int)n;
		r->name = after + 1;
		r->name_len = (size_t)(nl - r->name);
		return r->name_len > 0 && r->name_len <= ZERG_NAME_MAX &&
		                       memchr(r->name, '\t', r->name_len) == NULL
		               ? 0
		               : -1;
	}
	case 'Q':
	case 'S':
		r->kind = *p == 'Q' ? ZERG_REC_FARMQ : ZERG_REC_STATS;
		r->nfds = 1;
		return nl == p + 1 ? 0 : -1;
	case 'P':
	case 'p': {
		long pid = number(p + 1, nl, &after);
		r->kind = ZERG_REC_MASTER;
		r->nfds = *p == 'P';
		r->pid = (int)pid;
		return pid > 0 && after == nl ? 0 : -1;
	}
	default:
		return -1;
	}
}

int zerg_wire_parse(const char *buf, size_t len, struct zerg_rec *recs, size_t max, size_t *nrecs)
{
	size_t tag = strlen(ZERG_EXTRA_TAG);
	*nrecs = 0;
	if (len < tag || memcmp(buf, ZERG_EXTRA_TAG, tag) != 0)
		return -1;
	const char *p = buf + tag, *end = buf + len;
	int fds = 0;
	for (;;) {
		const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		if (nl == p && nl + 1 == end)
			return fds; /* the empty line: the end */
		if (nl == NULL || nl == p || *nrecs == max)
			return -1;
		struct zerg_rec *r = &recs[*nrecs];
		if (parse_line(p, nl, r) == -1 || r->nfds > ZERG_MAX_FDS - fds)
			return -1;
		fds += r->nfds;
		(*nrecs)++;
		p = nl + 1;
	}
}
