"""Graceful and brutal reloads of the master (SIGHUP, master FIFO r/R/w,
--touch-reload): no failed request, new code loaded, broken code keeps the
old workers serving, listeners and farm messages survive the re-exec."""
import http.client
import json
import os
import signal
import threading
import time

import pytest

from conftest import APPS, app_path, free_port_number, pid_alive, wait_for
from mastertools import RETIRED, SlowRequest, count_log, fifo_write, info, wait_reloads, workers_now
import httpclient


# ---------------------------------------------------------------------------
# helpers


def write_app(path, version="v1", broken=False):
    """Writes apps/versioned.py to <path> with VERSION = <version>; <broken>
    makes its import raise. Atomic, so a re-exec never reads half a file."""
    src = (APPS / "versioned.py").read_text()
    line = 'VERSION = "%s"' % version
    if broken:
        line += '\nraise RuntimeError("app-broken-at-import-%s")' % version
    src = src.replace('VERSION = "v1"', line, 1)
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(src)
    os.replace(tmp, str(path))
    return str(path)


def app_server(server, tmp_path, extra=(), version="v1", processes=2, env=None, **kw):
    app = write_app(tmp_path / "app.py", version)
    imports = tmp_path / "imports.log"
    e = {"MULEFARM_TEST_IMPORT_LOG": str(imports)}
    e.update(env or {})
    args = ["--wsgi-file", app, "--processes", str(processes), "--threads", "2"] + list(extra)
    srv = server(args, env=e, **kw)
    srv.app_file = app
    srv.imports = imports
    return srv


def imports(srv):
    try:
        return srv.imports.read_text().split()
    except FileNotFoundError:
        return []


