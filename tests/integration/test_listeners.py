"""Listener addresses: unix sockets (+ --chmod-socket), IPv6, ':port',
--http, --listen, several sockets."""
import os
import shutil
import socket
import stat
import subprocess

import pytest

from conftest import BIN, app_path, free_port_number
import httpclient
from httpclient import simple_request

BASIC = ["--wsgi-file", app_path("basic.py")]


def raw_get(addr, path="/uri/unix"):
    with httpclient.RawConn(addr) as c:
        c.send(simple_request("GET", path, close=True))
        return c.read_response()


def short_dir(tmp_path):
    # unix socket paths are limited to 107 bytes
    return str(tmp_path) if len(str(tmp_path)) < 80 else "/tmp"


def test_unix_socket_chmod_660(server, tmp_path):
    path = os.path.join(short_dir(tmp_path), "mf-%d.sock" % os.getpid())
    srv = server(BASIC + ["--http-socket", path, "--chmod-socket=660"], addr=path)
    try:
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        r = raw_get(path)
        assert r.status == 200 and r.body == b"/uri/unix"
    finally:
        srv.cleanup()
        if os.path.exists(path):
            os.unlink(path)


def test_unix_socket_chmod_default_666(server, tmp_path):
    path = os.path.join(short_dir(tmp_path), "mf-b-%d.sock" % os.getpid())
    srv = server(BASIC + ["--http-socket", path, "--chmod-socket"], addr=path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
        assert raw_get(path).status == 200
    finally:
        srv.cleanup()
        if os.path.exists(path):
            os.unlink(path)


def test_unix_socket_relative_name_without_colon(server, tmp_path):
    # an ADDR without ':' is a unix path (relative to the working directory)
    wd = tmp_path / "wd"
    wd.mkdir()
    name = "rel.sock"
    full = str(wd / name)
    if len(full) > 100:
        pytest.skip("tmp path too long for a unix socket")
    srv = server(BASIC + ["--http-socket", name], addr=full, cwd=str(wd))
    assert os.path.exists(full)
    assert raw_get(full).status == 200


def test_http_option(server):
    port = free_port_number()
    srv = server(BASIC + ["--http", "127.0.0.1:%d" % port], addr=("127.0.0.1", port))
    status, _, body = srv.get("/")
    assert status == 200 and body == b"hello\n"


def test_http_option_unix(server, tmp_path):
    path = os.path.join(short_dir(tmp_path), "mf-h-%d.sock" % os.getpid())
    srv = server(BASIC + ["--http", path], addr=path)
    try:
        assert raw_get(path).status == 200
    finally:
        srv.cleanup()
        if os.path.exists(path):
            os.unlink(path)


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_ipv6_loopback(server):
    port = free_port_number("::1")
    srv = server(BASIC + ["--http-socket", "[::1]:%d" % port], addr=("::1", port))
    r = raw_get(("::1", port), "/env")
    assert r.status == 200
    import json

    e = json.loads(r.body)["env"]
    assert e["REMOTE_ADDR"] == "::1"
    assert e["SERVER_PORT"] == str(port)


def test_all_interfaces_port_only(server):
    port = free_port_number()
    srv = server(BASIC + ["--http-socket", ":%d" % port], addr=("127.0.0.1", port))
    assert srv.get("/")[0] == 200


def test_listen_backlog_accepted(server):
    srv = server(BASIC + ["--listen", "64"])
    assert srv.get("/")[0] == 200
    if shutil.which("ss"):
        out = subprocess.run(
            ["ss", "-ltnH", "sport = :%d" % srv.port], capture_output=True, text=True, timeout=10
        ).stdout.split()
        # State Recv-Q Send-Q ...: for a listening socket Send-Q is the backlog
        if len(out) >= 3:
            assert out[2] == "64", out


def test_two_sockets(server, tmp_path):
    p1 = free_port_number()
    p2 = free_port_number()
    while p2 == p1:
        p2 = free_port_number()
    srv = server(
        BASIC + ["--http-socket", "127.0.0.1:%d" % p1, "--http-socket", "127.0.0.1:%d" % p2], addr=("127.0.0.1", p1)
    )
    assert raw_get(("127.0.0.1", p1), "/uri/one").body == b"/uri/one"
    assert raw_get(("127.0.0.1", p2), "/uri/two").body == b"/uri/two"


def _port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_no_socket_defaults_to_http_on_8080(server):
    p = subprocess.run([BIN] + BASIC + ["--print-config"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0
    assert "http-socket = 127.0.0.1:8080" in p.stdout
    if not _port_free(8080):
        pytest.skip("127.0.0.1:8080 is busy here; the --print-config check above still ran")
    srv = server(BASIC, addr=("127.0.0.1", 8080))
    assert srv.get("/")[0] == 200
    assert "no socket given" in srv.log_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_unix_socket_chown(server, tmp_path):
    import pwd
    import grp

    path = os.path.join(short_dir(tmp_path), "mf-o-%d.sock" % os.getpid())
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    srv = server(BASIC + ["--http-socket", path, "--chown-socket", "nobody:%s" % group], addr=path)
    try:
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
        assert raw_get(path).status == 200
    finally:
        srv.cleanup()


def test_unknown_chown_user_is_a_clear_error(tmp_path):
    path = os.path.join(short_dir(tmp_path), "mf-x-%d.sock" % os.getpid())
    p = subprocess.run(
        [BIN] + BASIC + ["--http-socket", path, "--chown-socket", "no-such-user-xyz"],
        capture_output=True, text=True, timeout=20,
    )
    assert p.returncode != 0
    assert "--chown-socket" in p.stderr and "no-such-user-xyz" in p.stderr


def test_umask_applies_to_unix_socket(server, tmp_path):
    path = os.path.join(short_dir(tmp_path), "mf-u-%d.sock" % os.getpid())
    srv = server(BASIC + ["--http-socket", path, "--umask", "077"], addr=path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0
        assert raw_get(path).status == 200
    finally:
        srv.cleanup()


def test_bad_umask_is_a_clear_error(tmp_path):
    p = subprocess.run(
        [BIN] + BASIC + ["--http-socket", "127.0.0.1:0", "--umask", "9z"],
        capture_output=True, text=True, timeout=20,
    )
    assert p.returncode != 0 and "--umask" in p.stderr
