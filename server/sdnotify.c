/*
 * sdnotify.c - sd_notify over $NOTIFY_SOCKET (see sdnotify.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/log.h"
#include "mulefarm/sdnotify.h"

#define STATUS_MAX      512
#define STATUS_EVERY_MS 5000

static struct sockaddr_un addr;
static socklen_t addr_len;  /* 0: no $NOTIFY_SOCKET */
static int64_t watchdog_ms; /* half of $WATCHDOG_USEC; 0: no watchdog */
static int64_t last_ping_ms;
static char last_status[STATUS_MAX];

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool sdnotify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	addr_len = 0;
	watchdog_ms = 0;
	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(addr.sun_path))
		return false;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, path, strlen(path));
	if (path[0] == '@')
		addr.sun_path[0] = '\0'; /* abstract namespace */
	addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) +
	                       (path[0] == '/'));
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	if (usec != NULL && (pid == NULL || atol(pid) == (long)getpid())) {
		long long us = atoll(usec);
		watchdog_ms = us > 0 ? (us / 1000) / 2 : 0;
		if (us > 0 && watchdog_ms == 0)
			watchdog_ms = 1;
	}
	last_ping_ms = now_ms();
	return true;
}

int sdnotify_send(const char *msg)
{
	if (addr_len == 0) {
		errno = ENOTCONN;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	ssize_t n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
	int saved = errno;
	close(fd);
	errno = saved;
	return n == -1 ? -1 : 0;
}

static void send_logged(const char *msg)
{
	if (addr_len != 0 && sdnotify_send(msg) == -1)
		log_err(errno, "sd_notify: sendto($NOTIFY_SOCKET) failed");
}

void sdnotify_ready(const char *status)
{
	char msg[STATUS_MAX + 64];
	if (status != NULL && status[0] != '\0') {
		snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d\nSTATUS=%s", (int)getpid(), status);
		snprintf(last_status, sizeof(last_status), "%s", status);
	} else {
		snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d", (int)getpid());
	}
	send_logged(msg);
}

void sdnotify_stopping(void)
{
	send_logged("STOPPING=1");
}

int sdnotify_tick(int wait_ms, const char *status)
{
	if (addr_len == 0)
		return wait_ms;
	if (status != NULL && status[0] != '\0' && strcmp(status, last_status) != 0) {
		char msg[STATUS_MAX + 16];
		snprintf(last_status, sizeof(last_status), "%s", status);
		snprintf(msg, sizeof(msg), "STATUS=%s", last_status);
		send_logged(msg);
	}
	if (status != NULL && status[0] != '\0' && (wait_ms < 0 || wait_ms > STATUS_EVERY_MS))
		wait_ms = STATUS_EVERY_MS; /* follow the figures */
	if (watchdog_ms == 0)
		return wait_ms;
	int64_t now = now_ms();
	if (now - last_ping_ms >= watchdog_ms) {
		send_logged("WATCHDOG=1");
		last_ping_ms = now;
	}
	int64_t left = last_ping_ms + watchdog_ms - now;
	left = left < 0 ? 0 : left;
	return wait_ms < 0 || left < wait_ms ? (int)left : wait_ms;
}
