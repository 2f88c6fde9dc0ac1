"""Zerg mode and transparent restarts (issue 9).

Zerg mode: --zerg-server / --zergpool hand listening sockets over a unix
socket (uWSGI's wire format, checked against Debian's uWSGI in both
directions), --zerg attaches to them, --zerg-fallback binds when the server
is absent; the zerg dance with master FIFO slots and accepting hooks.

Transparent restart: `mulefarm --transparent-restart PIDFILE` (or FIFO
'T') starts a new instance that takes over through zerg mode once its
workers accept; the old one stops gracefully. Under load, with an app
whose import takes 3 s, no request fails; with mules, every farm message
is handled exactly once and no mule id is ever live in two processes.

The app is apps/zerg_app.py, the mule apps/zerg_mule.py. uWSGI runs as
Debian packages it (/usr/bin/uwsgi --plugin python3); those tests are
skipped without it.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BIN, _proc_stat, app_path, describe_children, free_port_number, group_members, pid_alive, wait_for
from mastertools import fifo_write
from nginx import packet, request_vars, uwsgi_exchange
from pgcluster import pg_cluster  # noqa: F401 (fixture)

ZAPP = app_path("zerg_app.py")
ZMULE = app_path("zerg_mule.py")
UWSGI = "/usr/bin/uwsgi"
BYE = "all children gone: bye"


def have_uwsgi():
    if not os.access(UWSGI, os.X_OK):
        return False
    out = subprocess.run([UWSGI, "--plugin", "python3", "--version"], capture_output=True, text=True)
    return "UNABLE to load" not in out.stdout + out.stderr


needs_uwsgi = pytest.mark.skipif(not have_uwsgi(), reason="uWSGI with its python3 plugin is not installed")


# ---------------------------------------------------------------------------
# helpers


def read_pid(path):
    try:
        return int(Path(path).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def get(port, path="/", timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body)
        return json.loads(body)
    finally:
        c.close()


def restart(pidfile, timeout=90):
    """`mulefarm --transparent-restart PIDFILE`: (exit status, stdout, stderr)."""
    p = subprocess.run([BIN, "--transparent-restart", str(pidfile)], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Load:
    """Clients sending GET / back to back: half over keep-alive
    connections, half with a new connection each time (a refused or reset
    connect shows). Keeps every failure, every latency, and the masters
    (ppid of the serving worker) seen."""

    def __init__(self, port, clients=4):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors = []
        self.latencies = []
        self.masters = set()
        self.threads = [threading.Thread(target=self._run, args=(i % 2 == 0,), daemon=True) for i in range(clients)]

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
            t0 = time.monotonic()
            try:
                if conn is None or not keepalive:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/", headers={} if keepalive else {"Connection": "close"})
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise AssertionError("status %d: %r" % (r.status, body))
                ppid = json.loads(body)["ppid"]
                if not keepalive or r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                with self.lock:
                    self.latencies.append(time.monotonic() - t0)
                    self.masters.add(ppid)
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
            return len(self.latencies)

    def seen(self, master):
        with self.lock:
            return master in self.masters

    def percentile(self, p):
        with self.lock:
            lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else 0.0

    def report(self):
        return "%d requests, %d failed, p99 %.1f ms, max %.1f ms" % (
            self.served(),
            len(self.errors),
            self.percentile(0.99) * 1000,
            self.percentile(1.0) * 1000,
        )


def assert_no_failure(load):
    assert load.errors == [], "%s:\n%s" % (load.report(), "\n".join(load.errors[:20]))


class Proc:
    """A process the test starts itself (uWSGI, a pool): own session, log
    file, always killed at the end."""

    def __init__(self, args, log, env=None):
        self.log_path = Path(log)
        e = dict(os.environ)
        e.pop("PYTHONPATH", None)
        e.update(env or {})
        self._f = open(self.log_path, "wb")
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._f, stderr=self._f, env=e, start_new_session=True)
        self.pid = self.p.pid

    def log_text(self):
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGINT, timeout=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        return self.p.wait(timeout)

    def kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._f.close()


@pytest.fixture
def procs(tmp_path):
    started = []

    def start(args, name, env=None):
        p = Proc([str(a) for a in args], tmp_path / (name + ".log"), env)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


def serves(port):
    try:
        get(port, timeout=2)
        return True
    except (OSError, AssertionError, ValueError):
        return False


def zerg_instance(server, port, *extra, env=None):
    """A mulefarm instance of zerg_app.py on 127.0.0.1:<port>, 2 workers.
    Another instance may answer on the port already: up means both of its
    workers are spawned."""
    args = ["--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", ZAPP, "--processes", "2", "--threads", "2", "--disable-logging"]
    srv = server(args + [str(a) for a in extra], addr=("127.0.0.1", port), env=env)
    srv.wait_log(r"spawned worker 2 ")
    return srv


def restart_server(server, tmp_path, extra=(), processes=2, import_sleep=3, env=None, app=ZAPP):
    """zerg_app.py with a pidfile, its import taking <import_sleep> s."""
    port = free_port_number()
    pidfile = tmp_path / "master.pid"
    e = {"ZERG_TEST_IMPORT_SLEEP": str(import_sleep), "ZERG_TEST_IMPORT_LOG": str(tmp_path / "imports.log")}
    e.update(env or {})
    args = ["--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", app, "--processes", str(processes)]
    args += ["--threads", "2", "--pidfile", str(pidfile), "--disable-logging"] + [str(a) for a in extra]
    srv = server(args, addr=("127.0.0.1", port), env=e)
    wait_for(lambda: read_pid(pidfile) == srv.pid, what="the pidfile")
    srv.pidfile = pidfile
    return srv


def imports(tmp_path):
    try:
        return [int(x) for x in (tmp_path / "imports.log").read_text().split()]
    except FileNotFoundError:
        return []


def stop_last(srv):
    """Stops the master now in the pidfile gracefully and waits for it."""
    pid = read_pid(srv.pidfile)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), timeout=15, what="the last master to stop")


# ---------------------------------------------------------------------------
# zerg mode


def test_zerg_server_socket_is_private_by_default(server, tmp_path):
    z1, z2 = tmp_path / "z1.sock", tmp_path / "z2.sock"
    zerg_instance(server, free_port_number(), "--zerg-server", z1)
    zerg_instance(server, free_port_number(), "--zerg-server", z2, "--chmod-zerg", "660")
    assert stat.S_ISSOCK(os.stat(z1).st_mode)
    assert stat.S_IMODE(os.stat(z1).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(z2).st_mode) == 0o660


def test_bad_chmod_zerg_is_refused(server, tmp_path):
    srv = server(["--wsgi-file", ZAPP, "--zerg-server", tmp_path / "z.sock", "--chmod-zerg", "abc"], wait=False)
    assert srv.wait_exit(10) != 0
    assert "invalid --chmod-zerg mode 'abc'" in srv.log_text()


@pytest.mark.timeout(60)
def test_zerg_instance_takes_over_when_the_server_leaves(server, tmp_path):
    """B attaches to A's sockets (no bind: A still holds the port); A then
    stops gracefully under load and B serves every request."""
    port = free_port_number()
    zsock = tmp_path / "z.sock"
    a = zerg_instance(server, port, "--zerg-server", zsock)
    b = zerg_instance(server, port, "--zerg", zsock)
    assert re.search(r"zerg: received 1 sockets from %s" % re.escape(str(zsock)), b.log_text())
    assert "127.0.0.1:%d takes the received socket 127.0.0.1:%d (the same address text)" % (port, port) in b.log_text()
    a.wait_log(r"zerg: handed 1 sockets to pid %d" % b.pid)
    with Load(port) as load:
        wait_for(lambda: load.served() > 30, what="the load to run")
        assert a.stop(signal.SIGTERM, timeout=15) == 0
        n = load.served()
        wait_for(lambda: load.served() > n + 30 and load.seen(b.pid), what="B to serve alone")
    assert_no_failure(load)
    assert b.running()


def test_zerg_without_server_fails_unless_fallback(server, tmp_path):
    missing = tmp_path / "nobody.sock"
    srv = server(["--wsgi-file", ZAPP, "--zerg", missing], wait=False)
    assert srv.wait_exit(40) == 1
    assert "zerg: cannot attach to %s (--zerg-fallback binds instead)" % missing in srv.log_text()
    port = free_port_number()
    fb = zerg_instance(server, port, "--zerg", missing, "--zerg-fallback")
    assert "zerg: cannot attach to %s: binding the sockets instead" % missing in fb.log_text()
    assert get(port)["ppid"] == fb.pid


@pytest.mark.timeout(60)
def test_zergpool_serves_several_instances(server, procs, tmp_path):
    """mulefarm --zergpool PATH:addr1,addr2 binds both addresses and hands
    them out; two instances attach, one speaking HTTP on addr1 and the
    uwsgi protocol on addr2 (mapped by address, whatever the pool's
    order). The pool and either instance may go: the other one serves."""
    p1, p2 = free_port_number(), free_port_number()
    pool_sock = tmp_path / "pool.sock"
    pool = procs([BIN, "--zergpool", "%s:127.0.0.1:%d,127.0.0.1:%d" % (pool_sock, p2, p1)], "pool")
    wait_for(lambda: pool_sock.exists(), what="the pool socket")
    assert stat.S_IMODE(os.stat(pool_sock).st_mode) == 0o600
    both = ["--zerg", pool_sock, "--socket", "127.0.0.1:%d" % p2]
    b = zerg_instance(server, p1, *both)
    c = zerg_instance(server, p1, *both)
    for srv in (b, c):
        assert "127.0.0.1:%d takes the received socket" % p1 in srv.log_text()
        assert "socket listening on 127.0.0.1:%d" % p2 in srv.log_text()
    resp, _ = uwsgi_exchange(("127.0.0.1", p2), packet(request_vars("GET", "/")))
    assert resp is not None and resp.status == 200 and json.loads(resp.body)["ppid"] in (b.pid, c.pid)
    assert pool.stop(signal.SIGTERM) == 0  # the instances hold the sockets
    assert "signal 15: bye" in pool.log_text()
    with Load(p1) as load:
        wait_for(lambda: load.served() > 30, what="the load to run")
        assert b.stop(signal.SIGTERM, timeout=15) == 0
        n = load.served()
        wait_for(lambda: load.served() > n + 30 and load.seen(c.pid), what="C to serve alone")
    assert_no_failure(load)


# ---------------------------------------------------------------------------
# uWSGI interop: the same wire format in both directions


@needs_uwsgi
@pytest.mark.timeout(60)
def test_uwsgi_zerg_server_hands_its_sockets_to_mulefarm(server, procs, tmp_path):
    port = free_port_number()
    zsock = tmp_path / "uwsgi-zerg.sock"
    u = procs(
        [UWSGI, "--plugin", "python3", "--master", "--http-socket", "127.0.0.1:%d" % port, "--zerg-server", zsock,
         "--wsgi-file", ZAPP, "--processes", "1", "--disable-logging"],
        "uwsgi",
    )
    wait_for(lambda: zsock.exists() and serves(port), what="uWSGI to serve")
    m = zerg_instance(server, port, "--zerg", zsock)
    assert re.search(r"zerg: received 1 sockets from %s\n" % re.escape(str(zsock)), m.log_text())
    assert "(bound there)" in m.log_text()  # uWSGI sends no names: matched by address
    u.stop(signal.SIGINT)  # uWSGI goes; the socket stays open in mulefarm
    for _ in range(10):
        assert get(port)["ppid"] == m.pid


@needs_uwsgi
@pytest.mark.timeout(60)
def test_mulefarm_zerg_server_hands_its_sockets_to_uwsgi(server, procs, tmp_path):
    port = free_port_number()
    zsock = tmp_path / "zerg.sock"
    m = zerg_instance(server, port, "--zerg-server", zsock)
    u = procs(
        [UWSGI, "--plugin", "python3", "--master", "--zerg", zsock, "--protocol", "http", "--wsgi-file", ZAPP,
         "--processes", "1", "--disable-logging"],
        "uwsgi",
    )
    wait_for(lambda: "zerg sockets attached" in u.log_text(), what="uWSGI to attach")
    assert "uwsgi zerg socket 0 attached to INET address 127.0.0.1:%d" % port in u.log_text()
    m.wait_log(r"zerg: handed 1 sockets to pid %d" % u.pid)
    wait_for(lambda: "spawned uWSGI worker 1" in u.log_text(), what="uWSGI's worker")
    assert m.stop(signal.SIGTERM, timeout=15) == 0
    assert get(port)["ppid"] == u.pid  # uWSGI's worker answers on mulefarm's socket


@needs_uwsgi
@pytest.mark.timeout(60)
def test_uwsgi_zergpool_feeds_mulefarm(server, procs, tmp_path):
    """uWSGI's zergpool plugin as the pool; mulefarm with no socket option
    serves the received socket with the uwsgi protocol, as uWSGI would."""
    port = free_port_number()
    pool_sock = tmp_path / "pool.sock"
    procs([UWSGI, "--plugin", "zergpool", "--master", "--zergpool", "%s:127.0.0.1:%d" % (pool_sock, port)], "pool")
    wait_for(lambda: pool_sock.exists(), what="uWSGI's pool")
    m = server(["--wsgi-file", ZAPP, "--zerg", pool_sock], addr=("127.0.0.1", port), wait=False)
    m.wait_log(r"serving the received socket 127\.0\.0\.1:%d with the uwsgi protocol" % port)
    m.wait_log(r"spawned worker 1")
    resp = wait_for(lambda: uwsgi_exchange(("127.0.0.1", port), packet(request_vars("GET", "/")))[0], what="an answer")
    assert resp.status == 200 and json.loads(resp.body)["ppid"] == m.pid
    assert "127.0.0.1:8080" not in m.log_text()  # no default socket bound


# ---------------------------------------------------------------------------
# the zerg dance (uWSGI's "The Art of Graceful Reloading", admin-training)

DANCE_INI = """[uwsgi]
wsgi-file = {app}
processes = 2
threads = 2
disable-logging = true
http-socket = 127.0.0.1:{port}
zerg = {pool}
; slot 0: a new instance, 1: the running one, 2: the one going away
master-fifo = {d}/new.fifo
master-fifo = {d}/running.fifo
master-fifo = {d}/sleeping.fifo
if-exists = {d}/running.fifo
hook-accepting1-once = writefifo:{d}/running.fifo 2q
endif =
hook-accepting1-once = spinningfifo:{d}/new.fifo 1
"""


@pytest.mark.timeout(90)
def test_zerg_dance_with_fifo_slots(server, procs, tmp_path):
    """Three generations through a pool: each new instance's first worker,
    once accepting, writes "2q" into the running FIFO (the running master
    moves to slot 2 and stops gracefully), then "1" into its own new FIFO
    (it takes the running slot). No request fails."""
    port = free_port_number()
    pool_sock = tmp_path / "pool.sock"
    procs([BIN, "--zergpool", "%s:127.0.0.1:%d" % (pool_sock, port)], "pool")
    wait_for(lambda: pool_sock.exists(), what="the pool")
    ini = tmp_path / "zerg.ini"
    ini.write_text(DANCE_INI.format(app=ZAPP, port=port, pool=pool_sock, d=tmp_path))
    first = server(["--ini", ini], addr=("127.0.0.1", port))
    first.wait_log(r"master FIFO switched to slot 1: .*running\.fifo")
    gens = [first]
    with Load(port) as load:
        wait_for(lambda: load.served() > 30, what="the load to run")
        for _ in range(2):
            old = gens[-1]
            new = server(["--ini", ini], addr=("127.0.0.1", port))
            new.wait_log(r"spawned worker 1 ")
            assert old.wait_exit(20) == 0
            assert "master FIFO switched to slot 2" in old.log_text()
            assert "stopping gracefully" in old.log_text()
            new.wait_log(r"master FIFO switched to slot 1: .*running\.fifo")
            n = load.served()
            wait_for(lambda: load.served() > n + 30 and load.seen(new.pid), what="the new generation to serve")
            gens.append(new)
    assert_no_failure(load)
    # the last one reads the running slot: 'q' there stops it
    fifo_write(str(tmp_path / "running.fifo"), "q")
    assert gens[-1].wait_exit(20) == 0


# ---------------------------------------------------------------------------
# transparent restart


@pytest.mark.timeout(150)
def test_five_transparent_restarts_under_load_fail_no_request(server, tmp_path):
    srv = restart_server(server, tmp_path, import_sleep=3)
    masters = [srv.pid]
    with Load(srv.port, clients=4) as load:
        wait_for(lambda: load.served() > 50, what="the load to run")
        for i in range(5):
            old = masters[-1]
            t0 = time.monotonic()
            rc, out, err = restart(srv.pidfile)
            took = time.monotonic() - t0
            assert rc == 0, "restart %d: %s%s\n%s" % (i + 1, out, err, srv.log_text()[-5000:])
            new = read_pid(srv.pidfile)
            assert new not in masters and pid_alive(new)
            assert "mulefarm: pid %d took over from pid %d" % (new, old) in out
            assert took >= 3, "the command returns once the new instance has imported (3 s) and accepts"
            wait_for(lambda: not pid_alive(old), timeout=20, what="the old master to exit")
            n = load.served()
            wait_for(lambda: load.served() > n + 20 and load.seen(new), what="the new master's workers to serve")
            masters.append(new)
        report = load.report()
        p99 = load.percentile(0.99)
        worst = load.percentile(1.0)
    assert_no_failure(load)
    assert srv.wait_exit(1) == 0
    assert imports(tmp_path) == masters  # each instance imported once, in its master
    log = srv.log_text()
    assert log.count(BYE) == 5 and "did not stop in time" not in log
    # nobody waited for the 3 s imports (a blocking reload makes it > 3 s)
    assert worst < 1.0 and p99 < 0.25, report
    stop_last(srv)
    assert srv.log_text().count(BYE) == 6


def ordered_mule_lives(log):
    """From the shared server log (one file, written in time order by every
    master and mule): checks that no mule id has two live processes at
    once. A mule is live from its "spawned mule N (pid P)" or
    "mule-start N P" line, whichever comes first, to its master's "mule N
    (pid P) exited/killed" line. Returns (violations, starts)."""
    live, bad, starts = {}, [], 0
    for line in log.splitlines():
        m = re.search(r"spawned mule (\d+) \(pid (\d+)\)", line) or re.search(r"^mule-start (\d+) (\d+)$", line)
        if m:
            mid, pid = int(m.group(1)), int(m.group(2))
            pids = live.setdefault(mid, set())
            if pid not in pids:
                starts += 1
                if pids:
                    bad.append("mule %d: pid %d starts while %s lives: %s" % (mid, pid, sorted(pids), line))
                pids.add(pid)
            continue
        m = re.search(r"\] (?:previous )?mule (\d+) \(pid (\d+)\) (?:exited|killed)", line)
        if m:
            live.get(int(m.group(1)), set()).discard(int(m.group(2)))
    return bad, starts


