/*
 * test_sdnotify.c - the systemd notification protocol: datagrams to the
 * socket named by $NOTIFY_SOCKET (a path or an abstract "@name"), the
 * watchdog at half $WATCHDOG_USEC, STATUS only when it changes, and
 * nothing at all without $NOTIFY_SOCKET.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mulefarm/sdnotify.h"

/* A bound datagram socket at <path> ("@x": abstract), with a 1 s timeout. */
static int bind_at(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path));
	if (path[0] == '@')
		a.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
	struct timeval tv = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static char *recv_msg(int fd, char *buf, size_t size)
{
	ssize_t n = recv(fd, buf, size - 1, 0);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static void test_without_socket_nothing(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	assert_false(sdnotify_init());
	assert_int_equal(sdnotify_send("READY=1"), -1);
	assert_int_equal(errno, ENOTCONN);
	assert_int_equal(sdnotify_tick(1234, "x"), 1234); /* the wait is untouched */
	sdnotify_ready("s");
	sdnotify_stopping();
}

static void test_path_socket(void **state)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/tmp/mf-sdnotify-%d.sock", (int)getpid());
	unlink(path);
	int fd = bind_at(path);
	setenv("NOTIFY_SOCKET", path, 1);
	unsetenv("WATCHDOG_USEC");
	assert_true(sdnotify_init());
	sdnotify_ready("starting");
	char want[128];
	snprintf(want, sizeof(want), "READY=1\nMAINPID=%d\nSTATUS=starting", (int)getpid());
	assert_string_equal(recv_msg(fd, buf, sizeof(buf)), want);
	/* the same status is not sent again; a new one is, and the wait is
	 * capped while there is a status to follow */
	assert_int_equal(sdnotify_tick(-1, "starting"), 5000);
	assert_int_equal(sdnotify_tick(100, "3 queued"), 100);
	assert_string_equal(recv_msg(fd, buf, sizeof(buf)), "STATUS=3 queued");
	sdnotify_stopping();
	assert_string_equal(recv_msg(fd, buf, sizeof(buf)), "STOPPING=1");
	close(fd);
	unlink(path);
}

static void test_abstract_socket_and_watchdog(void **state)
{
	char name[64], buf[512];
	snprintf(name, sizeof(name), "@mf-sdnotify-%d", (int)getpid());
	int fd = bind_at(name);
	setenv("NOTIFY_SOCKET", name, 1);
	setenv("WATCHDOG_USEC", "200000", 1); /* ping every 100 ms */
	unsetenv("WATCHDOG_PID");
	assert_true(sdnotify_init());
	int wait = sdnotify_tick(-1, NULL);
	assert_true(wait > 0 && wait <= 100);
	struct timespec ts = {0, 120 * 1000000L};
	nanosleep(&ts, NULL);
	wait = sdnotify_tick(60000, NULL);
	assert_string_equal(recv_msg(fd, buf, sizeof(buf)), "WATCHDOG=1");
	assert_true(wait > 90 && wait <= 100);
	/* a watchdog meant for another pid is not ours */
	setenv("WATCHDOG_PID", "1", 1);
	assert_true(sdnotify_init());
	assert_int_equal(sdnotify_tick(777, NULL), 777);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_without_socket_nothing),
	        cmocka_unit_test(test_path_socket),
	        cmocka_unit_test(test_abstract_socket_and_watchdog),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
