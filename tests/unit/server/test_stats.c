/*
 * test_stats.c - the scoreboard, the stats snapshot (uWSGI's keys, so that
 * uwsgitop reads it), the stats socket and --top.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/wait.h>

/* The static helpers (escaper, JSON parser) are tested directly. */
#include "../../../server/stats.c"

#define TEST_TIMEOUT 20 /* seconds; SIGALRM ends a hung test */
#define WEIRD_URI    "/a\"b\\c\n\t\x01/caf\xc3\xa9/\xf0\x9f\x90\xae?q=\x80\xff<>&'"

static char dir[64];
static struct scoreboard sb;
static struct jval root;

static int setup(void **state)
{
	alarm(TEST_TIMEOUT);
	snprintf(dir, sizeof(dir), "/tmp/mf-stats-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	memset(&sb, 0, sizeof(sb));
	memset(&root, 0, sizeof(root));
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	json_free(&root);
	alarm(0);
	return nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/*
 * Fixtures
 */

/* Two workers of two threads and one mule, with known values. */
static void fill_scoreboard(void)
{
	assert_int_equal(scoreboard_create(&sb, 2, 2, 1), 0);
	sb.master_pid = 1000;
	sb.start_time = (int64_t)time(NULL) - 3600;

	struct sb_worker *w = &sb.workers[0];
	w->pid = 1001;
	w->status = SB_IDLE;
	w->accepting = 1;
	w->requests = 120;
	w->exceptions = 3;
	w->harakiri_count = 1;
	w->respawn_count = 2;
	w->avg_rt_us = 1500;
	w->rss_bytes = 25 << 20;
	w->last_spawn = 1700000000;
	w->tx_bytes = 4096;

	w = &sb.workers[1];
	w->pid = 1002;
	w->status = SB_BUSY;
	w->accepting = 1;
	w->requests = 7;
	w->avg_rt_us = 20000;
	w->last_spawn = 1700000100;
	struct sb_slot *s = scoreboard_slot(&sb, 2, 1);
	snprintf(s->method, sizeof(s->method), "POST");
	snprintf(s->uri, sizeof(s->uri), "%s", WEIRD_URI);
	s->started_ms = clock_ms(CLOCK_MONOTONIC) - 2500;

	struct sb_mule *m = &sb.mules[0];
	m->pid = 1003;
	m->status = SB_IDLE;
	m->messages = 5;
	m->respawn_count = 1;
	m->last_spawn = 1700000200;
	snprintf(m->farms, sizeof(m->farms), "alpha, beta,,");
}

/* Renders the snapshot into <root>. */
static void snapshot(struct farmq *q, const struct listeners *ls)
{
	char *json = stats_json(&sb, q, ls, "2.0.21-mf");
	size_t at = 0;
	assert_non_null(json);
	for (const char *p = json; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			fail_msg("byte 0x%02x at %zu is not printable ASCII", (unsigned char)*p,
			         (size_t)(p - json));
	json_free(&root);
	if (json_parse(json, strlen(json), &root, &at) == -1)
		fail_msg("snapshot does not parse at byte %zu: %.80s", at, json + at);
	free(json);
	assert_int_equal(root.type, JOBJ);
}

static const struct jval *must_get(const struct jval *o, const char *key, enum jtype type)
{
	const struct jval *v = json_get(o, key);
	if (v == NULL)
		fail_msg("key \"%s\" missing", key);
	if (v->type != type)
		fail_msg("key \"%s\" has type %d, want %d", key, v->type, type);
	return v;
}

static const struct jval *worker(int i)
{
	const struct jval *ws = must_get(&root, "workers", JARR);
	assert_true((size_t)i < ws->n);
	return &ws->items[i];
}

/*
 * scoreboard
 */

static void test_scoreboard_create(void **state)
{
	assert_int_equal(scoreboard_create(&sb, 3, 4, 2), 0);
	assert_int_equal(sb.nworkers, 3);
	assert_int_equal(sb.nthreads, 4);
	assert_int_equal(sb.nmules, 2);
	assert_int_equal(sb.master_pid, getpid());
	assert_true(sb.start_time > 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sb.workers[i].id, i + 1);
		assert_int_equal(sb.workers[i].pid, 0);
		assert_int_equal(sb.workers[i].requests, 0);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(sb.mules[i].id, i + 1);
	/* Every slot is its own, inside the slots table. */
	assert_ptr_equal(scoreboard_slot(&sb, 1, 0), &sb.slots[0]);
	assert_ptr_equal(scoreboard_slot(&sb, 2, 1), &sb.slots[5]);
	assert_ptr_equal(scoreboard_slot(&sb, 3, 3), &sb.slots[11]);
	assert_null(scoreboard_slot(&sb, 0, 0));
	assert_null(scoreboard_slot(&sb, 4, 0));
	assert_null(scoreboard_slot(&sb, 1, 4));
	assert_null(scoreboard_slot(&sb, 1, -1));
	/* The tables do not overlap. */
	assert_true((char *)&sb.workers[3] <= (char *)sb.mules);
	assert_true((char *)&sb.mules[2] <= (char *)sb.slots);
}

static void test_scoreboard_shared_with_children(void **state)
{
	assert_int_equal(scoreboard_create(&sb, 2, 2, 1), 0);
	pid_t pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		sb.workers[1].requests = 42;
		sb.mules[0].messages = 7;
		struct sb_slot *s = scoreboard_slot(&sb, 2, 1);
		snprintf(s->uri, sizeof(s->uri), "/from-child");
		s->started_ms = 99;
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(sb.workers[1].requests, 42);
	assert_int_equal(sb.mules[0].messages, 7);
	assert_string_equal(scoreboard_slot(&sb, 2, 1)->uri, "/from-child");
	assert_int_equal(scoreboard_slot(&sb, 2, 1)->started_ms, 99);
}

static void test_scoreboard_edge_sizes(void **state)
{
	errno = 0;
	assert_int_equal(scoreboard_create(&sb, 2, 0, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(scoreboard_create(&sb, -1, 1, 0), -1);
	assert_int_equal(scoreboard_create(&sb, 1, 1, -1), -1);
	/* A master with no children still gets a valid scoreboard. */
	assert_int_equal(scoreboard_create(&sb, 0, 1, 0), 0);
	snapshot(NULL, NULL);
	assert_int_equal(must_get(&root, "workers", JARR)->n, 0);
	assert_int_equal(must_get(&root, "mules", JARR)->n, 0);
}

/*
 * stats_json
 */

/* Every key uwsgitop 0.12 dereferences without a default, with the type
 * it formats it with (%d, %s, arithmetic). */
static void test_json_has_uwsgitop_keys(void **state)
{
	static const char *const worker_nums[] = {"id",
	                                          "pid",
	                                          "accepting",
	                                          "requests",
	                                          "delta_requests",
	                                          "exceptions",
	                                          "harakiri_count",
	                                          "signals",
	                                          "signal_queue",
	                                          "rss",
	                                          "vsz",
	                                          "running_time",
	                                          "last_spawn",
	                                          "respawn_count",
	                                          "tx",
	                                          "avg_rt"};
	static const char *const core_nums[] = {"id",
	                                        "requests",
	                                        "static_requests",
	                                        "routed_requests",
	                                        "offloaded_requests",
	                                        "write_errors",
	                                        "read_errors",
	                                        "in_request"};
	static const char *const top_nums[] = {
	        "listen_queue", "listen_queue_errors", "signal_queue", "load", "pid", "uid", "gid",
	        "uptime"};
	fill_scoreboard();
	snapshot(NULL, NULL);

	assert_string_equal(must_get(&root, "version", JSTR)->str, "2.0.21-mf");
	for (size_t i = 0; i < sizeof(top_nums) / sizeof(top_nums[0]); i++)
		must_get(&root, top_nums[i], JNUM);
	must_get(&root, "cwd", JSTR);
	must_get(&root, "locks", JARR);
	must_get(&root, "sockets", JARR);
	assert_int_equal(must_get(&root, "mulefarm", JBOOL)->num, 1);
	/* uwsgitop shows the emperor's view when "vassals" is there. */
	assert_null(json_get(&root, "vassals"));

	assert_int_equal(must_get(&root, "workers", JARR)->n, 2);
	for (int i = 0; i < 2; i++) {
		const struct jval *w = worker(i);
		for (size_t k = 0; k < sizeof(worker_nums) / sizeof(worker_nums[0]); k++)
			must_get(w, worker_nums[k], JNUM);
		must_get(w, "status", JSTR);
		must_get(w, "apps", JARR);
		const struct jval *cores = must_get(w, "cores", JARR);
		assert_int_equal(cores->n, 2);
		for (size_t c = 0; c < cores->n; c++) {
			for (size_t k = 0; k < sizeof(core_nums) / sizeof(core_nums[0]); k++)
				must_get(&cores->items[c], core_nums[k], JNUM);
			must_get(&cores->items[c], "vars", JARR);
			must_get(&cores->items[c], "req_info", JOBJ);
			assert_int_equal(json_int(&cores->items[c], "id", -1), (long long)c);
		}
	}
}

static void test_json_values(void **state)
{
	fill_scoreboard();
	snapshot(NULL, NULL);

	assert_int_equal(json_int(&root, "pid", 0), 1000);
	assert_int_equal(json_int(&root, "uid", -1), getuid());
	assert_int_equal(json_int(&root, "gid", -1), getgid());
	long long up = json_int(&root, "uptime", 0);
	assert_true(up >= 3600 && up <= 3610);
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_string_equal(json_str(&root, "cwd", ""), cwd);

	const struct jval *w = worker(0);
	assert_int_equal(json_int(w, "id", 0), 1);
	assert_int_equal(json_int(w, "pid", 0), 1001);
	assert_int_equal(json_int(w, "accepting", 0), 1);
	assert_int_equal(json_int(w, "requests", 0), 120);
	assert_int_equal(json_int(w, "exceptions", 0), 3);
	assert_int_equal(json_int(w, "harakiri_count", 0), 1);
	assert_int_equal(json_int(w, "respawn_count", 0), 2);
	assert_int_equal(json_int(w, "avg_rt", 0), 1500); /* microseconds, as uWSGI */
	assert_int_equal(json_int(w, "running_time", 0), 120 * 1500);
	assert_int_equal(json_int(w, "rss", 0), 25 << 20);
	assert_int_equal(json_int(w, "last_spawn", 0), 1700000000);
	assert_int_equal(json_int(w, "tx", 0), 4096);
	assert_string_equal(json_str(w, "status", ""), "idle");

	w = worker(1);
	assert_int_equal(json_int(w, "id", 0), 2);
	assert_int_equal(json_int(w, "pid", 0), 1002);
	assert_string_equal(json_str(w, "status", ""), "busy");
}

static void test_json_status_words(void **state)
{
	fill_scoreboard();
	scoreboard_slot(&sb, 2, 1)->started_ms = 0;

	sb.workers[0].status = SB_STOPPING;
	sb.workers[1].status = SB_IDLE;
	snapshot(NULL, NULL);
	assert_string_equal(json_str(worker(0), "status", ""), "stopping");
	assert_string_equal(json_str(worker(1), "status", ""), "idle");

	/* A thread in a request makes its worker busy. */
	scoreboard_slot(&sb, 2, 0)->started_ms = clock_ms(CLOCK_MONOTONIC);
	sb.workers[0].status = SB_DEAD;
	snapshot(NULL, NULL);
	assert_string_equal(json_str(worker(0), "status", ""), "cheap");
	assert_string_equal(json_str(worker(1), "status", ""), "busy");

	/* No process: "cheap", pid 0 and not accepting, whatever was left. */
	sb.workers[0].status = SB_BUSY;
	sb.workers[0].pid = 0;
	snapshot(NULL, NULL);
	assert_string_equal(json_str(worker(0), "status", ""), "cheap");
	assert_int_equal(json_int(worker(0), "pid", -1), 0);
	assert_int_equal(json_int(worker(0), "accepting", -1), 0);
}

static void test_json_request_in_progress(void **state)
{
	fill_scoreboard();
	snapshot(NULL, NULL);

	const struct jval *cores = must_get(worker(1), "cores", JARR);
	const struct jval *idle = &cores->items[0], *busy = &cores->items[1];
	assert_int_equal(json_int(idle, "in_request", -1), 0);
	assert_int_equal(must_get(idle, "vars", JARR)->n, 0);
	assert_int_equal(must_get(idle, "req_info", JOBJ)->n, 0);

	assert_int_equal(json_int(busy, "in_request", -1), 1);
	const struct jval *vars = must_get(busy, "vars", JARR);
	assert_int_equal(vars->n, 2);
	assert_string_equal(vars->items[0].str, "REQUEST_METHOD=POST");
	/* The URI comes back byte for byte, except the two bytes that are not
	 * UTF-8, which become U+FFFD. */
	assert_string_equal(vars->items[1].str, "REQUEST_URI=/a\"b\\c\n\t\x01/caf\xc3\xa9/"
	                                        "\xf0\x9f\x90\xae?q=\xef\xbf\xbd\xef\xbf\xbd<>&'");
	long long start = json_int(must_get(busy, "req_info", JOBJ), "request_start", 0);
	long long expect = (long long)time(NULL) - 2;
	assert_true(start >= expect - 2 && start <= expect + 1);
}

static void test_json_request_fields_unterminated(void **state)
{
	/* A worker rewriting its slot may leave no NUL in the field: the
	 * snapshot stops at the field's end. */
	fill_scoreboard();
	struct sb_slot *s = scoreboard_slot(&sb, 1, 0);
	memset(s->method, 'M', sizeof(s->method));
	memset(s->uri, 'u', sizeof(s->uri));
	s->started_ms = clock_ms(CLOCK_MONOTONIC);
	snapshot(NULL, NULL);
	const struct jval *vars =
	        must_get(&must_get(worker(0), "cores", JARR)->items[0], "vars", JARR);
	assert_int_equal(strlen(vars->items[0].str), strlen("REQUEST_METHOD=") + SB_METHOD_MAX);
	assert_int_equal(strlen(vars->items[1].str), strlen("REQUEST_URI=") + SB_URI_MAX);
}

static void assert_escapes(const char *in, size_t len, const char *want)
{
	struct jbuf b = {0};
	jb_str(&b, in, len);
	assert_false(b.failed);
	assert_string_equal(b.p, want);
	free(b.p);
}

static void test_json_escape(void **state)
{
	assert_escapes("", 0, "\"\"");
	assert_escapes("plain /path?a=1&b", 17, "\"plain /path?a=1&b\"");
	assert_escapes("q\"b\\s", 5, "\"q\\\"b\\\\s\"");
	assert_escapes("\n\r\t\b\f\x01\x1f\x7f", 8,
	               "\"\\n\\r\\t\\u0008\\u000c\\u0001\\u001f\\u007f\"");
	assert_escapes("a\0b", 3, "\"a\\u0000b\"");
	assert_escapes("caf\xc3\xa9", 5, "\"caf\\u00e9\"");
	assert_escapes("\xe2\x82\xac", 3, "\"\\u20ac\"");
	assert_escapes("\xf0\x9f\x90\xae", 4, "\"\\ud83d\\udc2e\"");
	/* Not UTF-8: a stray continuation byte, a truncated sequence, an
	 * overlong '/', an encoded surrogate, a byte that never starts one. */
	assert_escapes("\x80", 1, "\"\\ufffd\"");
	assert_escapes("\xc3", 1, "\"\\ufffd\"");
	assert_escapes("\xe2\x82x", 3, "\"\\ufffd\\ufffdx\"");
	assert_escapes("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");
	assert_escapes("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
	assert_escapes("\xff", 1, "\"\\ufffd\"");
}

static void test_json_names_escaped(void **state)
{
	/* Listener and farm names are escaped like URIs. */
	struct listener l = {.fd = -1, .is_unix = true, .backlog = 8, .proto = PROTO_HTTP};
	snprintf(l.name, sizeof(l.name), "/tmp/we\"ird\\name\n.sock");
	struct listeners ls = {.l = &l, .n = 1};
	fill_scoreboard();
	snprintf(sb.mules[0].farms, sizeof(sb.mules[0].farms), "a\"b,c\\d");
	snapshot(NULL, &ls);
	const struct jval *s = &must_get(&root, "sockets", JARR)->items[0];
	assert_string_equal(json_str(s, "name", ""), "/tmp/we\"ird\\name\n.sock");
	assert_string_equal(json_str(s, "proto", ""), "http");
	const struct jval *farms =
	        must_get(&must_get(&root, "mules", JARR)->items[0], "farms", JARR);
	assert_int_equal(farms->n, 2);
	assert_string_equal(farms->items[0].str, "a\"b");
	assert_string_equal(farms->items[1].str, "c\\d");
}

static void test_json_mules_and_farms(void **state)
{
	static const char *const names[] = {"alpha", "mule:1", "be\"ta"};
	struct farmq_spec spec = {
	        .nqueues = 3, .names = names, .max_msgs = 8, .max_bytes = 1024, .max_msg = 64};
	char err[256];
	struct farmq *q = farmq_create(&spec, err, sizeof(err));
	if (q == NULL)
		fail_msg("farmq_create: %s", err);
	assert_int_equal(farmq_push(q, 0, "one", 3, 0), FARMQ_OK);
	assert_int_equal(farmq_push(q, 0, "two!", 4, 0), FARMQ_OK);
	assert_int_equal(farmq_push(q, 1, "m", 1, 0), FARMQ_OK);
	fill_scoreboard();
	snapshot(q, NULL);

	const struct jval *mules = must_get(&root, "mules", JARR);
	assert_int_equal(mules->n, 1);
	const struct jval *m = &mules->items[0];
	assert_int_equal(json_int(m, "id", 0), 1);
	assert_int_equal(json_int(m, "pid", 0), 1003);
	assert_string_equal(json_str(m, "status", ""), "idle");
	assert_int_equal(json_int(m, "messages", 0), 5);
	assert_int_equal(json_int(m, "queue", -1), 1); /* its own queue, "mule:1" */
	assert_int_equal(json_int(m, "respawn_count", 0), 1);
	assert_int_equal(json_int(m, "last_spawn", 0), 1700000200);
	const struct jval *mf = must_get(m, "farms", JARR);
	assert_int_equal(mf->n, 2);
	assert_string_equal(mf->items[0].str, "alpha");
	assert_string_equal(mf->items[1].str, "beta");

	/* Farms are the queues that are not a mule's. */
	const struct jval *farms = must_get(&root, "farms", JARR);
	assert_int_equal(farms->n, 2);
	const struct jval *a = &farms->items[0], *b = &farms->items[1];
	assert_string_equal(json_str(a, "name", ""), "alpha");
	assert_int_equal(json_int(a, "depth", -1), 2);
	assert_int_equal(json_int(a, "bytes", -1), 7);
	assert_int_equal(json_int(a, "pushed", -1), 2);
	assert_int_equal(json_int(a, "delivered", -1), 0);
	assert_int_equal(json_int(a, "rejected", -1), 0);
	double age = must_get(a, "oldest_age", JNUM)->num;
	assert_true(age >= 0 && age < 5);
	assert_string_equal(json_str(b, "name", ""), "be\"ta");
	assert_int_equal(json_int(b, "depth", -1), 0);
	farmq_close(q);

	/* Without a farmq region: no farms, mules' queues 0. */
	snapshot(NULL, NULL);
	assert_int_equal(must_get(&root, "farms", JARR)->n, 0);
	assert_int_equal(json_int(&must_get(&root, "mules", JARR)->items[0], "queue", -1), 0);
}

/* Connects to 127.0.0.1:<port> and sends a byte, so that the connection
 * passes TCP_DEFER_ACCEPT into the accept queue. */
static int connect_tcp(unsigned port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		fail_msg("connect() failed: %s", strerror(errno));
	assert_int_equal(write(fd, "x", 1), 1);
	return fd;
}

static unsigned port_of(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	assert_int_equal(sin.sin_family, AF_INET);
	assert_int_equal(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);
	return ntohs(sin.sin_port);
}

static void test_json_listen_queue(void **state)
{
	struct listener l[2];
	char path[128];
	memset(l, 0, sizeof(l));
	snprintf(path, sizeof(path), "%s/app.sock", dir);
	assert_int_equal(listener_open(&l[0], "127.0.0.1:0", 16, NULL, NULL), 0);
	l[0].proto = PROTO_UWSGI;
	assert_int_equal(listener_open(&l[1], path, 32, NULL, NULL), 0);
	struct listeners ls = {.l = l, .n = 2};
	fill_scoreboard();

	snapshot(NULL, &ls);
	const struct jval *socks = must_get(&root, "sockets", JARR);
	assert_int_equal(socks->n, 2);
	assert_string_equal(json_str(&socks->items[0], "name", ""), "127.0.0.1:0");
	assert_string_equal(json_str(&socks->items[0], "proto", ""), "uwsgi");
	assert_int_equal(json_int(&socks->items[0], "queue", -1), 0);
	assert_int_equal(json_int(&socks->items[0], "max_queue", -1), 16);
	assert_int_equal(json_int(&socks->items[0], "shared", -1), 0);
	assert_int_equal(json_int(&socks->items[0], "can_offload", -1), 0);
	assert_string_equal(json_str(&socks->items[1], "name", ""), path);
	assert_int_equal(json_int(&socks->items[1], "queue", -1), 0);
	assert_int_equal(json_int(&socks->items[1], "max_queue", -1), 32);
	assert_int_equal(json_int(&root, "listen_queue", -1), 0);

	/* Two connections nobody accepts: the queue is 2, on the socket and
	 * at the top (uWSGI's "load" is the same number). */
	int c1 = connect_tcp(port_of(l[0].fd)), c2 = connect_tcp(port_of(l[0].fd));
	for (;;) { /* the handshake completes asynchronously; SIGALRM bounds it */
		snapshot(NULL, &ls);
		if (json_int(&root, "listen_queue", -1) == 2)
			break;
		poll(NULL, 0, 10);
	}
	socks = must_get(&root, "sockets", JARR);
	assert_int_equal(json_int(&socks->items[0], "queue", -1), 2);
	assert_int_equal(json_int(&root, "load", -1), 2);
	close(c1);
	close(c2);
	close(l[0].fd);
	close(l[1].fd);
}

/*
 * The JSON parser (--top reads snapshots with it)
 */

static void test_parse_values(void **state)
{
	static const char doc[] =
	        " {\"a\" : [1, -2.5, 3e2, 0, true, false, null, \"x\\u00e9\\ud83d\\udc2e\\n\\/\"],"
	        "\"b\":{}, \"c\":[], \"d\":\"\\udc00\"}\t\n";
	size_t at;
	assert_int_equal(json_parse(doc, strlen(doc), &root, &at), 0);
	const struct jval *a = must_get(&root, "a", JARR);
	assert_int_equal(a->n, 8);
	assert_true(a->items[0].num == 1 && a->items[1].num == -2.5 && a->items[2].num == 300);
	assert_int_equal(a->items[4].type, JBOOL);
	assert_true(a->items[4].num == 1 && a->items[5].num == 0);
	assert_int_equal(a->items[6].type, JNULL);
	assert_string_equal(a->items[7].str, "x\xc3\xa9\xf0\x9f\x90\xae\n/");
	assert_int_equal(must_get(&root, "b", JOBJ)->n, 0);
	assert_int_equal(must_get(&root, "c", JARR)->n, 0);
	assert_string_equal(json_str(&root, "d", ""), "\xef\xbf\xbd"); /* lone surrogate */
	assert_int_equal(json_int(&root, "missing", 77), 77);
	assert_int_equal(json_int(&root, "d", 77), 77); /* not a number */
}

static void test_parse_malformed(void **state)
{
	static const char *const bad[] = {
	        "",           " ",         "{",
	        "}",          "[1,]",      "[1 2]",
	        "{\"a\"}",    "{\"a\":}",  "{a:1}",
	        "{\"a\":1,}", "\"abc",     "\"a\\\"",
	        "\"\\x\"",    "\"\\u12\"", "\"\\u12g4\"",
	        "\"a\nb\"",   "tru",       "nul",
	        "-",          "01.",       "1.e5",
	        "1e",         ".5",        "+1",
	        "0x10",       "-inf",      "NaN",
	        "[1]]",       "{} {}",     "[\"\\",
	        "{\"a\":1",   "[[[[",      "\"\\ud800\\u",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t at = 12345;
		if (json_parse(bad[i], strlen(bad[i]), &root, &at) != -1)
			fail_msg("accepted '%s'", bad[i]);
		assert_true(at <= strlen(bad[i]));
		assert_int_equal(root.type, JNULL);
	}
	/* Every prefix of a real snapshot is refused without a crash. */
	fill_scoreboard();
	char *json = stats_json(&sb, NULL, NULL, "v");
	assert_non_null(json);
	size_t len = strlen(json), at;
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(json_parse(json, cut, &root, &at), -1);
	assert_int_equal(json_parse(json, len, &root, &at), 0);
	free(json);
}

static void test_parse_depth_limit(void **state)
{
	char doc[2 * 200 + 1];
	size_t at;
	for (int depth = 1; depth <= 200; depth *= 2) {
		memset(doc, '[', (size_t)depth);
		memset(doc + depth, ']', (size_t)depth);
		int rc = json_parse(doc, 2 * (size_t)depth, &root, &at);
		assert_int_equal(rc, depth <= JSON_MAX_DEPTH ? 0 : -1);
		json_free(&root);
	}
}

/*
 * stats_listen and stats_serve
 */

static void assert_fd_flags(int fd)
{
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

static void test_listen_addresses(void **state)
{
	char err[256], path[128];

	/* ":port" is loopback, not every interface. */
	int fd = stats_listen(":0", err, sizeof(err));
	if (fd == -1)
		fail_msg("%s", err);
	assert_fd_flags(fd);
	assert_true(port_of(fd) != 0);
	close(fd);

	fd = stats_listen("127.0.0.1:0", err, sizeof(err));
	assert_true(fd >= 0);
	assert_fd_flags(fd);
	close(fd);

	snprintf(path, sizeof(path), "%s/stats.sock", dir);
	fd = stats_listen(path, err, sizeof(err));
	assert_true(fd >= 0);
	assert_fd_flags(fd);
	close(fd); /* leaves the socket file: the next bind replaces it */
	fd = stats_listen(path, err, sizeof(err));
	if (fd == -1)
		fail_msg("stale socket not replaced: %s", err);
	close(fd);

	static const char *const bad[] = {"127.0.0.1:", "127.0.0.1:99999", ":x", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(stats_listen(bad[i], err, sizeof(err)), -1);
		assert_true(strstr(err, "invalid stats address") != NULL);
	}
	snprintf(path, sizeof(path), "%s/no/such/dir.sock", dir);
	assert_int_equal(stats_listen(path, err, sizeof(err)), -1);
	assert_true(strstr(err, "bind() failed") != NULL);
}

static int connect_to(const char *addr)
{
	char err[256];
	int fd = connect_addr(addr, err, sizeof(err));
	if (fd == -1)
		fail_msg("%s", err);
	return fd;
}

/* Reads <fd> to EOF into a malloc()ed string. */
static char *read_all(int fd, size_t *lenp)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1);
	assert_non_null(buf);
	for (;;) {
		if (len == cap) {
			buf = realloc(buf, (cap *= 2) + 1);
			assert_non_null(buf);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/* Listens on <addr> (or 127.0.0.1:0 when NULL), serves <json> to one
 * client (which sends a request first when <http>) and returns what the
 * client read. */
static char *serve_once(const char *addr, bool http, const char *json, size_t *len)
{
	char err[256], where[160];
	int lfd = stats_listen(addr ? addr : "127.0.0.1:0", err, sizeof(err));
	if (lfd == -1)
		fail_msg("%s", err);
	if (addr == NULL)
		snprintf(where, sizeof(where), "127.0.0.1:%u", port_of(lfd));
	else
		snprintf(where, sizeof(where), "%s", addr);
	int c = connect_to(where);
	if (http) {
		const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
		assert_int_equal(write(c, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	}
	stats_serve(lfd, http, json);
	char *got = read_all(c, len);
	close(c);
	stats_serve(lfd, http, json); /* nothing pending: returns at once */
	close(lfd);
	return got;
}

static void check_served(const char *addr)
{
	size_t len;
	char head[160];
	fill_scoreboard();
	char *json = stats_json(&sb, NULL, NULL, "v");
	assert_non_null(json);

	char *got = serve_once(addr, false, json, &len);
	assert_int_equal(len, strlen(json));
	assert_string_equal(got, json);
	free(got);

	got = serve_once(addr, true, json, &len);
	int hl = snprintf(head, sizeof(head),
	                  "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
	                  "Content-Length: %zu\r\n\r\n",
	                  strlen(json));
	assert_int_equal(len, (size_t)hl + strlen(json));
	assert_memory_equal(got, head, (size_t)hl);
	assert_string_equal(got + hl, json);
	free(got);
	free(json);
}

static void test_serve_unix(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/stats.sock", dir);
	check_served(path);
}

static void test_serve_tcp(void **state)
{
	check_served(NULL);
}

struct reader {
	int fd;
	char *got;
	size_t len;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	r->got = read_all(r->fd, &r->len);
	return NULL;
}

static char *big_json(size_t size)
{
	char *json = malloc(size + 1);
	assert_non_null(json);
	json[0] = '[';
	memset(json + 1, '1', size - 2);
	for (size_t i = 2; i < size - 1; i += 2)
		json[i] = ',';
	json[size - 1] = ']';
	json[size] = '\0';
	return json;
}

static void test_serve_large_snapshot(void **state)
{
	/* More than the socket buffers hold: written as the client reads. */
	char err[256], addr[64];
	char *json = big_json(8u << 20);
	int lfd = stats_listen("127.0.0.1:0", err, sizeof(err));
	assert_true(lfd >= 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port_of(lfd));
	struct reader r = {.fd = connect_to(addr)};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, reader_main, &r), 0);
	stats_serve(lfd, false, json);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(r.len, strlen(json));
	assert_memory_equal(r.got, json, r.len);
	free(r.got);
	free(json);
	close(r.fd);
	close(lfd);
}

static void test_serve_drops_stalled_client(void **state)
{
	/* A client that never reads holds the master for about 1 s, no more;
	 * the next client is served. */
	char path[128], err[256];
	char *json = big_json(16u << 20);
	snprintf(path, sizeof(path), "%s/stats.sock", dir);
	int lfd = stats_listen(path, err, sizeof(err));
	assert_true(lfd >= 0);
	int stalled = connect_to(path);
	int64_t t0 = clock_ms(CLOCK_MONOTONIC);
	stats_serve(lfd, false, json);
	int64_t took = clock_ms(CLOCK_MONOTONIC) - t0;
	assert_true(took >= STATS_SEND_MS - 50 && took < STATS_SEND_MS + 1000);
	size_t len;
	char *got = read_all(stalled, &len);
	assert_true(len < strlen(json)); /* cut short */
	free(got);
	close(stalled);

	struct reader r = {.fd = connect_to(path)};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, reader_main, &r), 0);
	stats_serve(lfd, false, json);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(r.len, strlen(json));
	free(r.got);
	close(r.fd);
	close(lfd);
	free(json);
}

/*
 * stats_top
 */

struct top_server {
	int fd;
	bool http;
	const char *json;
};

static void *server_main(void *arg)
{
	struct top_server *s = arg;
	struct pollfd p = {.fd = s->fd, .events = POLLIN};
	if (poll(&p, 1, 10000) == 1)
		stats_serve(s->fd, s->http, s->json);
	return NULL;
}

/* Runs stats_top(<addr>, 1) against a thread serving <json> on <lfd> (no
 * thread when -1); returns its exit status and its output in *out. */
static int run_top(int lfd, const char *addr, bool http, const char *json, char **out)
{
	char path[128];
	struct top_server s = {.fd = lfd, .http = http, .json = json};
	pthread_t t;
	snprintf(path, sizeof(path), "%s/top.out", dir);
	int ofd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(ofd >= 0);
	if (lfd >= 0)
		assert_int_equal(pthread_create(&t, NULL, server_main, &s), 0);

	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(ofd, STDOUT_FILENO), STDOUT_FILENO);
	int rc = stats_top(addr, 1);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	if (lfd >= 0)
		assert_int_equal(pthread_join(t, NULL), 0);

	size_t len;
	assert_int_equal(lseek(ofd, 0, SEEK_SET), 0);
	*out = read_all(ofd, &len);
	close(ofd);
	return rc;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("'%s' not in output:\n%s", needle, hay);
}

static void test_top_renders_snapshot(void **state)
{
	static const char *const names[] = {"alpha", "mule:1"};
	struct farmq_spec spec = {
	        .nqueues = 2, .names = names, .max_msgs = 8, .max_bytes = 1024, .max_msg = 64};
	char err[256], path[128], *out;
	struct farmq *q = farmq_create(&spec, err, sizeof(err));
	assert_non_null(q);
	assert_int_equal(farmq_push(q, 0, "job", 3, 0), FARMQ_OK);
	fill_scoreboard();
	char *json = stats_json(&sb, q, NULL, "9.9");
	assert_non_null(json);
	farmq_close(q);

	snprintf(path, sizeof(path), "%s/stats.sock", dir);
	int lfd = stats_listen(path, err, sizeof(err));
	assert_true(lfd >= 0);
	assert_int_equal(run_top(lfd, path, false, json, &out), 0);
	close(lfd);

	/* Not a terminal: no screen clearing. */
	assert_null(strchr(out, '\x1b'));
	assert_contains(out, "mulefarm 9.9");
	assert_contains(out, "master pid 1000");
	assert_contains(out, "uptime 1h00m0");
	assert_contains(out, "listen queue 0");
	assert_contains(out, "requests 127");
	/* WID PID STATUS REQ EXC AVG(ms) RSS HARAKIRI RESPAWNS */
	assert_contains(out, "   1     1001 idle            120      3       1.5    25.0M        1"
	                     "        2\n");
	assert_contains(out, "   2     1002 busy              7      0      20.0        0        0"
	                     "        0\n");
	/* MULE PID STATUS MSGS QUEUE FARMS */
	assert_contains(out, "   1     1003 idle              5      0 alpha,beta\n");
	assert_contains(out, "alpha                           1");
	free(out);
	free(json);
}

static void test_top_over_http_tcp(void **state)
{
	char err[256], addr[64], *out;
	fill_scoreboard();
	char *json = stats_json(&sb, NULL, NULL, "9.9");
	assert_non_null(json);
	int lfd = stats_listen("127.0.0.1:0", err, sizeof(err));
	assert_true(lfd >= 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port_of(lfd));
	assert_int_equal(run_top(lfd, addr, true, json, &out), 0);
	close(lfd);
	assert_contains(out, "master pid 1000");
	assert_contains(out, "     1001 idle");
	assert_contains(out, "     1003 idle");
	assert_null(strstr(out, "\nFARM ")); /* no farmq region: no farms section */
	free(out);
	free(json);
}

static void test_top_reads_uwsgi(void **state)
{
	/* What uWSGI 2.0.21's stats server sends (trimmed): no uptime, no
	 * mules, no farms. */
	static const char uwsgi[] =
	        "{\n\t\"version\":\"2.0.21-debian\",\n\t\"listen_queue\":3,\n"
	        "\t\"listen_queue_errors\":0,\n\t\"signal_queue\":0,\n\t\"load\":0,\n"
	        "\t\"pid\":21518,\n\t\"uid\":0,\n\t\"gid\":0,\n\t\"cwd\":\"/tmp\",\n"
	        "\t\"locks\":[\n\t\t{\n\t\t\t\"user 0\":0\n\t\t}\n\t],\n"
	        "\t\"sockets\":[\n\t\t{\n\t\t\t\"name\":\"/tmp/uwsapp.sock\",\n"
	        "\t\t\t\"proto\":\"uwsgi\",\n\t\t\t\"queue\":0,\n\t\t\t\"max_queue\":0,\n"
	        "\t\t\t\"shared\":0,\n\t\t\t\"can_offload\":0\n\t\t}\n\t],\n"
	        "\t\"workers\":[\n\t\t{\n\t\t\t\"id\":1,\n\t\t\t\"pid\":21519,\n"
	        "\t\t\t\"accepting\":1,\n\t\t\t\"requests\":12,\n\t\t\t\"exceptions\":0,\n"
	        "\t\t\t\"harakiri_count\":0,\n\t\t\t\"status\":\"idle\",\n\t\t\t\"rss\":0,\n"
	        "\t\t\t\"vsz\":0,\n\t\t\t\"respawn_count\":1,\n\t\t\t\"avg_rt\":2500,\n"
	        "\t\t\t\"apps\":[\n\n\t\t\t],\n\t\t\t\"cores\":[\n\t\t\t\t{\n"
	        "\t\t\t\t\t\"id\":0,\n\t\t\t\t\t\"vars\":[\n\n\t\t\t\t\t],\n"
	        "\t\t\t\t\t\"req_info\":\t\t\t\t\t{\n\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t]\n"
	        "\t\t}\n\t]\n}";
	char path[128], err[256], *out;
	snprintf(path, sizeof(path), "%s/uwsgi.sock", dir);
	int lfd = stats_listen(path, err, sizeof(err));
	assert_true(lfd >= 0);
	assert_int_equal(run_top(lfd, path, false, uwsgi, &out), 0);
	close(lfd);
	assert_contains(out, "uwsgi 2.0.21-debian");
	assert_contains(out, "master pid 21518 - uptime ? - listen queue 3 - requests 12");
	assert_contains(out, "   1    21519 idle             12      0       2.5");
	free(out);
}

static void test_top_malformed_snapshot(void **state)
{
	char path[128], err[256], *out;
	snprintf(path, sizeof(path), "%s/stats.sock", dir);
	int lfd = stats_listen(path, err, sizeof(err));
	assert_true(lfd >= 0);
	assert_int_equal(run_top(lfd, path, false, "{\"workers\":[{\"id\":1,", &out), 1);
	assert_contains(out, "mulefarm top: malformed snapshot from ");
	assert_contains(out, "(20 bytes, error at byte 20)");
	free(out);

	/* Valid JSON, but not an object. */
	assert_int_equal(run_top(lfd, path, false, "[1,2]", &out), 1);
	assert_contains(out, "malformed snapshot");
	free(out);
	close(lfd);
}

static void test_top_unreachable(void **state)
{
	char path[128], *out;
	snprintf(path, sizeof(path), "%s/nobody.sock", dir);
	assert_int_equal(run_top(-1, path, false, NULL, &out), 1);
	assert_contains(out, "mulefarm top: cannot connect to ");
	assert_contains(out, "No such file or directory");
	free(out);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_scoreboard_create),
	        T(test_scoreboard_shared_with_children),
	        T(test_scoreboard_edge_sizes),
	        T(test_json_has_uwsgitop_keys),
	        T(test_json_values),
	        T(test_json_status_words),
	        T(test_json_request_in_progress),
	        T(test_json_request_fields_unterminated),
	        T(test_json_escape),
	        T(test_json_names_escaped),
	        T(test_json_mules_and_farms),
	        T(test_json_listen_queue),
	        T(test_parse_values),
	        T(test_parse_malformed),
	        T(test_parse_depth_limit),
	        T(test_listen_addresses),
	        T(test_serve_unix),
	        T(test_serve_tcp),
	        T(test_serve_large_snapshot),
	        T(test_serve_drops_stalled_client),
	        T(test_top_renders_snapshot),
	        T(test_top_over_http_tcp),
	        T(test_top_reads_uwsgi),
	        T(test_top_malformed_snapshot),
	        T(test_top_unreachable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
