"""PEP 3333 response side: start_response / exc_info, write(), close(),
errors, header validation, wsgi.file_wrapper, and wsgiref.validate."""
import hashlib
import os
import re
import shutil
import subprocess
import time
from urllib.parse import quote

import pytest

from conftest import app_path, module_server, wait_for
import httpclient
from httpclient import chunk_encode, simple_request

srv = module_server("srv", ["--wsgi-file", app_path("basic.py"), "--processes", "1", "--threads", "2"])
esrv = module_server("esrv", ["--wsgi-file", app_path("wsgierrors.py"), "--processes", "1", "--threads", "2"])
vsrv = module_server("vsrv", ["--wsgi-file", app_path("validated.py"), "--processes", "1", "--threads", "2"])


def q(path):
    return quote(str(path), safe="")


def get_raw(srv, path, method="GET"):
    c = srv.raw(timeout=10)
    c.send(simple_request(method, path))
    try:
        r = c.read_response(method)
    except httpclient.ConnectionClosed:
        r = None
    return r, c


def wait_marker(path, timeout=10.0):
    wait_for(lambda: os.path.exists(path), timeout=timeout, what="marker %s" % path)
    with open(path) as f:
        return f.read()


# -- start_response / write ------------------------------------------------


def test_exc_info_before_headers_sent_replaces_status(srv):
    r, c = get_raw(srv, "/exc-replace")
    c.close()
    assert r.status == 503, r
    assert r.reason == "Replaced"
    assert r.body == b"replaced body"
    assert r.has_header("X-Second")
    assert not r.has_header("X-First")


def test_exc_info_after_headers_sent_reraises(srv, tmp_path):
    marker = str(tmp_path / "exc-after")
    r, c = get_raw(srv, "/exc-after?marker=" + q(marker))
    with c:
        assert wait_marker(marker) == "reraised:original-boom"
        # the app's exception escaped after output started: truncated response
        if r is not None:
            assert r.status == 200
            assert not r.complete, r
        assert c.is_closed(3)
    srv.wait_log(r"original-boom")


def test_write_callable_alone(srv):
    r, c = get_raw(srv, "/write")
    c.close()
    assert r.status == 200
    assert r.body == b"w1-w2-w3"
    assert r.complete


def test_write_callable_mixed_with_iterable(srv):
    r, c = get_raw(srv, "/write-mixed")
    c.close()
    assert r.status == 200
    assert r.body == b"written-iter1-iter2"
    assert r.complete


def test_write_callable_http_client(srv):
    status, _, body = srv.get("/write-mixed")
    assert status == 200 and body == b"written-iter1-iter2"


def test_status_passthrough(srv):
    status, _, body = srv.get("/status?code=404")
    assert status == 404 and body == b"status 404\n"
    status, _, body = srv.get("/status?code=201")
    assert status == 201


# -- close() ---------------------------------------------------------------


def test_close_called_on_normal_completion(srv, tmp_path):
    marker = str(tmp_path / "closed")
    status, _, body = srv.get("/close?marker=" + q(marker))
    assert status == 200 and body == b"abcd"
    assert wait_marker(marker) == "closed"


def test_close_called_on_head(srv, tmp_path):
    marker = str(tmp_path / "closed-head")
    r, c = get_raw(srv, "/close?marker=" + q(marker), method="HEAD")
    c.close()
    assert r.status == 200
    assert wait_marker(marker) == "closed"


@pytest.mark.timeout(30)
def test_close_called_when_client_disconnects(srv, tmp_path):
    marker = str(tmp_path / "closed-disconnect")
    c = srv.raw(timeout=10)
    c.send(simple_request("GET", "/stream?marker=" + q(marker)))
    got = b""
    while len(got) < 200000:
        if not c._fill():
            break
        got += c.buf
        c.buf = b""
    assert got.startswith(b"HTTP/1.1 200")
    c.close()
    assert wait_marker(marker, timeout=10) == "closed"
    # the server keeps serving
    assert srv.get("/")[0] == 200


def test_close_called_when_iterator_raises(srv, tmp_path):
    marker = str(tmp_path / "closed-raise")
    r, c = get_raw(srv, "/raise-after?marker=" + q(marker))
    c.close()
    assert wait_marker(marker) == "closed"


# -- errors ------------------------------------------------------------------


def test_exception_before_output_is_500_and_logged(srv):
    r, c = get_raw(srv, "/raise-before")
    c.close()
    assert r is not None and r.status == 500, r
    srv.wait_log(r"Traceback[\s\S]*RuntimeError: boom-before-output")


def test_exception_after_output_chunked_truncates(srv, tmp_path):
    marker = str(tmp_path / "m")
    r, c = get_raw(srv, "/raise-after?marker=" + q(marker))
    with c:
        if r is not None:
            assert r.status == 200
            assert not r.complete, "a clean chunked terminator must not be sent: %r" % r
        assert c.is_closed(3)
    srv.wait_log(r"boom-after-output")


