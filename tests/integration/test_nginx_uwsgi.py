"""The uwsgi protocol (--socket / --uwsgi-socket): behind Debian's real nginx
(uwsgi_pass over TCP and over a unix socket), and packet by packet on the
socket itself.

Every mulefarm here also gets the usual auto-added --http-socket: the
fixture uses it to see that the server is up (a uwsgi socket cannot be
probed with HTTP), and it is harmless for the uwsgi listeners.
"""
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import struct
import time

import pytest

import nginx
from conftest import ServerFactory, _fail_on_crash, app_path, free_port_number, wait_for
from httpclient import RawConn, chunk_encode, simple_request
from nginx import packet, request_vars, uwsgi_exchange

BASIC = app_path("basic.py")
VALIDATED = app_path("validated.py")
MB = 1024 * 1024
STATIC_TXT = b"static through nginx: " + bytes(range(48, 123)) + b"\n"


# ---------------------------------------------------------------------------
# nginx -> mulefarm


class Stack:
    """Two mulefarms (basic.py and validated.py), each on a TCP and a unix
    uwsgi socket, behind one nginx with a server block per socket."""

    def __init__(self, tmp):
        self.dir = nginx.shared_dir()
        self.factory = ServerFactory(tmp)
        self.ngx = None
        try:
            self._start()
        except BaseException:
            self.cleanup()
            raise

    def _start(self):
        sites = {}
        self.servers = {}
        self.www = os.path.join(self.dir, "www")
        os.mkdir(self.www)
        with open(os.path.join(self.www, "hello.txt"), "wb") as f:
            f.write(STATIC_TXT)
        for app, path in (("basic", BASIC), ("valid", VALIDATED)):
            port = free_port_number()
            sock = os.path.join(self.dir, app + ".sock")
            self.servers[app] = self.factory(
                [
                    "--static-map",
                    "/static=" + self.www,
                    "--wsgi-file",
                    path,
                    "--socket",
                    "127.0.0.1:%d" % port,
                    "--socket",
                    sock,
                    "--chmod-socket=666",
                    "--processes",
                    "2",
                    "--threads",
                    "2",
                ]
            )
            sites[app + "-tcp"] = "127.0.0.1:%d" % port
            sites[app + "-unix"] = "unix:" + sock
        self.ngx = nginx.Nginx(sites)

    def diag(self):
        out = ["--- nginx error.log (tail) ---", self.ngx.error_tail() if self.ngx else "(no nginx)"]
        for name, s in self.servers.items():
            out += ["--- mulefarm %s stderr (tail) ---" % name, "\n".join(s.log_lines()[-30:])]
        return "\n".join(out)

    def request(self, via, method, path, headers=(), body=b"", app="basic", timeout=20.0):
        with self.ngx.raw("%s-%s" % (app, via), timeout) as c:
            c.send(simple_request(method, path, host="localhost", headers=headers, body=body, close=True))
            return c.read_response(method)

    def env(self, via, path="/env", method="GET", headers=(), body=b""):
        r = self.request(via, method, path, headers, body)
        assert r.status == 200, "%r\n%s" % (r, self.diag())
        return json.loads(r.body)["env"]

    def cleanup(self):
        if self.ngx:
            self.ngx.cleanup()
        self.factory.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not nginx.have_nginx():
        pytest.skip("nginx (%s) or %s is not installed" % (nginx.NGINX, nginx.UWSGI_PARAMS))
    st = Stack(tmp_path_factory.mktemp("ngx"))
    try:
        yield st
    finally:
        st.cleanup()
    _fail_on_crash(st.factory)


@pytest.fixture(params=["tcp", "unix"])
def via(request):
    return request.param


def test_get_with_query_string(stack, via):
    e = stack.env(via, "/env/some/where?a=1&b=%20c&a=2")
    assert e["REQUEST_METHOD"] == "GET"
    assert e["PATH_INFO"] == "/env/some/where"
    assert e["QUERY_STRING"] == "a=1&b=%20c&a=2"
    assert e["REQUEST_URI"] == "/env/some/where?a=1&b=%20c&a=2"
    assert e.get("SCRIPT_NAME", "") == ""  # may be absent when empty (PEP 3333)
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["SERVER_PORT"] == str(stack.ngx.port["basic-" + via])
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.version"] == {"tuple": [1, 0]}


