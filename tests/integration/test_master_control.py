"""Steering the master: stop mercies, the master FIFO (q, Q, s, slots),
pidfiles and --stop/--graceful-stop/--reload, daemon mode, log files,
--log-date, and hook-master-start unix_signal remaps."""
import errno
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN, EXTRA_ARGS, app_path, free_port_number, group_members, pid_alive, wait_for
from mastertools import RETIRED, SlowRequest, fifo_write, info, wait_reloads, workers_now
import httpclient

BASIC = ["--wsgi-file", app_path("basic.py")]


def run_cli(args, timeout=10):
    """Runs the binary to completion; returns (status, stdout, stderr)."""
    p = subprocess.run(
        [BIN] + EXTRA_ARGS + [str(a) for a in args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def slow_request(srv, tmp_path, seconds):
    """SlowRequest against basic.py's /sleep."""
    return SlowRequest(srv, tmp_path, seconds)


def read_pid(path):
    with open(path) as f:
        return int(f.read().strip())


def pidfile_pid(path):
    """The pid in <path>, or None while it is missing or empty."""
    try:
        return read_pid(path)
    except (FileNotFoundError, ValueError):
        return None


# ---------------------------------------------------------------------------
# graceful stop: mercies


def test_sigterm_kills_a_mule_ignoring_it_after_mule_reload_mercy(server, tmp_path):
    pidf = tmp_path / "mule.pid"
    srv = server(
        BASIC + ["--mule", app_path("stubborn_mule.py"), "--mule-reload-mercy", "2"],
        env={"MULEFARM_TEST_MULE_PIDFILE": str(pidf)},
    )
    mule = wait_for(lambda: pidf.exists() and read_pid(pidf), what="the mule to ignore SIGTERM")
    assert mule in srv.children()
    kids = srv.children()
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    srv.wait_log(r"stopping gracefully \(worker mercy \d+ s, mule mercy 2 s\)")
    # the worker goes at once; the mule keeps running, so does the master
    srv.wait_log(r"worker 1 \(pid \d+\) exited with status 0")
    assert pid_alive(mule) and srv.running()
    rc = srv.wait_exit(10)
    elapsed = time.monotonic() - t0
    assert rc == 0, srv.log_text()
    assert re.search(r"mule 1 \(pid %d\) did not stop in time: killing it" % mule, srv.log_text())
    assert re.search(r"mule 1 \(pid %d\) killed by signal 9" % mule, srv.log_text())
    assert 1.5 <= elapsed < 6, "the mule was killed after %.1f s (mercy 2 s)" % elapsed
    assert not any(pid_alive(k) for k in kids)
    assert group_members(srv.pid) == []


def test_sigterm_kills_a_request_outlasting_worker_reload_mercy(server, tmp_path):
    srv = server(BASIC + ["--worker-reload-mercy", "1"])
    slow = slow_request(srv, tmp_path, 20)
    t0 = time.monotonic()
    rc = srv.stop(signal.SIGTERM, timeout=10)
    assert rc == 0, srv.log_text()
    assert time.monotonic() - t0 < 5
    assert re.search(r"worker 1 \(pid %d\) did not stop in time: killing it" % slow.worker, srv.log_text())
    res = slow.join(10)
    assert "resp" not in res or not res["resp"].complete
    assert not pid_alive(slow.worker)


def test_sigterm_stops_a_waiting_farm_mule_promptly(server, tmp_path):
    mlog = tmp_path / "mule.log"
    srv = server(
        BASIC + ["--mule", app_path("farm_consumer.py"), "--farm", "jobs:1"],
        env={"MULEFARM_TEST_MULE_LOG": str(mlog)},
    )
    wait_for(lambda: mlog.exists() and "start" in mlog.read_text(), what="the mule to start")
    srv.wait_log(r"spawned mule 1")
    kids = wait_for(lambda: len(srv.children()) == 2 and srv.children(), what="worker and mule")
    t0 = time.monotonic()
    assert srv.stop(signal.SIGTERM, timeout=10) == 0, srv.log_text()
    assert time.monotonic() - t0 < 4, "a mule waiting for messages must stop at once"
    assert "did not stop in time" not in srv.log_text()
    assert not any(pid_alive(k) for k in kids)


# ---------------------------------------------------------------------------
# the master FIFO


def test_fifo_q_graceful_stop(server, tmp_path):
    fifo = str(tmp_path / "m.fifo")
    srv = server(BASIC + ["--master-fifo", fifo, "--processes", "2"])
    kids = wait_for(lambda: len(srv.children()) == 2 and srv.children(), what="2 workers")
    slow = slow_request(srv, tmp_path, 1)
    fifo_write(fifo, "q")
    rc = srv.wait_exit(10)
    assert rc == 0, srv.log_text()
    res = slow.join()
    assert "resp" in res and res["resp"].status == 200 and res["resp"].body == b"slept\n", res
    assert "stopping gracefully" in srv.log_text()
    assert not any(pid_alive(k) for k in kids)
    assert group_members(srv.pid) == []


def test_fifo_Q_brutal_stop(server, tmp_path):
    fifo = str(tmp_path / "m.fifo")
    srv = server(BASIC + ["--master-fifo", fifo])
    slow = slow_request(srv, tmp_path, 20)
    t0 = time.monotonic()
    fifo_write(fifo, "Q")
    rc = srv.wait_exit(10)
    assert time.monotonic() - t0 < 5
    assert rc == 0, srv.log_text()
    assert "stopping now" in srv.log_text()
    res = slow.join(10)
    assert "resp" not in res or not res["resp"].complete
    assert group_members(srv.pid) == []


def test_fifo_s_logs_stats(server, tmp_path):
    fifo = str(tmp_path / "m.fifo")
    srv = server(BASIC + ["--master-fifo", fifo, "--processes", "2"])
    kids = wait_for(lambda: len(srv.children()) == 2 and srv.children(), what="2 workers")
    fifo_write(fifo, "s")
    m = srv.wait_log(r"\[master pid \d+\] stats: (\{.*\})\n")
    stats = json.loads(m.group(1))
    assert stats["pid"] == srv.pid
    assert sorted(w["pid"] for w in stats["workers"]) == kids
    assert [w["id"] for w in stats["workers"]] == [1, 2]
    assert srv.running()


def test_fifo_unknown_command_is_logged_and_ignored(server, tmp_path):
    fifo = str(tmp_path / "m.fifo")
    srv = server(BASIC + ["--master-fifo", fifo])
    fifo_write(fifo, "z\n")
    srv.wait_log(r"master FIFO: unknown command 'z'")
    assert srv.get("/")[0] == 200
    fifo_write(fifo, "q")
    assert srv.wait_exit(10) == 0


def test_fifo_slot_switch(server, tmp_path):
    f0, f1 = str(tmp_path / "slot0.fifo"), str(tmp_path / "slot1.fifo")
    srv = server(BASIC + ["--master-fifo", f0, "--master-fifo", f1])
    srv.wait_log(r"master FIFO .*slot0\.fifo \(slot 0\)")
    assert not os.path.exists(f1), "only the active slot's FIFO is created"
    fifo_write(f0, "1")
    srv.wait_log(r"master FIFO switched to slot 1: .*slot1\.fifo")
    # the master no longer reads slot 0: nobody has it open
    with pytest.raises(OSError) as e:
        os.open(f0, os.O_WRONLY | os.O_NONBLOCK)
    assert e.value.errno == errno.ENXIO
    # a slot that does not exist is refused; slot 1 stays active
    fifo_write(f1, "7")
    srv.wait_log(r"master FIFO: no slot 7 \(2 configured\)")
    assert srv.running()
    fifo_write(f1, "q")
    assert srv.wait_exit(10) == 0


# ---------------------------------------------------------------------------
# pidfiles and --stop / --graceful-stop / --reload


def test_pidfiles_written_and_removed(server, tmp_path):
    p1, p2 = tmp_path / "a.pid", tmp_path / "b.pid"
    srv = server(BASIC + ["--pidfile", p1, "--pidfile2", p2])
    assert read_pid(p1) == srv.pid
    assert read_pid(p2) == srv.pid
    assert srv.stop(signal.SIGTERM) == 0
    assert not p1.exists() and not p2.exists()


def test_cli_stop_sends_sigint(server, tmp_path):
    pidf = tmp_path / "m.pid"
    srv = server(BASIC + ["--pidfile", pidf])
    slow = slow_request(srv, tmp_path, 20)
    t0 = time.monotonic()
    rc, out, err = run_cli(["--stop", pidf])
    assert rc == 0, err
    assert srv.wait_exit(10) == 0, srv.log_text()
    assert time.monotonic() - t0 < 5, "--stop is immediate"
    assert "stopping now" in srv.log_text()
    res = slow.join(10)
    assert "resp" not in res or not res["resp"].complete
    assert not pidf.exists()


def test_cli_graceful_stop_waits_for_requests(server, tmp_path):
    pidf = tmp_path / "m.pid"
    srv = server(BASIC + ["--pidfile", pidf])
    slow = slow_request(srv, tmp_path, 1)
    rc, out, err = run_cli(["--graceful-stop", pidf])
    assert rc == 0, err
    assert srv.wait_exit(10) == 0, srv.log_text()
    res = slow.join()
    assert "resp" in res and res["resp"].status == 200 and res["resp"].body == b"slept\n", res
    assert "stopping gracefully" in srv.log_text()
    assert not pidf.exists()


def test_cli_reload(server, tmp_path):
    pidf = tmp_path / "m.pid"
    srv = server(BASIC + ["--pidfile", pidf, "--processes", "2"])
    old = workers_now(srv, 2)
    rc, out, err = run_cli(["--reload", pidf])
    assert rc == 0, err
    wait_reloads(srv, 1)
    new = workers_now(srv, 2, not_in=old)
    assert info(srv, "/pid")["pid"] in new
    assert read_pid(pidf) == srv.pid  # still there, same master
    assert srv.running()


@pytest.mark.parametrize("opt", ["--stop", "--graceful-stop", "--reload"])
def test_cli_pidfile_errors(tmp_path, opt):
    missing = tmp_path / "missing.pid"
    rc, out, err = run_cli([opt, missing])
    assert rc != 0
    assert "cannot open pidfile %s" % missing in err
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("not a pid\n")
    rc, out, err = run_cli([opt, garbage])
    assert rc != 0
    assert "holds no pid" in err
    # a pid that no longer exists
    p = subprocess.Popen(["true"])
    p.wait()
    stale = tmp_path / "stale.pid"
    stale.write_text("%d\n" % p.pid)
    rc, out, err = run_cli([opt, stale])
    assert rc != 0
    assert "cannot signal pid %d" % p.pid in err


# ---------------------------------------------------------------------------
# daemon mode and log files


class Daemon:
    """A daemonized mulefarm, found through its pidfile."""

    def __init__(self, tmp_path, opt, extra=(), app="basic.py"):
        self.port = free_port_number()
        self.log = tmp_path / "daemon.log"
        self.pidfile = tmp_path / "daemon.pid"
        self.args = [
            opt,
            self.log,
            "--pidfile",
            self.pidfile,
            "--http-socket",
            "127.0.0.1:%d" % self.port,
            "--wsgi-file",
            app_path(app),
            "--processes",
            "1",
        ] + list(extra)
        self.pid = None

    def start(self):
        t0 = time.monotonic()
        self.rc, self.out, self.err = run_cli(self.args, timeout=15)
        self.elapsed = time.monotonic() - t0
        return self.rc

    def log_text(self):
        try:
            return self.log.read_text()
        except FileNotFoundError:
            return ""

    def get(self, path):
        with httpclient.RawConn(("127.0.0.1", self.port)) as c:
            c.send(httpclient.simple_request("GET", path, close=True))
            return c.read_response()

    def cleanup(self):
        for pid in {self.pid, pidfile_pid(self.pidfile)} - {None}:
            if not pid_alive(pid):
                continue
            os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + 5
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def daemon(tmp_path):
    made = []

    def make(*a, **kw):
        d = Daemon(tmp_path, *a, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()


@pytest.mark.smoke
@pytest.mark.parametrize("opt", ["--daemonize", "--daemonize2"])
def test_daemonize(daemon, opt):
    d = daemon(opt)
    assert d.start() == 0, d.err
    assert d.elapsed < 5
    assert d.out == ""
    d.pid = wait_for(lambda: pidfile_pid(d.pidfile), what="the pidfile")
    assert pid_alive(d.pid), "the pidfile holds pid %d, which is not running" % d.pid
    wait_for(lambda: "spawned worker 1" in d.log_text(), what="the log file")
    r = wait_for(lambda: _try_get(d, "/pid"), what="the daemon to serve")
    body = json.loads(r.body)
    assert body["ppid"] == d.pid
    if opt == "--daemonize":  # --daemonize2 loads the app, then detaches
        assert body["import_pid"] == d.pid
    assert pid_alive(d.pid)
    # detached: a new session, not a child of the test
    assert os.getsid(d.pid) == d.pid
    log = wait_for(lambda: "GET /pid" in d.log_text() and d.log_text(), what="the access log line")
    assert "[master pid %d]" % d.pid in log
    # stopped through its pidfile
    rc, out, err = run_cli(["--graceful-stop", d.pidfile])
    assert rc == 0, err
    wait_for(lambda: not pid_alive(d.pid), what="the daemon to exit")
    wait_for(lambda: "all children gone: bye" in d.log_text(), what="the goodbye")
    assert not d.pidfile.exists()


def _try_get(d, path):
    try:
        r = d.get(path)
        return r if r.status == 200 else None
    except OSError:
        return None


def test_daemonize2_reports_a_broken_app_on_the_terminal(daemon):
    """--daemonize2 detaches only once the app loaded: a broken app fails
    the command itself, with the traceback on its stderr."""
    d = daemon("--daemonize2", app="broken_import.py")
    rc = d.start()
    assert rc != 0
    assert "Traceback" in d.err and "this_module_does_not_exist_mulefarm" in d.err
    assert not d.pidfile.exists()


def test_daemonize_reload_keeps_the_daemon(daemon):
    d = daemon("--daemonize")
    assert d.start() == 0, d.err
    d.pid = wait_for(lambda: pidfile_pid(d.pidfile), what="the pidfile")
    first = json.loads(wait_for(lambda: _try_get(d, "/pid"), what="the daemon to serve").body)
    rc, out, err = run_cli(["--reload", d.pidfile])
    assert rc == 0, err
    wait_for(lambda: RETIRED in d.log_text(), what="the reload")
    wait_for(lambda: json.loads(_try_get(d, "/pid").body)["pid"] != first["pid"], what="a new worker")
    assert read_pid(d.pidfile) == d.pid and pid_alive(d.pid)


def test_logto(server, tmp_path):
    log = tmp_path / "out.log"
    srv = server(BASIC + ["--logto", log])
    srv.get("/uri/logto-check")
    text = wait_for(lambda: log.exists() and "/uri/logto-check" in log.read_text() and log.read_text(),
                    what="the access log line in the file")
    assert "[master pid %d]" % srv.pid in text and "spawned worker 1" in text
    assert srv.log_text() == ""
    assert srv.stop(signal.SIGTERM) == 0
    assert "all children gone: bye" in log.read_text()


def test_logto2_opens_after_the_app_loaded(server, tmp_path):
    log = tmp_path / "out.log"
    srv = server(BASIC + ["--logto2", log])
    srv.get("/uri/logto2-check")
    wait_for(lambda: log.exists() and "/uri/logto2-check" in log.read_text(),
             what="the access log line in the file")
    early, late = srv.log_text(), log.read_text()
    assert "listening on" in early and "listening on" not in late
    assert "spawned worker 1" in late and "spawned worker" not in early


@pytest.mark.parametrize(
    "opt,rx",
    [
        (["--log-date"], r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4} "),
        # on the command line too, % is escaped as %% (magic variables)
        (["--log-date=%%Y-%%m-%%d"], r"\d{4}-\d\d-\d\d "),
    ],
    ids=["default", "custom"],
)
def test_log_date(server, opt, rx):
    srv = server(BASIC + opt)
    srv.get("/uri/dated")
    srv.wait_log(r"/uri/dated")
    lines = srv.log_lines()
    assert lines
    for line in lines:
        assert re.match(rx + r"\[(master|worker 1) pid \d+\] ", line), line
    if "=" in opt[0]:
        assert lines[0].startswith(time.strftime("%Y-%m-"))


# ---------------------------------------------------------------------------
# hook-master-start unix_signal


def test_hook_remaps_sigint_to_graceful_shutdown(server, tmp_path):
    srv = server(BASIC + ["--hook-master-start", "unix_signal:2 gracefully_kill_them_all"])
    srv.wait_log(r"signal 2 now means graceful shutdown")
    slow = slow_request(srv, tmp_path, 1)
    srv.send_signal(signal.SIGINT)
    assert srv.wait_exit(10) == 0, srv.log_text()
    res = slow.join()
    assert "resp" in res and res["resp"].status == 200 and res["resp"].body == b"slept\n", res
    assert "stopping gracefully" in srv.log_text()


def test_hook_remaps_sigterm_to_immediate_shutdown(server, tmp_path):
    srv = server(BASIC + ["--hook-master-start", "unix_signal:15 kill_them_all"])
    srv.wait_log(r"signal 15 now means immediate shutdown")
    slow = slow_request(srv, tmp_path, 20)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_exit(10) == 0, srv.log_text()
    assert time.monotonic() - t0 < 5
    res = slow.join(10)
    assert "resp" not in res or not res["resp"].complete


def test_hook_remaps_sigusr1_to_reload_across_reloads(server, tmp_path):
    srv = server(BASIC + ["--processes", "2", "--hook-master-start", "unix_signal:10 grace_them_all"])
    srv.wait_log(r"signal 10 now means graceful reload")
    gen = workers_now(srv, 2)
    for i in (1, 2):  # the re-executed master remaps it again
        srv.send_signal(signal.SIGUSR1)
        wait_reloads(srv, i)
        gen = workers_now(srv, 2, not_in=gen)
        assert srv.log_text().count("signal 10 now means graceful reload") == i + 1
    assert info(srv, "/pid")["pid"] in gen and srv.running()


def test_hook_remaps_sighup_to_brutal_reload(server, tmp_path):
    srv = server(BASIC + ["--hook-master-start", "unix_signal:1 reap_them_all"])
    srv.wait_log(r"signal 1 now means brutal reload")
    slow = slow_request(srv, tmp_path, 20)
    srv.send_signal(signal.SIGHUP)
    srv.wait_log(r"brutal reload: re-executing")
    wait_for(lambda: not pid_alive(slow.worker), timeout=5, what="the old worker to stop at once")
    res = slow.join(10)
    assert "resp" not in res or not res["resp"].complete
    assert wait_for(lambda: info(srv, "/pid")["pid"] != slow.worker, what="a new worker")


# (unknown actions, unix_signal in another phase and an unknown function
# are in test_hooks.py)
@pytest.mark.parametrize(
    "hook,why",
    [
        (["--hook-post-app", "unix_signal:2 kill_them_all"], "only works in hook-master-start"),
        (["--hook-master-start", "unix_signal:x gracefully_kill_them_all"], "want unix_signal:N"),
        (["--hook-master-start", "unix_signal:0 gracefully_kill_them_all"], "want unix_signal:N"),
        (["--hook-master-start", "unix_signal:15"], "want unix_signal:N"),
    ],
    ids=["post-app", "not-a-number", "signal-0", "no-function"],
)
def test_hook_unix_signal_config_errors(tmp_path, hook, why):
    rc, out, err = run_cli(BASIC + ["--http-socket", "127.0.0.1:%d" % free_port_number()] + hook, timeout=15)
    assert rc != 0
    assert hook[0].lstrip("-") in err and hook[1] in err, err
    assert why in err, err