def test_exception_after_output_content_length_truncates(srv, tmp_path):
    marker = str(tmp_path / "m")
    r, c = get_raw(srv, "/raise-after?cl=1&marker=" + q(marker))
    with c:
        if r is not None:
            assert r.status == 200
            assert not r.complete, r
        assert c.is_closed(3)


@pytest.mark.parametrize("path", ["/double-start", "/str-body"])
def test_wsgi_protocol_errors_are_500(srv, path):
    r, c = get_raw(srv, path)
    c.close()
    assert r is not None and r.status == 500, r
    assert b"should not be sent" not in r.body
    assert b"start_response was never called" not in r.body


WSGI_ERRORS = [
    "/returns-none",
    "/returns-int",
    "/headers-dict",
    "/header-int-value",
    "/header-not-pair",
    "/status-int",
    "/status-no-code",
    "/status-crlf",
    "/write-str",
    "/no-start-response",
    "/no-start-response-empty",
    "/iter-raises-first",
    "/system-exit",
]


@pytest.mark.parametrize("path", WSGI_ERRORS)
def test_protocol_violation_before_output_is_500(esrv, path):
    r, c = get_raw(esrv, path)
    with c:
        assert r is not None, "connection closed without a response (worker crashed?)"
        assert r.status == 500, r
        assert not r.has_header("X-Injected")
        assert r.body != b"never started"
    # and the same worker still serves (no crash, no respawn delay)
    t0 = time.monotonic()
    assert esrv.get("/")[2] == b"ok"
    assert time.monotonic() - t0 < 0.5


def test_server_survives_app_errors(srv):
    for _ in range(3):
        r, c = get_raw(srv, "/raise-before")
        c.close()
        assert r.status == 500
    assert srv.get("/")[0] == 200


# -- refused response headers -----------------------------------------------

BAD_HEADERS = [
    "kind=cr",
    "kind=lf",
    "kind=crlf",
    "name=Connection&value=close",
    "name=Keep-Alive&value=timeout%3D5",
    "name=Transfer-Encoding&value=chunked",
    "name=Upgrade&value=websocket",
    "name=Proxy-Connection&value=keep-alive",
    "name=TE&value=trailers",
    "name=Trailer&value=X-T",
    "name=connection&value=close",
]


@pytest.mark.parametrize("query", BAD_HEADERS)
def test_bad_response_header_refused_500(srv, query):
    before = len(srv.log_lines())
    r, c = get_raw(srv, "/bh?" + query)
    c.close()
    assert r is not None and r.status == 500, r
    assert b"should not be sent" not in r.body
    assert not r.has_header("X-Injected")
    assert not r.has_header("X-Bad")

    def new_error_line():
        lines = srv.log_lines()[before:]
        return [l for l in lines if "generated" not in l and re.search(r"header", l, re.I)]

    wait_for(new_error_line, timeout=5, what="a log line about the refused header")


# -- wsgi.file_wrapper --------------------------------------------------------


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("files") / "big.bin"
    data = os.urandom(5 * 1024 * 1024 + 123)
    p.write_bytes(data)
    return p, data


@pytest.mark.parametrize("cl", ["0", "1"], ids=["no-content-length", "content-length"])
def test_file_wrapper_5mb(srv, big_file, cl):
    p, data = big_file
    status, headers, body = srv.get("/fw?cl=%s&path=%s" % (cl, q(p)), timeout=20)
    assert status == 200
    assert len(body) == len(data)
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("cl", ["0", "1"], ids=["no-content-length", "content-length"])
def test_file_wrapper_from_offset(srv, big_file, cl):
    p, data = big_file
    off = 1234567
    status, _, body = srv.get("/fw?cl=%s&offset=%d&path=%s" % (cl, off, q(p)), timeout=20)
    assert status == 200
    assert len(body) == len(data) - off
    assert body == data[off:]


def _traced_all_threads(pid):
    try:
        tids = os.listdir("/proc/%d/task" % pid)
        for tid in tids:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                tracer = [l for l in f if l.startswith("TracerPid:")][0].split()[1]
            if tracer == "0":
                return False
        return True
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_file_wrapper_uses_sendfile(server, big_file, tmp_path):
    p, data = big_file
    s = server(["--wsgi-file", app_path("basic.py"), "--processes", "1", "--threads", "2"])
    worker = wait_for(lambda: s.children(), what="the worker")[0]
    out = tmp_path / "strace.out"
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", "trace=/sendfile", "-o", str(out), "-p", str(worker)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 5
        while not _traced_all_threads(worker):
            if tracer.poll() is not None or time.monotonic() > deadline:
                pytest.skip("cannot ptrace the worker: %r" % tracer.stderr.read())
            time.sleep(0.02)
        status, _, body = s.get("/fw?cl=1&path=%s" % q(p), timeout=20)
        assert status == 200 and body == data
        status, _, body = s.get("/fw?offset=777&path=%s" % q(p), timeout=20)
        assert status == 200 and body == data[777:]
    finally:
        tracer.terminate()
        try:
            tracer.wait(5)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait(5)
    trace = out.read_text()
    assert "sendfile" in trace, "wsgi.file_wrapper did not use sendfile(2)"