def test_head(stack, via):
    with stack.ngx.raw("basic-" + via) as c:
        c.send(simple_request("HEAD", "/status?code=200", host="localhost"))
        r = c.read_response("HEAD")
        assert r.status == 200, "%r\n%s" % (r, stack.diag())
        assert r.body == b""
        # the connection to nginx is still in step: nothing of a body leaked
        c.send(simple_request("GET", "/", host="localhost", close=True))
        r2 = c.read_response()
    assert r2.status == 200 and r2.body == b"hello\n", "%r\n%s" % (r2, stack.diag())


def test_response_dated_once_by_nginx(stack, via):
    # mulefarm leaves the Date to the front server, as uWSGI does: the
    # client sees exactly one, nginx's.
    with stack.ngx.raw("basic-" + via) as c:
        c.send(simple_request("GET", "/", host="localhost", close=True))
        r = c.read_response()
    assert r.status == 200 and r.body == b"hello\n", "%r\n%s" % (r, stack.diag())
    assert len(r.header_all("Date")) == 1, r


def test_post_fixed_body(stack, via):
    r = stack.request(via, "POST", "/echo", headers=[("Content-Type", "text/x-test")], body=b"fixed body")
    assert r.status == 200 and r.body == b"fixed body", "%r\n%s" % (r, stack.diag())
    assert r.header("Content-Type") == "text/x-test"
    e = stack.env(via, "/env?read=1", "POST", [("Content-Type", "text/x-test")], b"fixed body")
    assert e["CONTENT_LENGTH"] == "10"
    assert e["CONTENT_TYPE"] == "text/x-test"
    # nginx also passes the headers as HTTP_CONTENT_*: they must be gone
    assert "HTTP_CONTENT_LENGTH" not in e and "HTTP_CONTENT_TYPE" not in e


def test_post_chunked_client_body(stack, via):
    chunks = [b"chunk-one ", b"chunk-two ", b"x" * 5000]
    data = b"".join(chunks)
    hdrs = [("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")]
    with stack.ngx.raw("basic-" + via, 20) as c:
        c.send(simple_request("POST", "/echo", host="localhost", headers=hdrs, close=True) + chunk_encode(chunks))
        r = c.read_response()
    assert r.status == 200 and r.body == data, "%r\n%s" % (r, stack.diag())
    with stack.ngx.raw("basic-" + via, 20) as c:
        c.send(simple_request("POST", "/env?read=1", host="localhost", headers=hdrs, close=True) + chunk_encode(chunks))
        r = c.read_response()
    assert r.status == 200, "%r\n%s" % (r, stack.diag())
    e = json.loads(r.body)["env"]
    # nginx de-chunks (request buffering) and sends the length
    assert e["CONTENT_LENGTH"] == str(len(data))


@pytest.mark.timeout(60)
def test_upload_10mb(stack, via):
    data = os.urandom(10 * MB)
    r = stack.request(via, "POST", "/hash", headers=[("Content-Type", "application/octet-stream")], body=data, timeout=40)
    assert r.status == 200, "%r\n%s" % (r, stack.diag())
    assert r.body.decode() == "%d %s" % (len(data), hashlib.sha256(data).hexdigest())


