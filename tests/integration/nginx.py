"""A real nginx (Debian's /usr/sbin/nginx) in front of mulefarm, and raw
uwsgi-protocol packets for talking to a --socket directly.

Nginx(...) writes a config into a fresh directory under /tmp (mode 0755, so
that nginx's workers can use it when they run as nobody), starts nginx in
the foreground in its own session, and waits until every server block
answers. Everything nginx writes (pid, error/access logs, the client body
and uwsgi temp files) stays in that directory; stop() kills the whole group.

As root, nginx's workers run as `nobody` (made explicit with a `user`
line): they can reach a unix socket only through a directory nobody may
traverse (shared_dir() makes one) and with a socket mode that lets them
connect (give mulefarm --chmod-socket=666).
"""
import grp
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

import httpclient

NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
UWSGI_PARAMS = "/etc/nginx/uwsgi_params"
START_DEADLINE = 10.0


def have_nginx():
    return os.access(NGINX, os.X_OK) and os.path.exists(UWSGI_PARAMS)


def shared_dir(prefix="mfngx-"):
    """A new directory under /tmp that nginx workers running as nobody can
    traverse (mkdtemp makes 0700). Short, so unix socket paths fit."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return d


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user_line():
    """As root: run the workers as nobody, like a stock nginx would (nginx's
    compiled-in default user), with nobody's own group."""
    if os.geteuid() != 0:
        return ""
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return ""
    try:
        group = grp.getgrgid(pw.pw_gid).gr_name
    except KeyError:
        group = "nogroup"
    return "user nobody %s;" % group


def _has_module(name):
    try:
        out = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=10).stderr
    except (OSError, subprocess.TimeoutExpired):
        return True
    return "--without-http_%s_module" % name not in out


