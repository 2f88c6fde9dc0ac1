/*
 * uwsgi_proto.h - pure parser of the uwsgi protocol packet (what nginx's
 * uwsgi_pass sends).
 *
 * Wire format: a 4-byte header (modifier1: u8, datasize: u16 little-endian,
 * modifier2: u8), then <datasize> bytes of vars, each a u16le key length,
 * the key, a u16le value length and the value; then the request body, whose
 * length is the CONTENT_LENGTH var. Bytes in, slices of the caller's buffer
 * out: no allocation, no globals, no I/O (fuzzed in tests/fuzz/).
 */
#ifndef MULEFARM_UWSGI_PROTO_H
#define MULEFARM_UWSGI_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mulefarm/http.h"

enum {
	UWSGI_INCOMPLETE = -1,        /* need more bytes */
	UWSGI_ERR_MALFORMED = -2,     /* a var overruns datasize, or an empty key */
	UWSGI_ERR_TOO_LARGE = -3,     /* 4 + datasize > the caller's limit */
	UWSGI_ERR_TOO_MANY_VARS = -4, /* more vars than the caller's array */
};

struct uwsgi_var {
	struct http_slice key;
	struct http_slice value;
};

struct uwsgi_packet {
	uint8_t modifier1;
	uint8_t modifier2;
	uint16_t datasize;
	struct uwsgi_var *vars; /* the caller's array */
	size_t num_vars;
};

/*
 * Parses the packet at the start of <buf,len>. <max_size> bounds 4 +
 * datasize (the --buffer-size); it is checked as soon as the 4-byte header
 * is in, so an oversized packet is refused before its vars arrive. Returns
 * 4 + datasize (the body starts there), UWSGI_INCOMPLETE, or a negative
 * UWSGI_ERR_*. Re-parsing the same bytes gives the same answer.
 *
 * Order: fewer than 4 bytes is INCOMPLETE; then TOO_LARGE; then INCOMPLETE
 * until all of the vars are in; then the whole vars block is checked, and
 * MALFORMED (a length that overruns datasize, an empty key, 1 to 4 bytes
 * left, which cannot hold a var) wins over TOO_MANY_VARS. Empty values are
 * fine; keys and values are arbitrary bytes. *<pkt> is written only on
 * success; <vars>[0, max_vars) may be overwritten on any result. <vars> may
 * be NULL when <max_vars> is 0.
 */
ssize_t uwsgi_parse_packet(const char *buf, size_t len, size_t max_size, struct uwsgi_packet *pkt,
                           struct uwsgi_var *vars, size_t max_vars);

/* The value of var <key> (exact, case-sensitive; first match), or a slice
 * with p == NULL. An empty value found has p != NULL and len 0. */
struct http_slice uwsgi_packet_get(const struct uwsgi_packet *pkt, const char *key);

/*
 * Parses a CONTENT_LENGTH value: 1*DIGIT without sign, spaces or "0x",
 * at most 2^62 (leading zeros allowed). Returns the length, 0 for an
 * empty value (also for the p == NULL of a missing var), or -1 when
 * invalid. (Shared with nothing else on purpose: the HTTP parser has its
 * own, stricter, duplicate-aware rule.)
 */
int64_t uwsgi_content_length(struct http_slice v);

#endif
