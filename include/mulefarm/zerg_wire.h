/*
 * zerg_wire.h - what a zerg server sends, as bytes: pure encoders and
 * parsers, no I/O (zerg.c does the sockets).
 *
 * A zerg server accepts a connection on its unix socket, sends, and closes.
 *
 * 1. uWSGI's message (core/socket.c uwsgi_manage_zerg()), one sendmsg():
 *      data:    the 10 bytes "uwsgi-zerg", then a C int (4 bytes, the
 *               host's byte order: both ends run on the same host) = n
 *      control: SCM_RIGHTS with n fds, the server's unique listening sockets
 *    uWSGI's client (core/utils.c uwsgi_attach_fd()) reads it with one
 *    recvmsg() into a 14-byte buffer, checks the tag, retries with a larger
 *    fd array if n is more than it offered, and uses the fds as sockets.
 *
 * 2. mulefarm's message, a second sendmsg() that uWSGI clients never read
 *    (they close after the first one, and the kernel never merges two
 *    messages that carry fds into one read):
 *      data:    "mulefarm-zerg 1\n", then one record per line:
 *                 "L<n>\t<address>\n"  a listener, as configured by the
 *                                      server: its next <n> fds (several
 *                                      with --reuse-port; the first is the
 *                                      one message 1 carried)
 *                 "Q\n"                the next fd: the farm queues' memfd
 *                 "S\n"                the next fd: the stats socket
 *                 "P<pid>\n"           the next fd: a pidfd of master <pid>,
 *                                      whose mules must exit before the
 *                                      client starts its own
 *                 "p<pid>\n"           the same, without a pidfd (none)
 *               and an empty line ends it (the connection may stay open:
 *               a transparent restart's channel does).
 *      control: SCM_RIGHTS with every record's fds, in record order.
 */
#ifndef MULEFARM_ZERG_WIRE_H
#define MULEFARM_ZERG_WIRE_H

#include <stdbool.h>
#include <stddef.h>

#define ZERG_TAG       "uwsgi-zerg"
#define ZERG_TAG_LEN   10
#define ZERG_HEAD_LEN  (ZERG_TAG_LEN + sizeof(int))
#define ZERG_MAX_FDS   253 /* the kernel's SCM_MAX_FD */
#define ZERG_EXTRA_TAG "mulefarm-zerg 1\n"
#define ZERG_EXTRA_MAX 16384 /* the largest mulefarm message */
#define ZERG_NAME_MAX  255

/* Writes uWSGI's 14-byte head announcing <nfds> fds into <out>. */
void zerg_wire_head(unsigned char out[ZERG_HEAD_LEN], int nfds);

/* Reads a received head of <len> bytes. Returns the announced fd count
 * (>= 0), or -1 when the tag is wrong. A bare 10-byte tag (no count) is
 * accepted, as uWSGI's client accepts it: *announced is then false. */
int zerg_wire_parse_head(const unsigned char *buf, size_t len, bool *announced);

enum zerg_rec_kind { ZERG_REC_LISTENER, ZERG_REC_FARMQ, ZERG_REC_STATS, ZERG_REC_MASTER };

struct zerg_rec {
	enum zerg_rec_kind kind;
	int nfds;         /* fds this record takes (0 for "p") */
	int pid;          /* ZERG_REC_MASTER */
	const char *name; /* ZERG_REC_LISTENER: a slice of the buffer, not terminated */
	size_t name_len;
};

/* Appends a record to the message in <buf> (capacity <cap>, <*len> used;
 * an empty buffer gets the tag first). <name> is for listeners, <pid> for
 * masters; <nfds> as in struct zerg_rec. Returns 0, or -1 when it does not
 * fit or a name is empty, too long or holds a tab or newline. */
int zerg_wire_put(char *buf, size_t cap, size_t *len, enum zerg_rec_kind kind, int nfds, int pid,
                  const char *name);

/* Appends the empty line that ends the message. Returns 0 or -1. */
int zerg_wire_end(char *buf, size_t cap, size_t *len);

/* Whether the <len> bytes in <buf> hold a whole message (end included). */
bool zerg_wire_complete(const char *buf, size_t len);

/* Parses mulefarm's message (<len> bytes, end included) into at most <max> records.
 * Returns the number of fds the records take, or -1 if the message is
 * malformed (wrong tag, unknown record, bad number, too many records or
 * fds). Pure: the records point into <buf>. */
int zerg_wire_parse(const char *buf, size_t len, struct zerg_rec *recs, size_t max, size_t *nrecs);

#endif
