/*
 * restart.c - transparent restart (see restart.h): the running master's
 * side, the new instance's side, and the command that asks for one.
 *
 * The command and the master talk over an abstract unix socket named
 * after the command's pid: the command listens there and sends SIGUSR2;
 * the master, knowing the sender from siginfo, connects and checks with
 * SO_PEERCRED that the listener is that pid. Lines the master sends:
 *   started <pid>   the new instance is starting
 *   out <text>      a line of its start-up output (only when it failed)
 *   ok <pid>        it took over
 *   fail <reason>   it did not; this master keeps serving
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mulefarm/conn.h"
#include "mulefarm/daemon.h"
#include "mulefarm/log.h"
#include "mulefarm/reload.h"
#include "mulefarm/restart.h"

#define RESTART_VAR "MULEFARM_RESTART"
#define CAPTURE_MAX 16384 /* the tail of the new instance's start-up output */
#define ANSWER_MS   15000 /* the command's wait for the master to connect */
/* A new instance that is given up on gets SIGTERM: it stops gracefully,
 * so workers it started meanwhile finish their requests; SIGKILL only
 * if it is still there this much later (an import that hangs). */
#define KILL_AFTER_MS     90000
#define TAKE_OVER_POLL_MS 20 /* how often a new instance looks whether its workers accept */

/* The running master's side. */
static struct {
	pid_t child; /* the new instance, until reaped */
	int chan;    /* our end of its socketpair */
	int err;     /* its stderr, until its app loaded */
	int reply;   /* the command that asked, -1: none */
	int timeout_s;
	int64_t deadline_ms, kill_at_ms;
	bool handed_over, failed;
	char captured[CAPTURE_MAX];
	size_t ncaptured;
} old = {.chan = -1, .err = -1, .reply = -1};

/* The new instance's side. */
static struct {
	int chan, err;
	bool pending;
} self = {.chan = -1, .err = -1};

static void abstract_name(struct sockaddr_un *sun, socklen_t *len, pid_t pid)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	int n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, "mulefarm-restart-%d",
	                 (int)pid);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* --- the running master --------------------------------------------------- */

static void tell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tell(const char *fmt, ...)
{
	if (old.reply < 0)
		return;
	char line[1200];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	n = n < 0 ? 0 : n > (int)sizeof(line) - 2 ? (int)sizeof(line) - 2 : n;
	line[n++] = '\n';
	if (send(old.reply, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
		close(old.reply); /* the command is gone, or not reading */
		old.reply = -1;
	}
}

static void tell_done(void)
{
	if (old.reply >= 0)
		close(old.reply);
	old.reply = -1;
}

/* The command <pid> listens on its abstract socket; -1 if not, or if the
 * listener is someone else. */
static int connect_requester(pid_t pid)
{
	struct sockaddr_un sun;
	socklen_t len;
	abstract_name(&sun, &len, pid);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct ucred cr = {0};
	socklen_t cl = sizeof(cr);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sun, len) == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == -1 || cr.pid != pid) {
		if (fd != -1)
			close(fd);
		return -1; /* a plain `kill -USR2`: the log tells */
	}
	return fd;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void capture(const char *buf, size_t n)
{
	if (n >= CAPTURE_MAX) {
		buf += n - CAPTURE_MAX;
		n = CAPTURE_MAX;
	}
	if (old.ncaptured + n > CAPTURE_MAX) {
		size_t drop = old.ncaptured + n - CAPTURE_MAX;
		memmove(old.captured, old.captured + drop, old.ncaptured - drop);
		old.ncaptured -= drop;
	}
	memcpy(old.captured + old.ncaptured, buf, n);
	old.ncaptured += n;
}

/* Passes the new instance's start-up output on to our stderr, keeping the
 * tail. Until EAGAIN; the end closes the pipe. */
static void pump_output(void)
{
	char buf[4096];
	while (old.err >= 0) {
		ssize_t n = read(old.err, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close_fd(&old.err);
			return;
		}
		capture(buf, (size_t)n);
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(STDERR_FILENO, buf + off, (size_t)(n - off));
			if (w == -1 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += w;
		}
	}
}

/* The restart did not happen: say why, with the new instance's output. */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_info("transparent restart failed: %s; this instance keeps serving", why);
	for (char *p = old.captured, *end = p + old.ncaptured; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		tell("out %.*s", (int)(len > 1000 ? 1000 : len), p);
		p += len + 1;
	}
	tell("fail %s", why);
	tell_done();
	old.failed = true;
}

void restart_refuse(pid_t requester, const char *why)
{
	log_info("transparent restart refused: %s", why);
	int fd = requester > 0 ? connect_requester(requester) : -1;
	if (fd >= 0) {
		dprintf(fd, "fail %s\n", why);
		close(fd);
	}
}

