/*
 * test_listener.c - socket address parsing and opening listeners.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mulefarm/listener.h"

#define TEST_TIMEOUT 10 /* seconds; SIGALRM ends a hung test */

/* A private directory for unix socket paths, removed after each test. */
static char dir[64];
static struct listener lis;

static int setup(void **state)
{
	alarm(TEST_TIMEOUT);
	snprintf(dir, sizeof(dir), "/tmp/mf-listener-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	memset(&lis, 0, sizeof(lis));
	lis.fd = -1;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	if (lis.fd != -1)
		close(lis.fd);
	alarm(0);
	return nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/*
 * listener_split
 */

struct split {
	int rc;
	bool is_unix;
	char host[256];
	char port[8];
};

static struct split split(const char *addr)
{
	struct split s;
	memset(&s, 0x5a, sizeof(s));
	s.rc = listener_split(addr, &s.is_unix, s.host, sizeof(s.host), s.port, sizeof(s.port));
	return s;
}

static void assert_tcp(const char *addr, const char *host, const char *port)
{
	struct split s = split(addr);
	if (s.rc != 0)
		fail_msg("'%s' refused", addr);
	if (s.is_unix)
		fail_msg("'%s' read as a unix path", addr);
	assert_string_equal(s.host, host);
	assert_string_equal(s.port, port);
}

static void assert_unix(const char *addr)
{
	struct split s = split(addr);
	if (s.rc != 0)
		fail_msg("'%s' refused", addr);
	if (!s.is_unix)
		fail_msg("'%s' read as TCP", addr);
	assert_string_equal(s.host, "");
	assert_string_equal(s.port, "");
}

static void assert_invalid(const char *addr)
{
	if (split(addr).rc != -1)
		fail_msg("'%s' accepted", addr);
}

static void test_split_ipv4(void **state)
{
	assert_tcp("127.0.0.1:8080", "127.0.0.1", "8080");
	assert_tcp("localhost:80", "localhost", "80");
	assert_tcp("0.0.0.0:0", "0.0.0.0", "0");
	assert_tcp("h:65535", "h", "65535");
}

static void test_split_ipv6(void **state)
{
	assert_tcp("[::1]:9000", "::1", "9000");
	assert_tcp("[::]:80", "::", "80");
	assert_tcp("[fe80::1%lo]:1", "fe80::1%lo", "1");
}

static void test_split_all_interfaces(void **state)
{
	assert_tcp(":8080", "", "8080");
}

static void test_split_unix(void **state)
{
	assert_unix("/tmp/x.sock");
	assert_unix("name");       /* no ':' */
	assert_unix("./app.sock"); /* relative */
	assert_unix("/run/a:b");   /* a '/' makes it a path despite the ':' */
}

static void test_split_invalid(void **state)
{
	assert_invalid("");
	assert_invalid("host:");
	assert_invalid("host:abc");
	assert_invalid("host:99999");
	assert_invalid("host:65536");
	assert_invalid("host:123456");
	assert_invalid("host:-1");
	assert_invalid("host:+80");
	assert_invalid("host:80 ");
	assert_invalid("[::1]9000");
	assert_invalid("[::1]");
	assert_invalid("[::1]:");
	assert_invalid("[::1:9000");
	assert_invalid(":");
}

static void test_split_host_too_long(void **state)
{
	bool is_unix;
	char host[4], port[8];
	assert_int_equal(
	        listener_split("localhost:80", &is_unix, host, sizeof(host), port, sizeof(port)),
	        -1);
}

/*
 * listener_open
 */

static void assert_accepts_connections(int family, const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	if (connect(fd, sa, len) == -1)
		fail_msg("connect() failed: %s", strerror(errno));
	close(fd);
}

static void assert_unix_accepts(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	assert_true(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	assert_accepts_connections(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun));
}

static void assert_fd_flags(int fd)
{
	/* Non-blocking for the event loop, close-on-exec for re-exec. */
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

static void test_open_unix_with_mode(void **state)
{
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "%s/app.sock", dir);

	assert_int_equal(listener_open(&lis, path, 16, "660", NULL), 0);
	assert_true(lis.fd >= 0);
	assert_true(lis.is_unix);
	assert_string_equal(lis.name, path);
	assert_string_equal(lis.server_name, "localhost");
	assert_string_equal(lis.server_port, "");
	assert_fd_flags(lis.fd);

	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);

	assert_unix_accepts(path);
}

static void test_open_unix_other_mode(void **state)
{
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "%s/s", dir);

	assert_int_equal(listener_open(&lis, path, 16, "600", NULL), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_open_unix_refuses_bad_mode(void **state)
{
	static const char *const bad[] = {"rw-rw----", "999", "668", "6", "06600"};
	char path[128];
	snprintf(path, sizeof(path), "%s/bad.sock", dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(listener_open(&lis, path, 16, bad[i], NULL), -1);
		assert_int_equal(lis.fd, -1);
	}
}

static void test_open_unix_replaces_stale_socket(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/stale.sock", dir);

	assert_int_equal(listener_open(&lis, path, 16, NULL, NULL), 0);
	close(lis.fd); /* the socket file stays behind, as after a crash */
	lis.fd = -1;
	assert_int_equal(access(path, F_OK), 0);

	assert_int_equal(listener_open(&lis, path, 16, "660", NULL), 0);
	assert_unix_accepts(path);
}

static void test_open_unix_keeps_regular_file(void **state)
{
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "%s/data", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("keep me\n", f);
	fclose(f);

	assert_int_equal(listener_open(&lis, path, 16, "660", NULL), -1);
	assert_int_equal(lis.fd, -1);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 8);
}

static void test_open_unix_missing_dir(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/no/such/dir.sock", dir);
	assert_int_equal(listener_open(&lis, path, 16, NULL, NULL), -1);
	assert_int_equal(lis.fd, -1);
}

static void test_open_unix_path_too_long(void **state)
{
	char path[200];
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(listener_open(&lis, path, 16, NULL, NULL), -1);
	assert_int_equal(lis.fd, -1);
}

static void test_open_tcp_ephemeral(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(listener_open(&lis, "127.0.0.1:0", 16, "660", NULL), 0);
	assert_true(lis.fd >= 0);
	assert_false(lis.is_unix);
	assert_string_equal(lis.name, "127.0.0.1:0");
	assert_string_equal(lis.server_name, "127.0.0.1");
	assert_fd_flags(lis.fd);

	assert_int_equal(getsockname(lis.fd, (struct sockaddr *)&sin, &len), 0);
	assert_int_equal(sin.sin_family, AF_INET);
	assert_int_equal(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);
	assert_true(ntohs(sin.sin_port) != 0);
	char port[8];
	snprintf(port, sizeof(port), "%u", ntohs(sin.sin_port));
	assert_string_equal(lis.server_port, port); /* the port bound, not "0" */
	assert_accepts_connections(AF_INET, (struct sockaddr *)&sin, len);
}

static void test_open_tcp_port_in_use(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct listener second = {.fd = -1};
	char addr[32];

	assert_int_equal(listener_open(&lis, "127.0.0.1:0", 16, NULL, NULL), 0);
	assert_int_equal(getsockname(lis.fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));

	assert_int_equal(listener_open(&second, addr, 16, NULL, NULL), -1);
	assert_int_equal(second.fd, -1);
}

static void test_open_invalid_address(void **state)
{
	assert_int_equal(listener_open(&lis, "127.0.0.1:abc", 16, NULL, NULL), -1);
	assert_int_equal(lis.fd, -1);
	assert_int_equal(listener_open(&lis, "[::1]9000", 16, NULL, NULL), -1);
	assert_int_equal(lis.fd, -1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_split_ipv4),
	        T(test_split_ipv6),
	        T(test_split_all_interfaces),
	        T(test_split_unix),
	        T(test_split_invalid),
	        T(test_split_host_too_long),
	        T(test_open_unix_with_mode),
	        T(test_open_unix_other_mode),
	        T(test_open_unix_refuses_bad_mode),
	        T(test_open_unix_replaces_stale_socket),
	        T(test_open_unix_keeps_regular_file),
	        T(test_open_unix_missing_dir),
	        T(test_open_unix_path_too_long),
	        T(test_open_tcp_ephemeral),
	        T(test_open_tcp_port_in_use),
	        T(test_open_invalid_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
