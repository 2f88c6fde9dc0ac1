"""Request size limits (414, 431, 413), stalled clients (--socket-timeout),
and idle connections not pinning Python threads."""
import socket
import time

import pytest

from conftest import app_path, module_server
import httpclient
from httpclient import chunk_encode, simple_request

BASIC = ["--wsgi-file", app_path("basic.py")]

limits = module_server("limits", BASIC + ["--limit-post", "100", "--processes", "1", "--threads", "2"])


def _expect_status(srv, raw, status, closed=None):
    with srv.raw() as c:
        c.send(raw)
        try:
            r = c.read_response()
        except httpclient.ConnectionClosed:
            pytest.fail("connection closed without a %d response" % status)
        assert r.status == status, r
        if closed:
            assert c.is_closed(3)
        return r


# -- request line / headers ------------------------------------------------


def test_long_request_line_414(limits):
    _expect_status(limits, simple_request("GET", "/" + "a" * 5000), 414)


def test_request_line_under_limit_ok(limits):
    r = _expect_status(limits, simple_request("GET", "/uri/" + "a" * 3000), 200)
    assert r.body == b"/uri/" + b"a" * 3000


def test_too_many_headers_431(limits):
    headers = [("X-H%d" % i, "v") for i in range(101)]
    _expect_status(limits, simple_request("GET", "/", headers=headers), 431)


def test_100_headers_ok(limits):
    headers = [("X-H%d" % i, "v") for i in range(99)]  # + Host = 100
    _expect_status(limits, simple_request("GET", "/", headers=headers), 200)


def test_header_block_over_buffer_size_431(limits):
    _expect_status(limits, simple_request("GET", "/", headers=[("X-Big", "b" * 5000)]), 431)


def test_many_medium_headers_over_buffer_size_431(limits):
    headers = [("X-M%d" % i, "m" * 500) for i in range(10)]
    _expect_status(limits, simple_request("GET", "/", headers=headers), 431)


def test_buffer_size_option_raises_limit(server):
    srv = server(BASIC + ["--buffer-size", "16384"])
    r = _expect_status(srv, simple_request("GET", "/", headers=[("X-Big", "b" * 5000)]), 200)
    assert r.body == b"hello\n"
    r = _expect_status(srv, simple_request("GET", "/uri/" + "a" * 6000), 200)
    assert len(r.body) == 6005


def test_buffer_size_option_lowers_limit(server):
    srv = server(BASIC + ["--buffer-size", "1024"])
    _expect_status(srv, simple_request("GET", "/", headers=[("X-Big", "b" * 1500)]), 431)
    _expect_status(srv, simple_request("GET", "/" + "a" * 1500), 414)


# -- body limit ------------------------------------------------------------


def test_body_over_limit_post_413(limits):
    # headers only: the server must answer without waiting for the body
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n"
    _expect_status(limits, raw, 413)


def test_body_at_limit_post_ok(limits):
    r = _expect_status(limits, simple_request("POST", "/echo", body=b"y" * 100), 200)
    assert r.body == b"y" * 100


def test_limit_post_with_expect_100_continue(limits):
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    r = _expect_status(limits, raw, 413)
    assert r.status == 413


def test_chunked_body_over_limit_post(limits):
    raw = simple_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")]) + chunk_encode(
        [b"c" * 80, b"c" * 80]
    )
    with limits.raw() as c:
        c.send(raw)
        try:
            r = c.read_response()
        except httpclient.ConnectionClosed:
            return  # closed without a response: acceptable
        assert r.status == 413, r


# -- stalled clients ---------------------------------------------------------


@pytest.mark.timeout(20)
def test_stall_mid_headers_times_out(server):
    srv = server(BASIC + ["--socket-timeout", "1"])
    with srv.raw(timeout=8) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        t0 = time.monotonic()
        try:
            r = c.read_response()
            assert r.status == 408, r
            closed = c.is_closed(3)
        except httpclient.ConnectionClosed:
            closed = True
        elapsed = time.monotonic() - t0
        assert closed
        assert 0.5 <= elapsed <= 3.0, "took %.2f s with --socket-timeout 1" % elapsed


@pytest.mark.timeout(20)
def test_stall_mid_body_times_out(server):
    srv = server(BASIC + ["--socket-timeout", "1"])
    with srv.raw(timeout=8) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        t0 = time.monotonic()
        try:
            r = c.read_response()
            assert r.status != 200, r
            assert r.status in (400, 408, 500), r
            closed = c.is_closed(3)
        except httpclient.ConnectionClosed:
            closed = True
        elapsed = time.monotonic() - t0
        assert closed
        assert 0.5 <= elapsed <= 3.5, "took %.2f s with --socket-timeout 1" % elapsed
    # the server keeps serving
    assert srv.get("/")[0] == 200


def _prompt_get(srv, limit=2.0):
    t0 = time.monotonic()
    with srv.raw(timeout=limit + 3) as c:
        c.send(simple_request("GET", "/uri/probe"))
        try:
            r = c.read_response()
        except socket.timeout:
            pytest.fail("a new request was not answered within %.1f s" % (limit + 3))
    elapsed = time.monotonic() - t0
    assert r.status == 200 and r.body == b"/uri/probe"
    assert elapsed < limit, "new request took %.2f s: idle connections are occupying the thread" % elapsed


def _open_many(srv, n, first_bytes=None, do_request=False):
    conns = []
    for i in range(n):
        c = srv.raw(timeout=5)
        conns.append(c)
        if do_request:
            c.send(simple_request("GET", "/uri/idle%d" % i))
            r = c.read_response()
            assert r.status == 200
        elif first_bytes:
            c.send(first_bytes)
    return conns


@pytest.mark.timeout(30)
def test_idle_keepalive_connections_do_not_block(server):
    srv = server(BASIC + ["--processes", "1", "--threads", "1", "--socket-timeout", "10"])
    conns = _open_many(srv, 20, do_request=True)
    try:
        _prompt_get(srv)
        # and the idle connections are still usable afterwards
        conns[0].send(simple_request("GET", "/uri/reuse"))
        assert conns[0].read_response().body == b"/uri/reuse"
    finally:
        for c in conns:
            c.close()


@pytest.mark.timeout(30)
def test_connected_but_silent_clients_do_not_block(server):
    srv = server(BASIC + ["--processes", "1", "--threads", "1", "--socket-timeout", "10"])
    conns = _open_many(srv, 20)
    try:
        time.sleep(0.1)  # let the server accept them
        _prompt_get(srv)
    finally:
        for c in conns:
            c.close()


@pytest.mark.timeout(30)
def test_half_sent_headers_do_not_block(server):
    srv = server(BASIC + ["--processes", "1", "--threads", "1", "--socket-timeout", "10"])
    conns = _open_many(srv, 5, first_bytes=b"GET /uri/stalled HTTP/1.1\r\nHost: x\r\nX-Half: ")
    try:
        time.sleep(0.1)
        _prompt_get(srv)
    finally:
        for c in conns:
            c.close()


@pytest.mark.timeout(30)
def test_half_sent_body_does_not_block_other_clients(server):
    srv = server(BASIC + ["--processes", "1", "--threads", "2", "--socket-timeout", "10"])
    # one client stalls mid-body while a thread may be busy reading it; the
    # second thread must still serve others
    conns = _open_many(srv, 1, first_bytes=b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    try:
        time.sleep(0.1)
        _prompt_get(srv)
    finally:
        for c in conns:
            c.close()
