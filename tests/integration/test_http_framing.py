"""HTTP/1.1 message framing: keep-alive, pipelining, chunked bodies,
100-continue, HEAD, response framing."""
import socket

import pytest

from conftest import app_path, module_server
from httpclient import chunk_encode, simple_request

srv = module_server("srv", ["--wsgi-file", app_path("basic.py"), "--processes", "1", "--threads", "2"])


def test_simple_get_http_client(srv):
    status, headers, body = srv.get("/")
    assert status == 200
    assert body == b"hello\n"
    assert headers["content-length"] == "6"
    assert headers["content-type"] == "text/plain"


def test_keepalive_is_default_for_http11(srv):
    with srv.raw() as c:
        port = c.local_port()
        for i in range(3):
            c.send(simple_request("GET", "/uri/%d" % i))
            r = c.read_response()
            assert r.status == 200
            assert r.body == b"/uri/%d" % i
        assert not c.is_closed(0.3)
        assert c.local_port() == port


def test_http11_connection_close_closes(srv):
    with srv.raw() as c:
        c.send(simple_request("GET", "/", close=True))
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello\n"
        assert c.is_closed(3)


def test_http10_closes_by_default(srv):
    with srv.raw() as c:
        c.send(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello\n"
        assert c.is_closed(3)


@pytest.mark.parametrize(
    "request_bytes",
    [simple_request("GET", "/", close=True), b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"],
    ids=["http11-close", "http10"],
)
def test_last_response_carries_the_fin(srv, request_bytes):
    # A response the client asked to be the last travels with the FIN in
    # its last segment. Besides data the client then receives only the
    # SYN-ACK and the ACK of its request; a FIN sent apart is a third.
    srv.get("/")  # warm: the answer comes well within the delayed-ACK time
    with srv.raw() as c:
        c.send(request_bytes)
        assert c.read_until_close().endswith(b"\r\n\r\nhello\n")
        assert c.segments_without_data() <= 2


def test_bytes_past_a_closing_request_do_not_cost_the_response(srv):
    # The client sends more after asking to close. The server leaves it
    # unread, so its close() resets the connection: the response must be
    # on its way by then, not held back for the FIN.
    with srv.raw() as c:
        try:
            c.send(simple_request("GET", "/", close=True) + b"X" * 32768)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reset came first; what was received still counts
        data = c.read_until_close()
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nhello\n"), data[:200]


def test_http10_keepalive_when_asked(srv):
    with srv.raw() as c:
        for i in range(2):
            c.send(b"GET /uri/k%d HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" % i)
            r = c.read_response()
            assert r.status == 200
            assert r.body == b"/uri/k%d" % i
            # a 1.0 client only knows the connection persists if told so
            assert (r.header("Connection") or "").lower() == "keep-alive", r
        assert not c.is_closed(0.3)


def test_pipelined_requests_answered_in_order(srv):
    reqs = (
        simple_request("GET", "/uri/first")
        + simple_request("POST", "/echo", body=b"second-body", headers=[("Content-Type", "text/plain")])
        + simple_request("GET", "/uri/third")
    )
    with srv.raw() as c:
        c.send(reqs)
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
    assert (r1.status, r1.body) == (200, b"/uri/first")
    assert (r2.status, r2.body) == (200, b"second-body")
    assert (r3.status, r3.body) == (200, b"/uri/third")


def test_pipelined_slow_then_fast_stays_in_order(srv):
    reqs = simple_request("GET", "/sleep?s=0.3") + simple_request("GET", "/uri/fast")
    with srv.raw() as c:
        c.send(reqs)
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.body == b"slept\n"
    assert r2.body == b"/uri/fast"


def test_chunked_request_body(srv):
    body = chunk_encode([b"hello ", b"chunked ", b"world"])
    req = simple_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")]) + body
    with srv.raw() as c:
        c.send(req)
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"hello chunked world"
        # connection still usable afterwards
        c.send(simple_request("GET", "/uri/after"))
        assert c.read_response().body == b"/uri/after"


def test_chunked_request_body_with_extensions_and_trailers(srv):
    body = b"5;name=value\r\nhello\r\n6;quoted=\"a b\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    req = simple_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")]) + body
    with srv.raw() as c:
        c.send(req)
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"hello world"
        c.send(simple_request("GET", "/uri/after"))
        assert c.read_response().body == b"/uri/after"


