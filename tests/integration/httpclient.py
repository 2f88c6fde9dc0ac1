"""Raw-socket HTTP/1.x client for edge-case tests.

RawConn sends arbitrary bytes and parses responses itself (status line,
headers, body framed by Content-Length, chunked encoding or connection
close), so tests can send malformed requests, pipeline, stall, and check
whether the server closed the connection.

Every blocking call is bounded by the socket timeout (default 5 s).
"""
import socket
import struct
import time


class ConnectionClosed(Exception):
    """The peer closed (or reset) the connection before a response started."""


class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []  # list of (name, value) as str (latin-1)
        self.trailers = []
        self.body = b""
        self.complete = False  # body framing fully satisfied
        self.framing = None  # 'none', 'length', 'chunked', 'close'
        self.raw_head = b""

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_header(self, name):
        return any(k.lower() == name.lower() for k, _ in self.headers)

    def __repr__(self):
        return "<Response %s %s %s headers=%r body=%r%s complete=%s>" % (
            self.version,
            self.status,
            self.reason,
            self.headers,
            self.body[:200],
            "..." if len(self.body) > 200 else "",
            self.complete,
        )


def make_socket(addr, timeout=5.0):
    """addr: (host, port) tuple or a unix socket path (str)."""
    if isinstance(addr, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr)
        return s
    host, port = addr
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


class RawConn:
    def __init__(self, addr, timeout=5.0):
        self.addr = addr
        self.sock = make_socket(addr, timeout)
        self.buf = b""
        self.eof = False

    # -- plumbing -------------------------------------------------------
    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        """Read more bytes into the buffer; returns False at EOF/reset."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_line(self):
        """One line including its LF (b'' or a partial line at EOF)."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 1], self.buf[i + 1 :]
                return line
            if not self._fill():
                line, self.buf = self.buf, b""
                return line

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                break
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_until_close(self):
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def local_port(self):
        return self.sock.getsockname()[1]

    def segments_without_data(self):
        """How many TCP segments without payload this side has received
        (the SYN-ACK, bare ACKs, a bare FIN): tcpi_segs_in minus
        tcpi_data_segs_in from TCP_INFO (Linux 4.6 and later)."""
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        (segs_in,) = struct.unpack_from("I", info, 140)
        (data_segs_in,) = struct.unpack_from("I", info, 152)
        return segs_in - data_segs_in

    # -- HTTP -------------------------------------------------------------
    def read_response(self, method="GET", skip_interim=True):
        """Parse the next response. Raises ConnectionClosed if the peer closed
        before sending any byte of it, socket.timeout if it stalls."""
        while True:
            resp = self._read_one(method)
            if skip_interim and resp.status is not None and 100 <= resp.status < 200 and resp.status != 101:
                continue
            return resp

    def _read_one(self, method):
        resp = Response()
        line = self.read_line()
        if not line:
            raise ConnectionClosed("connection closed before a response")
        resp.raw_head = line
        parts = line.rstrip(b"\r\n").decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("bad status line %r" % line)
        resp.version = parts[0]
        resp.status = int(parts[1])
        resp.reason = parts[2] if len(parts) > 2 else ""
        while True:
            line = self.read_line()
            resp.raw_head += line
            if not line:
                # closed inside the head
                resp.complete = False
                resp.framing = "truncated-head"
                return resp
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.rstrip(b"\r\n").decode("latin-1").partition(":")
            resp.headers.append((name, value.strip()))
        # body
        if method == "HEAD" or 100 <= resp.status < 200 or resp.status in (204, 304):
            resp.framing = "none"
            resp.complete = True
            return resp
        te = ",".join(resp.header_all("Transfer-Encoding")).lower()
        if "chunked" in te:
            resp.framing = "chunked"
            self._read_chunked(resp)
            return resp
        cl = resp.header("Content-Length")
        if cl is not None:
            resp.framing = "length"
            n = int(cl.strip())
            resp.body = self.read_exact(n)
            resp.complete = len(resp.body) == n
            return resp
        resp.framing = "close"
        resp.body = self.read_until_close()
        resp.complete = True
        return resp

    def _read_chunked(self, resp):
        body = []
        while True:
            line = self.read_line()
            if not line.endswith(b"\n"):
                break  # truncated
            size_s = line.split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                break
            if size == 0:
                while True:
                    t = self.read_line()
                    if not t.endswith(b"\n"):
                        resp.body = b"".join(body)
                        return
                    if t in (b"\r\n", b"\n"):
                        break
                    name, _, value = t.rstrip(b"\r\n").decode("latin-1").partition(":")
                    resp.trailers.append((name, value.strip()))
                resp.body = b"".join(body)
                resp.complete = True
                return
            data = self.read_exact(size)
            body.append(data)
            if len(data) < size:
                break
            crlf = self.read_exact(2)
            if crlf != b"\r\n":
                break
        resp.body = b"".join(body)
        resp.complete = False

    def is_closed(self, timeout=3.0):
        """True if the peer closes (EOF or reset) within <timeout> seconds.
        Any bytes that arrive meanwhile are kept in self.extra."""
        deadline = time.monotonic() + timeout
        old = self.sock.gettimeout()
        self.extra = self.buf
        self.buf = b""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    return False
                except (ConnectionResetError, BrokenPipeError):
                    return True
                if not data:
                    return True
                self.extra += data
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def exchange(addr, data, method="GET", timeout=5.0):
    """Open a connection, send <data>, read one response; returns
    (response, conn). The caller closes conn (or uses it further)."""
    conn = RawConn(addr, timeout)
    conn.send(data)
    return conn.read_response(method), conn


def simple_request(method, path, host="127.0.0.1", headers=(), body=b"", version="HTTP/1.1", close=False):
    """Build request bytes. Adds Content-Length when body is non-empty and no
    framing header is given."""
    if isinstance(body, str):
        body = body.encode("latin-1")
    lines = ["%s %s %s" % (method, path, version), "Host: %s" % host]
    names = set()
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
        names.add(k.lower())
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunk_encode(chunks, trailers=()):
    out = b""
    for c in chunks:
        if c:
            out += b"%x\r\n" % len(c) + c + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers:
        out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    out += b"\r\n"
    return out