def _big_expected(n):
    chunk = b"0123456789abcdef" * 4096
    return (chunk * (n // len(chunk) + 1))[:n]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cl", ["1", "0"], ids=["content-length", "no-content-length"])
def test_response_10mb(stack, via, cl):
    n = 10 * MB
    r = stack.request(via, "GET", "/big?n=%d&cl=%s" % (n, cl), timeout=40)
    assert r.status == 200, "%r\n%s" % (r, stack.diag())
    assert r.complete, r
    assert len(r.body) == n, (len(r.body), stack.diag())
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(_big_expected(n)).digest()


def test_request_headers_as_http_vars(stack, via):
    e = stack.env(
        via,
        headers=[
            ("X-Custom-Thing", "v1"),
            ("User-Agent", "mf-test/1.0"),
            ("Accept", "*/*"),
            ("X-A", "1"),
            ("X-A", "2"),
        ],
    )
    assert e["HTTP_X_CUSTOM_THING"] == "v1"
    assert e["HTTP_USER_AGENT"] == "mf-test/1.0"
    assert e["HTTP_ACCEPT"] == "*/*"
    assert e["HTTP_X_A"] == "1, 2"
    assert "HTTP_HOST" in e


def test_percent_2f_in_path(stack, via):
    e = stack.env(via, "/env/a%2Fb%20c?q=%2F")
    assert e["PATH_INFO"] == "/env/a/b c"  # as nginx decoded it ($document_uri)
    assert e["REQUEST_URI"] == "/env/a%2Fb%20c?q=%2F"  # raw
    assert e["QUERY_STRING"] == "q=%2F"


def test_path_info_not_decoded_twice(stack, via):
    e = stack.env(via, "/env/x%2525y")
    assert e["PATH_INFO"] == "/env/x%25y"
    assert e["REQUEST_URI"] == "/env/x%2525y"


def test_static_file_through_nginx(stack, via):
    r = stack.request(via, "GET", "/static/hello.txt")
    assert r.status == 200 and r.body == STATIC_TXT, "%r\n%s" % (r, stack.diag())
    etag, lm = r.header("ETag"), r.header("Last-Modified")
    assert etag and lm, r
    r = stack.request(via, "GET", "/static/hello.txt", headers=[("Range", "bytes=0-5")])
    assert r.status == 206 and r.body == STATIC_TXT[:6], r
    assert r.header("Content-Range") == "bytes 0-5/%d" % len(STATIC_TXT)
    r = stack.request(via, "GET", "/static/hello.txt", headers=[("If-None-Match", etag)])
    assert r.status == 304 and r.body == b"", r
    r = stack.request(via, "GET", "/static/hello.txt", headers=[("If-Modified-Since", lm)])
    assert r.status == 304, r
    r = stack.request(via, "HEAD", "/static/hello.txt")
    assert r.status == 200 and r.body == b"" and r.header("Content-Length") == str(len(STATIC_TXT)), r
    # missing: the app answers
    r = stack.request(via, "GET", "/static/nope.txt")
    assert r.status == 200 and r.body == b"hello\n", r


def test_parallel_requests_through_nginx(stack, via):
    import concurrent.futures

    def one(i):
        return stack.request(via, "GET", "/sleep?s=0.3")

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, range(8)))
    elapsed = time.monotonic() - t0
    assert all(r.status == 200 and r.body == b"slept\n" for r in results), results
    # 2 workers x 2 threads: about 2 rounds of 0.3 s, far from 8 x 0.3 s
    assert elapsed < 1.8, elapsed


# -- wsgiref.validate through nginx -------------------------------------------


def _no_validator_complaints(stack):
    log = stack.servers["valid"].log_text()
    for bad in ("AssertionError", "WSGIWarning", "Exception ignored", "Traceback"):
        assert bad not in log, "validator complained:\n" + log


def test_validator_get(stack, via):
    r = stack.request(via, "GET", "/?x=1", app="valid")
    assert r.status == 200 and r.body == b"hello validated\n", "%r\n%s" % (r, stack.diag())
    r = stack.request(via, "GET", "/stream", app="valid")
    assert r.status == 200 and r.body == b"".join(b"stream-%d\n" % i for i in range(5)), r
    _no_validator_complaints(stack)


def test_validator_head(stack, via):
    for path in ("/", "/stream"):
        r = stack.request(via, "HEAD", path, app="valid")
        assert r.status == 200 and r.body == b"", "%r\n%s" % (r, stack.diag())
    time.sleep(0.2)  # a "never closed" complaint comes from the garbage collector
    _no_validator_complaints(stack)


def test_validator_post(stack, via):
    r = stack.request(via, "POST", "/echo", headers=[("Content-Type", "text/plain")], body=b"fixed body", app="valid")
    assert r.status == 200 and r.body == b"fixed body", "%r\n%s" % (r, stack.diag())
    r = stack.request(via, "POST", "/lines", headers=[("Content-Type", "text/plain")], body=b"l1\nl2\nl3", app="valid")
    assert r.status == 200 and r.body == b"l1\n|l2\n|l3", r
    data = os.urandom(300000)
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    with stack.ngx.raw("valid-" + via, 20) as c:
        c.send(
            simple_request(
                "POST",
                "/upload",
                host="localhost",
                headers=[("Transfer-Encoding", "chunked"), ("Content-Type", "application/octet-stream")],
                close=True,
            )
            + chunk_encode(pieces)
        )
        r = c.read_response()
    assert r.status == 200, "%r\n%s" % (r, stack.diag())
    assert r.body.decode() == "%d %s" % (len(data), hashlib.sha256(data).hexdigest())
    _no_validator_complaints(stack)


# ---------------------------------------------------------------------------
# raw packets on the socket