class Load:
    """Clients sending GET / back to back: half keep a connection open
    (keep-alive), half send "Connection: close" (a new connection each
    time, so a refused or reset connect shows). Every failure is kept."""

    def __init__(self, srv, clients=6):
        self.srv = srv
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.errors = []
        self.pids = set()
        self.threads = [
            threading.Thread(target=self._run, args=(i % 2 == 0,), daemon=True) for i in range(clients)
        ]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def _run(self, keepalive):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None or not keepalive:
                    conn = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=10)
                conn.request("GET", "/", headers={} if keepalive else {"Connection": "close"})
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise AssertionError("status %d: %r" % (r.status, body))
                pid = json.loads(body)["pid"]
                if not keepalive or r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                with self.lock:
                    self.ok += 1
                    self.pids.add(pid)
            except Exception as e:
                with self.lock:
                    self.errors.append("%s (%s): %r" % (time.strftime("%H:%M:%S"), "keep-alive" if keepalive else "close", e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def served(self):
        with self.lock:
            return self.ok


# ---------------------------------------------------------------------------
# SIGHUP under load


@pytest.mark.timeout(60)
def test_five_graceful_reloads_under_load_fail_no_request(server, tmp_path):
    srv = app_server(server, tmp_path, processes=2)
    master = srv.pid
    gen = workers_now(srv, 2)
    t0 = time.monotonic()
    with Load(srv, clients=6) as load:
        wait_for(lambda: load.served() > 50, what="the load to run")
        for i in range(1, 6):
            before = load.served()
            srv.send_signal(signal.SIGHUP)
            wait_reloads(srv, i)
            new = workers_now(srv, 2, not_in=gen)
            # the load keeps being served by the new generation
            wait_for(lambda: load.served() > before + 20, what="requests after reload %d" % i)
            wait_for(lambda: set(new) & load.pids, what="the new workers to serve the load")
            assert srv.running(), srv.log_text()
            assert all(pid_alive(p) for p in new)
            gen = new
        total = load.served()
    elapsed = time.monotonic() - t0
    assert load.errors == [], "%d of %d requests failed during 5 reloads:\n%s" % (
        len(load.errors),
        total + len(load.errors),
        "\n".join(load.errors[:20]),
    )
    assert srv.pid == master and srv.running()
    assert count_log(srv, "graceful reload: re-executing the master") == 5
    assert len(imports(srv)) == 6  # the app was imported again each time
    assert set(imports(srv)) == {str(master)}  # ...in the master, same pid
    assert elapsed < 20, "5 reloads under load took %.1f s" % elapsed


@pytest.mark.timeout(40)
def test_sighup_burst_during_reexec_does_not_kill_the_master(server, tmp_path):
    """SIGHUPs arriving while the master re-executes itself (before the new
    image catches them) must not take the server down: each reload is
    either done or coalesced, and no request fails."""
    srv = app_server(server, tmp_path, processes=2)
    gen = workers_now(srv, 2)
    with Load(srv, clients=4) as load:
        wait_for(lambda: load.served() > 20, what="the load to run")
        for _ in range(20):
            srv.send_signal(signal.SIGHUP)
            time.sleep(0.003)  # pacing the burst, not waiting for anything
            assert srv.running(), "the master died during a reload:\n" + srv.log_text()

        def settled():
            log = srv.log_text()
            return log.rfind(RETIRED) > log.rfind("re-executing the master")

        wait_for(settled, timeout=15, what="the last reload to finish")
        new = workers_now(srv, 2, not_in=gen)
        n = load.served()
        wait_for(lambda: load.served() > n + 20, what="requests after the burst")
    assert srv.running() and srv.pid == info(srv)["import_pid"]
    assert info(srv)["pid"] in new
    assert load.errors == [], "\n".join(load.errors[:20])
    assert srv.stop(signal.SIGTERM) == 0


@pytest.mark.smoke
def test_reload_loads_new_code(server, tmp_path):
    srv = app_server(server, tmp_path, processes=2)
    old = workers_now(srv, 2)
    assert info(srv)["version"] == "v1"
    write_app(srv.app_file, "v2")
    assert info(srv)["version"] == "v1"  # nothing changes before the reload
    srv.send_signal(signal.SIGHUP)
    wait_reloads(srv, 1)
    workers_now(srv, 2, not_in=old)
    d = info(srv)
    assert d["version"] == "v2"
    assert d["import_pid"] == srv.pid
    assert d["pid"] not in old


def test_graceful_reload_lets_inflight_request_finish(server, tmp_path):
    srv = app_server(server, tmp_path, processes=1)
    slow = SlowRequest(srv, tmp_path, 1.5)
    srv.send_signal(signal.SIGHUP)
    wait_reloads(srv, 1)
    # the new worker serves while the old one is still busy (the old one
    # may take a last connection before it handles the stop request)
    wait_for(lambda: info(srv)["pid"] != slow.worker, what="the new worker to serve")
    assert pid_alive(slow.worker)
    assert "resp" not in slow.result
    res = slow.join()
    assert "resp" in res, res
    assert res["resp"].status == 200 and res["resp"].complete
    srv.wait_log(r"previous worker 1 \(pid %d\) exited with status 0" % slow.worker)


def test_reload_with_broken_code_keeps_old_workers_then_recovers(server, tmp_path):
    srv = app_server(server, tmp_path, processes=2)
    old = workers_now(srv, 2)
    assert info(srv)["version"] == "v1"
    write_app(srv.app_file, "v2", broken=True)
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"did not load")
    log = srv.log_text()
    assert "Traceback" in log
    assert "app-broken-at-import-v2" in log
    # the previous workers keep serving the previous code
    assert srv.running()
    for _ in range(10):
        d = info(srv)
        assert d["version"] == "v1"
        assert d["pid"] in old
    assert srv.children() == old
    assert RETIRED not in srv.log_text()
    # fixed: the next reload serves the new code
    write_app(srv.app_file, "v3")
    srv.send_signal(signal.SIGHUP)
    wait_reloads(srv, 1)
    new = workers_now(srv, 2, not_in=old)
    d = info(srv)
    assert d["version"] == "v3" and d["pid"] in new
    assert srv.pid == d["import_pid"]
    assert srv.stop(signal.SIGTERM) == 0


def test_broken_reload_then_sigterm_stops_the_old_workers(server, tmp_path):
    srv = app_server(server, tmp_path, processes=2)
    old = workers_now(srv, 2)
    write_app(srv.app_file, "v2", broken=True)
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"did not load")
    slow = SlowRequest(srv, tmp_path, 1)
    assert slow.worker in old
    assert srv.stop(signal.SIGTERM) == 0, srv.log_text()
    res = slow.join()
    assert "resp" in res and res["resp"].status == 200, res
    assert not any(pid_alive(p) for p in old)