class MuleWatch:
    """Samples the process group every few ms: two processes titled
    "mulefarm mule N" at once is a violation."""

    def __init__(self, pgid):
        self.pgid = pgid
        self.bad = []
        self.samples = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(5)

    def _run(self):
        while not self.stop.is_set():
            ids = {}
            for pid in group_members(self.pgid):
                try:
                    title = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")[0].decode()
                except OSError:
                    continue
                m = re.match(r"mulefarm mule (\d+)\b", title)
                if m and _proc_stat(pid) and _proc_stat(pid)[0] not in ("Z", "X"):
                    ids.setdefault(int(m.group(1)), []).append(pid)
            for mid, pids in ids.items():
                if len(pids) > 1:
                    self.bad.append("mule %d: %s at once" % (mid, pids))
            self.samples += 1
            time.sleep(0.005)


@pytest.mark.timeout(240)
def test_transparent_restarts_with_mules_handle_each_message_once(server, tmp_path):
    """Two job-handler mules in farm "jobs" (20 ms a job: 100 a second);
    2,000 messages sent through the web workers at 200 a second, so that
    hundreds are queued when each of 5 transparent restarts hands over.
    The old mules finish their message and go; the queue is the same
    memfd, so nothing queued is lost; the new mules start once the old
    master has exited. Every message is handled exactly once, and at no
    moment do two processes carry one mule id."""
    mlog = tmp_path / "mule.log"
    srv = restart_server(
        server,
        tmp_path,
        extra=["--mule", ZMULE, "--mule", ZMULE, "--farm", "jobs:1,2"],
        env={"ZERG_TEST_MULE_LOG": str(mlog), "ZERG_TEST_JOB_MS": "20"},
    )
    total, batch = 2000, 50
    sent = [0]
    send_errors = []

    def send():
        for start in range(0, total, batch):
            try:
                get(srv.port, "/farm?start=%d&n=%d" % (start, batch), timeout=30)
                sent[0] = start + batch
            except Exception as e:  # reported below
                send_errors.append("batch %d: %r" % (start, e))
            time.sleep(0.25)

    def handled():
        try:
            return mlog.read_text().splitlines()
        except FileNotFoundError:
            return []

    sender = threading.Thread(target=send, daemon=True)
    masters = [srv.pid]
    backlogs = []
    with MuleWatch(srv.pid) as watch, Load(srv.port, clients=2) as load:
        sender.start()
        wait_for(lambda: len(handled()) > 50, what="the mules to handle messages")
        for i in range(5):
            backlogs.append(sent[0] - len(handled()))
            rc, out, err = restart(srv.pidfile)
            assert rc == 0, "restart %d: %s%s\n%s" % (i + 1, out, err, srv.log_text()[-5000:])
            masters.append(read_pid(srv.pidfile))
            wait_for(lambda: not pid_alive(masters[-2]), timeout=20, what="the old master to exit")
        sender.join(60)
        assert not sender.is_alive()
        wait_for(lambda: len(handled()) >= total, timeout=90, what="every message to be handled")
        time.sleep(0.2)  # a duplicate would show now
    assert send_errors == [] and load.errors == [], (send_errors, load.errors[:10])
    counts = {}
    for line in handled():
        counts[int(line.split()[0])] = counts.get(int(line.split()[0]), 0) + 1
    missing = sorted(set(range(total)) - set(counts))
    assert missing == [], "%d messages lost: %s..." % (len(missing), missing[:20])
    assert [m for m, c in counts.items() if c != 1] == [], "handled twice"
    assert max(backlogs) > 100, "messages in flight at the restarts: %s" % backlogs
    log = srv.log_text()
    bad, starts = ordered_mule_lives(log)
    assert bad == [], "\n".join(bad)
    assert starts >= 12  # 2 mules x 6 instances
    assert watch.bad == [] and watch.samples > 100, watch.bad[:5]
    # each new master waited for the old one's mules before starting its own
    assert log.count("the mules wait for the previous master") == 5
    assert log.count("has exited: starting the mules") == 5
    mule_pids = {int(line.split()[2]) for line in handled()}
    assert len(mule_pids) >= 10  # the handling went on across instances
    stop_last(srv)


