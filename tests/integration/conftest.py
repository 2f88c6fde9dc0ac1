"""Fixtures for the mulefarm integration suite.

Each test starts the real binary ($MULEFARM_BIN, default <repo>/build/mulefarm)
on a free loopback port, polls until it answers a request, and always stops
it (SIGINT, then SIGKILL of the whole process group).

$MULEFARM_EXTRA_ARGS (shell-split) is put before the generated arguments;
it exists so the suite can be smoke-checked against real uWSGI
(MULEFARM_BIN=/usr/bin/uwsgi MULEFARM_EXTRA_ARGS="--plugin python3").

Per-test timeout: pytest-timeout may be absent, so an autouse fixture arms
SIGALRM (default 30 s, override with @pytest.mark.timeout(N)); blocking
socket calls are interrupted and the test fails.
"""
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
REPO = HERE.parent.parent
BIN = os.environ.get("MULEFARM_BIN") or str(REPO / "build" / "mulefarm")
EXTRA_ARGS = shlex.split(os.environ.get("MULEFARM_EXTRA_ARGS", ""))
START_DEADLINE = 10.0
DEFAULT_TEST_TIMEOUT = 30

sys.path.insert(0, str(HERE))
import httpclient  # noqa: E402


def app_path(name):
    return str(APPS / name)


# ---------------------------------------------------------------------------
# per-test timeout guard


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test time limit (SIGALRM guard)")
    config.addinivalue_line(
        "markers", "smoke: the subset `make wheel-test` runs against the wheel's console scripts"
    )


class TestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _test_timeout_guard(request):
    marker = request.node.get_closest_marker("timeout")
    seconds = marker.args[0] if marker and marker.args else DEFAULT_TEST_TIMEOUT
    if request.config.pluginmanager.hasplugin("timeout"):
        # pytest-timeout is installed and handles the marker itself
        yield
        return

    def on_alarm(signum, frame):
        raise TestTimeout("test exceeded its %s s time limit" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------
# helpers


def free_port_number(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port():
    return free_port_number()


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition", describe=None):
    """Poll <predicate> until it returns a truthy value; returns that value.
    Fails the test after <timeout> seconds, with describe()'s text when
    given (what the processes waited for were doing)."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            more = "\n" + describe() if describe else ""
            pytest.fail("timed out after %.1f s waiting for %s%s" % (timeout, what, more))
        time.sleep(interval)


def describe_children(ppid):
    """One line per live child of <ppid>: pid, title, state, kernel wait
    channel and the system call it is in (/proc/PID/syscall: number and
    arguments), for a failure message."""
    lines = []
    for pid in children_of(ppid):
        st = _proc_stat(pid) or ("gone",)
        info = []
        for name in ("cmdline", "wchan", "syscall"):
            try:
                with open("/proc/%d/%s" % (pid, name), "rb") as f:
                    info.append(f.read().replace(b"\0", b" ").decode("latin-1").strip())
            except OSError as e:
                info.append(repr(e))
        lines.append("pid %d %s state %s wchan %s syscall %s" % (pid, info[0], st[0], info[1], info[2]))
    return "\n".join(lines) or "no children of pid %d" % ppid


def _proc_stat(pid):
    """(state, ppid, pgid) of <pid> or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("latin-1")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rindex(")") + 2 :].split()
    return rest[0], int(rest[1]), int(rest[2])


def pid_alive(pid):
    """Exists and is not a zombie."""
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _all_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def children_of(ppid):
    out = []
    for pid in _all_pids():
        st = _proc_stat(pid)
        if st and st[1] == ppid and st[0] not in ("Z", "X"):
            out.append(pid)
    return sorted(out)


def group_members(pgid):
    out = []
    for pid in _all_pids():
        st = _proc_stat(pid)
        if st and st[2] == pgid and st[0] not in ("Z", "X"):
            out.append(pid)
    return sorted(out)


# ---------------------------------------------------------------------------
# the server


def _has_opt(args, names):
    for a in args:
        if isinstance(a, str) and a.startswith("-") and a.split("=", 1)[0] in names:
            return True
    return False


class Server:
    def __init__(self, args, workdir, addr=None, ready_path="/", env=None, cwd=None, wait=True):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.user_args = [str(a) for a in args]
        self.auto_bind = addr is None
        self.addr = addr
        self.ready_path = ready_path
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.returncode = None
        self._n = 0
        if not os.access(BIN, os.X_OK):
            pytest.fail("mulefarm binary not found or not executable: %s (set MULEFARM_BIN)" % BIN)
        for attempt in range(3):
            self._spawn()
            if not wait:
                return
            ok = self._wait_ready()
            if ok:
                return
            # retry only a lost race for the port
            if self.auto_bind and "in use" in self.log_text() and attempt < 2:
                self._kill_group()
                continue
            text = self.log_text()
            self._kill_group()
            pytest.fail(
                "server did not come up (%s)\nargs: %s\n--- stderr ---\n%s"
                % (ok.reason if hasattr(ok, "reason") else "not ready", self.args, text)
            )

    # -- start -----------------------------------------------------------
    def _spawn(self):
        self._n += 1
        args = list(self.user_args)
        if self.auto_bind:
            port = free_port_number()
            self.addr = ("127.0.0.1", port)
            args = ["--http-socket", "127.0.0.1:%d" % port] + args
        if not _has_opt(args, ("--processes", "--workers", "-p")):
            args += ["--processes", "1"]
        if not _has_opt(args, ("--threads",)):
            args += ["--threads", "2"]
        self.args = [BIN] + EXTRA_ARGS + args
        self.log_path = self.workdir / ("server-%d.log" % self._n)
        self.out_path = self.workdir / ("server-%d.out" % self._n)
        env = dict(os.environ)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPATH", None)
        if self.env:
            env.update(self.env)
        self._err_f = open(self.log_path, "wb")
        self._out_f = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=self._out_f,
            stderr=self._err_f,
            cwd=str(self.cwd or self.workdir),
            env=env,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.returncode = None

    class _NotReady:
        def __init__(self, reason):
            self.reason = reason

        def __bool__(self):
            return False

    def _wait_ready(self):
        deadline = time.monotonic() + START_DEADLINE
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                return self._NotReady("exited with status %s" % self.proc.returncode)
            try:
                with httpclient.RawConn(self.addr, timeout=2.0) as c:
                    c.send(
                        "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                        % self.ready_path
                    )
                    line = c.read_line()
                    if line.startswith(b"HTTP/"):
                        return True
                    last = "no status line (%r)" % line
            except (OSError, socket.timeout) as e:
                last = repr(e)
            time.sleep(0.02)
        return self._NotReady("no answer within %.0f s: %s" % (START_DEADLINE, last))

    # -- properties --------------------------------------------------------
    @property
    def port(self):
        return None if isinstance(self.addr, str) else self.addr[1]

    @property
    def host(self):
        return None if isinstance(self.addr, str) else self.addr[0]

    @property
    def url(self):
        h = self.host
        if h and ":" in h:
            h = "[%s]" % h
        return "http://%s:%d" % (h, self.port)

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def wait_log(self, pattern, timeout=5.0, flags=0):
        """Poll the stderr log until <pattern> (regex) matches; returns the match."""
        rx = re.compile(pattern, flags)

        def check():
            return rx.search(self.log_text())

        deadline = time.monotonic() + timeout
        while True:
            m = check()
            if m:
                return m
            if time.monotonic() > deadline:
                pytest.fail("log never matched %r within %.1f s; log:\n%s" % (pattern, timeout, self.log_text()))
            time.sleep(0.02)

    def children(self):
        return children_of(self.pid)

    def running(self):
        return self.proc.poll() is None

    # -- requests ----------------------------------------------------------
    def http(self, timeout=10.0):
        if isinstance(self.addr, str):
            raise RuntimeError("http() needs a TCP listener")
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """One request over http.client; returns (status, headers(dict lower), body)."""
        c = self.http(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def get(self, path, headers=None, timeout=10.0):
        return self.request("GET", path, headers=headers, timeout=timeout)

    def get_json(self, path, headers=None):
        status, hdrs, body = self.get(path, headers)
        assert status == 200, (status, body, self.log_text())
        return json.loads(body)

    def raw(self, timeout=5.0):
        return httpclient.RawConn(self.addr, timeout)

    # -- stop ----------------------------------------------------------------
    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=10.0):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("server did not exit within %.1f s; log:\n%s" % (timeout, self.log_text()))
        return self.returncode

    def stop(self, sig=signal.SIGINT, timeout=10.0):
        """Send <sig> to the master and wait for it; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def _kill_group(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self._err_f, self._out_f):
            try:
                f.close()
            except Exception:
                pass

    def cleanup(self):
        if getattr(self, "proc", None) is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        self._kill_group()


class ServerFactory:
    def __init__(self, base):
        self.base = Path(base)
        self.servers = []

    def __call__(self, args, **kw):
        wd = self.base / ("srv%d" % len(self.servers))
        srv = Server.__new__(Server)
        self.servers.append(srv)
        Server.__init__(srv, args, wd, **kw)
        return srv

    def cleanup(self):
        for s in reversed(self.servers):
            s.cleanup()

    def crashes(self):
        """Log lines reporting a worker killed by a crash signal (SIGILL,
        SIGABRT, SIGBUS, SIGFPE, SIGSEGV); SIGKILL is what tests send."""
        out = []
        for s in self.servers:
            for line in s.log_lines():
                if CRASH_RX.search(line):
                    out.append(line)
        return out


CRASH_RX = re.compile(r"(killed by signal|signal) (4|6|7|8|11)\b|Segmentation fault|core dumped", re.I)


def _fail_on_crash(f):
    crashed = f.crashes()
    if crashed:
        pytest.fail(
            "a server process crashed (for a module-scoped server: somewhere in this module):\n%s\nservers: %s"
            % ("\n".join(crashed), "; ".join(" ".join(s.args[1:]) for s in f.servers)),
            pytrace=False,
        )


@pytest.fixture
def server(tmp_path):
    """Factory: server(args, addr=None, ready_path='/', env=None, cwd=None,
    wait=True) -> Server. Without addr, '--http-socket 127.0.0.1:<free>'
    is prepended; with addr, the args must bind it themselves."""
    f = ServerFactory(tmp_path)
    yield f
    f.cleanup()
    _fail_on_crash(f)


def module_server(name, args, **kw):
    """Build a module-scoped fixture called <name> serving <args> (a list or
    a callable returning one)."""

    @pytest.fixture(scope="module", name=name)
    def _fixture(tmp_path_factory):
        f = ServerFactory(tmp_path_factory.mktemp("modsrv"))
        srv = f(args() if callable(args) else args, **kw)
        yield srv
        f.cleanup()
        _fail_on_crash(f)

    return _fixture


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    # attach server logs to failure reports
    if rep.when == "call" and rep.failed:
        for name in item.fixturenames:
            if name in item.funcargs:
                obj = item.funcargs[name]
                servers = []
                if isinstance(obj, Server):
                    servers = [obj]
                elif isinstance(obj, ServerFactory):
                    servers = obj.servers
                for s in servers:
                    try:
                        rep.sections.append(("mulefarm stderr: %s" % " ".join(s.args[1:]), s.log_text()[-20000:]))
                    except Exception:
                        pass
