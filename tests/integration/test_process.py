"""Master/worker process behaviour: preloading, respawn, signals, exit codes."""
import os
import signal
import threading
import time

import pytest

from conftest import app_path, group_members, pid_alive, wait_for
import httpclient

BASIC = ["--wsgi-file", app_path("basic.py")]


def test_app_imported_in_master_before_fork(server):
    srv = server(BASIC + ["--master"])
    info = srv.get_json("/pid")
    assert info["import_pid"] == srv.pid, "app must be imported in the master"
    assert info["ppid"] == srv.pid, "worker must be a child of the master"
    assert info["pid"] != srv.pid, "requests must be served by a forked worker"
    assert info["pid"] in srv.children()


def test_process_count(server):
    srv = server(BASIC + ["--processes", "3", "--threads", "1"])
    kids = wait_for(lambda: len(srv.children()) == 3 and srv.children(), what="3 workers")
    assert len(kids) == 3


def test_workers_alias(server):
    srv = server(BASIC + ["--workers", "2", "--threads", "1"])
    wait_for(lambda: len(srv.children()) == 2, what="2 workers")


def _kill_and_wait_new(srv, victim):
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not pid_alive(victim), what="victim to die")


def test_worker_respawned_after_sigkill_same_id(server):
    srv = server(["--wsgi-file", app_path("uwsgiapp.py"), "--processes", "1"])
    before = srv.get_json("/")
    old_pid, old_id = before["pid"], before["worker_id"]
    assert old_id == 1
    _kill_and_wait_new(srv, old_pid)

    def respawned():
        kids = srv.children()
        return kids if kids and old_pid not in kids else None

    wait_for(respawned, what="a respawned worker")
    after = srv.get_json("/")
    assert after["pid"] != old_pid
    assert after["worker_id"] == old_id
    assert after["ppid"] == srv.pid
    assert srv.running()


def test_respawn_keeps_serving_with_two_workers(server):
    srv = server(["--wsgi-file", app_path("uwsgiapp.py"), "--processes", "2", "--threads", "1"])
    kids = wait_for(lambda: len(srv.children()) == 2 and srv.children(), what="2 workers")
    victim = kids[0]
    _kill_and_wait_new(srv, victim)
    # still serving right away (the other worker, or the new one)
    for _ in range(5):
        status, _, _ = srv.get("/")
        assert status == 200
    new = wait_for(
        lambda: len(srv.children()) == 2 and victim not in srv.children() and srv.children(),
        what="worker count restored",
    )
    assert victim not in new
    # the set of worker ids is still {1, 2}: collect ids until both seen
    seen = {}
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        d = srv.get_json("/")
        seen[d["worker_id"]] = d["pid"]
    if len(seen) == 2:
        assert set(seen) == {1, 2}
        assert set(seen.values()) == set(new)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["SIGINT", "SIGQUIT"])
def test_sigint_sigquit_stop_everything(server, sig):
    srv = server(BASIC + ["--processes", "2"])
    kids = wait_for(lambda: len(srv.children()) == 2 and srv.children(), what="2 workers")
    rc = srv.stop(sig, timeout=10)
    if sig == signal.SIGINT:
        assert rc == 0, srv.log_text()
    wait_for(lambda: all(not pid_alive(k) for k in kids), timeout=5, what="workers gone")
    assert group_members(srv.pid) == []


def test_sigterm_clean_exit_zero(server):
    srv = server(BASIC + ["--processes", "2"])
    kids = wait_for(lambda: len(srv.children()) == 2 and srv.children(), what="2 workers")
    rc = srv.stop(signal.SIGTERM, timeout=15)
    assert rc == 0, srv.log_text()
    wait_for(lambda: all(not pid_alive(k) for k in kids), timeout=5, what="workers gone")
    assert group_members(srv.pid) == []


def test_sigterm_graceful_inflight_request_completes(server, tmp_path):
    srv = server(BASIC + ["--die-on-term"])
    marker = str(tmp_path / "started")
    result = {}

    def client():
        try:
            with srv.raw(timeout=10) as c:
                c.send("GET /sleep?s=1&marker=%s HTTP/1.1\r\nHost: x\r\n\r\n" % marker)
                result["resp"] = c.read_response()
        except Exception as e:  # reported below
            result["error"] = e

    t = threading.Thread(target=client, daemon=True)
    t.start()
    wait_for(lambda: os.path.exists(marker), what="the slow request to start")
    kids = srv.children()
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    t.join(10)
    assert not t.is_alive()
    assert "error" not in result, result.get("error")
    resp = result["resp"]
    assert resp.status == 200
    assert resp.body == b"slept\n"
    assert resp.complete
    rc = srv.wait_exit(10)
    assert rc == 0, srv.log_text()
    assert time.monotonic() - t0 < 9
    wait_for(lambda: all(not pid_alive(k) for k in kids), timeout=5, what="workers gone")
    assert group_members(srv.pid) == []


