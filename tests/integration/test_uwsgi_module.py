"""The embedded `uwsgi` module: numproc, worker_id(), masterpid(), opt,
post_fork_hook."""
import time

import pytest

from conftest import APPS, app_path, free_port_number, wait_for

UAPP = app_path("uwsgiapp.py")


def collect_workers(srv, n, timeout=10):
    """Request until <n> distinct worker ids answered (or the deadline)."""
    seen = {}
    deadline = time.monotonic() + timeout
    while len(seen) < n and time.monotonic() < deadline:
        d = srv.get_json("/")
        seen[d["worker_id"]] = d
    return seen


@pytest.mark.smoke
def test_numproc_worker_id_masterpid(server):
    srv = server(["--wsgi-file", UAPP, "--processes", "2", "--threads", "1"])
    d = srv.get_json("/")
    assert d["numproc"] == 2
    assert d["worker_id"] in (1, 2)
    assert d["masterpid"] == srv.pid
    assert d["ppid"] == srv.pid
    assert d["import_pid"] == srv.pid


def test_worker_ids_distinct(server):
    srv = server(["--wsgi-file", UAPP, "--processes", "2", "--threads", "1"])
    wait_for(lambda: len(srv.children()) == 2, what="2 workers")
    seen = collect_workers(srv, 2)
    for wid, d in seen.items():
        assert wid in (1, 2)
        assert d["pid"] in srv.children()
    if len(seen) == 2:
        assert seen[1]["pid"] != seen[2]["pid"]


def test_single_worker_id_is_1(server):
    srv = server(["--wsgi-file", UAPP, "--processes", "1"])
    d = srv.get_json("/")
    assert d["worker_id"] == 1
    assert d["numproc"] == 1


def test_opt_values(server, tmp_path):
    p1 = tmp_path / "pp1"
    p2 = tmp_path / "pp2"
    p1.mkdir()
    p2.mkdir()
    port = free_port_number()
    srv = server(
        [
            "--http-socket",
            "127.0.0.1:%d" % port,
            "--wsgi-file",
            UAPP,
            "--master",
            "--processes=2",
            "--threads",
            "3",
            "--pythonpath",
            str(p1),
            "--pythonpath=%s" % p2,
        ],
        addr=("127.0.0.1", port),
    )
    d = srv.get_json("/")
    opt = d["opt"]
    assert d["opt_type"] == "dict"
    assert d["opt_key_types"] == ["str"]
    assert opt["http-socket"] == {"bytes": "127.0.0.1:%d" % port}
    assert opt["wsgi-file"] == {"bytes": UAPP}
    assert opt["master"] is True
    assert opt["processes"] == {"bytes": "2"}
    assert opt["threads"] == {"bytes": "3"}
    assert opt["pythonpath"] == [{"bytes": str(p1)}, {"bytes": str(p2)}]
    assert d["numproc"] == 2


def test_post_fork_hook_runs_in_each_worker(server):
    srv = server(["--wsgi-file", UAPP, "--processes", "2", "--threads", "1"])
    wait_for(lambda: len(srv.children()) == 2, what="2 workers")
    seen = collect_workers(srv, 2)
    assert seen
    for wid, d in seen.items():
        assert d["hook_pids"] == [d["pid"]], "post_fork_hook must run once, in the worker (pid %d)" % d["pid"]
        assert d["pid"] != srv.pid


def test_post_fork_hook_runs_in_respawned_worker(server):
    import os
    import signal

    from conftest import pid_alive

    srv = server(["--wsgi-file", UAPP, "--processes", "1"])
    d = srv.get_json("/")
    os.kill(d["pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(d["pid"]), what="worker to die")
    wait_for(lambda: srv.children() and d["pid"] not in srv.children(), what="respawn")
    d2 = srv.get_json("/")
    assert d2["pid"] != d["pid"]
    assert d2["hook_pids"] == [d2["pid"]]


def test_module_loaded_with_pythonpath(server):
    srv = server(["--module", "uwsgiapp", "--pythonpath", str(APPS)])
    d = srv.get_json("/")
    assert d["opt"]["module"] == {"bytes": "uwsgiapp"}
