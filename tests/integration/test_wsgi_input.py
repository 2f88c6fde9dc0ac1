"""wsgi.input: read(), read(n), readline(), readline(n), readlines(),
iteration, streaming, chunked bodies."""
import json
import os
from urllib.parse import quote

import pytest

from conftest import app_path, module_server, wait_for
from httpclient import chunk_encode, simple_request

srv = module_server("srv", ["--wsgi-file", app_path("basic.py"), "--processes", "1", "--threads", "2"])

BODY = b"line one\nsecond line is longer\n\nlast line without newline"


def post_input(srv, mode, body=BODY, n=None, chunked=False):
    path = "/input?mode=%s" % mode + ("&n=%d" % n if n is not None else "")
    with srv.raw() as c:
        if chunked:
            pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
            c.send(simple_request("POST", path, headers=[("Transfer-Encoding", "chunked")]) + chunk_encode(pieces))
        else:
            c.send(simple_request("POST", path, body=body))
        r = c.read_response()
    assert r.status == 200, r
    d = json.loads(r.body)
    assert all(t == "bytes" for t in d["types"]), d["types"]
    return [p.encode("latin-1") for p in d["parts"]]


LINES = [b"line one\n", b"second line is longer\n", b"\n", b"last line without newline"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_read_all(srv, chunked):
    assert post_input(srv, "read", chunked=chunked) == [BODY, b""]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_read_n(srv, chunked):
    parts = post_input(srv, "readn", n=10, chunked=chunked)
    assert b"".join(parts) == BODY
    assert all(len(p) <= 10 for p in parts)
    assert all(len(p) == 10 for p in parts[:-1]), [len(p) for p in parts]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_readline(srv, chunked):
    assert post_input(srv, "readline", chunked=chunked) == LINES


def test_readline_n(srv):
    parts = post_input(srv, "readlinen", n=5)
    assert b"".join(parts) == BODY
    assert all(len(p) <= 5 for p in parts)
    assert parts[:3] == [b"line ", b"one\n", b"secon"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_readlines(srv, chunked):
    assert post_input(srv, "readlines", chunked=chunked) == LINES


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_iteration(srv, chunked):
    assert post_input(srv, "iter", chunked=chunked) == LINES


def test_mixed_reads(srv):
    assert post_input(srv, "mixed") == [b"lin", b"e one\n", b"second line is longer\n\nlast line without newline"]


def test_empty_body(srv):
    assert post_input(srv, "read", body=b"") == [b"", b""]


def test_get_without_body_reads_empty(srv):
    with srv.raw() as c:
        c.send(simple_request("GET", "/input?mode=read"))
        r = c.read_response()
    assert json.loads(r.body)["parts"] == ["", ""]


def test_read_does_not_consume_next_pipelined_request(srv):
    with srv.raw() as c:
        c.send(simple_request("POST", "/echo", body=b"exact body") + simple_request("GET", "/uri/next"))
        assert c.read_response().body == b"exact body"
        assert c.read_response().body == b"/uri/next"


def test_binary_body_roundtrip(srv):
    data = bytes(range(256)) * 50
    status, _, body = srv.request("POST", "/echo", body=data)
    assert status == 200 and body == data


# A server may gather a small body (or the first part of a large one) before
# calling the app; a large body must still be streamed, not buffered whole.
FIRST = b"first" + b"f" * (512 * 1024 - 5)
REST = b"r" * (1536 * 1024)


@pytest.mark.timeout(30)
def test_input_is_streamed(srv, tmp_path):
    """The app gets control before the whole (large) body has arrived."""
    marker = str(tmp_path / "first-bytes")
    with srv.raw(timeout=15) as c:
        c.send(
            b"POST /partial-read?n=5&marker=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (quote(marker, safe="").encode(), len(FIRST) + len(REST))
            + FIRST
        )
        wait_for(lambda: os.path.exists(marker), timeout=5, what="the app to read the start of the body")
        with open(marker) as f:
            assert f.read() == "first"
        c.send(REST)
        r = c.read_response()
    assert r.status == 200
    assert r.body == FIRST + REST


@pytest.mark.timeout(30)
def test_chunked_input_is_streamed(srv, tmp_path):
    marker = str(tmp_path / "first-chunk")
    with srv.raw(timeout=15) as c:
        c.send(
            b"POST /partial-read?n=5&marker=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            % quote(marker, safe="").encode()
            + b"%x\r\n" % len(FIRST)
            + FIRST
            + b"\r\n"
        )
        wait_for(lambda: os.path.exists(marker), timeout=5, what="the app to read the first chunk")
        c.send(b"%x\r\n" % len(REST) + REST + b"\r\n0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    assert r.body == FIRST + REST


@pytest.mark.timeout(60)
def test_large_upload_hashed(srv):
    import hashlib

    data = os.urandom(5 * 1024 * 1024)
    status, _, body = srv.request("POST", "/hash", body=data, timeout=30)
    assert status == 200
    assert body.decode() == "%d %s" % (len(data), hashlib.sha256(data).hexdigest())