def test_broken_reload_exits_nonzero_once_the_old_workers_are_gone(server, tmp_path):
    """With the new code broken, nothing replaces an old worker that dies:
    when the last one is gone the master exits non-zero rather than keep a
    listener nobody serves."""
    srv = app_server(server, tmp_path, processes=2)
    old = workers_now(srv, 2)
    write_app(srv.app_file, "v2", broken=True)
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"did not load")
    os.kill(old[0], signal.SIGKILL)
    srv.wait_log(r"previous worker \d \(pid %d\) killed by signal 9" % old[0])
    assert srv.running()
    assert info(srv)["pid"] == old[1]
    os.kill(old[1], signal.SIGKILL)
    rc = srv.wait_exit(10)
    assert rc != 0
    assert "app-broken-at-import-v2" in srv.log_text()


# ---------------------------------------------------------------------------
# the master FIFO


def test_fifo_r_graceful_reload(server, tmp_path):
    fifo = str(tmp_path / "master.fifo")
    srv = app_server(server, tmp_path, ["--master-fifo", fifo])
    old = workers_now(srv, 2)
    write_app(srv.app_file, "v2")
    slow = SlowRequest(srv, tmp_path, 1)
    fifo_write(fifo, "r")
    wait_reloads(srv, 1)
    workers_now(srv, 2, not_in=old)
    assert info(srv)["version"] == "v2"
    res = slow.join()
    assert "resp" in res and res["resp"].status == 200, res
    assert len(imports(srv)) == 2
    # the new master reads the FIFO again
    fifo_write(fifo, "q")
    assert srv.wait_exit(10) == 0


def test_fifo_R_brutal_reload_stops_old_children_at_once(server, tmp_path):
    fifo = str(tmp_path / "master.fifo")
    srv = app_server(server, tmp_path, ["--master-fifo", fifo], processes=1)
    write_app(srv.app_file, "v2")
    slow = SlowRequest(srv, tmp_path, 20)
    t0 = time.monotonic()
    fifo_write(fifo, "R")
    srv.wait_log(r"brutal reload")
    wait_for(lambda: not pid_alive(slow.worker), timeout=5, what="the old worker stopped at once")
    res = slow.join(10)
    assert time.monotonic() - t0 < 5
    assert "resp" not in res or not res["resp"].complete, "a brutal reload must not wait for the request"
    d = wait_for(lambda: info(srv), what="the new worker")
    assert d["version"] == "v2" and d["pid"] != slow.worker
    assert len(imports(srv)) == 2
    assert srv.running()


def test_fifo_w_reforks_workers_without_reimport(server, tmp_path):
    fifo = str(tmp_path / "master.fifo")
    srv = app_server(server, tmp_path, ["--master-fifo", fifo])
    old = workers_now(srv, 2)
    d0 = info(srv)
    assert imports(srv) == [str(srv.pid)]
    write_app(srv.app_file, "v2")  # must NOT be picked up by 'w'
    fifo_write(fifo, "w")
    srv.wait_log(r"reloading the workers")
    wait_reloads(srv, 1)
    new = workers_now(srv, 2, not_in=old)
    d = info(srv)
    assert d["pid"] in new
    assert d["version"] == "v1"
    assert d["import_pid"] == d0["import_pid"] == srv.pid
    assert imports(srv) == [str(srv.pid)], "'w' must not import the app again"
    assert "re-executing" not in srv.log_text()
    # the stats show the new workers, not what the old ones wrote as they left
    fifo_write(fifo, "s")
    stats = json.loads(srv.wait_log(r"stats: (\{.*\})\n").group(1))
    assert sorted(w["pid"] for w in stats["workers"]) == new
    # (busy is possible: the worker may still be finishing our last request)
    assert [(w["status"] != "stopping", w["accepting"]) for w in stats["workers"]] == [(True, 1)] * 2, stats["workers"]
    # and a second time
    fifo_write(fifo, "w")
    wait_reloads(srv, 2)
    workers_now(srv, 2, not_in=old + new)
    assert len(imports(srv)) == 1


# ---------------------------------------------------------------------------
# --touch-reload


def test_touch_reload(server, tmp_path):
    touch = tmp_path / "reload.touch"
    touch.write_text("")
    srv = app_server(server, tmp_path, ["--touch-reload", str(touch)])
    old = workers_now(srv, 2)
    write_app(srv.app_file, "v2")
    st = os.stat(touch)
    os.utime(touch, (st.st_atime + 10, st.st_mtime + 10))
    srv.wait_log(r"reload\.touch was touched: reloading")
    wait_reloads(srv, 1)
    workers_now(srv, 2, not_in=old)
    assert info(srv)["version"] == "v2"
    assert len(imports(srv)) == 2
    # touched again: reloads again
    os.utime(touch, (st.st_atime + 20, st.st_mtime + 20))
    wait_reloads(srv, 2)
    assert len(imports(srv)) == 3