class Nginx:
    """nginx with one `server` block per entry of <sites>: name -> the
    uwsgi_pass target ("127.0.0.1:PORT" or "unix:/path"), or a dict with
    'locations' (raw nginx text for the server block) for anything else.
    The listening port of each is .port[name]."""

    def __init__(self, sites, workdir=None, workers=1, extra_http=""):
        self.dir = workdir or shared_dir()
        self.own_dir = workdir is None
        self.proc = None
        self.port = {}
        self.sites = sites
        self.workers = workers
        self.extra_http = extra_http
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.access_log = os.path.join(self.dir, "access.log")
        for attempt in range(3):
            self.port = {name: _free_port() for name in sites}
            self._write_conf()
            self._start()
            ok, why = self._wait_ready()
            if ok:
                return
            text = self.error_text()
            self._kill()
            if "in use" in text and attempt < 2:
                continue
            self.cleanup()
            pytest.fail("nginx did not come up (%s)\nconfig:\n%s\n--- error.log ---\n%s" % (why, self.conf_text(), text))

    # -- config ------------------------------------------------------------
    def _write_conf(self):
        temps = []
        for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            if t == "client_body" or _has_module(t):
                temps.append("    %s_temp_path %s;" % (t, os.path.join(self.dir, t)))
        servers = []
        for name, site in self.sites.items():
            if isinstance(site, dict):
                locations = site["locations"]
            else:
                locations = (
                    "        location / {\n"
                    "            include %s;\n"
                    "            uwsgi_pass %s;\n"
                    "        }\n" % (UWSGI_PARAMS, site)
                )
            servers.append(
                "    server {  # %s\n"
                "        listen 127.0.0.1:%d;\n"
                "        server_name localhost;\n"
                "%s"
                "    }\n" % (name, self.port[name], locations)
            )
        conf = (
            "%(user)s\n"
            "worker_processes %(workers)d;\n"
            "daemon off;\n"
            "master_process on;\n"
            "pid %(dir)s/nginx.pid;\n"
            "error_log %(error_log)s info;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            "    access_log %(access_log)s;\n"
            "%(temps)s\n"
            "    client_max_body_size 0;\n"
            "    uwsgi_read_timeout 30s;\n"
            "    uwsgi_send_timeout 30s;\n"
            "%(extra)s\n"
            "%(servers)s"
            "}\n"
        ) % {
            "user": _user_line(),
            "workers": self.workers,
            "dir": self.dir,
            "error_log": self.error_log,
            "access_log": self.access_log,
            "temps": "\n".join(temps),
            "extra": self.extra_http,
            "servers": "".join(servers),
        }
        with open(self.conf_path, "w") as f:
            f.write(conf)

    def conf_text(self):
        try:
            with open(self.conf_path) as f:
                return f.read()
        except OSError:
            return ""

    # -- process -------------------------------------------------------------
    def _start(self):
        # -e: the error log used before the config is read (nginx >= 1.19.5)
        args = [NGINX, "-e", self.error_log, "-p", self.dir, "-c", self.conf_path]
        self._out = open(os.path.join(self.dir, "nginx.out"), "wb")
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _wait_ready(self):
        deadline = time.monotonic() + START_DEADLINE
        pending = dict(self.port)
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, "exited with status %s" % self.proc.returncode
            for name, port in list(pending.items()):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                        pass
                    del pending[name]
                except OSError as e:
                    last = "%s: %r" % (name, e)
            if not pending:
                return True, ""
            time.sleep(0.02)
        return False, "not listening within %.0f s: %s" % (START_DEADLINE, last)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def error_text(self):
        parts = []
        for p in (os.path.join(self.dir, "nginx.out"), self.error_log):
            try:
                with open(p, "rb") as f:
                    parts.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(parts)

    def error_tail(self, n=40):
        return "\n".join(self.error_text().splitlines()[-n:])

    def _kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)  # fast shutdown
                self.proc.wait(5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:
            self._out.close()
        except Exception:
            pass

    def cleanup(self):
        self._kill()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- requests --------------------------------------------------------------
    def addr(self, name):
        return ("127.0.0.1", self.port[name])

    def raw(self, name, timeout=10.0):
        return httpclient.RawConn(self.addr(name), timeout)


# ---------------------------------------------------------------------------
# uwsgi protocol packets


def _b(s):
    return s if isinstance(s, bytes) else s.encode("latin-1")


def encode_vars(pairs):
    out = []
    for k, v in pairs:
        k, v = _b(k), _b(v)
        out.append(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v)
    return b"".join(out)


def packet(pairs, body=b"", modifier1=0, modifier2=0):
    """A uwsgi request packet: header <BHB (modifier1, datasize, modifier2),
    then the vars (each <H key <H value), then <body>."""
    data = encode_vars(pairs)
    return struct.pack("<BHB", modifier1, len(data), modifier2) + data + body


def request_vars(method="GET", path="/", query="", body_len=0, content_type="", extra=(), uri=None):
    """Vars as nginx's uwsgi_params would send them (CONTENT_TYPE and
    CONTENT_LENGTH present but empty when there is no body)."""
    if uri is None:
        uri = path + ("?" + query if query else "")
    return [
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", content_type),
        ("CONTENT_LENGTH", str(body_len) if body_len else ""),
        ("REQUEST_URI", uri),
        ("PATH_INFO", path),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "54321"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "localhost"),
    ] + list(extra)


def uwsgi_exchange(addr, data, timeout=5.0, method="GET"):
    """Connect to a uwsgi socket, send <data>, and return (response or None
    if the server closed without one, every byte received until close).
    The response gets .rest: the bytes after it."""
    conn = httpclient.RawConn(addr, timeout)
    try:
        conn.send(data)
        raw = conn.read_until_close()
    finally:
        conn.close()
    if not raw:
        return None, raw
    parser = httpclient.RawConn.__new__(httpclient.RawConn)
    parser.buf = raw
    parser.eof = False
    parser.sock = _NoSock()
    try:
        resp = parser.read_response(method)
    except (httpclient.ConnectionClosed, ValueError):
        return None, raw
    resp.rest = parser.buf  # bytes after the first response
    return resp, raw


class _NoSock:
    """Stands in for the socket of a RawConn that parses bytes already read."""

    def recv(self, n):
        return b""

    def close(self):
        pass
