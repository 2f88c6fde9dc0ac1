"""Helpers of the database-farm tests (test_dbfarm.py, test_handler.py):
mulefarm-handler processes, the effects table, and the web host.

    h = Handler(tmp_path, ["--ini", cfg], env)   # starts build/mulefarm-handler
    h.wait_log(r"spawned mule 2")
    h.stop()                                    # SIGTERM, returns the status
"""
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import APPS, REPO, group_members

HANDLER_BIN = os.environ.get("MULEFARM_HANDLER_BIN") or str(REPO / "build" / "mulefarm-handler")
DB_MULE = str(APPS / "db_mule.py")


def need_handler():
    if not os.access(HANDLER_BIN, os.X_OK):
        pytest.fail("mulefarm-handler not found: %s (make, or set MULEFARM_HANDLER_BIN)" % HANDLER_BIN)


def effects_db(pg, name):
    """A fresh database <name> with the effects table; returns its DSN."""
    dsn = pg.create_db(name)
    pg.sql(
        "CREATE TABLE effects (key text NOT NULL, handler text, pid int, attempt int,"
        " note text, at timestamptz NOT NULL DEFAULT clock_timestamp())",
        db=name,
    )
    return dsn


def effect_counts(pg, db):
    out = pg.sql("SELECT key, count(*) FROM effects GROUP BY key", db=db)
    return {k: int(n) for k, n in (line.split("|") for line in out.splitlines() if line)}


def handler_args(dsn, name, mules=2, lease=30, extra=()):
    ids = ",".join(str(i) for i in range(1, mules + 1))
    args = ["--db-farm", "jobs", "--dbqueue", dsn, "--handler-name", name,
            "--dbqueue-lease", str(lease), "--farm", "jobs:" + ids]
    for _ in range(mules):
        args += ["--mule", DB_MULE]
    return args + list(extra)


class Handler:
    def __init__(self, workdir, args, env=None, name="handler"):
        need_handler()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / ("%s.log" % name)
        self._log = open(self.log_path, "wb")
        e = dict(os.environ)
        e["PYTHONDONTWRITEBYTECODE"] = "1"
        e.update(env or {})
        self.args = [HANDLER_BIN] + [str(a) for a in args]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=str(self.dir), env=e,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def log_text(self):
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=10.0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text())
            if m:
                return m
            if self.proc.poll() is not None and not rx.search(self.log_text()):
                pytest.fail("mulefarm-handler exited (%s) before logging %r:\n%s"
                            % (self.proc.returncode, pattern, self.log_text()))
            if time.monotonic() > deadline:
                pytest.fail("handler log never matched %r in %.0f s:\n%s" % (pattern, timeout, self.log_text()))
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("mulefarm-handler did not exit in %.0f s:\n%s" % (timeout, self.log_text()))

    def kill_all(self):
        """SIGKILL the whole instance (master, keeper, mules) at once."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)
        self._log.close()


@pytest.fixture
def handlers(tmp_path):
    """Factory: handlers(args, env=None) -> Handler; all stopped at teardown."""
    made = []

    def make(args, env=None):
        h = Handler(tmp_path / ("h%d" % len(made)), args, env, name="handler%d" % len(made))
        made.append(h)
        return h

    yield make
    for h in made:
        h.cleanup()
    crashed = [line for h in made for line in h.log_text().splitlines()
               if re.search(r"killed by signal (4|6|7|8|11)\b|Segmentation fault", line)]
    if crashed:
        pytest.fail("a handler process crashed:\n" + "\n".join(crashed), pytrace=False)


def post(srv, path, body=b"", timeout=60):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    req = urllib.request.Request(srv.url + path, data=body, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def web_args(dsn, extra=()):
    return ["--wsgi-file", str(APPS / "dbfarm_app.py"), "--db-farm", "jobs", "--dbqueue", dsn,
            "--handler-name", "web"] + list(extra)


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.1)
