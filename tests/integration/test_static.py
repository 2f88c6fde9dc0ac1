"""Static files (--static-map, --static-map2, --check-static, --static-index,
--static-safe) and --mount with --manage-script-name.

Layout of the file tree (built once per module):

    ROOT/www/            --static-map /static=ROOT/www
        style.css img.png data.txt big.bin "with space.txt"
        sub/index.html   (--static-index index.html)
        escape -> ../secret          symlinks out of the root: refused
        escape.txt -> ../secret/secret.txt
        shared-link.txt -> ../safe/shared.txt   (--static-safe ROOT/safe: served)
        alias.css -> style.css                  (inside the root: served)
    ROOT/secret/secret.txt   never to be served
    ROOT/multiA, ROOT/multiB two --static-map /multi=... tried in order
    ROOT/m2root/m2/x.txt     --static-map2 /m2=ROOT/m2root
    ROOT/checkdir/robots.txt --check-static ROOT/checkdir

The app behind (basic.py) answers "hello\\n" for any path it has no route
for: that is how a fall-through to the app shows.
"""
import email.utils
import hashlib
import json
import os
import socket

import pytest

from conftest import APPS, ServerFactory, _fail_on_crash, app_path, free_port_number
from httpclient import ConnectionClosed, simple_request
from nginx import packet, request_vars, uwsgi_exchange

BASIC = app_path("basic.py")
SECRET = b"TOP-SECRET-7f3a9c1e-do-not-serve"
CSS = b"body { color: red }\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
DATA = bytes((i * 7 + 3) % 251 for i in range(2000))


def build_tree(root):
    www = root / "www"
    (www / "sub").mkdir(parents=True)
    (www / "style.css").write_bytes(CSS)
    (www / "img.png").write_bytes(PNG)
    (www / "data.txt").write_bytes(DATA)
    (www / "with space.txt").write_bytes(b"spaced\n")
    (www / "sub" / "index.html").write_bytes(b"<h1>sub index</h1>\n")
    (www / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "secret").mkdir()
    (root / "secret" / "secret.txt").write_bytes(SECRET)
    (root / "safe").mkdir()
    (root / "safe" / "shared.txt").write_bytes(b"shared via static-safe\n")
    os.symlink("../secret", www / "escape")
    os.symlink("../secret/secret.txt", www / "escape.txt")
    os.symlink("../safe/shared.txt", www / "shared-link.txt")
    os.symlink("style.css", www / "alias.css")  # inside the root: fine
    for d, files in (("multiA", {"a.txt": b"from A\n", "both.txt": b"both from A\n"}),
                     ("multiB", {"b.txt": b"from B\n", "both.txt": b"both from B\n"})):
        (root / d).mkdir()
        for name, content in files.items():
            (root / d / name).write_bytes(content)
    (root / "m2root" / "m2").mkdir(parents=True)
    (root / "m2root" / "m2" / "x.txt").write_bytes(b"static-map2 x\n")
    (root / "checkdir").mkdir()
    (root / "checkdir" / "robots.txt").write_bytes(b"User-agent: *\n")
    # the secret one level above checkdir/m2root too
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return build_tree(tmp_path_factory.mktemp("static"))


@pytest.fixture(scope="module")
def srv(tree, tmp_path_factory):
    f = ServerFactory(tmp_path_factory.mktemp("static-srv"))
    s = f(
        [
            "--wsgi-file", BASIC,
            "--static-map", "/static=%s" % (tree / "www"),
            "--static-map", "/multi=%s" % (tree / "multiA"),
            "--static-map", "/multi=%s" % (tree / "multiB"),
            "--static-map2", "/m2=%s" % (tree / "m2root"),
            "--check-static", str(tree / "checkdir"),
            "--static-index", "index.html",
            "--static-safe", str(tree / "safe"),
            "--processes", "1",
            "--threads", "2",
        ]
    )
    yield s
    f.cleanup()
    _fail_on_crash(f)


def raw(srv, method, path, headers=(), body=b""):
    """One request on its own connection, bytes exactly as given (no client
    normalisation of the path)."""
    with srv.raw() as c:
        c.send(simple_request(method, path, headers=headers, body=body, close=True))
        return c.read_response(method)


