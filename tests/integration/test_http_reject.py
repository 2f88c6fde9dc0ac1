"""Malformed requests (RFC 9112 / request smuggling vectors): each must get
400 (501 for unknown transfer codings) and the connection must be closed.

Regression cases for bugs that hit other HTTP servers, by family (the unit
twins are listed at the top of tests/unit/server/test_http.c):

  CL.TE / TE.CL desync: BAD_400 cl-and-te, te-and-cl;
      test_smuggled_request_not_executed; SMUGGLING cl-te, te-cl
  CL.CL desync (duplicate / list-form Content-Length): BAD_400 dup-cl-*,
      cl-list*; SMUGGLING cl-cl-*
  lenient integer parsing of Content-Length ("0x", "+", "-", whitespace):
      BAD_400 cl-*; test_content_length_ows_is_not_part_of_the_value
  lenient integer parsing of chunk-size: BAD_400 chunk-size-*;
      SMUGGLING chunk-size-0x0, -minus-0, -plus-0, -space-*
  chunk-size overflow / wraparound (> 2^62, 16+ hex digits, 2^64 + n):
      BAD_400 chunk-size-overflow, chunk-size-2^*; SMUGGLING chunk-size-wraps-*
  bare-LF / bare-CR line endings: BAD_400 bare-lf-*, bare-cr-*;
      SMUGGLING bare-lf-*, chunk-bare-lf*, last-chunk-bare-lf
  empty or invalid field names (": value", "name :", obs-fold):
      BAD_400 name-*, space-before-colon*, obs-fold*; SMUGGLING te-*
  chunked body smuggling (malformed chunk framing, request as trailer):
      SMUGGLING chunk-*, trailer-*;
      test_smuggling_request_inside_chunk_data_is_body
  Range integer overflow (static files): test_smuggling_range_overflow_*
"""
import pytest

