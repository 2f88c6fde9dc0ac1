/*
 * listener.h - listening sockets: address parsing, bind, listen.
 *
 * Opened by the master before any fork; workers inherit the fds.
 */
#ifndef MULEFARM_LISTENER_H
#define MULEFARM_LISTENER_H

#include <stdbool.h>
#include <sys/socket.h>

enum listener_proto {
	PROTO_HTTP,  /* --http-socket, --http */
	PROTO_UWSGI, /* --socket: the uwsgi protocol, for nginx's uwsgi_pass */
};

struct listener {
	int fd;
	bool is_unix;
	enum listener_proto proto;
	bool reuse_port; /* set before listener_open(): SO_REUSEPORT (TCP) */
	int *worker_fds; /* --reuse-port: one socket per worker id, or NULL */
	int n_worker_fds;
	int backlog;
	char name[256];        /* the address as given */
	char server_name[256]; /* default SERVER_NAME (host part, or "localhost") */
	char server_port[8];   /* default SERVER_PORT ("" for unix sockets) */
};

/*
 * Splits <addr> the way uWSGI reads socket addresses: an address holding
 * no ':' or a '/' is a unix socket path; "[v6]:port", "host:port", and
 * ":port" (all IPv4 interfaces) are TCP. Fills <host> (empty for ":port")
 * and <port>. Returns 0, or -1 when malformed. Pure.
 */
int listener_split(const char *addr, bool *is_unix, char *host, size_t hostlen, char *port,
                   size_t portlen);

/* Binds and listens on <addr> with <backlog>. Unix sockets replace a stale
 * socket file, get <mode> (octal string) and <owner> ("user[:group]") when
 * they are not NULL. Returns 0, or -1 after logging what failed. */
int listener_open(struct listener *l, const char *addr, int backlog, const char *mode,
                  const char *owner);

/* --reuse-port: opens <n> sockets on <l>'s TCP address with SO_REUSEPORT
 * (the first is l->fd), one per worker, so that each worker has an accept
 * queue of its own. Returns 0 or -1 after logging. Master, before fork. */
int listener_per_worker(struct listener *l, int n);

/* Takes over <n> inherited listening fds for <addr> (after a reload, or
 * from a zerg server): fills <l> as listener_open() would, without
 * binding. Returns 0 or -1. */
int listener_adopt(struct listener *l, const char *addr, const int *fds, int n);

/* The socket worker <id> (1..N) accepts on. */
int listener_fd(const struct listener *l, int id);

#endif
