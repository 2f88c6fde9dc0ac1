/*
 * uwsgi_proto.c - pure parser of the uwsgi protocol packet.
 *
 * The whole vars block is validated before anything is reported, so the
 * answer depends only on the bytes (never on how they arrived), and a
 * malformed block is reported as such even when it also has too many vars.
 * The modifiers are not judged here: which request types are served is the
 * caller's decision.
 */
#include <string.h>

#include "mulefarm/uwsgi_proto.h"

#define HEADER_SIZE 4

/* 2^62: the largest CONTENT_LENGTH accepted, as in the header. */
#define CONTENT_LENGTH_MAX ((int64_t)1 << 62)

/* Explicit byte loads: the wire is little-endian whatever the host is. */
static inline uint16_t load_le16(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint16_t)(u[0] | (unsigned)u[1] << 8);
}

/* Reads a u16le length and that many bytes at *<pp>, not past <end>. */
static int read_string(const char **pp, const char *end, struct http_slice *s)
{
	const char *p = *pp;
	size_t n;

	if (end - p < 2)
		return -1;
	n = load_le16(p);
	p += 2;
	if ((size_t)(end - p) < n)
		return -1;
	s->p = p;
	s->len = n;
	*pp = p + n;
	return 0;
}

/*
 * Walks the vars in [<p>, <end>), storing the first <max_vars> of them, and
 * counts them all into *<num> so that malformation is found even past the
 * caller's array.
 */
static int parse_vars(const char *p, const char *end, struct uwsgi_var *vars, size_t max_vars,
                      size_t *num)
{
	size_t n = 0;

	while (p < end) {
		struct uwsgi_var v;

		if (read_string(&p, end, &v.key) != 0 || v.key.len == 0 ||
		    read_string(&p, end, &v.value) != 0)
			return UWSGI_ERR_MALFORMED;
		if (n < max_vars)
			vars[n] = v;
		n++;
	}
	if (n > max_vars)
		return UWSGI_ERR_TOO_MANY_VARS;
	*num = n;
	return 0;
}

ssize_t uwsgi_parse_packet(const char *buf, size_t len, size_t max_size, struct uwsgi_packet *pkt,
                           struct uwsgi_var *vars, size_t max_vars)
{
	size_t datasize, total, num_vars = 0;
	int rc;

	if (len < HEADER_SIZE)
		return UWSGI_INCOMPLETE;
	datasize = load_le16(buf + 1);
	total = HEADER_SIZE + datasize;
	/* Before waiting for the vars: a peer must not make us buffer them. */
	if (total > max_size)
		return UWSGI_ERR_TOO_LARGE;
	if (len < total)
		return UWSGI_INCOMPLETE;
	rc = parse_vars(buf + HEADER_SIZE, buf + total, vars, max_vars, &num_vars);
	if (rc != 0)
		return rc;
	pkt->modifier1 = (uint8_t)buf[0];
	pkt->datasize = (uint16_t)datasize;
	pkt->modifier2 = (uint8_t)buf[3];
	pkt->vars = vars;
	pkt->num_vars = num_vars;
	return (ssize_t)total;
}

struct http_slice uwsgi_packet_get(const struct uwsgi_packet *pkt, const char *key)
{
	size_t n = strlen(key);

	for (size_t i = 0; i < pkt->num_vars; i++) {
		const struct uwsgi_var *v = &pkt->vars[i];

		if (v->key.len == n && memcmp(v->key.p, key, n) == 0)
			return v->value;
	}
	return (struct http_slice){NULL, 0};
}

int64_t uwsgi_content_length(struct http_slice v)
{
	int64_t n = 0;

	for (size_t i = 0; i < v.len; i++) {
		unsigned d = (unsigned char)v.p[i] - (unsigned)'0';

		if (d > 9 || n > (CONTENT_LENGTH_MAX - (int64_t)d) / 10)
			return -1;
		n = n * 10 + (int64_t)d;
	}
	return n;
}