from conftest import ServerFactory, _fail_on_crash, app_path, module_server
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
    # bare LF line endings (lines end in CRLF only)
    "bare-lf-request-line": b"GET /uri/a HTTP/1.1\n" + H + b"\r\n",
    "bare-lf-header-line": b"GET /uri/a HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "bare-lf-final-line": b"GET /uri/a HTTP/1.1\r\n" + H + b"\n",
    "bare-lf-everywhere": b"GET /uri/a HTTP/1.1\nHost: x\n\n",
    # more Content-Length forms: list of equal values, bare "0x", signed
    # zero, whitespace that is not OWS, 2^64 + 5 (wraps to 5)
    "cl-list-same": post(b"Content-Length: 5, 5\r\n", b"hello"),
    "cl-list-same-no-ows": post(b"Content-Length: 5,5\r\n", b"hello"),
    "cl-0x-alone": post(b"Content-Length: 0x\r\n"),
    "cl-plus-zero": post(b"Content-Length: +0\r\n"),
    "cl-minus-zero": post(b"Content-Length: -0\r\n"),
    "cl-vertical-tab": post(b"Content-Length: 5\x0b\r\n", b"hello"),
    "cl-form-feed": post(b"Content-Length: \x0c5\r\n", b"hello"),
    "cl-2^64-plus-5": post(b"Content-Length: 18446744073709551621\r\n", b"hello"),
    # more chunk sizes: sign, whitespace either side, sizes past 2^62
    "chunk-size-plus": post(b"Transfer-Encoding: chunked\r\n", b"+5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-leading-space": post(b"Transfer-Encoding: chunked\r\n", b" 5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-leading-tab": post(b"Transfer-Encoding: chunked\r\n", b"\t5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-trailing-space": post(b"Transfer-Encoding: chunked\r\n", b"5 \r\nhello\r\n0\r\n\r\n"),
    "chunk-size-trailing-tab": post(b"Transfer-Encoding: chunked\r\n", b"5\t\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-2^62-plus-1": post(b"Transfer-Encoding: chunked\r\n", b"4000000000000001\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-2^63": post(b"Transfer-Encoding: chunked\r\n", b"8000000000000000\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-16-hex-digits": post(b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-2^64": post(b"Transfer-Encoding: chunked\r\n", b"10000000000000000\r\n\r\n"),
    # empty field names in other places
    "name-empty-first-field": b"GET / HTTP/1.1\r\n: b\r\n" + H + b"\r\n",
    "name-empty-colon-only": b"GET / HTTP/1.1\r\n" + H + b":\r\n\r\n",
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


# -- smuggling: a request hidden after a framing the server must refuse --------

TE = b"Transfer-Encoding: chunked\r\n"


def smuggled(tag):
    """The hidden request; its path names the case, to look for in the log."""
    return b"GET /uri/smuggled-%s HTTP/1.1\r\nHost: x\r\n\r\n" % tag.encode()


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


# id -> (status, build(smuggled bytes) -> request bytes)
SMUGGLING = {
    # both framing headers, either order
    "cl-te": (400, lambda s: post(b"Content-Length: %d\r\n" % (5 + len(s)) + TE, b"0\r\n\r\n" + s)),
    "te-cl": (400, lambda s: post(TE + b"Content-Length: 3\r\n", chunk(s) + b"0\r\n\r\n")),
    # duplicate Content-Length, different, equal, list form
    "cl-cl-different": (400, lambda s: post(b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(s), s)),
    "cl-cl-same": (400, lambda s: post(b"Content-Length: 0\r\nContent-Length: 0\r\n", s)),
    "cl-cl-list-same": (400, lambda s: post(b"Content-Length: 0, 0\r\n", s)),
    # Transfer-Encoding that a peer may read differently
    "te-http10": (400, lambda s: b"POST /echo HTTP/1.0\r\n" + H + TE + b"\r\n0\r\n\r\n" + s),
    "te-obs-fold": (400, lambda s: post(b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n" + s)),
    "te-space-before-colon": (400, lambda s: post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n" + s)),
    "te-behind-bare-lf": (400, lambda s: post(b"X-A: b\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + s)),
    "te-chunked-not-last": (400, lambda s: post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n" + s)),
    "te-empty-name": (400, lambda s: post(b": chunked\r\n", b"0\r\n\r\n" + s)),
    "te-identity": (501, lambda s: post(b"Transfer-Encoding: identity\r\n", s)),
    # a bare LF ending the head
    "bare-lf-final-line": (400, lambda s: b"GET /uri/a HTTP/1.1\r\n" + H + b"\n" + s),
    "bare-lf-head": (400, lambda s: b"GET /uri/a HTTP/1.1\nHost: x\n\n" + s),
    # chunk sizes a lenient parser reads as the last chunk or a small one
    "chunk-size-wraps-to-5": (400, lambda s: post(TE, b"10000000000000005\r\nhello\r\n0\r\n\r\n" + s)),
    "chunk-size-wraps-to-0": (400, lambda s: post(TE, b"10000000000000000\r\n\r\n" + s)),
    "chunk-size-16-hex-digits": (400, lambda s: post(TE, b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n" + s)),
    "chunk-size-0x0": (400, lambda s: post(TE, b"0x0\r\n\r\n" + s)),
    "chunk-size-minus-0": (400, lambda s: post(TE, b"-0\r\n\r\n" + s)),
    "chunk-size-plus-0": (400, lambda s: post(TE, b"+0\r\n\r\n" + s)),
    "chunk-size-space-0": (400, lambda s: post(TE, b" 0\r\n\r\n" + s)),
    "chunk-size-0-space": (400, lambda s: post(TE, b"0 \r\n\r\n" + s)),
    # chunk framing around the hidden request
    "chunk-data-without-crlf": (400, lambda s: post(TE, b"5\r\nhello" + s + b"0\r\n\r\n")),
    "chunk-size-shorter-than-data": (400, lambda s: post(TE, b"3\r\nhello\r\n0\r\n\r\n" + s)),
    "chunk-bare-lf": (400, lambda s: post(TE, b"5\nhello\n0\n\n" + s)),
    "chunk-bare-lf-after-data": (400, lambda s: post(TE, b"5\r\nhello\n0\r\n\r\n" + s)),
    "last-chunk-bare-lf": (400, lambda s: post(TE, b"0\r\n\n" + s)),
    "trailer-is-request-line": (400, lambda s: post(TE, b"0\r\n" + s)),
    "chunk-ext-unterminated-quote": (400, lambda s: post(TE, b'0;a="x\r\n\r\n' + s)),
}


@pytest.mark.parametrize("tag", list(SMUGGLING), ids=list(SMUGGLING))
def test_smuggling_refused_and_hidden_request_not_served(srv, tag):
    status, build = SMUGGLING[tag]
    with srv.raw() as c:
        c.send(build(smuggled(tag)))
        try:
            r = c.read_response()
        except httpclient.ConnectionClosed:
            pytest.fail("connection closed without a %d response" % status)
        assert r.status == status, r
        assert r.complete, r
        assert c.is_closed(3), "connection must be closed after a %d" % status
        # no second response on the connection ...
        assert c.extra == b"", "bytes after the %d: %r" % (status, c.extra)
    # ... and no request served from the hidden bytes at all
    assert "/uri/smuggled-%s" % tag not in srv.log_text()


def test_smuggling_request_inside_chunk_data_is_body(srv):
    # The hidden request is chunk data: it is the body, and the connection
    # goes on with the request that really follows.
    s = smuggled("in-chunk-data")
    with srv.raw() as c:
        c.send(post(TE, chunk(s) + b"0\r\n\r\n") + b"GET /uri/after-chunked HTTP/1.1\r\n" + H + b"\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (200, s), r
        r = c.read_response()
        assert (r.status, r.body) == (200, b"/uri/after-chunked"), r
        assert not c.is_closed(0.3)
        assert c.extra == b""
    # requests are logged (so the log checks above and here mean something)
    srv.wait_log(r"GET /uri/after-chunked ")
    assert "/uri/smuggled-in-chunk-data" not in srv.log_text()


@pytest.mark.parametrize(
    "field",
    [b"Content-Length:5", b"Content-Length:  5", b"Content-Length: 5  ", b"Content-Length:\t5\t"],
    ids=["no-ows", "leading-spaces", "trailing-spaces", "tabs"],
)
def test_content_length_ows_is_not_part_of_the_value(srv, field):
    # Leading/trailing SP or HTAB around a field value is OWS, not part of
    # it (RFC 9110 5.5), so these are accepted rather than refused; what
    # matters is that the body is exactly the 5 digits' worth and the next
    # request is framed right after it.
    with srv.raw() as c:
        c.send(post(field + b"\r\n", b"hello") + b"GET /uri/after-ows HTTP/1.1\r\n" + H + b"\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (200, b"hello"), r
        r = c.read_response()
        assert (r.status, r.body) == (200, b"/uri/after-ows"), r
        assert not c.is_closed(0.3)


# -- Range integer overflow on a --static-map file ------------------------------

RANGE_DATA = bytes((i * 7 + 3) % 251 for i in range(2000))
RANGE_SIZE = len(RANGE_DATA)


@pytest.fixture(scope="module")
def static_srv(tmp_path_factory):
    www = tmp_path_factory.mktemp("range-www")
    (www / "data.bin").write_bytes(RANGE_DATA)
    f = ServerFactory(tmp_path_factory.mktemp("range-srv"))
    s = f(["--wsgi-file", app_path("basic.py"), "--static-map", "/static=%s" % www,
           "--processes", "1", "--threads", "2"])
    yield s
    f.cleanup()
    _fail_on_crash(f)


# Numbers at and past 2^64 must not wrap to small ones. RFC 9110 14.1.2
# clamps a last-pos past the end and a suffix longer than the file, so the
# correct answers are: the whole file (206 "bytes 0-1999/2000", or 200 with
# the Range ignored) for "whole"; the last byte (206) or the whole file
# (200) for "last"; 416 (or 200 with the Range ignored) for "none", a
# first-pos past the end. mulefarm answers 206 for "whole" and "last" and
# 416 for "none". A wrapped number would pick a few bytes instead.
RANGE_OVERFLOW = [
    ("bytes=0-18446744073709551616", "whole"),  # last-pos 2^64: wraps to 0
    ("bytes=0-18446744073709551615", "whole"),  # 2^64 - 1: -1 as int64
    ("bytes=-18446744073709551617", "whole"),  # suffix 2^64 + 1: wraps to 1
    ("bytes=-18446744073709551616", "whole"),  # suffix 2^64: wraps to 0
    ("bytes=-9223372036854775809", "whole"),  # suffix 2^63 + 1: negative as int64
    ("bytes=1999-18446744073709551617", "last"),
    ("bytes=18446744073709551616-", "none"),  # first-pos 2^64: wraps to 0
    ("bytes=18446744073709551617-18446744073709551618", "none"),  # wraps to 1-2
]


@pytest.mark.parametrize("spec,want", RANGE_OVERFLOW, ids=[s for s, _ in RANGE_OVERFLOW])
def test_smuggling_range_overflow_static_map(static_srv, spec, want):
    get = b"GET /static/data.bin HTTP/1.1\r\n" + H
    with static_srv.raw() as c:
        c.send(get + b"Range: " + spec.encode() + b"\r\n\r\n")
        r = c.read_response()
        assert r.complete, r
        if r.status == 200:  # Range ignored: the whole file
            assert r.body == RANGE_DATA
        elif r.status == 206 and want == "whole":
            assert r.header("Content-Range") == "bytes 0-%d/%d" % (RANGE_SIZE - 1, RANGE_SIZE), r
            assert r.body == RANGE_DATA
        elif r.status == 206 and want == "last":
            assert r.header("Content-Range") == "bytes %d-%d/%d" % (RANGE_SIZE - 1, RANGE_SIZE - 1, RANGE_SIZE), r
            assert r.body == RANGE_DATA[-1:]
        elif r.status == 416 and want == "none":
            assert r.header("Content-Range") == "bytes */%d" % RANGE_SIZE, r
            assert r.body == b""
        else:
            pytest.fail("%s: unexpected answer %r" % (spec, r))
        # The response was exactly as long as announced: the connection
        # still frames the next one right.
        c.send(get + b"Connection: close\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (200, RANGE_DATA), r
        assert c.is_closed(3)
        assert c.extra == b""
    assert static_srv.running()