@pytest.mark.timeout(90)
def test_failed_transparent_restart_leaves_the_old_instance_serving(server, tmp_path):
    app = tmp_path / "app.py"
    shutil.copy(ZAPP, app)
    srv = restart_server(server, tmp_path, app=str(app), import_sleep=1)
    with Load(srv.port) as load:
        wait_for(lambda: load.served() > 30, what="the load to run")
        app.write_text(Path(ZAPP).read_text() + '\nraise RuntimeError("broken-on-purpose")\n')
        rc, out, err = restart(srv.pidfile)
        n = load.served()
        wait_for(lambda: load.served() > n + 30, what="requests after the failed restart")
    assert rc == 1, (out, err)
    assert "broken-on-purpose" in err and "Traceback" in err  # the new instance's output
    assert re.search(r"transparent restart failed: the new instance \(pid \d+\) exited with status 1", err)
    assert_no_failure(load)
    assert read_pid(srv.pidfile) == srv.pid and srv.running()
    assert load.masters == {srv.pid}
    # fixed, the next restart goes through
    shutil.copy(ZAPP, app)
    rc, out, err = restart(srv.pidfile)
    assert rc == 0, (out, err)
    assert srv.wait_exit(20) == 0
    stop_last(srv)


@pytest.mark.timeout(60)
def test_transparent_restart_timeout_stops_the_new_instance(server, tmp_path):
    srv = restart_server(server, tmp_path, extra=["--transparent-restart-timeout", "1"], import_sleep=3)
    srv_first_import = imports(tmp_path)
    rc, out, err = restart(srv.pidfile)
    assert rc == 1, (out, err)
    m = re.search(r"the new instance \(pid (\d+)\) did not accept within 1 s", err)
    assert m, err
    wait_for(lambda: not pid_alive(int(m.group(1))), what="the new instance to be stopped")
    assert srv.running() and read_pid(srv.pidfile) == srv.pid
    assert get(srv.port)["ppid"] == srv.pid
    assert imports(tmp_path)[: len(srv_first_import)] == srv_first_import