int restart_begin(const struct zerg_share *share, pid_t requester, int timeout_s)
{
	if (old.child > 0) {
		char why[128];
		snprintf(why, sizeof(why), "one is already under way (new instance pid %d)",
		         (int)old.child);
		restart_refuse(requester, why);
		return -1;
	}
	old.reply = requester > 0 ? connect_requester(requester) : -1;
	old.ncaptured = 0;
	old.handed_over = old.failed = false;
	old.kill_at_ms = 0;
	int sp[2] = {-1, -1}, ep[2] = {-1, -1};
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1 ||
	    pipe2(ep, O_CLOEXEC) == -1) {
		log_err(errno, "transparent restart: socketpair() or pipe2() failed");
		goto fail;
	}
	if (zerg_send(sp[0], share) == -1) {
		log_err(errno, "transparent restart: cannot pass the sockets on");
		goto fail;
	}
	const int map[3][2] = {{ep[1], 2}, {sp[1], 3}, {STDERR_FILENO, 4}};
	pid_t pid = reload_spawn(map, 3, RESTART_VAR "=3:4");
	if (pid == -1)
		goto fail;
	close(sp[1]);
	close(ep[1]);
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	old.child = pid;
	old.chan = sp[0];
	old.err = ep[0];
	old.timeout_s = timeout_s;
	old.deadline_ms = mono_ms() + (int64_t)timeout_s * 1000;
	log_info("transparent restart: new instance started (pid %d); it takes over once every "
	         "worker of it accepts",
	         (int)pid);
	tell("started %d", (int)pid);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		close_fd(&sp[i]);
		close_fd(&ep[i]);
	}
	tell("fail cannot start a new instance (see the log)");
	tell_done();
	return -1;
}

bool restart_busy(void)
{
	return old.child > 0 && !old.handed_over;
}

bool restart_handed_over(void)
{
	return old.handed_over;
}

void restart_abort(void)
{
	if (old.child <= 0 || old.handed_over || old.failed)
		return;
	kill(old.child, SIGTERM);
	old.kill_at_ms = mono_ms() + KILL_AFTER_MS;
	fail("this instance is stopping: the new one (pid %d) is stopped too", (int)old.child);
}

size_t restart_poll_prepare(struct pollfd *pfd, int *timeout_ms)
{
	size_t n = 0;
	if (self.pending && (*timeout_ms < 0 || *timeout_ms > TAKE_OVER_POLL_MS))
		*timeout_ms = TAKE_OVER_POLL_MS; /* until every worker accepts */
	if (old.chan >= 0)
		pfd[n++] = (struct pollfd){.fd = old.chan, .events = POLLIN};
	if (old.err >= 0)
		pfd[n++] = (struct pollfd){.fd = old.err, .events = POLLIN};
	if (old.child > 0 && !old.handed_over) {
		int64_t at = old.failed ? old.kill_at_ms : old.deadline_ms;
		int64_t left = at - mono_ms();
		int ms = left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
		if (at != 0 && (*timeout_ms < 0 || ms < *timeout_ms))
			*timeout_ms = ms;
	}
	return n;
}

/* "R" on the channel: the new instance's workers all accept. */
static enum zerg_event read_channel(void)
{
	char buf[64];
	ssize_t n = read(old.chan, buf, sizeof(buf));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return ZERG_NONE;
	if (n <= 0 || memchr(buf, 'R', (size_t)n) == NULL || old.failed) {
		close_fd(&old.chan); /* it died: reaping it tells */
		return ZERG_NONE;
	}
	close_fd(&old.chan);
	pump_output();
	old.handed_over = true;
	log_info("transparent restart: the new instance (pid %d) accepts on every worker: "
	         "stopping gracefully",
	         (int)old.child);
	tell("ok %d", (int)old.child);
	tell_done();
	return ZERG_HANDED_OVER;
}

enum zerg_event restart_poll_done(const struct pollfd *pfd, size_t n)
{
	enum zerg_event ev = ZERG_NONE;
	for (size_t i = 0; i < n; i++) {
		if (pfd[i].revents == 0)
			continue;
		if (pfd[i].fd == old.err)
			pump_output();
		else if (pfd[i].fd == old.chan)
			ev = read_channel();
	}
	int64_t now = mono_ms();
	if (old.child > 0 && !old.handed_over && !old.failed && now >= old.deadline_ms) {
		kill(old.child, SIGTERM);
		old.kill_at_ms = now + KILL_AFTER_MS;
		fail("the new instance (pid %d) did not accept within %d s "
		     "(--transparent-restart-timeout): stopping it",
		     (int)old.child, old.timeout_s);
	} else if (old.child > 0 && old.failed && old.kill_at_ms != 0 && now >= old.kill_at_ms) {
		kill(old.child, SIGKILL);
		old.kill_at_ms = 0;
	}
	return ev;
}