def test_sigterm_with_idle_keepalive_connections_exits_promptly(server):
    srv = server(BASIC + ["--processes", "2"])
    conns = []
    try:
        for i in range(4):
            c = srv.raw()
            c.send(httpclient.simple_request("GET", "/uri/idle%d" % i))
            assert c.read_response().status == 200
            conns.append(c)
        t0 = time.monotonic()
        rc = srv.stop(signal.SIGTERM, timeout=10)
        elapsed = time.monotonic() - t0
        assert rc == 0, srv.log_text()
        assert elapsed < 5, "graceful stop waited %.1f s for idle keep-alive connections" % elapsed
        # the idle connections were closed, not left hanging
        for c in conns:
            assert c.is_closed(2)
    finally:
        for c in conns:
            c.close()
    assert group_members(srv.pid) == []


def test_sigterm_with_stalled_client_exits_promptly(server):
    srv = server(BASIC + ["--socket-timeout", "2"])
    with srv.raw() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ")
        time.sleep(0.1)
        t0 = time.monotonic()
        rc = srv.stop(signal.SIGTERM, timeout=10)
        assert rc == 0, srv.log_text()
        assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["SIGINT", "SIGQUIT"])
def test_sigint_does_not_wait_for_inflight_request(server, tmp_path, sig):
    srv = server(BASIC)
    marker = str(tmp_path / "started")
    c = srv.raw(timeout=10)
    try:
        c.send("GET /sleep?s=8&marker=%s HTTP/1.1\r\nHost: x\r\n\r\n" % marker)
        wait_for(lambda: os.path.exists(marker), what="the slow request to start")
        kids = srv.children()
        t0 = time.monotonic()
        srv.stop(sig, timeout=10)
        assert time.monotonic() - t0 < 4, "SIGINT/SIGQUIT must stop now, not wait for requests"
        wait_for(lambda: all(not pid_alive(k) for k in kids), timeout=5, what="workers gone")
        assert c.is_closed(3)
    finally:
        c.close()


def test_worker_killed_with_open_connection(server):
    srv = server(["--wsgi-file", app_path("uwsgiapp.py"), "--processes", "1"])
    w = srv.get_json("/")["pid"]
    c = srv.raw(timeout=10)
    try:
        # a keep-alive connection is open on the worker when it is killed
        c.send(httpclient.simple_request("GET", "/"))
        c.read_response()
        os.kill(w, signal.SIGKILL)
        assert c.is_closed(5)
    finally:
        c.close()
    wait_for(lambda: srv.children() and w not in srv.children(), what="respawn")
    d = srv.get_json("/")
    assert d["pid"] != w and d["worker_id"] == 1


def _expect_load_failure(srv, timeout=10):
    rc = srv.wait_exit(timeout)
    assert rc != 0, "server must exit non-zero when the app fails to load:\n" + srv.log_text()
    return srv.log_text()


def test_import_error_exits_nonzero_with_traceback(server):
    srv = server(["--wsgi-file", app_path("broken_import.py")], wait=False)
    log = _expect_load_failure(srv)
    assert "Traceback" in log
    assert "this_module_does_not_exist_mulefarm" in log
    assert "Error" in log  # ModuleNotFoundError / ImportError


def test_missing_wsgi_file_exits_nonzero(server, tmp_path):
    missing = str(tmp_path / "no_such_app_file.py")
    srv = server(["--wsgi-file", missing], wait=False)
    log = _expect_load_failure(srv)
    assert "no_such_app_file.py" in log


def test_missing_callable_exits_nonzero(server):
    srv = server(["--wsgi-file", app_path("nocallable.py")], wait=False)
    log = _expect_load_failure(srv)
    assert "application" in log


def test_missing_module_exits_nonzero_with_traceback(server):
    srv = server(["--module", "no_such_module_mulefarm_xyz", "--pythonpath", app_path("")], wait=False)
    log = _expect_load_failure(srv)
    assert "Traceback" in log
    assert "no_such_module_mulefarm_xyz" in log


def test_threads_serve_concurrently(server):
    srv = server(BASIC + ["--processes", "1", "--threads", "2"])
    _concurrent_sleeps(srv, 2)


def test_processes_serve_concurrently(server, tmp_path):
    """--processes 2 --threads 1: while one worker is busy with a slow
    request, new connections must be served by the idle worker (a busy
    worker must not accept connections it cannot serve). Several fast
    requests are sent so that a random accept distribution fails reliably."""
    srv = server(BASIC + ["--processes", "2", "--threads", "1"])
    wait_for(lambda: len(srv.children()) == 2, what="2 workers")
    marker = str(tmp_path / "slow-started")
    result = {}

    def slow():
        result["slow"] = srv.get("/sleep?s=2&marker=" + marker)[0]

    t = threading.Thread(target=slow, daemon=True)
    t.start()
    wait_for(lambda: os.path.exists(marker), what="the slow request to start")
    for i in range(6):
        t0 = time.monotonic()
        status, _, body = srv.get("/uri/fast%d" % i)
        elapsed = time.monotonic() - t0
        assert status == 200 and body == b"/uri/fast%d" % i
        assert elapsed < 0.7, "fast request %d waited %.2f s behind the busy worker" % (i, elapsed)
    t.join(10)
    assert result.get("slow") == 200