# ---------------------------------------------------------------------------
# listeners survive


def _connect_loop(addr, stop, errors, served):
    while not stop.is_set():
        try:
            with httpclient.RawConn(addr, timeout=10) as c:
                c.send(httpclient.simple_request("GET", "/", close=True))
                r = c.read_response()
                if r.status != 200 or not r.complete:
                    errors.append(repr(r))
                else:
                    served.append(1)
        except Exception as e:
            errors.append(repr(e))


@pytest.mark.timeout(40)
def test_unix_and_tcp_listeners_survive_reloads(server, tmp_path):
    sock = str(tmp_path / "app.sock")
    port = free_port_number()
    srv = app_server(
        server,
        tmp_path,
        ["--http-socket", "127.0.0.1:%d" % port, "--http-socket", sock],
        addr=("127.0.0.1", port),
    )
    ino = os.stat(sock).st_ino
    old = workers_now(srv, 2)
    stop = threading.Event()
    errors, served = [], []
    threads = [
        threading.Thread(target=_connect_loop, args=(a, stop, errors, served), daemon=True)
        for a in (sock, sock, ("127.0.0.1", port), ("127.0.0.1", port))
    ]
    for t in threads:
        t.start()
    try:
        for i in range(1, 3):
            n = len(served)
            srv.send_signal(signal.SIGHUP)
            wait_reloads(srv, i)
            old = workers_now(srv, 2, not_in=old)
            wait_for(lambda: len(served) > n + 20, what="requests after the reload")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == [], "\n".join(errors[:20])
    # the same socket, adopted (not bound again)
    assert os.stat(sock).st_ino == ino
    assert "closed a socket" not in srv.log_text()
    with httpclient.RawConn(sock) as c:
        c.send(httpclient.simple_request("GET", "/"))
        assert json.loads(c.read_response().body)["pid"] in old


# ---------------------------------------------------------------------------
# mules and farms across a reload


def mule_lines(path, kind):
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [l.split() for l in lines if l.startswith(kind + " ")]


@pytest.mark.timeout(40)
def test_farm_messages_sent_during_reloads_are_delivered_once(server, tmp_path):
    """A consuming mule, messages sent before, during and after two
    reloads: each arrives exactly once."""
    mlog = tmp_path / "mule.log"
    srv = app_server(
        server,
        tmp_path,
        ["--mule", app_path("farm_consumer.py"), "--farm", "jobs:1"],
        processes=1,
        env={"MULEFARM_TEST_MULE_LOG": str(mlog)},
    )
    wait_for(lambda: mule_lines(mlog, "start"), what="the mule to start")
    sent = []
    stop = threading.Event()
    errors = []

    def sender():
        i = 0
        while not stop.is_set():
            m = "x%d" % i
            try:
                status, _, body = srv.get("/farm?msg=" + m)
                if status == 200:
                    sent.append(m)
                else:
                    errors.append((status, body))
            except Exception as e:
                errors.append(repr(e))
            i += 1

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        for i in range(1, 3):
            n = len(sent)
            wait_for(lambda: len(sent) > n + 10, what="messages being sent")
            srv.send_signal(signal.SIGHUP)
            wait_reloads(srv, i)
            wait_for(lambda: len(mule_lines(mlog, "start")) == i + 1, what="mule %d to start" % (i + 1))
        n = len(sent)
        wait_for(lambda: len(sent) > n + 10, what="messages after the reloads")
    finally:
        stop.set()
        t.join(10)
    assert errors == []
    got = wait_for(lambda: len(mule_lines(mlog, "msg")) >= len(sent) and mule_lines(mlog, "msg"),
                   what="all %d messages to arrive" % len(sent))
    names = [g[1] for g in got]
    assert sorted(names) == sorted(sent), "lost: %s, extra: %s" % (
        sorted(set(sent) - set(names))[:10],
        sorted(set(names) - set(sent))[:10],
    )
    assert len(names) == len(set(names)), "a message was delivered twice"
    # the mules of three generations took part
    assert len({g[2] for g in got}) >= 2