def get(srv, path, headers=()):
    return raw(srv, "GET", path, headers)


# -- serving -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,ctype,content",
    [("style.css", "text/css", CSS), ("img.png", "image/png", PNG), ("data.txt", "text/plain", DATA)],
)
def test_serves_file_with_mime_type(srv, name, ctype, content):
    r = get(srv, "/static/" + name)
    assert r.status == 200, r
    assert r.body == content
    assert r.header("Content-Type", "").split(";")[0].strip() == ctype
    assert r.header("Content-Length") == str(len(content))


def test_query_string_ignored(srv):
    r = get(srv, "/static/style.css?v=123")
    assert r.status == 200 and r.body == CSS, r


def test_percent_encoded_name(srv):
    r = get(srv, "/static/with%20space.txt")
    assert r.status == 200 and r.body == b"spaced\n", r


def test_big_file(srv, tree):
    want = (tree / "www" / "big.bin").read_bytes()
    status, hdrs, body = srv.get("/static/big.bin", timeout=20)
    assert status == 200
    assert int(hdrs["content-length"]) == len(want)
    assert hashlib.sha256(body).digest() == hashlib.sha256(want).digest()


def test_last_modified_and_if_modified_since(srv, tree):
    r = get(srv, "/static/style.css")
    lm = r.header("Last-Modified")
    assert lm, r
    mtime = os.stat(tree / "www" / "style.css").st_mtime
    assert abs(email.utils.parsedate_to_datetime(lm).timestamp() - int(mtime)) <= 1
    r304 = get(srv, "/static/style.css", [("If-Modified-Since", lm)])
    assert r304.status == 304, r304
    assert r304.body == b""
    # a date before the file's: full answer
    old = email.utils.formatdate(mtime - 86400 * 365, usegmt=True)
    r200 = get(srv, "/static/style.css", [("If-Modified-Since", old)])
    assert r200.status == 200 and r200.body == CSS, r200


def test_etag_and_if_none_match(srv):
    r = get(srv, "/static/style.css")
    etag = r.header("ETag")
    assert etag, r
    r304 = get(srv, "/static/style.css", [("If-None-Match", etag)])
    assert r304.status == 304, r304
    assert r304.body == b""
    r200 = get(srv, "/static/style.css", [("If-None-Match", '"not-the-etag"')])
    assert r200.status == 200 and r200.body == CSS, r200


def test_range_first_ten_bytes(srv):
    r = get(srv, "/static/data.txt", [("Range", "bytes=0-9")])
    assert r.status == 206, r
    assert r.body == DATA[:10]
    assert r.header("Content-Range") == "bytes 0-9/%d" % len(DATA)
    assert r.header("Content-Length") == "10"


@pytest.mark.parametrize(
    "spec,start,end",
    [("bytes=100-199", 100, 199), ("bytes=1990-", 1990, 1999), ("bytes=-10", 1990, 1999), ("bytes=1995-5000", 1995, 1999)],
)
def test_range_other_forms(srv, spec, start, end):
    r = get(srv, "/static/data.txt", [("Range", spec)])
    assert r.status == 206, r
    assert r.body == DATA[start : end + 1]
    assert r.header("Content-Range") == "bytes %d-%d/%d" % (start, end, len(DATA))


def test_range_unsatisfiable_416(srv):
    r = get(srv, "/static/data.txt", [("Range", "bytes=1000000-2000000")])
    assert r.status == 416, r
    cr = r.header("Content-Range")
    assert cr is None or cr == "bytes */%d" % len(DATA), cr
    assert DATA[:10] not in r.body


def test_head_headers_only_and_connection_reusable(srv):
    with srv.raw() as c:
        c.send(simple_request("HEAD", "/static/data.txt"))
        r = c.read_response("HEAD")
        assert r.status == 200, r
        assert r.header("Content-Length") == str(len(DATA))
        assert r.header("Content-Type", "").startswith("text/plain")
        # no body bytes: the next response on the connection parses cleanly
        c.send(simple_request("GET", "/static/style.css", close=True))
        r2 = c.read_response()
    assert r2.status == 200 and r2.body == CSS, r2


