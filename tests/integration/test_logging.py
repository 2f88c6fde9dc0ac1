"""Access log and log-line prefixes on stderr."""
import re
import signal

from conftest import app_path

BASIC = ["--wsgi-file", app_path("basic.py")]
PREFIX = re.compile(r"^\[(worker \d+ pid \d+|master pid \d+)\] ")


def test_access_log_line(server):
    srv = server(BASIC)
    status, _, body = srv.get("/x?y=1")
    assert status == 200
    m = srv.wait_log(r"(?m)^.*GET /x\?y=1 .*\b200\b.*$")
    line = m.group(0)
    assert "worker" in line and "pid" in line
    assert "bytes" in line
    assert re.search(r"\b%d\b" % len(body), line), "byte count missing: " + line
    assert re.search(r"\d+(\.\d+)? ?(msecs|ms|usecs|us|secs|s)\b", line), "request time missing: " + line


def test_access_log_status_and_method(server):
    srv = server(BASIC)
    srv.request("POST", "/status?code=404", body=b"abc")
    line = srv.wait_log(r"(?m)^.*POST /status\?code=404 .*\b404\b.*$").group(0)
    assert "worker" in line and "pid" in line


def test_access_log_names_serving_worker(server):
    srv = server(["--wsgi-file", app_path("uwsgiapp.py"), "--processes", "1"])
    d = srv.get_json("/?who")
    line = srv.wait_log(r"(?m)^.*GET /\?who .*$").group(0)
    assert re.match(r"^\[worker %d pid %d\] " % (d["worker_id"], d["pid"]), line), line
    assert "127.0.0.1" in line


def test_access_log_500(server):
    srv = server(BASIC)
    srv.get("/raise-before")
    srv.wait_log(r"(?m)^.*GET /raise-before .*\b500\b")


def test_disable_logging(server):
    srv = server(BASIC + ["--disable-logging"])
    assert srv.get("/nolog-1?a=b")[0] == 200
    assert srv.get("/errors?msg=after-nolog")[0] == 200
    srv.wait_log(r"wsgi-errors-says:after-nolog")
    log = srv.log_text()
    assert "/nolog-1" not in log, log
    assert not re.search(r"GET /errors", log), log


def test_every_line_prefixed(server):
    srv = server(BASIC + ["--processes", "2"])
    for i in range(3):
        srv.get("/p%d" % i)
    srv.wait_log(r"GET /p2")
    assert srv.stop(signal.SIGINT) == 0
    lines = [l for l in srv.log_lines() if l.strip()]
    assert lines
    bad = [l for l in lines if not PREFIX.match(l)]
    assert not bad, "lines without a [role id pid N] prefix:\n" + "\n".join(bad)
    masters = [l for l in lines if l.startswith("[master pid %d] " % srv.pid)]
    assert masters, "no line from the master"
    workers = {m.group(1) for m in (re.match(r"^\[worker (\d+) pid \d+\] ", l) for l in lines) if m}
    assert workers and workers <= {"1", "2"}, workers


def test_traceback_lines_from_worker(server):
    srv = server(BASIC)
    srv.get("/raise-before")
    srv.wait_log(r"boom-before-output")
    # the line that introduces the exception carries the worker prefix
    assert any(l.startswith("[worker 1 pid ") for l in srv.log_lines() if "raise-before" in l or "Traceback" in l)
