/*
 * zerg.h - zerg mode: instances sharing listening sockets, as in uWSGI.
 *
 * A zerg server (--zerg-server PATH in a master, or the standalone pool
 * --zergpool PATH:addr,...) hands its listening sockets over a unix socket
 * to whoever connects (wire format: zerg_wire.h). An instance started with
 * --zerg PATH attaches to them instead of binding, so several instances
 * accept from the same kernel queues and one can replace another without
 * refusing a connection.
 *
 * Mapping received sockets to the configured ones (--http-socket, --http,
 * --socket, in the order given):
 *   1. an option takes the socket the server configured under the same
 *      address text (mulefarm servers say), else the socket bound to the
 *      same address (getsockname: the same path, or the same IP and port);
 *   2. options still without one take the remaining sockets in order;
 *   3. options left over bind as usual (the server did not have them);
 *   4. sockets left over are served with the uwsgi protocol, named by their
 *      address (uWSGI serves received sockets with its default protocol).
 * With no socket option, no default 127.0.0.1:8080 is bound: the received
 * sockets are the instance's. Every received socket is used; none is
 * closed.
 *
 * From a mulefarm master the client also receives (zerg_wire.h, message 2):
 *   - the farm queues' memfd: the instance uses the same queues when its
 *     farms have the same shape (messages queued by either instance are
 *     handled once, by whichever mule takes them); otherwise it creates its
 *     own and moves the server's leftovers into them once the server's
 *     master has exited;
 *   - the --stats socket, adopted when --stats names the same address;
 *   - a pidfd of the server's master when it has mules: this instance's
 *     mules start only once that master has exited (and so its mules:
 *     they die with it), so that two mules with the same id, and so the
 *     same handler name, never run at once.
 *
 * All of this runs in the master. Children close the server socket.
 */
#ifndef MULEFARM_ZERG_H
#define MULEFARM_ZERG_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mulefarm/options.h"
#include "mulefarm/server.h"

/* What the master shares with zerg clients (and a transparent restart's
 * new instance). Points into the master's own state; read at each send. */
struct zerg_share {
	const struct listeners *ls; /* NULL: none (mulefarm-handler) */
	int farmq_fd;               /* -1: none */
	const int *stats_fd;        /* *stats_fd -1: none */
	bool has_mules;             /* clients hold their mules until this master exits */
};

/* --- attaching: --zerg, or a transparent restart's channel ------------ */

/* Receives the sockets from every --zerg server (connecting with a 30 s
 * timeout), or from the channel of a transparent restart (restart.h),
 * and settles the mapping above for <o>'s socket options. A server that
 * cannot be reached is an error unless --zerg-fallback (or <reloading>:
 * a re-executed master keeps the sockets it had). <webless>
 * (mulefarm-handler): --zerg is ignored, a restart's channel is read.
 * Returns 0, or -1 after logging. Master, at start-up, before binding. */
int zerg_attach(const struct options *o, bool reloading, bool webless);

/* Whether any socket was received. */
bool zerg_attached(void);

/* The received fds mapped to the socket option whose value is <addr>
 * (each mapping is taken once): returns their count (0: bind it), and
 * writes up to <maxfds> fds. The caller owns them. */
int zerg_listener(const char *addr, int *fds, int maxfds);

/* Received sockets no option took (rule 4). */
size_t zerg_unclaimed(void);

/* Fills <l> with the next unclaimed socket (uwsgi protocol). Returns 0,
 * or -1 when there is none left: then closes the received fds nobody took
 * (a re-executed master adopts its predecessor's instead). */
int zerg_take_unclaimed(struct listener *l);

/* The received farm queues' memfd (the caller owns it), or -1. */
int zerg_farmq_fd(void);

/* The received stats socket if it is bound where <stats> (the --stats
 * value, may be NULL) says (the caller owns it), else -1 (it is closed). */
int zerg_stats_fd(const char *stats);

/* Whether this instance's mules must still wait for the server's master
 * to exit. Once it has, moves what it left in farm queues of another
 * shape into <farms>' own (farm.h), logs, and answers false from then on. */
bool zerg_mules_held(void);

/* --- serving: --zerg-server ------------------------------------------ */

/* Binds --zerg-server (mode --chmod-zerg, 600 by default), if given, and
 * keeps <share> (which must outlive the master loop) for every client.
 * Returns 0, or -1 after logging. Master, before forking. */
int zerg_server_open(const struct options *o, const struct zerg_share *share);

/* Sends both messages to the connected <fd> without blocking (a message
 * that does not fit in the socket buffer at once fails). Returns 0, or -1
 * with errno. */
int zerg_send(int fd, const struct zerg_share *share);

/* --- the master loop ------------------------------------------------- */

#define ZERG_POLLFDS 6

enum zerg_event {
	ZERG_NONE,
	ZERG_HANDED_OVER, /* a transparent restart's new instance accepts: stop gracefully */
};

/* Adds the fds zerg mode waits on to <pfd> (room for ZERG_POLLFDS) and
 * lowers *timeout_ms (-1: none) to when it must look again. Returns how
 * many it added. */
size_t zerg_poll_prepare(struct pollfd *pfd, int *timeout_ms);

/* After poll(): serves zerg clients and the restart in progress. */
enum zerg_event zerg_poll_done(const struct pollfd *pfd, size_t n);

/* A child exited: true if it was a transparent restart's new instance
 * (then handled here). */
bool zerg_reaped(pid_t pid, int status);

/* --- the standalone pool: --zergpool PATH:addr1,addr2 ----------------- */

/* Binds every --zergpool's addresses and its unix socket, and serves them
 * to zerg clients until SIGINT, SIGTERM or SIGQUIT. No app, no workers.
 * Returns the exit status. */
int zergpool_run(const struct options *o);

#endif