def test_keepalive_several_files(srv):
    with srv.raw() as c:
        for name, content in (("style.css", CSS), ("data.txt", DATA), ("img.png", PNG)):
            c.send(simple_request("GET", "/static/" + name))
            r = c.read_response()
            assert r.status == 200 and r.body == content, r
        c.send(simple_request("GET", "/", close=True))
        assert c.read_response().body == b"hello\n"


def test_missing_file_falls_through_to_app(srv):
    r = get(srv, "/static/missing.txt")
    assert r.status == 200 and r.body == b"hello\n", r
    r = get(srv, "/static/")  # directory without an index.html
    assert r.status != 200 or r.body == b"hello\n", r


def test_post_goes_to_app(srv):
    r = raw(srv, "POST", "/static/style.css", body=b"x=1")
    assert r.status == 200 and r.body == b"hello\n", r


def test_several_maps_for_one_prefix_in_order(srv):
    assert get(srv, "/multi/a.txt").body == b"from A\n"
    assert get(srv, "/multi/b.txt").body == b"from B\n"  # not in A: tried in B
    assert get(srv, "/multi/both.txt").body == b"both from A\n"  # A first
    assert get(srv, "/multi/none.txt").body == b"hello\n"


def test_static_map2_appends_whole_path(srv):
    r = get(srv, "/m2/x.txt")
    assert r.status == 200 and r.body == b"static-map2 x\n", r


def test_check_static(srv):
    r = get(srv, "/robots.txt")
    assert r.status == 200 and r.body == b"User-agent: *\n", r
    assert get(srv, "/nothing-here.txt").body == b"hello\n"


def test_static_index(srv):
    r = get(srv, "/static/sub/")
    assert r.status == 200 and r.body == b"<h1>sub index</h1>\n", r
    assert r.header("Content-Type", "").startswith("text/html")


def test_symlink_into_static_safe_is_served(srv):
    r = get(srv, "/static/shared-link.txt")
    assert r.status == 200 and r.body == b"shared via static-safe\n", r


def test_symlink_inside_root_is_served(srv):
    r = get(srv, "/static/alias.css")
    assert r.status == 200 and r.body == CSS, r


def test_prefix_is_a_plain_string_prefix_as_in_uwsgi(srv):
    # uWSGI matches --static-map prefixes as plain strings and always puts a
    # '/' between the directory and the rest: "/staticstyle.css" is served
    # from <dir>/style.css. mulefarm keeps that (README, "Static files").
    r = get(srv, "/staticstyle.css")
    assert r.body == CSS, r
    r = get(srv, "/static-x/style.css")
    assert r.body == b"hello\n", r


def test_http10_client(srv):
    with srv.raw() as c:
        c.send(simple_request("GET", "/static/data.txt", version="HTTP/1.0"))
        r = c.read_response()
        assert r.status == 200 and r.body == DATA, r
        assert c.is_closed(3), "HTTP/1.0 without keep-alive: the server must close"


def test_big_file_then_small_on_one_connection(srv, tree):
    want = (tree / "www" / "big.bin").read_bytes()
    with srv.raw(timeout=20) as c:
        c.send(simple_request("GET", "/static/big.bin"))
        r = c.read_response()
        assert r.status == 200 and len(r.body) == len(want) and r.body == want
        c.send(simple_request("GET", "/static/style.css", close=True))
        r2 = c.read_response()
    assert r2.status == 200 and r2.body == CSS, r2


def test_client_abort_during_big_file(srv):
    for _ in range(3):
        with srv.raw() as c:
            c.send(simple_request("GET", "/static/big.bin"))
            c.read_line()  # the status line, then go away mid-body
    r = get(srv, "/static/style.css")
    assert r.status == 200 and r.body == CSS, r
    assert srv.running()


def test_multiple_ranges_not_mangled(srv):
    r = get(srv, "/static/data.txt", [("Range", "bytes=0-1,5-6")])
    if r.status == 200:
        assert r.body == DATA
    else:
        assert r.status == 206, r
        assert r.header("Content-Type", "").startswith("multipart/byteranges"), r


