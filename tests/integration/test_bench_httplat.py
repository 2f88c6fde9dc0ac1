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
    connection: `reply(conn, n)` is called for every request head received,
    n counting the requests of that connection from 1; it returns False to
    close the connection."""

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
        n = 0
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
                    n += 1
                    if not self.reply(c, n):
                        return

    def close(self):
        self.stopping = True
        self.sock.close()


HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def httplat_against(reply, *args, timeout=20):
    """httplat ARGS... against a TinyServer answering with `reply`."""
    ts = TinyServer(reply)
    try:
        return httplat(*args, ts.addr, "/", timeout=timeout)
    finally:
        ts.close()


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


def test_a_server_closing_after_each_answer_costs_a_connection_each():
    def reply(c, n):  # uWSGI --http-socket: answer, then close, no Connection: close
        c.sendall(HELLO)
        return False

    r = httplat_against(reply, "-c", "4", "-r", "200", "-d", "1", "-w", "0")
    assert r["measured"] == 200 and r["errors"] == 0
    assert r["connects"] == 200


def test_a_request_written_into_a_closed_connection_is_sent_again():
    # The server answers the first request of each connection and closes on
    # the second, unanswered: the client only learns it after writing it.
    def reply(c, n):
        if n > 1:
            return False
        c.sendall(HELLO)
        return True

    r = httplat_against(reply, "-c", "4", "-r", "200", "-d", "1", "-w", "0")
    assert r["measured"] == 200 and r["errors"] == 0
    # each connection serves one request and refuses the next one
    assert r["retries"] >= 150
    assert r["connects"] >= r["retries"]


def test_latency_runs_from_when_a_request_was_due():
    # One connection, 50 ms per answer (20/s), 40 requests offered in 1 s:
    # a closed-loop client would report 50 ms each. Here the requests queue
    # behind each other, and the last one waits about one second.
    def reply(c, n):
        time.sleep(0.05)
        c.sendall(HELLO)
        return True

    r = httplat_against(reply, "-c", "1", "-r", "40", "-d", "1", "-w", "0")
    assert r["measured"] == 40 and r["errors"] == 0 and r["unsent"] == 0
    assert r["p50"] > 200
    assert r["max"] > 800


def test_unanswered_requests_are_errors():
    # reads requests, never answers
    r = httplat_against(lambda c, n: True, "-c", "5", "-r", "20", "-d", "0.5", "-w", "0", timeout=30)
    assert r["measured"] == 0
    assert r["errors"] >= 5  # the in-flight ones, given up 2 s after the end


@pytest.mark.parametrize("bad", [["-r", "0"], ["-c", "0"], ["127.0.0.1"], []])
def test_bad_arguments_are_refused(bad):
    out = subprocess.run([HTTPLAT, *bad], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert "usage" in out.stderr or "HOST:PORT" in out.stderr
