"""Malformed requests (RFC 9112 / request smuggling vectors): each must get
400 (501 for unknown transfer codings) and the connection must be closed."""
import pytest

from conftest import app_path, module_server
import httpclient

srv = module_server("srv", ["--wsgi-file", app_path("basic.py"), "--processes", "1", "--threads", "2"])

H = b"Host: x\r\n"


def post(headers, body=b""):
    return b"POST /echo HTTP/1.1\r\n" + H + headers + b"\r\n" + body


BAD_400 = {
    # framing conflicts
    "cl-and-te": post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "te-and-cl": post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"),
    "dup-cl-different": post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello"),
    "dup-cl-same": post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
    "cl-list": post(b"Content-Length: 5, 6\r\n", b"hello"),
    # invalid Content-Length values
    "cl-alpha": post(b"Content-Length: abc\r\n"),
    "cl-negative": post(b"Content-Length: -5\r\n"),
    "cl-plus": post(b"Content-Length: +5\r\n", b"hello"),
    "cl-hex": post(b"Content-Length: 0x5\r\n", b"hello"),
    "cl-inner-space": post(b"Content-Length: 5 5\r\n", b"hello"),
    "cl-empty": post(b"Content-Length: \r\n"),
    "cl-overflow": post(b"Content-Length: 99999999999999999999999999\r\n"),
    # bad chunk sizes
    "chunk-size-alpha": post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-negative": post(b"Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-empty": post(b"Transfer-Encoding: chunked\r\n", b"\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-0x": post(b"Transfer-Encoding: chunked\r\n", b"0x5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-overflow": post(b"Transfer-Encoding: chunked\r\n", b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    "chunk-data-no-crlf": post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhelloXX0\r\n\r\n"),
    # bad chunk extensions
    "chunk-ext-empty": post(b"Transfer-Encoding: chunked\r\n", b"5;\r\nhello\r\n0\r\n\r\n"),
    "chunk-ext-no-name": post(b"Transfer-Encoding: chunked\r\n", b"5;=v\r\nhello\r\n0\r\n\r\n"),
    "chunk-ext-bad-char": post(b"Transfer-Encoding: chunked\r\n", b"5;a@b\r\nhello\r\n0\r\n\r\n"),
    "chunk-ext-unterminated-quote": post(b"Transfer-Encoding: chunked\r\n", b'5;a="x\r\nhello\r\n0\r\n\r\n'),
    # header syntax
    "obs-fold": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n  folded\r\n\r\n",
    "obs-fold-tab": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n\tfolded\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n",
    "space-before-colon-cl": b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length : 5\r\n\r\nhello",
    "tab-before-colon": b"GET / HTTP/1.1\r\n" + H + b"X-A\t: b\r\n\r\n",
    "name-paren": b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n",
    "name-at": b"GET / HTTP/1.1\r\n" + H + b"X@A: b\r\n\r\n",
    "name-quote": b"GET / HTTP/1.1\r\n" + H + b'X"A: b\r\n\r\n',
    "name-space": b"GET / HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n",
    "name-empty": b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n",
    "no-colon": b"GET / HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n",
    "bare-cr-in-value": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\rc\r\n\r\n",
    "bare-cr-line-end": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\rX-B: c\r\n\r\n",
    "bare-cr-request-line": b"GET / HTTP/1.1\rHost: x\r\n\r\n",
    "garbage-request-line": b"\x01\x02garbage\r\n" + H + b"\r\n",
}


@pytest.mark.parametrize("raw", list(BAD_400.values()), ids=list(BAD_400.keys()))
def test_rejected_with_400_and_closed(srv, raw):
    with srv.raw() as c:
        c.send(raw)
        try:
            r = c.read_response()
        except httpclient.ConnectionClosed:
            pytest.fail("connection closed without a 400 response")
        assert r.status == 400, r
        assert c.is_closed(3), "connection must be closed after a 400"


@pytest.mark.parametrize(
    "te",
    [b"gzip", b"deflate", b"gzip, chunked", b"identity"],
    ids=["gzip", "deflate", "gzip-chunked", "identity"],
)
def test_unknown_transfer_encoding_501(srv, te):
    with srv.raw() as c:
        c.send(post(b"Transfer-Encoding: " + te + b"\r\n", b"0\r\n\r\n"))
        try:
            r = c.read_response()
        except httpclient.ConnectionClosed:
            pytest.fail("connection closed without a 501 response")
        assert r.status == 501, r
        assert c.is_closed(3)


def test_smuggled_request_not_executed(srv):
    # CL.TE smuggling attempt: must not yield a second response for /uri/smuggled
    body = b"0\r\n\r\nGET /uri/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = post(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(body), body)
    with srv.raw() as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == 400
        assert c.is_closed(3)
        assert b"/uri/smuggled" not in getattr(c, "extra", b"")


def test_valid_requests_after_rejects(srv):
    # the worker survived all of the above
    status, _, body = srv.get("/")
    assert status == 200 and body == b"hello\n"
    assert srv.running()