@pytest.mark.parametrize("spec", ["bytes=abc", "pages=0-9", "bytes=9-0"])
def test_invalid_range_ignored(srv, spec):
    r = get(srv, "/static/data.txt", [("Range", spec)])
    assert r.status in (200, 416), r
    if r.status == 200:
        assert r.body == DATA


def test_range_with_if_range(srv):
    etag = get(srv, "/static/data.txt").header("ETag")
    r = get(srv, "/static/data.txt", [("Range", "bytes=0-9"), ("If-Range", etag)])
    assert r.status == 206 and r.body == DATA[:10], r
    r = get(srv, "/static/data.txt", [("Range", "bytes=0-9"), ("If-Range", '"stale"')])
    assert r.status == 200 and r.body == DATA, r


TRAVERSALS = [
    "/static/../secret/secret.txt",
    "/static/%2e%2e/secret/secret.txt",
    "/static/%2E%2E/secret/secret.txt",
    "/static/.%2e/secret/secret.txt",
    "/static/%2e%2e%2fsecret%2fsecret.txt",
    "/static/..%2fsecret%2fsecret.txt",
    "/static/%2f..%2fsecret%2fsecret.txt",
    "/static/sub/../../secret/secret.txt",
    "/static/sub/%2e%2e/%2e%2e/secret/secret.txt",
    "/static/..%5csecret%5csecret.txt",
    "/static/..\\secret\\secret.txt",
    "/static/%2e%2e%00/secret/secret.txt",
    "/static/../secret/secret.txt%00.css",
    "/static/escape/secret.txt",
    "/static/escape.txt",
    "/static/escape%2fsecret.txt",
    "/static/./escape.txt",
    "/static../secret/secret.txt",
    "/static%2f..%2fsecret%2fsecret.txt",
    "/static/%252e%252e/secret/secret.txt",
    "/m2/../secret/secret.txt",
    "/m2/%2e%2e/%2e%2e/secret/secret.txt",
    "/multi/../secret/secret.txt",
    "/multi/%2e%2e/secret/secret.txt",
    "/../secret/secret.txt",
    "/%2e%2e/secret/secret.txt",
    "/..%2fsecret%2fsecret.txt",
    "//../secret/secret.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_not_served(srv, path):
    try:
        r = get(srv, path)
    except (ConnectionClosed, ConnectionError):
        return  # refused by closing: fine
    assert SECRET not in r.body, "served the secret for %r: %r" % (path, r)
    # app fall-through ("hello") or a 4xx: both fine
    assert r.body == b"hello\n" or 400 <= r.status < 500, r


def test_absolute_path_traversal(srv):
    for path in ("/static/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "/static/%2fetc%2fpasswd", "/static//etc/passwd"):
        r = get(srv, path)
        assert b"root:" not in r.body, (path, r)


def test_nul_does_not_truncate_the_name(srv):
    # "style.css%00.png" must not serve style.css
    r = get(srv, "/static/style.css%00.png")
    assert r.body != CSS, r


def test_server_still_fine_after_traversals(srv):
    assert get(srv, "/static/style.css").body == CSS
    assert srv.running()


# -- --mount with --manage-script-name ----------------------------------------------


@pytest.fixture(scope="module")
def msrv(tmp_path_factory):
    f = ServerFactory(tmp_path_factory.mktemp("mount-srv"))
    s = f(
        [
            "--wsgi-file", BASIC,
            "--pythonpath", str(APPS),
            "--mount", "/app=mounted:application",
            "--mount", "/app/deep=mounted:other",
            "--mount", "/f=%s" % (APPS / "mounted.py"),
            "--manage-script-name",
            "--socket", "127.0.0.1:%d" % free_port_number(),
            "--processes", "1",
            "--threads", "2",
        ]
    )
    s.uwsgi_addr = ("127.0.0.1", int(s.args[s.args.index("--socket") + 1].rsplit(":", 1)[1]))
    yield s
    f.cleanup()
    _fail_on_crash(f)


def mget(srv, path):
    r = get(srv, path)
    assert r.status == 200, (r, srv.log_text()[-3000:])
    return r


def mjson(srv, path):
    d = json.loads(mget(srv, path).body)
    return d.get("app"), d.get("SCRIPT_NAME"), d.get("PATH_INFO")


def test_mount_splits_script_name(msrv):
    assert mjson(msrv, "/app/x") == ("mounted", "/app", "/x")


def test_mount_deeper_path_and_query(msrv):
    d = json.loads(mget(msrv, "/app/x/y%20z?q=1").body)
    assert (d["app"], d["SCRIPT_NAME"], d["PATH_INFO"], d["QUERY_STRING"]) == ("mounted", "/app", "/x/y z", "q=1")


def test_mount_prefix_alone_has_empty_path_info(msrv):
    assert mjson(msrv, "/app") == ("mounted", "/app", "")


def test_mount_prefix_with_slash(msrv):
    assert mjson(msrv, "/app/") == ("mounted", "/app", "/")


def test_mount_longest_prefix_wins(msrv):
    assert mjson(msrv, "/app/deep/z") == ("other", "/app/deep", "/z")
    assert mjson(msrv, "/app/deep") == ("other", "/app/deep", "")
    assert mjson(msrv, "/app/deeper") == ("mounted", "/app", "/deeper")


def test_mount_file_form(msrv):
    assert mjson(msrv, "/f/y") == ("mounted", "/f", "/y")


def test_mount_prefix_only_on_segment_boundary(msrv):
    r = mget(msrv, "/appx")
    assert r.body == b"hello\n", r  # the default app, not /app's


def test_unmounted_path_goes_to_default_app(msrv):
    r = mget(msrv, "/env/x")
    e = json.loads(r.body)["env"]
    assert e["SCRIPT_NAME"] == ""
    assert e["PATH_INFO"] == "/env/x"
    assert mget(msrv, "/").body == b"hello\n"
    assert mget(msrv, "/other/x").body == b"hello\n"


def test_mount_over_uwsgi_socket(msrv):
    # behind nginx: PATH_INFO comes in a var and is split the same way
    resp, raw = uwsgi_exchange(msrv.uwsgi_addr, packet(request_vars(path="/app/deep/q", query="a=1")))
    assert resp is not None and resp.status == 200, (raw[:300], msrv.log_text()[-3000:])
    d = json.loads(resp.body)
    assert (d["app"], d["SCRIPT_NAME"], d["PATH_INFO"], d["QUERY_STRING"]) == ("other", "/app/deep", "/q", "a=1")


def test_mount_without_default_app_is_404(server):
    srv = server(
        ["--pythonpath", str(APPS), "--mount", "/app=mounted:application", "--manage-script-name"],
        ready_path="/app/",
    )
    assert json.loads(srv.get("/app/x")[2])["app"] == "mounted"
    status, _, _ = srv.get("/elsewhere")
    assert status == 404


def test_stalled_download_does_not_hold_the_worker(tmp_path):
    """One worker, one thread: a client that stops reading a big static file
    must not hold the worker (the loop sends the rest as the socket drains),
    so everyone else is served meanwhile, long before --socket-timeout."""
    www = tmp_path / "www"
    www.mkdir()
    with open(www / "huge.bin", "wb") as fh:  # sparse: more than any socket buffer
        fh.truncate(64 * 1024 * 1024)
    (www / "small.txt").write_bytes(b"small\n")
    f = ServerFactory(tmp_path / "srv")
    s = f(["--wsgi-file", BASIC, "--static-map", "/static=%s" % www, "--socket-timeout", "30",
           "--processes", "1", "--threads", "1"])
    try:
        stalled = socket.create_connection(s.addr, timeout=10)
        stalled.sendall(b"GET /static/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stalled.recv(4096).startswith(b"HTTP/1.1 200")  # started; now stop reading
        for _ in range(3):
            status, _, body = s.get("/static/small.txt", timeout=3)
            assert status == 200 and body == b"small\n"
            assert s.get("/", timeout=3)[0] == 200
        stalled.close()
    finally:
        f.cleanup()
        _fail_on_crash(f)