HIJACK_APP = '''
import os
open(%r, "a").write("imported %%s\\n" %% __name__)
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"HIJACKED"]
'''


class Direct:
    """mulefarm with basic.py on a TCP uwsgi socket (--uwsgi-socket, the
    alias), --buffer-size 4096, --limit-post 3000000 and a --static-map
    /static; a directory on --pythonpath holds a
    module that records any import of itself (magic vars must not load it)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.hijack_dir = tmp / "hijack"
        self.hijack_dir.mkdir()
        self.marker = tmp / "hijack-imported"
        for name in ("hijack.py", "hijack_file.py"):
            (self.hijack_dir / name).write_text(HIJACK_APP % str(self.marker))
        self.www = tmp / "www"
        self.www.mkdir()
        (self.www / "with space.txt").write_bytes(b"spaced\n")
        (self.www / "100%.txt").write_bytes(b"percent\n")
        (self.www / "100.txt").write_bytes(b"not this one\n")
        (tmp / "secret.txt").write_bytes(b"SECRET-DIRECT")
        self.factory = ServerFactory(tmp / "srv")
        self.port = free_port_number()
        self.addr = ("127.0.0.1", self.port)
        try:
            self._start()
        except BaseException:
            self.factory.cleanup()
            raise

    def _start(self):
        self.srv = self.factory(
            [
                "--wsgi-file",
                BASIC,
                "--uwsgi-socket",
                "127.0.0.1:%d" % self.port,
                "--buffer-size",
                "4096",
                "--limit-post",
                "3000000",
                "--static-map",
                "/static=%s" % self.www,
                "--pythonpath",
                str(self.hijack_dir),
                "--processes",
                "1",
                "--threads",
                "2",
            ]
        )

    def send(self, data, timeout=5.0, method="GET"):
        try:
            return uwsgi_exchange(self.addr, data, timeout, method)
        except socket.timeout:
            pytest.fail(
                "the uwsgi socket neither answered nor closed within %.0f s\n--- log ---\n%s"
                % (timeout, self.srv.log_text()[-5000:])
            )

    def ok(self, data, timeout=5.0):
        resp, raw = self.send(data, timeout)
        assert resp is not None, "no HTTP response (got %r)\n%s" % (raw[:300], self.srv.log_text()[-5000:])
        assert resp.status == 200, "%r\n%s" % (resp, self.srv.log_text()[-5000:])
        return resp

    def env(self, method="GET", path="/env", query="", body=b"", extra=(), content_type=""):
        pairs = request_vars(method, path, query, len(body), content_type, extra)
        return json.loads(self.ok(packet(pairs, body)).body)["env"]

    def worker_pid(self):
        return json.loads(self.ok(packet(request_vars(path="/pid"))).body)["pid"]


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    d = Direct(tmp_path_factory.mktemp("uwsgi-direct"))
    try:
        yield d
    finally:
        d.factory.cleanup()
    _fail_on_crash(d.factory)


def test_minimal_packet_gets_http_response(direct):
    r = direct.ok(packet(request_vars(path="/")))
    assert r.version.startswith("HTTP/1.")
    assert r.body == b"hello\n"
    assert r.rest == b""  # one response, then the server closed


def test_response_and_fin_in_one_segment(direct):
    # One request per connection: the response's last segment carries the
    # FIN. nginx receives the SYN-ACK, the ACK of its packet and the data.
    direct.ok(packet(request_vars(path="/")))  # warm
    with RawConn(direct.addr) as c:
        c.send(packet(request_vars(path="/")))
        assert c.read_until_close().endswith(b"\r\n\r\nhello\n")
        assert c.segments_without_data() <= 2


def test_bare_packet_method_and_path_only(direct):
    resp, raw = direct.send(packet([("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")]))
    assert resp is not None, "no HTTP response to a bare packet (got %r)\n%s" % (raw[:300], direct.srv.log_text())
    assert resp.status == 200 and resp.body == b"hello\n", resp


def test_response_without_content_length(direct):
    r = direct.ok(packet(request_vars(path="/chunked")))
    assert r.body == b"part1-part2-part3"


def test_reply_head_leaves_connection_and_date_to_the_front(direct):
    # One request per connection is the protocol, and the front server
    # dates the response: like uWSGI's, the reply has neither header, and
    # nginx has two lines fewer to parse.
    for path in ("/", "/chunked"):
        r = direct.ok(packet(request_vars(path=path)))
        assert not r.has_header("Connection") and not r.has_header("Date"), r


def test_post_body_1mb(direct):
    data = os.urandom(MB)
    r = direct.ok(packet(request_vars("POST", "/hash", body_len=len(data)), data))
    assert r.body.decode() == "%d %s" % (len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("modifier1", [1, 5, 6, 7])
def test_unsupported_modifier_refused(direct, modifier1):
    pid = direct.worker_pid()
    before = len(direct.srv.log_lines())
    resp, raw = direct.send(packet(request_vars(path="/"), modifier1=modifier1))
    if resp is not None:
        assert resp.status >= 400, resp
        assert b"hello" not in resp.body
    else:
        assert raw == b"", "neither an HTTP response nor a clean close: %r" % raw[:200]
    rx = re.compile(r"modifier.*\b%d\b" % modifier1, re.I)
    wait_for(
        lambda: any(rx.search(line) for line in direct.srv.log_lines()[before:]),
        timeout=5,
        what="a log line naming modifier %d; log:\n%s" % (modifier1, "\n".join(direct.srv.log_lines()[before:])),
    )
    # the worker is still there and still serves
    assert direct.worker_pid() == pid
    assert direct.srv.running()


def test_packet_larger_than_buffer_size_refused(direct):
    before = len(direct.srv.log_lines())
    pairs = request_vars(path="/env", extra=[("HTTP_X_BIG", "b" * 5000)])
    resp, raw = direct.send(packet(pairs))
    if resp is not None:
        assert resp.status >= 400, resp
    else:
        assert raw == b"", raw[:200]
    wait_for(
        lambda: any("buffer-size" in line for line in direct.srv.log_lines()[before:]),
        timeout=5,
        what="a log line naming buffer-size; log:\n%s" % "\n".join(direct.srv.log_lines()[before:]),
    )
    assert direct.ok(packet(request_vars(path="/"))).body == b"hello\n"


def test_oversized_packet_refused_on_the_header(direct):
    # only the 4-byte header announcing 5000 bytes of vars: refused (answer or
    # close) without waiting for vars that will never come
    t0 = time.monotonic()
    with RawConn(direct.addr, timeout=3.0) as c:
        c.send(struct.pack("<BHB", 0, 5000, 0))
        try:
            c.read_until_close()
        except socket.timeout:
            pytest.fail("the server waited for the vars of a packet over --buffer-size")
    assert time.monotonic() - t0 < 3.0


def test_packet_within_buffer_size_served(direct):
    e = direct.env(extra=[("HTTP_X_BIG", "b" * 3000)])
    assert e["HTTP_X_BIG"] == "b" * 3000


def test_malformed_vars_refused(direct):
    pid = direct.worker_pid()
    # a key length that runs past datasize
    data = struct.pack("<H", 50) + b"REQUEST_METHOD"
    resp, raw = direct.send(struct.pack("<BHB", 0, len(data), 0) + data)
    if resp is not None:
        assert resp.status >= 400, resp
    else:
        assert raw == b"", raw[:200]
    assert direct.worker_pid() == pid


def test_body_past_content_length_is_not_a_request(direct, tmp_path):
    marker = tmp_path / "second-request-served"
    second = packet(request_vars(path="/sleep", query="s=0&marker=%s" % marker))
    first = packet(request_vars("POST", "/echo", body_len=5), b"ABCDE")
    resp, raw = direct.send(first + second)
    assert resp is not None and resp.status == 200, (resp, raw[:300], direct.srv.log_text()[-3000:])
    assert resp.body == b"ABCDE"
    assert b"HTTP/" not in resp.rest, resp.rest[:300]
    time.sleep(0.3)
    assert not marker.exists(), "the bytes after the body were served as a second request"


def test_body_bytes_that_look_like_a_packet(direct, tmp_path):
    # CONTENT_LENGTH 5 and the 5 body bytes are the start of a packet
    marker = tmp_path / "smuggled"
    smuggled = packet(request_vars(path="/sleep", query="s=0&marker=%s" % marker))
    resp, raw = direct.send(packet(request_vars("POST", "/echo", body_len=5), smuggled))
    assert resp is not None and resp.status == 200, (resp, raw[:300])
    assert resp.body == smuggled[:5]
    time.sleep(0.3)
    assert not marker.exists()


@pytest.mark.parametrize(
    "magic",
    [
        [("UWSGI_FILE", "HIJACK_DIR/hijack_file.py")],
        [("UWSGI_SCRIPT", "hijack")],
        [("UWSGI_MODULE", "hijack"), ("UWSGI_CALLABLE", "application")],
        [("UWSGI_CHDIR", "/")],
        [("UWSGI_PYHOME", "/nonexistent-pyhome")],
        [("UWSGI_APPID", "hijack")],
        [("SCRIPT_NAME", "/x"), ("UWSGI_APPID", "/x"), ("UWSGI_SCRIPT", "hijack")],
    ],
    ids=["file", "script", "module", "chdir", "pyhome", "appid", "appid+script"],
)
def test_magic_vars_not_honoured(direct, magic):
    base = json.loads(direct.ok(packet(request_vars(path="/cwd"))).body)
    extra = [(k, v.replace("HIJACK_DIR", str(direct.hijack_dir))) for k, v in magic]
    for path in ("/cwd", "/"):
        r = direct.ok(packet(request_vars(path=path, extra=extra)))
        assert b"HIJACKED" not in r.body
        if path == "/cwd":
            assert json.loads(r.body) == base, "the request changed cwd/sys.path/sys.prefix"
        else:
            assert r.body == b"hello\n"
    # and nothing stuck for later requests
    assert json.loads(direct.ok(packet(request_vars(path="/cwd"))).body) == base
    assert not direct.marker.exists(), direct.marker.read_text()


def test_http_content_length_and_type_vars_dropped(direct):
    e = direct.env(
        "POST",
        "/env",
        query="read=1",
        body=b"abc",
        content_type="text/plain",
        extra=[("HTTP_CONTENT_LENGTH", "999"), ("HTTP_CONTENT_TYPE", "evil/type")],
    )
    assert "HTTP_CONTENT_LENGTH" not in e
    assert "HTTP_CONTENT_TYPE" not in e
    assert e["CONTENT_LENGTH"] == "3"
    assert e["CONTENT_TYPE"] == "text/plain"


@pytest.mark.parametrize(
    "extra,scheme",
    [
        ([], "http"),
        ([("UWSGI_SCHEME", "https")], "https"),
        ([("HTTPS", "on")], "https"),
    ],
    ids=["default", "UWSGI_SCHEME", "HTTPS=on"],
)
def test_url_scheme(direct, extra, scheme):
    assert direct.env(extra=extra)["wsgi.url_scheme"] == scheme


def test_transfer_encoding_var_does_not_dechunk(direct):
    body = b"0\r\n\r\n"  # would be an empty chunked body
    pairs = request_vars("POST", "/echo", body_len=5, extra=[("HTTP_TRANSFER_ENCODING", "chunked")])
    r = direct.ok(packet(pairs, body))
    assert r.body == body


def test_duplicate_vars_joined(direct):
    e = direct.env(extra=[("HTTP_X_A", "1"), ("HTTP_X_A", "2")])
    assert e["HTTP_X_A"] == "1, 2"


def test_environ_from_vars(direct):
    e = direct.env(path="/env/p%2Fq", extra=[("HTTP_X_THING", "v")])
    # PATH_INFO is taken as sent (nginx already decoded it), never re-decoded
    assert e["PATH_INFO"] == "/env/p%2Fq"
    assert e["REQUEST_URI"] == "/env/p%2Fq"
    assert e["SERVER_NAME"] == "localhost"
    assert e["SERVER_PORT"] == "80"
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["HTTP_X_THING"] == "v"
    assert isinstance(e["wsgi.input"], dict)  # present (repr'd)


def test_unix_socket_chmod_660(server):
    d = nginx.shared_dir("mfsock-")
    path = os.path.join(d, "u.sock")
    try:
        srv = server(["--wsgi-file", BASIC, "--socket", path, "--chmod-socket=660"])
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        resp, raw = uwsgi_exchange(path, packet(request_vars(path="/")))
        assert resp is not None and resp.status == 200 and resp.body == b"hello\n", (resp, raw[:200], srv.log_text())
        srv.cleanup()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _refused(direct, resp, raw):
    if resp is not None:
        assert 400 <= resp.status < 600, resp
        assert b"hello" not in resp.body
    else:
        assert raw == b"", "neither an HTTP response nor a clean close: %r" % raw[:200]


@pytest.mark.parametrize("value", ["abc", "-1", "0x10", " 5", "5 ", "+5", "99999999999999999999999"])
def test_invalid_content_length_refused(direct, value):
    pid = direct.worker_pid()
    pairs = [(k, value if k == "CONTENT_LENGTH" else v) for k, v in request_vars("POST", "/echo")]
    resp, raw = direct.send(packet(pairs, b"hello"))
    _refused(direct, resp, raw)
    assert direct.worker_pid() == pid


def test_limit_post_applies_to_content_length(direct):
    # only the vars: refused on CONTENT_LENGTH alone, without waiting for a body
    resp, raw = direct.send(packet(request_vars("POST", "/echo", body_len=5000000)), timeout=3)
    assert resp is not None and resp.status == 413, (resp, raw[:200])


@pytest.mark.parametrize(
    "kind",
    ["too-many-vars", "empty-key", "no-vars", "no-method", "truncated-header", "vars-shorter-than-datasize"],
)
def test_bad_packets_refused_worker_survives(direct, kind):
    pid = direct.worker_pid()
    if kind == "too-many-vars":
        data = packet(request_vars() + [("HTTP_X_%d" % i, "") for i in range(250)])
    elif kind == "empty-key":
        data = packet([("", "x")] + request_vars())
    elif kind == "no-vars":
        data = packet([])
    elif kind == "no-method":
        data = packet([(k, v) for k, v in request_vars() if k != "REQUEST_METHOD"])
    elif kind == "truncated-header":
        data = b"\x00\x10"
    else:
        full = packet(request_vars())
        data = full[:-7]  # datasize promises 7 more bytes that never come
    with RawConn(direct.addr, timeout=8) as c:
        c.send(data)
        c.sock.shutdown(socket.SHUT_WR)  # no more bytes: the server must not wait forever
        try:
            raw = c.read_until_close()
        except socket.timeout:
            pytest.fail("no answer and no close after a %s packet and EOF" % kind)
    if raw:
        assert raw.startswith(b"HTTP/1.") and raw[9:10] in (b"4", b"5"), raw[:200]
    assert direct.worker_pid() == pid


def test_client_gone_mid_body(direct):
    pid = direct.worker_pid()
    for _ in range(3):
        with RawConn(direct.addr, timeout=5) as c:
            c.send(packet(request_vars("POST", "/hash", body_len=100000), b"x" * 1000))
    assert direct.worker_pid() == pid
    assert direct.ok(packet(request_vars(path="/"))).body == b"hello\n"


def test_head_has_no_body(direct):
    resp, raw = direct.send(packet(request_vars(method="HEAD", path="/")), method="HEAD")
    assert resp is not None and resp.status == 200, raw[:200]
    assert resp.rest == b"", "body bytes after a HEAD response: %r" % resp.rest[:100]


def test_https_off_is_http(direct):
    assert direct.env(extra=[("HTTPS", "off")])["wsgi.url_scheme"] == "http"


def test_static_over_uwsgi_path_info_not_decoded_again(direct):
    # PATH_INFO as nginx sends it: decoded. "100%.txt" is that name, not
    # "100" + a broken escape, and a space is a space.
    r = direct.ok(packet(request_vars(path="/static/with space.txt", uri="/static/with%20space.txt")))
    assert r.body == b"spaced\n"
    r = direct.ok(packet(request_vars(path="/static/100%.txt", uri="/static/100%25.txt")))
    assert r.body == b"percent\n"


@pytest.mark.parametrize("path", ["/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/..%2fsecret.txt"])
def test_static_over_uwsgi_traversal(direct, path):
    resp, raw = direct.send(packet(request_vars(path=path)))
    assert b"SECRET-DIRECT" not in raw


def test_stalled_partial_packet_times_out(server):
    port = free_port_number()
    srv = server(["--wsgi-file", BASIC, "--socket", "127.0.0.1:%d" % port, "--socket-timeout", "1"])
    t0 = time.monotonic()
    with RawConn(("127.0.0.1", port), timeout=6) as c:
        c.send(packet(request_vars())[:20])  # and then nothing, connection kept open
        try:
            raw = c.read_until_close()
        except socket.timeout:
            pytest.fail("a stalled uwsgi client was not dropped after --socket-timeout 1")
    assert time.monotonic() - t0 < 5
    assert not raw or raw.startswith(b"HTTP/1."), raw[:200]
    resp, _ = uwsgi_exchange(("127.0.0.1", port), packet(request_vars()))
    assert resp is not None and resp.status == 200
    assert srv.running()