bool restart_reaped(pid_t pid, int status)
{
	if (pid <= 0 || pid != old.child)
		return false;
	pump_output();
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (!old.handed_over && !old.failed)
		fail("the new instance (pid %d) exited with status %d before its workers accepted",
		     (int)pid, code);
	else
		log_info("the new instance (pid %d) exited with status %d", (int)pid, code);
	close_fd(&old.chan);
	close_fd(&old.err);
	tell_done();
	old.child = 0;
	return true;
}

/* --- the new instance -------------------------------------------------------- */

int restart_channel(void)
{
	const char *v = getenv(RESTART_VAR);
	int c = -1, e = -1;
	if (v == NULL)
		return -1;
	if (sscanf(v, "%d:%d", &c, &e) != 2 || fcntl(c, F_GETFD) == -1 || fcntl(e, F_GETFD) == -1) {
		log_info("ignoring %s=%s: not the fds of a transparent restart", RESTART_VAR, v);
		unsetenv(RESTART_VAR);
		return -1;
	}
	unsetenv(RESTART_VAR);
	fcntl(c, F_SETFD, FD_CLOEXEC);
	fcntl(e, F_SETFD, FD_CLOEXEC);
	self.chan = c;
	self.err = e;
	self.pending = true;
	return c;
}

bool restart_pending(void)
{
	return self.pending;
}

void restart_loaded(void)
{
	if (self.err < 0)
		return;
	fflush(stdout);
	fflush(stderr);
	if (dup2(self.err, STDERR_FILENO) == -1)
		log_err(errno, "dup2() failed: the log stays with the previous master");
	close_fd(&self.err);
}

void restart_took_over(void)
{
	if (!self.pending)
		return;
	self.pending = false;
	if (send(self.chan, "R\n", 2, MSG_NOSIGNAL) != 2)
		log_err(errno, "cannot tell the previous master that this one took over");
	close_fd(&self.chan);
	log_info("took over: every worker accepts; the previous master stops");
}

/* --- the command ------------------------------------------------------------- */

/* Reads the master's lines until it closes; returns the exit status. */
static int follow(int fd, pid_t master)
{
	char buf[4096];
	size_t len = 0;
	int rc = 1;
	bool ended = false;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, 1000);
		if (r == 0 && kill(master, 0) == -1 && errno == ESRCH)
			break; /* the master died without a word */
		if (r < 1)
			continue;
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n')) != NULL) {
			*nl = '\0';
			if (strncmp(line, "started ", 8) == 0)
				printf("mulefarm: new instance (pid %s) starting\n", line + 8);
			else if (strncmp(line, "out ", 4) == 0)
				fprintf(stderr, "%s\n", line + 4);
			else if (strncmp(line, "ok ", 3) == 0)
				printf("mulefarm: pid %s took over from pid %d\n", line + 3,
				       (int)master);
			else if (strncmp(line, "fail ", 5) == 0)
				fprintf(stderr, "mulefarm: transparent restart failed: %s\n",
				        line + 5);
			if (strncmp(line, "ok ", 3) == 0 || strncmp(line, "fail ", 5) == 0) {
				rc = line[0] == 'o' ? 0 : 1;
				ended = true;
			}
			line = nl + 1;
		}
		len -= (size_t)(line - buf);
		memmove(buf, line, len);
		if (len == sizeof(buf) - 1)
			len = 0; /* an overlong line: dropped */
		fflush(stdout);
	}
	if (!ended)
		fprintf(stderr, "mulefarm: the master (pid %d) closed without an outcome\n",
		        (int)master);
	return rc;
}

int restart_command(const char *pidfile)
{
	pid_t master = daemon_read_pidfile(pidfile);
	if (master == -1)
		return 1;
	struct sockaddr_un sun;
	socklen_t len;
	abstract_name(&sun, &len, getpid());
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls == -1 || bind(ls, (struct sockaddr *)&sun, len) == -1 || listen(ls, 4) == -1) {
		fprintf(stderr, "mulefarm: cannot listen for the master's answer: %s\n",
		        strerror(errno));
		return 1;
	}
	if (kill(master, SIGUSR2) == -1) {
		fprintf(stderr, "mulefarm: cannot signal pid %d from %s: %s\n", (int)master,
		        pidfile, strerror(errno));
		return 1;
	}
	struct pollfd p = {.fd = ls, .events = POLLIN};
	int64_t deadline = mono_ms() + ANSWER_MS;
	while (poll(&p, 1, 200) < 1) {
		if (mono_ms() >= deadline || (kill(master, 0) == -1 && errno == ESRCH)) {
			fprintf(stderr,
			        "mulefarm: the master (pid %d) did not answer SIGUSR2 (is it a "
			        "mulefarm master?)\n",
			        (int)master);
			return 1;
		}
	}
	int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	close(ls);
	if (fd == -1) {
		fprintf(stderr, "mulefarm: accept4() failed: %s\n", strerror(errno));
		return 1;
	}
	int rc = follow(fd, master);
	close(fd);
	return rc;
}