def test_chunked_request_body_sent_in_pieces(srv):
    body = chunk_encode([b"a" * 1000, b"b" * 3000, b"c"])
    with srv.raw() as c:
        c.send(simple_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")]))
        for i in range(0, len(body), 997):
            c.send(body[i : i + 997])
        r = c.read_response()
    assert r.status == 200
    assert r.body == b"a" * 1000 + b"b" * 3000 + b"c"


def test_expect_100_continue(srv):
    with srv.raw(timeout=3) as c:
        c.send(
            simple_request(
                "POST",
                "/echo",
                headers=[("Content-Length", "11"), ("Expect", "100-continue"), ("Content-Type", "text/plain")],
            )
        )
        try:
            interim = c.read_response(skip_interim=False)
        except socket.timeout:
            pytest.fail("no '100 Continue' before the body was sent")
        assert interim.status == 100
        assert interim.raw_head.startswith(b"HTTP/1.1 100")
        c.send(b"hello there")
        final = c.read_response()
        assert final.status == 200
        assert final.body == b"hello there"


def test_expect_100_continue_body_sent_without_waiting(srv):
    # clients may send the body right away (curl does after a delay)
    with srv.raw(timeout=5) as c:
        c.send(
            simple_request("POST", "/echo", headers=[("Expect", "100-continue")], body=b"eager body")
            + simple_request("GET", "/uri/after")
        )
        r = c.read_response()
        assert r.status == 200 and r.body == b"eager body"
        n = c.read_response()
        assert n.status == 200 and n.body == b"/uri/after"


def test_expect_100_continue_http10_not_sent(srv):
    # 100 (Continue) must not be sent to an HTTP/1.0 client
    with srv.raw(timeout=5) as c:
        c.send(b"POST /echo HTTP/1.0\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody")
        r = c.read_response(skip_interim=False)
        assert r.status == 200 and r.body == b"body", r


def test_head_same_headers_no_body(srv):
    get = srv.raw()
    with get:
        get.send(simple_request("GET", "/"))
        g = get.read_response()
    with srv.raw() as c:
        # HEAD followed by GET on the same connection: if the server sent a
        # body for HEAD, the second response would not parse.
        c.send(simple_request("HEAD", "/") + simple_request("GET", "/uri/next"))
        h = c.read_response("HEAD")
        assert h.status == 200
        assert h.header("Content-Length") == g.header("Content-Length") == "6"
        assert h.header("Content-Type") == g.header("Content-Type")
        n = c.read_response()
        assert n.status == 200 and n.body == b"/uri/next", n
        assert c.buf == b"", "unexpected extra bytes after the responses"


def test_head_on_streaming_response_has_no_body(srv):
    with srv.raw() as c:
        c.send(simple_request("HEAD", "/chunked") + simple_request("GET", "/uri/next"))
        h = c.read_response("HEAD")
        assert h.status == 200
        n = c.read_response()
        assert n.status == 200 and n.body == b"/uri/next", n


def test_response_uses_app_content_length(srv):
    with srv.raw() as c:
        c.send(simple_request("GET", "/big?n=100000&cl=1"))
        r = c.read_response()
    assert r.framing == "length"
    assert r.header("Content-Length") == "100000"
    assert not r.has_header("Transfer-Encoding")
    assert len(r.body) == 100000 and r.complete


def test_response_chunked_without_content_length_http11(srv):
    with srv.raw() as c:
        c.send(simple_request("GET", "/chunked"))
        r = c.read_response()
        assert r.status == 200
        assert r.framing == "chunked", r
        assert r.complete
        assert r.body == b"part1-part2-part3"
        # keep-alive survives a chunked response
        c.send(simple_request("GET", "/uri/again"))
        assert c.read_response().body == b"/uri/again"


def test_big_chunked_response(srv):
    with srv.raw(timeout=10) as c:
        c.send(simple_request("GET", "/big?n=3000000"))
        r = c.read_response()
    assert r.framing == "chunked" and r.complete
    assert len(r.body) == 3000000
    assert r.body[:16] == b"0123456789abcdef"


def test_response_close_delimited_http10(srv):
    with srv.raw() as c:
        c.send(b"GET /chunked HTTP/1.0\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert "chunked" not in (r.header("Transfer-Encoding") or "").lower()
        assert r.body == b"part1-part2-part3"
        assert r.complete
        assert r.framing in ("close", "length")
        if r.framing == "close":
            assert c.eof


def test_http10_keepalive_unknown_length_not_chunked(srv):
    with srv.raw() as c:
        c.send(b"GET /chunked HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert "chunked" not in (r.header("Transfer-Encoding") or "").lower()
        assert r.body == b"part1-part2-part3"


def test_post_with_content_length_http_client(srv):
    status, _, body = srv.request("POST", "/echo", body=b"x=1&y=2", headers={"Content-Type": "text/plain"})
    assert status == 200 and body == b"x=1&y=2"


def test_body_not_read_by_app_does_not_break_keepalive(srv):
    # the app ignores the body; the next request on the connection must
    # still be parsed correctly (the server discards the unread body)
    with srv.raw() as c:
        c.send(simple_request("POST", "/uri/ignored", body=b"GET /evil HTTP/1.1\r\nHost: x\r\n\r\n"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"/uri/ignored"
        c.send(simple_request("GET", "/uri/second"))
        r2 = c.read_response()
        assert r2.body == b"/uri/second"


@pytest.mark.parametrize("code", ["204", "304"])
def test_no_body_statuses_not_chunked(srv, code):
    with srv.raw() as c:
        c.send(simple_request("GET", "/nocontent?code=" + code) + simple_request("GET", "/uri/after"))
        r = c.read_response()
        assert r.status == int(code)
        assert not r.has_header("Transfer-Encoding"), r
        n = c.read_response()
        assert n.status == 200 and n.body == b"/uri/after", "bytes after a %s response broke framing: %r" % (code, n)


@pytest.mark.parametrize(
    "te,body",
    [
        ("Chunked", b"5\r\nhello\r\n0\r\n\r\n"),
        ("chunked", b"A\r\n0123456789\r\n0\r\n\r\n"),
        ("chunked", b"a\r\n0123456789\r\n0\r\n\r\n"),
        ("chunked", b"000005\r\nhello\r\n0000\r\n\r\n"),
    ],
    ids=["coding-case-insensitive", "hex-upper", "hex-lower", "leading-zeros"],
)
def test_chunked_syntax_variants_accepted(srv, te, body):
    with srv.raw() as c:
        c.send(simple_request("POST", "/echo", headers=[("Transfer-Encoding", te)]) + body)
        r = c.read_response()
    assert r.status == 200, r
    assert r.body in (b"hello", b"0123456789")


def test_content_length_zero_post(srv):
    with srv.raw() as c:
        c.send(simple_request("POST", "/echo", headers=[("Content-Length", "0")]) + simple_request("GET", "/uri/z"))
        r = c.read_response()
        assert r.status == 200 and r.body == b""
        assert c.read_response().body == b"/uri/z"


@pytest.mark.timeout(40)
def test_many_parallel_clients(server):
    import threading

    s = server(["--wsgi-file", app_path("basic.py"), "--processes", "2", "--threads", "2"])
    results = []
    lock = threading.Lock()

    def client(i):
        try:
            st, _, body = s.get("/uri/c%d" % i, timeout=15)
            ok = st == 200 and body == b"/uri/c%d" % i
        except Exception as e:  # collected below
            ok = repr(e)
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 60
    assert all(r is True for r in results), [r for r in results if r is not True][:5]