def test_file_wrapper_http10(srv, big_file):
    p, data = big_file
    with srv.raw(timeout=20) as c:
        c.send(b"GET /fw?path=%s HTTP/1.0\r\nHost: x\r\n\r\n" % q(p).encode())
        r = c.read_response()
    assert r.status == 200 and r.complete
    assert r.body == data


def test_file_wrapper_closes_file(srv, big_file, tmp_path):
    p, data = big_file
    marker = str(tmp_path / "fw-closed")
    status, _, body = srv.get("/fw-close?path=%s&marker=%s" % (q(p), q(marker)), timeout=20)
    assert status == 200 and body == data
    assert wait_marker(marker) == "file-closed"


def test_file_wrapper_non_file_object(srv):
    status, _, body = srv.get("/fw-bytesio")
    assert status == 200
    assert body == bytes(range(256)) * 400


def test_file_wrapper_keepalive_next_request(srv, big_file):
    p, data = big_file
    with srv.raw(timeout=20) as c:
        c.send(simple_request("GET", "/fw?cl=1&offset=%d&path=%s" % (len(data) - 1000, q(p))))
        r = c.read_response()
        assert r.body == data[-1000:]
        c.send(simple_request("GET", "/uri/next"))
        assert c.read_response().body == b"/uri/next"


# -- wsgiref.validate --------------------------------------------------------


def _no_validator_complaints(vsrv):
    log = vsrv.log_text()
    for bad in ("AssertionError", "WSGIWarning", "Exception ignored", "Traceback"):
        assert bad not in log, "validator complained:\n" + log


def test_validator_get(vsrv):
    status, _, body = vsrv.get("/")
    assert status == 200 and body == b"hello validated\n"
    _no_validator_complaints(vsrv)


def test_validator_get_streaming(vsrv):
    status, _, body = vsrv.get("/stream")
    assert status == 200
    assert body == b"".join(b"stream-%d\n" % i for i in range(5))
    _no_validator_complaints(vsrv)


def test_validator_head(vsrv):
    r, c = get_raw(vsrv, "/", method="HEAD")
    c.close()
    assert r.status == 200 and r.body == b""
    r, c = get_raw(vsrv, "/stream", method="HEAD")
    c.close()
    assert r.status == 200
    # give a possible garbage-collected-without-close complaint time to appear
    time.sleep(0.2)
    _no_validator_complaints(vsrv)


def test_validator_post_fixed(vsrv):
    status, _, body = vsrv.request("POST", "/echo", body=b"fixed body", headers={"Content-Type": "text/plain"})
    assert status == 200 and body == b"fixed body"
    _no_validator_complaints(vsrv)


def test_validator_post_chunked(vsrv):
    with vsrv.raw() as c:
        c.send(
            simple_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")])
            + chunk_encode([b"chunk-one ", b"chunk-two"])
        )
        r = c.read_response()
    assert r.status == 200 and r.body == b"chunk-one chunk-two"
    _no_validator_complaints(vsrv)


def test_validator_readline_readlines(vsrv):
    status, _, body = vsrv.request("POST", "/lines", body=b"l1\nl2\nl3", headers={"Content-Type": "text/plain"})
    assert status == 200 and body == b"l1\n|l2\n|l3"
    _no_validator_complaints(vsrv)


@pytest.mark.timeout(60)
def test_validator_large_upload_fixed(vsrv):
    data = os.urandom(5 * 1024 * 1024)
    status, _, body = vsrv.request(
        "POST", "/upload", body=data, headers={"Content-Type": "application/octet-stream"}, timeout=30
    )
    assert status == 200
    assert body.decode() == "%d %s" % (len(data), hashlib.sha256(data).hexdigest())
    _no_validator_complaints(vsrv)


@pytest.mark.timeout(60)
def test_validator_large_upload_chunked(vsrv):
    data = os.urandom(5 * 1024 * 1024)
    pieces = [data[i : i + 100000] for i in range(0, len(data), 100000)]
    c = vsrv.http(timeout=30)
    try:
        c.request(
            "POST",
            "/upload",
            body=iter(pieces),
            headers={"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    assert r.status == 200
    assert body.decode() == "%d %s" % (len(data), hashlib.sha256(data).hexdigest())
    _no_validator_complaints(vsrv)


@pytest.mark.timeout(60)
def test_large_echo_roundtrip(srv):
    data = os.urandom(5 * 1024 * 1024)
    status, _, body = srv.request("POST", "/echo", body=data, headers={"Content-Type": "application/x-bin"}, timeout=30)
    assert status == 200
    assert body == data
