"""General-purpose WSGI test app for the mulefarm integration suite.

Routes are selected by PATH_INFO prefix; parameters come from the query
string. Paths given as ?marker=... are files the app creates to report
things the client cannot see (close() was called, the app has started, ...).
"""
import hashlib
import io
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

IMPORT_PID = os.getpid()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
    for prefix, handler in ROUTES:
        if path == prefix or path.startswith(prefix + "/"):
            return handler(environ, start_response, q)
    return text(start_response, b"hello\n")


def alt_app(environ, start_response):
    """Served with --callable alt_app."""
    return text(start_response, b"alt callable\n")


# ---------------------------------------------------------------------------
# helpers


def touch(path, content="x"):
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(content)
        os.rename(tmp, path)


def text(start_response, body, status="200 OK", ctype="text/plain"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def jsonable(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return {"bytes": v.decode("latin-1")}
    if isinstance(v, tuple):
        return {"tuple": [jsonable(x) for x in v]}
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return {"repr": repr(v)}


def send_json(start_response, obj, status="200 OK"):
    body = json.dumps(obj).encode()
    return text(start_response, body, status, "application/json")


def read_all(inp, n=65536):
    parts = []
    while True:
        d = inp.read(n)
        if not d:
            break
        parts.append(d)
    return b"".join(parts)


# ---------------------------------------------------------------------------
# routes


def r_env(environ, sr, q):
    """Dump the environ: values (JSON-able) and their type names."""
    inp = environ.get("wsgi.input")
    if q.get("read") == "1" and inp is not None:
        read_all(inp)
    out = {
        "env": {k: jsonable(v) for k, v in environ.items()},
        "types": {k: type(v).__name__ for k, v in environ.items()},
        "callable": {k: callable(v) for k, v in environ.items()},
        "input_attrs": [a for a in ("read", "readline", "readlines", "__iter__") if hasattr(inp, a)],
        "errors_attrs": [a for a in ("write", "writelines", "flush") if hasattr(environ.get("wsgi.errors"), a)],
    }
    return send_json(sr, out)


def r_uri(environ, sr, q):
    return text(sr, environ.get("REQUEST_URI", "").encode("latin-1"))


def r_pid(environ, sr, q):
    return send_json(
        sr,
        {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "import_pid": IMPORT_PID,
            "thread": threading.get_ident(),
        },
    )


def r_echo(environ, sr, q):
    body = read_all(environ["wsgi.input"], int(q.get("n", "65536")))
    return text(sr, body, ctype=environ.get("CONTENT_TYPE") or "application/octet-stream")


def r_hash(environ, sr, q):
    h = hashlib.sha256()
    n = 0
    inp = environ["wsgi.input"]
    while True:
        d = inp.read(65536)
        if not d:
            break
        h.update(d)
        n += len(d)
    return text(sr, ("%d %s" % (n, h.hexdigest())).encode())


def r_input(environ, sr, q):
    """Exercise one wsgi.input API; returns JSON list of latin-1 strings."""
    inp = environ["wsgi.input"]
    mode = q.get("mode", "read")
    n = int(q.get("n", "0") or 0)
    if mode == "read":
        res = [inp.read()]
        res.append(inp.read())  # at EOF: b''
    elif mode == "readn":
        res = []
        while True:
            d = inp.read(n)
            if not d:
                break
            res.append(d)
    elif mode == "readline":
        res = []
        while True:
            line = inp.readline()
            if not line:
                break
            res.append(line)
    elif mode == "readlinen":
        res = []
        while True:
            line = inp.readline(n)
            if not line:
                break
            res.append(line)
    elif mode == "readlines":
        res = inp.readlines()
    elif mode == "iter":
        res = [line for line in inp]
    elif mode == "mixed":
        res = [inp.read(3), inp.readline(), inp.read()]
    else:
        res = []
    return send_json(sr, {"parts": [r.decode("latin-1") for r in res], "types": [type(r).__name__ for r in res]})


def r_partial_read(environ, sr, q):
    """Read ?n bytes, report them via ?marker, then read the rest."""
    inp = environ["wsgi.input"]
    first = inp.read(int(q.get("n", "5")))
    touch(q.get("marker"), first.decode("latin-1"))
    rest = read_all(inp)
    return text(sr, first + rest)


def r_sleep(environ, sr, q):
    touch(q.get("marker"), str(os.getpid()))
    time.sleep(float(q.get("s", "1")))
    return text(sr, b"slept\n")


def r_chunked(environ, sr, q):
    sr("200 OK", [("Content-Type", "text/plain")])
    return iter([b"part1-", b"", b"part2-", b"part3"])


def r_big(environ, sr, q):
    n = int(q.get("n", "1000000"))
    chunk = b"0123456789abcdef" * 4096  # 64 KiB
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl") == "1":
        headers.append(("Content-Length", str(n)))
    sr("200 OK", headers)

    def gen():
        left = n
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            left -= len(piece)
            yield piece

    return gen()


def r_status(environ, sr, q):
    code = q.get("code", "200")
    reason = {"200": "OK", "201": "Created", "404": "Not Found", "500": "Internal Server Error"}.get(code, "Whatever")
    return text(sr, ("status %s\n" % code).encode(), "%s %s" % (code, reason))


class ClosingIterable:
    """Yields <items> (raising <exc> after them if given); close() writes
    <marker>."""

    def __init__(self, items, marker, exc=None, forever=None):
        self.items = items
        self.marker = marker
        self.exc = exc
        self.forever = forever

    def __iter__(self):
        for i in self.items:
            yield i
        if self.exc is not None:
            raise self.exc
        if self.forever is not None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                yield self.forever
                time.sleep(0.0005)

    def close(self):
        touch(self.marker, "closed")


def r_close(environ, sr, q):
    sr("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return ClosingIterable([b"ab", b"cd"], q.get("marker"))


def r_stream(environ, sr, q):
    """Endless stream (30 s max) without Content-Length; close() -> marker."""
    sr("200 OK", [("Content-Type", "application/octet-stream")])
    return ClosingIterable([], q.get("marker"), forever=b"z" * 65536)


def r_raise_before(environ, sr, q):
    raise RuntimeError("boom-before-output")


def r_raise_after(environ, sr, q):
    headers = [("Content-Type", "text/plain")]
    if q.get("cl") == "1":
        headers.append(("Content-Length", "1000"))
    sr("200 OK", headers)
    first = b"first-part-" * 10
    return ClosingIterable([first, first], q.get("marker"), exc=RuntimeError("boom-after-output"))


def r_exc_replace(environ, sr, q):
    sr("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    try:
        raise ValueError("replaced-error")
    except ValueError:
        sr("503 Replaced", [("Content-Type", "text/plain"), ("X-Second", "1")], sys.exc_info())
    return [b"replaced body"]


def r_exc_after(environ, sr, q):
    write = sr("200 OK", [("Content-Type", "text/plain")])
    write(b"partial-output-" * 20)
    try:
        raise ValueError("original-boom")
    except ValueError:
        try:
            sr("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        except ValueError as e:
            touch(q.get("marker"), "reraised:%s" % e)
            raise
        touch(q.get("marker"), "not-reraised")
    return [b"should not get here"]


def r_write(environ, sr, q):
    write = sr("200 OK", [("Content-Type", "text/plain")])
    write(b"w1-")
    write(b"")
    write(b"w2-")
    write(b"w3")
    return []


def r_write_mixed(environ, sr, q):
    write = sr("200 OK", [("Content-Type", "text/plain")])
    write(b"written-")
    return [b"iter1-", b"iter2"]


def r_badheader(environ, sr, q):
    kind = q.get("kind", "")
    if kind == "cr":
        h = ("X-Bad", "a\rb")
    elif kind == "lf":
        h = ("X-Bad", "a\nb")
    elif kind == "crlf":
        h = ("X-Bad", "a\r\nX-Injected: yes")
    else:
        h = (q.get("name", "Connection"), q.get("value", "x"))
    body = b"should not be sent"
    sr("200 OK", [("Content-Type", "text/plain"), h, ("Content-Length", str(len(body)))])
    return [body]


def r_filewrapper(environ, sr, q):
    f = open(q["path"], "rb")
    offset = int(q.get("offset", "0"))
    if offset:
        f.seek(offset)
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl") == "1":
        headers.append(("Content-Length", str(os.path.getsize(q["path"]) - offset)))
    sr("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 65536)


class MarkingFile(io.FileIO):
    marker = None

    def close(self):
        if not self.closed:
            touch(self.marker, "file-closed")
        super().close()


def r_filewrapper_close(environ, sr, q):
    f = MarkingFile(q["path"], "rb")
    f.marker = q.get("marker")
    sr("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(os.path.getsize(q["path"])))])
    return environ["wsgi.file_wrapper"](f)


def r_filewrapper_bytesio(environ, sr, q):
    data = bytes(range(256)) * 400
    sr("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](io.BytesIO(data), 4096)


def r_nocontent(environ, sr, q):
    code = q.get("code", "204")
    reason = {"204": "No Content", "304": "Not Modified"}[code]
    sr("%s %s" % (code, reason), [("X-Code", code)])
    return []


def r_no_start(environ, sr, q):
    return [b"start_response was never called"]


def r_double_start(environ, sr, q):
    sr("200 OK", [("Content-Type", "text/plain")])
    sr("201 Created", [("Content-Type", "text/plain")])  # error: no exc_info
    return [b"should not be sent"]


def r_str_body(environ, sr, q):
    sr("200 OK", [("Content-Type", "text/plain")])
    return ["a str, not bytes"]


def r_errors(environ, sr, q):
    err = environ["wsgi.errors"]
    err.write("wsgi-errors-says:%s\n" % q.get("msg", "hi"))
    err.flush()
    return text(sr, b"logged\n")


def r_cwd(environ, sr, q):
    return send_json(sr, {"cwd": os.getcwd(), "sys_path": sys.path, "prefix": sys.prefix})


ROUTES = [
    ("/env", r_env),
    ("/uri", r_uri),
    ("/pid", r_pid),
    ("/echo", r_echo),
    ("/hash", r_hash),
    ("/input", r_input),
    ("/partial-read", r_partial_read),
    ("/sleep", r_sleep),
    ("/chunked", r_chunked),
    ("/big", r_big),
    ("/status", r_status),
    ("/close", r_close),
    ("/stream", r_stream),
    ("/raise-before", r_raise_before),
    ("/raise-after", r_raise_after),
    ("/exc-replace", r_exc_replace),
    ("/exc-after", r_exc_after),
    ("/write-mixed", r_write_mixed),
    ("/write", r_write),
    ("/bh", r_badheader),
    ("/fw-close", r_filewrapper_close),
    ("/fw-bytesio", r_filewrapper_bytesio),
    ("/fw", r_filewrapper),
    ("/errors", r_errors),
    ("/nocontent", r_nocontent),
    ("/no-start", r_no_start),
    ("/double-start", r_double_start),
    ("/str-body", r_str_body),
    ("/cwd", r_cwd),
]
