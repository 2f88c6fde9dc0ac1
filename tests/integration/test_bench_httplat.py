"""tests/bench/httplat, the open-loop latency client that decides the HTTP
benchmark's p99 rule: it must count what it claims to count."""
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import REPO, app_path

HTTPLAT = os.environ.get("HTTPLAT_BIN") or str(REPO / "build" / "bench" / "httplat")
BASIC = ["--wsgi-file", app_path("basic.py")]


def httplat(*args, timeout=20):
    out = subprocess.run([HTTPLAT, *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    res = {}
    for line in out.stdout.splitlines():
        k, v = line.split()
        res[k] = float(v)
    return res


class TinyServer:
    """A loopback HTTP server with a chosen misbehaviour, one thread per
    connection: `reply(conn)` is called for every request head received."""

    def __init__(self, reply):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        with c:
            while True:
                try:
                    data = c.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    if not self.reply(c):
                        return

    def close(self):
        self.stopping = True
        self.sock.close()


HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def test_keep_alive_reuses_connections(server):
    srv = server(BASIC)
    r = httplat("-c", "10", "-r", "400", "-d", "1", "-w", "0.2", "%s:%d" % srv.addr, "/")
    assert r["measured"] == 400
    assert r["errors"] == 0 and r["unsent"] == 0 and r["non2xx"] == 0
    assert r["connects"] <= 10 and r["retries"] == 0
    assert 0 < r["p50"] <= r["p99"] <= r["max"]


def test_close_mode_opens_a_connection_per_request(server):
    srv = server(BASIC)
    r = httplat("-C", "-c", "10", "-r", "400", "-d", "1", "-w", "0.2", "%s:%d" % srv.addr, "/")
    assert r["measured"] == 400 and r["errors"] == 0
    assert r["connects"] == r["sent"] == 480


def test_a_server_closing_without_saying_so_costs_retries_not_errors():
    def reply(c):  # uWSGI --http-socket: answer, then close, no Connection: close
        c.sendall(HELLO)
        return False

    ts = TinyServer(reply)
    try:
        r = httplat("-c", "4", "-r", "200", "-d", "1", "-w", "0", ts.addr, "/")
    finally:
        ts.close()
    # Every request needs a new connection. One written into a connection
    # the server had already closed is sent again on a new one, inside its
    # latency, and is no error.
    assert r["measured"] == 200 and r["errors"] == 0
    assert r["connects"] == 200


def test_latency_runs_from_when_a_request_was_due():
    # One connection, 50 ms per answer (20/s), 40 requests offered in 1 s:
    # a closed-loop client would report 50 ms each. Here the requests queue
    # behind each other, and the last one waits about one second.
    def reply(c):
        time.sleep(0.05)
        c.sendall(HELLO)
        return True

    ts = TinyServer(reply)
    try:
        r = httplat("-c", "1", "-r", "40", "-d", "1", "-w", "0", ts.addr, "/")
    finally:
        ts.close()
    assert r["measured"] == 40 and r["errors"] == 0 and r["unsent"] == 0
    assert r["p50"] > 200
    assert r["max"] > 800


def test_unanswered_requests_are_errors():
    ts = TinyServer(lambda c: True)  # reads requests, never answers
    try:
        r = httplat("-c", "5", "-r", "20", "-d", "0.5", "-w", "0", ts.addr, "/", timeout=30)
    finally:
        ts.close()
    assert r["measured"] == 0
    assert r["errors"] >= 5  # the in-flight ones, given up 2 s after the end


@pytest.mark.parametrize("bad", [["-r", "0"], ["-c", "0"], ["127.0.0.1"], []])
def test_bad_arguments_are_refused(bad):
    out = subprocess.run([HTTPLAT, *bad], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert "usage" in out.stderr or "HOST:PORT" in out.stderr
