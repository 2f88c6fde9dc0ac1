"""What the wheel (issue 10) must keep as the binaries have it: the same
interpreter as the app sees it, reloads that run the same program again
(through the console script, in the same interpreter and venv), the
process titles, and a database-farm job through mulefarm-handler.

Every test here runs against both builds: `make integration` against
build/mulefarm, `make wheel-test` (pytest -m smoke) against the scripts
of a venv the wheel is installed in.
"""
import json
import os
import signal

import pytest

from conftest import BIN, wait_for
from dbfarm_util import DB_MULE, effect_counts, effects_db, handlers, post, wait_until, web_args  # noqa: F401
from pgcluster import pg_cluster  # noqa: F401 (fixture)

APP = '''\
import json, os, sys
import helper  # from --chdir: '' is first on sys.path
import mulefarm, uwsgi

IMPORTED = {
    "argv": list(sys.argv),
    "path0": sys.path[0],
    "path": list(sys.path),
    "main": sorted(vars(sys.modules["__main__"])),
    "mulefarm_api": sorted(n for n in ("farm_msg", "mule_msg", "lock", "worker_id", "masterpid")
                           if hasattr(mulefarm, n)),
    "mulefarm_module": mulefarm.farm_msg.__module__,
    "same_kind": type(mulefarm.farm_msg) is type(uwsgi.farm_msg),
    "executable": sys.executable,
    "prefix": sys.prefix,
    "helper": helper.NAME,
    "version": "%s",
}


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    d = dict(IMPORTED, pid=os.getpid(), master=uwsgi.masterpid(), mf_master=mulefarm.masterpid())
    return [json.dumps(d).encode()]
'''


def app_dir(tmp_path, version="v1"):
    d = tmp_path / "app"
    d.mkdir(exist_ok=True)
    (d / "helper.py").write_text("NAME = 'helper from --chdir'\n")
    (d / "app.py").write_text(APP % version)
    return d


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")[0].decode()


@pytest.mark.smoke
def test_the_app_sees_the_interpreter_the_binary_gives_it(server, tmp_path):
    d = app_dir(tmp_path)
    srv = server(["--chdir", d, "--wsgi-file", "app.py"])
    info = srv.get_json("/")
    assert info["argv"] == [BIN]
    assert info["path0"] == ""
    # neither the script's directory nor the start directory: the app
    # imports from its --chdir (through '') and its site-packages only
    assert os.path.dirname(BIN) not in info["path"]
    assert str(srv.workdir) not in info["path"]
    assert info["helper"] == "helper from --chdir"
    # an empty __main__, not the console script's
    assert [n for n in info["main"] if not n.startswith("__")] == []
    assert "__file__" not in info["main"]
    # `import mulefarm` is the server's API in both builds
    assert info["mulefarm_api"] == ["farm_msg", "lock", "masterpid", "mule_msg", "worker_id"]
    assert info["mulefarm_module"] == "mulefarm" and info["same_kind"] is True
    assert info["master"] == info["mf_master"] == srv.pid


@pytest.mark.smoke
def test_reload_runs_the_same_program_in_the_same_interpreter(server, tmp_path):
    d = app_dir(tmp_path)
    srv = server(["--chdir", d, "--wsgi-file", "app.py", "--processes", "1"])
    before = srv.get_json("/")
    exe = os.readlink("/proc/%d/exe" % srv.pid)
    assert cmdline(srv.pid) == "mulefarm master"
    wait_for(lambda: any(cmdline(p).startswith("mulefarm worker 1") for p in srv.children()),
             what="the worker's title")
    (d / "app.py").write_text(APP % "v2")
    srv.send_signal(signal.SIGHUP)
    after = wait_for(lambda: (lambda i: i["version"] == "v2" and i)(srv.get_json("/")),
                     what="the reloaded code")
    assert srv.running() and after["master"] == srv.pid
    assert os.readlink("/proc/%d/exe" % srv.pid) == exe
    assert cmdline(srv.pid) == "mulefarm master"
    for k in ("argv", "path0", "executable", "prefix", "main"):
        assert after[k] == before[k], k
    assert srv.stop(signal.SIGINT) == 0


@pytest.mark.smoke
@pytest.mark.timeout(60)
def test_a_database_farm_job_runs_in_mulefarm_handler(server, handlers, pg_cluster):
    dsn = effects_db(pg_cluster, "wheel_smoke")
    web = server(web_args(dsn))
    h = handlers(["--db-farm", "jobs", "--dbqueue", dsn, "--handler-name", "h1", "--mule", DB_MULE,
                  "--farm", "jobs:1"], env={"EFFECTS_DSN": dsn})
    h.wait_log(r"spawned mule 1")
    assert post(web, "/farm_msg?farm=jobs", json.dumps({"key": "job-1"}).encode())["ok"] is True
    wait_until(lambda: effect_counts(pg_cluster, "wheel_smoke") == {"job-1": 1}, 20, "the job's effect")
    wait_until(lambda: pg_cluster.sql("SELECT count(*) FROM mulefarm.history WHERE state = 'done'",
                                      db="wheel_smoke") == "1", 10, "the job recorded done")
    assert h.stop() == 0