def read_stats(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return json.loads(data)
            data += chunk


@pytest.mark.timeout(60)
def test_fifo_T_restarts_with_stats_and_zerg_server(server, tmp_path):
    """FIFO 'T' restarts too. The --stats socket is handed over (the new
    master could not bind it while the old one lives) and the new master
    serves --zerg-server at the same path; the FIFO is the new master's."""
    fifo = str(tmp_path / "m.fifo")
    stats_port = free_port_number()
    zsock = tmp_path / "z.sock"
    extra = ["--master-fifo", fifo, "--stats", "127.0.0.1:%d" % stats_port, "--zerg-server", zsock]
    srv = restart_server(server, tmp_path, extra=extra, import_sleep=0)
    assert read_stats(stats_port)["pid"] == srv.pid
    fifo_write(fifo, "T")
    new = wait_for(lambda: read_pid(srv.pidfile) != srv.pid and read_pid(srv.pidfile), what="the new master's pidfile")
    assert srv.wait_exit(20) == 0
    assert get(srv.port)["ppid"] == new
    assert read_stats(stats_port)["pid"] == new
    assert stat.S_IMODE(os.stat(zsock).st_mode) == 0o600
    zergling = zerg_instance(server, srv.port, "--zerg", zsock)
    srv.wait_log(r"\[master pid %d\] zerg: handed 1 sockets to pid %d" % (new, zergling.pid))
    fifo_write(fifo, "q")  # the new master has the FIFO now
    wait_for(lambda: not pid_alive(new), timeout=15, what="the new master to stop on 'q'")
    assert srv.log_text().count(BYE) == 2
    assert zergling.running() and get(srv.port)["ppid"] == zergling.pid


def test_transparent_restart_command_errors(server, tmp_path):
    p = subprocess.run([BIN, "--transparent-restart", str(tmp_path / "none.pid")], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "cannot open pidfile" in p.stderr
    # a process that never answers (not a mulefarm master): it ignores SIGUSR2
    sleeper = subprocess.Popen(["python3", "-c", "import signal, time; signal.signal(signal.SIGUSR2, signal.SIG_IGN); time.sleep(60)"])
    try:
        time.sleep(0.3)
        (tmp_path / "other.pid").write_text("%d\n" % sleeper.pid)
        t0 = time.monotonic()
        p = subprocess.run([BIN, "--transparent-restart", str(tmp_path / "other.pid")], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "did not answer SIGUSR2" in p.stderr
        assert time.monotonic() - t0 < 25
    finally:
        sleeper.kill()
        sleeper.wait()


# ---------------------------------------------------------------------------
# database farms: leases and fencing, plus the same hand-over


@pytest.mark.timeout(150)
def test_transparent_restarts_with_a_database_farm_run_each_job_once(server, pg_cluster, tmp_path):
    """--db-farm jobs with the instance's own mules 1 and 2 (handler names
    web.jobs.1, web.jobs.2): 300 jobs of 20 ms sent while 3 transparent
    restarts run. Each job's side effect is recorded exactly once, under
    one of the two names."""
    pytest.importorskip("psycopg2")
    from dbfarm_util import DB_MULE, effect_counts, effects_db, post, web_args

    dsn = effects_db(pg_cluster, "zerg_dbfarm")
    pidfile = tmp_path / "master.pid"
    args = web_args(dsn, ["--mule", DB_MULE, "--mule", DB_MULE, "--farm", "jobs:1,2", "--processes", "2",
                          "--pidfile", pidfile])
    srv = server(args, env={"EFFECTS_DSN": dsn})
    srv.wait_log(r"spawned mule 2")
    srv.pidfile = pidfile
    masters = [srv.pid]
    for i in range(3):
        msgs = [{"key": "j%d" % (i * 100 + k), "sleep": 0.02} for k in range(100)]
        assert all(post(srv, "/farm_msg_many?farm=jobs", msgs)["ok"])
        rc, out, err = restart(pidfile)
        assert rc == 0, (out, err, srv.log_text()[-3000:])
        masters.append(read_pid(pidfile))
        wait_for(lambda: not pid_alive(masters[-2]), timeout=20, what="the old master to exit")
    wait_for(lambda: len(effect_counts(pg_cluster, "zerg_dbfarm")) == 300, timeout=60, what="300 jobs run")
    time.sleep(0.5)  # a second run would show now
    counts = effect_counts(pg_cluster, "zerg_dbfarm")
    assert sorted(counts) == sorted("j%d" % n for n in range(300))
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    names = pg_cluster.sql("SELECT DISTINCT handler FROM effects ORDER BY 1", db="zerg_dbfarm")
    assert set(names.splitlines()) <= {"web.jobs.1", "web.jobs.2"}, names
    bad, _ = ordered_mule_lives(srv.log_text())
    assert bad == [], "\n".join(bad)
    stop_last(srv)


@pytest.mark.timeout(60)
def test_second_restart_while_one_is_under_way_is_refused(server, tmp_path):
    srv = restart_server(server, tmp_path, import_sleep=2)
    first = subprocess.Popen([BIN, "--transparent-restart", str(srv.pidfile)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        srv.wait_log(r"transparent restart: new instance started")
        rc, out, err = restart(srv.pidfile)
        assert rc == 1 and "transparent restart failed: one is already under way" in err, (out, err)
        out1, err1 = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, (out1, err1)
    assert srv.wait_exit(20) == 0
    stop_last(srv)


@pytest.mark.timeout(240)
def test_transparent_restarts_with_the_jobs_example_run_each_job_once(server, pg_cluster, tmp_path):
    """examples/jobs (Galaxy's pattern: a job row, then farm_msg; the mules
    hold lock 0 around farm_get_msg and claim the row under their handler
    name) with 2,000 jobs submitted over HTTP while 3 transparent restarts
    hand over: every job runs exactly once (one job_run row, written in the
    transaction that marks it done), no request fails, and no handler name
    (mule id) is live in two processes at any moment."""
    from test_jobs_example import JOBS_INI, HANDLERS, query, submit

    total = 2000
    dsn = pg_cluster.create_db("jobs_zerg")
    port = free_port_number()
    pidfile = tmp_path / "master.pid"
    srv = server(
        ["--ini", JOBS_INI, "--pidfile", str(pidfile)],
        addr=("127.0.0.1", port),
        env={"JOBS_DSN": dsn, "JOBS_HTTP": "127.0.0.1:%d" % port, "JOBS_WORK_MS": "2"},
    )
    srv.wait_log(r"job-handler main\.job-handlers\.2 .*started")
    wait_for(lambda: read_pid(pidfile) == srv.pid, what="the pidfile")

    def done():
        return query(dsn, "SELECT count(*) FROM job WHERE state = 'done'")[0][0]

    masters = [srv.pid]
    with MuleWatch(srv.pid) as watch:
        threads, ids, errors = submit(srv, total, nclients=2)
        for i in range(3):
            wait_for(lambda: done() >= (i + 1) * 300, timeout=60, what="jobs to run before restart %d" % (i + 1))
            rc, out, err = restart(pidfile)
            assert rc == 0, "restart %d: %s%s\n%s" % (i + 1, out, err, srv.log_text()[-5000:])
            masters.append(read_pid(pidfile))
            wait_for(
                lambda: not pid_alive(masters[-2]),
                timeout=30,
                what="the old master to exit",
                describe=lambda: "%s\nsessions: %r"
                % (
                    describe_children(masters[-2]),
                    query(dsn, "SELECT pid, state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity"),
                ),
            )
        for t in threads:
            t.join(120)
        assert errors == [], errors[:5]
        wait_for(lambda: done() == total, timeout=120, what="%d jobs done" % total)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == total
    rows = query(
        dsn,
        """SELECT j.id, j.state, j.handler, count(r.job_id)
           FROM job j LEFT JOIN job_run r ON r.job_id = j.id GROUP BY j.id""",
    )
    bad = [r for r in rows if r[1] != "done" or r[3] != 1 or r[2] not in HANDLERS]
    assert len(rows) == total and bad == [], bad[:10]
    lives, starts = ordered_mule_lives(srv.log_text())
    assert lives == [], "\n".join(lives)
    assert starts >= 8  # 2 mules x 4 instances
    assert watch.bad == [] and watch.samples > 100, watch.bad[:5]
    os.kill(masters[-1], signal.SIGTERM)
    wait_for(lambda: not pid_alive(masters[-1]), timeout=30, what="the last master to stop")