def test_processes_concurrent_on_preopened_connections(server):
    """--processes 2 --threads 1, two clients connect first and then both
    send a slow request: the two workers must serve them in parallel (a
    worker with no free thread should not have taken the second
    connection). Three rounds, so a random split cannot pass by luck."""
    srv = server(BASIC + ["--processes", "2", "--threads", "1"])
    wait_for(lambda: len(srv.children()) == 2, what="2 workers")
    rounds = []
    for _ in range(3):
        conns = [srv.raw(timeout=10) for _ in range(2)]
        try:
            time.sleep(0.05)  # let the server accept both
            t0 = time.monotonic()
            for c in conns:
                c.send(httpclient.simple_request("GET", "/sleep?s=0.5"))
            for c in conns:
                assert c.read_response().status == 200
            rounds.append(time.monotonic() - t0)
        finally:
            for c in conns:
                c.close()
    assert all(r < 0.9 for r in rounds), "rounds took %s s: requests were serialized in one worker" % [
        "%.2f" % r for r in rounds
    ]


def _concurrent_sleeps(srv, n):
    results = []

    def one():
        results.append(srv.get("/sleep?s=1")[0])

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - t0
    assert results == [200] * n
    assert elapsed < 1.8, "%d 1-second requests took %.2f s: not concurrent" % (n, elapsed)


def test_compat_flags_accepted(server):
    srv = server(BASIC + ["--master", "--enable-threads", "--die-on-term", "--py-call-osafterfork"])
    status, _, body = srv.get("/")
    assert status == 200 and body == b"hello\n"
    assert srv.stop(signal.SIGTERM) == 0


def test_equals_form_options(server):
    port = __import__("conftest").free_port_number()
    srv = server(
        [
            "--http-socket=127.0.0.1:%d" % port,
            "--wsgi-file=" + app_path("basic.py"),
            "--processes=2",
            "--threads=2",
        ],
        addr=("127.0.0.1", port),
    )
    wait_for(lambda: len(srv.children()) == 2, what="2 workers")
    assert srv.get("/")[0] == 200


def test_reuse_port_gives_each_worker_an_accept_queue(server):
    import shutil
    import subprocess

    srv = server(["--wsgi-file", app_path("uwsgiapp.py"), "--processes", "2", "--threads", "1",
                  "--reuse-port"])
    wait_for(lambda: len(srv.children()) == 2, what="2 workers")
    if shutil.which("ss"):
        out = subprocess.run(["ss", "-Hltn", "sport = :%d" % srv.port], capture_output=True,
                             text=True).stdout
        assert len([l for l in out.splitlines() if l.strip()]) == 2, out
    seen = set()
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(srv.get_json("/")["worker_id"])  # a new connection each time
    assert seen == {1, 2}
    victim = srv.children()[0]
    _kill_and_wait_new(srv, victim)
    wait_for(lambda: len(srv.children()) == 2 and victim not in srv.children(),
             what="worker respawned")
    for _ in range(20):  # both queues are served again
        assert srv.get("/", timeout=5)[0] == 200


def _cmdline(pid):
    with open("/proc/%d/cmdline" % pid) as f:
        return f.read()


def _policies(pid):
    """The scheduling policy of every thread of <pid>."""
    tids = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
    return {os.sched_getscheduler(t) for t in tids}


def test_workers_run_sched_batch_by_default(server):
    # --sched-batch is on unless turned off: every worker thread (the loop
    # and the Python threads) runs SCHED_BATCH; the master and the mules
    # keep the normal policy.
    srv = server(BASIC + ["--processes", "2", "--threads", "3", "--mules", "1"])
    kids = wait_for(lambda: len(srv.children()) == 3 and srv.children(), what="2 workers and a mule")
    served_by = srv.get_json("/pid")["pid"]
    workers = [k for k in kids if "worker" in _cmdline(k)]
    assert served_by in workers and len(workers) == 2
    for pid in workers:
        assert _policies(pid) == {os.SCHED_BATCH}, pid
    assert _policies(srv.pid) == {os.SCHED_OTHER}
    mules = [k for k in kids if k not in workers]
    assert len(mules) == 1 and _policies(mules[0]) == {os.SCHED_OTHER}


def test_sched_batch_off_keeps_the_normal_policy(server):
    srv = server(BASIC + ["--processes", "1", "--threads", "2", "--sched-batch=false"])
    pid = srv.get_json("/pid")["pid"]
    assert _policies(pid) == {os.SCHED_OTHER}


def test_sched_batch_bad_value_named(server, tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text("[uwsgi]\nprocesses = 1\nsched-batch = maybe\n")
    srv = server(BASIC + ["--ini", str(ini)], wait=False)
    assert srv.wait_exit(10) != 0
    assert "%s:3" % ini in srv.log_text() and "sched-batch" in srv.log_text()
