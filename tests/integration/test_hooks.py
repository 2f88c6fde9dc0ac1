"""uWSGI hooks (hooks.h): each phase runs where and when it should, each
action does what it says, a failing action is logged without stopping the
server, an unknown action is a configuration error. unix_signal: is in
test_master_control.py."""
import errno
import os
import re
import signal
import time

import pytest

from conftest import APPS, app_path, pid_alive, wait_for
from mastertools import workers_now

MASTERAPP = app_path("masterapp.py")
BASIC = ["--wsgi-file", app_path("basic.py")]


def lines_of(srv, text):
    """[(role, id, pid)] of the log lines whose message is exactly <text>."""
    rx = re.compile(r"^\[(master|worker|mule)(?: (\d+))? pid (\d+)\] %s$" % re.escape(text), re.M)
    return [(m.group(1), int(m.group(2) or 0), int(m.group(3))) for m in rx.finditer(srv.log_text())]


def wait_ready(srv, timeout=10.0):
    def up():
        try:
            return srv.get("/", timeout=2)[0] == 200
        except OSError:
            return False

    wait_for(up, timeout=timeout, what="the server to answer")


def worker_pids(srv, n):
    """Waits until <n> workers have logged their accepting hook."""
    return wait_for(lambda: len(lines_of(srv, "ACC")) >= n and lines_of(srv, "ACC"), what="%d accepting hooks" % n)


PHASES = [
    "--hook-pre-app", "print:PRE",
    "--hook-post-app", "print:POST",
    "--hook-master-start", "print:MSTART",
    "--hook-accepting", "print:ACC",
    "--hook-accepting1", "print:ACC1",
    "--hook-accepting-once", "print:ACCONCE",
    "--hook-accepting1-once", "print:ACC1ONCE",
    "--hook-as-mule", "print:ASMULE",
]


def test_each_phase_runs_in_the_right_process(server):
    srv = server(BASIC + ["--processes", "2", "--mule"] + PHASES)
    wait_for(lambda: len(lines_of(srv, "ACC")) == 2 and lines_of(srv, "ASMULE"), what="worker and mule hooks")
    master = ("master", 0, srv.pid)
    assert lines_of(srv, "PRE") == [master]
    assert lines_of(srv, "POST") == [master]
    assert lines_of(srv, "MSTART") == [master]
    log = srv.log_text()
    # pre-app and post-app come before the first fork, master-start after the forks
    first_spawn = log.index("spawned worker")
    assert log.index("] PRE\n") < log.index("] POST\n") < first_spawn
    assert log.index("] MSTART\n") > log.rindex("spawned mule 1")
    kids = set(srv.children())
    acc = lines_of(srv, "ACC")
    assert sorted(r[:2] for r in acc) == [("worker", 1), ("worker", 2)]
    assert {r[2] for r in acc} <= kids
    assert [r[:2] for r in lines_of(srv, "ACC1")] == [("worker", 1)]
    assert sorted(r[:2] for r in lines_of(srv, "ACCONCE")) == [("worker", 1), ("worker", 2)]
    assert [r[:2] for r in lines_of(srv, "ACC1ONCE")] == [("worker", 1)]
    assert [r[:2] for r in lines_of(srv, "ASMULE")] == [("mule", 1)]
    # the web workers never run the mule hook, nor the mule the accepting ones
    assert {r[2] for r in lines_of(srv, "ASMULE")}.isdisjoint(r[2] for r in acc)


def test_once_hooks_not_rerun_after_respawn(server):
    srv = server(BASIC + ["--processes", "2"] + PHASES)
    acc = worker_pids(srv, 2)
    w1 = [pid for role, wid, pid in acc if wid == 1][0]
    w2 = [pid for role, wid, pid in acc if wid == 2][0]
    wait_for(lambda: lines_of(srv, "ACC1ONCE") and len(lines_of(srv, "ACCONCE")) == 2, what="once hooks")
    for victim in (w1, w2):
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not pid_alive(victim), what="worker to die")
    wait_for(lambda: len(lines_of(srv, "ACC")) == 4, timeout=10, what="respawned workers' accepting hooks")
    wait_for(lambda: len(lines_of(srv, "ACC1")) == 2, what="worker 1's second hook-accepting1")
    new = [r for r in lines_of(srv, "ACC") if r[2] not in (w1, w2)]
    assert sorted(r[1] for r in new) == [1, 2]
    acc1 = lines_of(srv, "ACC1")
    assert [r[1] for r in acc1] == [1, 1] and acc1[1][2] not in (w1, w2)
    # the -once variants ran only for the first generation
    assert sorted((r[1], r[2]) for r in lines_of(srv, "ACCONCE")) == sorted([(1, w1), (2, w2)])
    assert [(r[1], r[2]) for r in lines_of(srv, "ACC1ONCE")] == [(1, w1)]
    assert srv.get("/")[0] == 200


def test_exec_runs_a_shell_command_and_failures_are_logged(server, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    srv = server(
        BASIC
        + ["--processes", "2"]
        + ["--hook-pre-app", "exec:touch %s/pre-app" % out]
        + ["--hook-accepting", "exec:echo $PPID >> %s/accepting" % out]
        + ["--hook-master-start", "exec:exit 7"]
        + ["--hook-master-start", "exec:touch %s/after-failure" % out]
        + ["--hook-accepting1", "exec:/nonexistent/mulefarm-hook-cmd"]
    )
    wait_for(lambda: (out / "after-failure").exists(), what="the action after a failing one")
    assert (out / "pre-app").exists()
    wait_for(lambda: (out / "accepting").exists() and len((out / "accepting").read_text().split()) == 2,
             what="both workers' exec hook")
    # sh's parent is the worker that ran the hook (workers_now waits out
    # the master's own hook shells, which are children for a moment too)
    assert {int(p) for p in (out / "accepting").read_text().split()} == set(workers_now(srv, 2))
    srv.wait_log(r"\[master pid %d\] hook exec:exit 7 exited with status 7" % srv.pid)
    srv.wait_log(r"\[worker 1 pid \d+\] hook exec:/nonexistent/mulefarm-hook-cmd exited with status 127")
    assert srv.running()
    assert srv.get("/")[0] == 200


def test_writefifo_writes_to_a_reader(server, tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        srv = server(BASIC + ["--hook-master-start", "writefifo:%s hello from master" % fifo,
                              "--hook-accepting1", "writefifo:%s |w1" % fifo])
        got = b""

        def read_some():
            nonlocal got
            try:
                got += os.read(rfd, 4096)
            except BlockingIOError:
                pass
            return b"hello from master" in got and b"|w1" in got

        wait_for(read_some, what="the hooks' FIFO writes")
        assert srv.running()
    finally:
        os.close(rfd)


def test_writefifo_without_reader_is_logged_and_server_runs(server, tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    missing = str(tmp_path / "no-such-fifo")
    srv = server(BASIC + ["--hook-master-start", "writefifo:%s data" % fifo,
                          "--hook-post-app", "writefifo:%s data" % missing,
                          "--hook-master-start", "print:AFTER"])
    srv.wait_log(r"hook: cannot write to FIFO %s: .*No such device or address" % re.escape(fifo))
    srv.wait_log(r"hook: cannot write to FIFO %s" % re.escape(missing))
    srv.wait_log(r"\] AFTER\n")
    assert srv.get("/")[0] == 200


@pytest.mark.timeout(40)
def test_spinningfifo_waits_for_a_reader(server, tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    srv = server(BASIC + ["--hook-post-app", "print:SPIN-NEXT",
                          "--hook-post-app", "spinningfifo:%s late reader" % fifo], wait=False)
    srv.wait_log(r"\] SPIN-NEXT\n")
    # the master is spinning: no worker yet
    time0 = time.monotonic()
    assert "spawned worker" not in srv.log_text()
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        got = b""

        def read_some():
            nonlocal got
            try:
                got += os.read(rfd, 4096)
            except BlockingIOError:
                pass
            return b"late reader" in got

        wait_for(read_some, timeout=5, what="the spinning write")
        assert time.monotonic() - time0 < 5
    finally:
        os.close(rfd)
    wait_ready(srv)
    assert "cannot write to FIFO" not in srv.log_text()


def test_callpy_module_function_and_bare_main(server, tmp_path):
    note = tmp_path / "notes"
    marks = tmp_path / "marks"
    marks.mkdir()
    srv = server(
        ["--wsgi-file", MASTERAPP, "--pythonpath", str(APPS), "--processes", "2", "--mule"]
        + ["--hook-pre-app", "callpy:hookmod.pre_app"]
        + ["--hook-pre-app", "callpy:hook_bare"]  # __main__ has no hook_bare yet: fails
        + ["--hook-post-app", "callpy:hookmod.post_app"]
        + ["--hook-post-app", "callpy:hook_bare"]  # the app put it into __main__
        + ["--hook-accepting", "callpy:hookmod.accepting"]
        + ["--hook-as-mule", "callpy:hookmod.as_mule"]
        + ["--hook-master-start", "callpy:hookmod.boom"]
        + ["--hook-master-start", "callpy:hookmod.no_such_function"],
        env={"HOOKMOD_OUT": str(note), "MASTERAPP_DIR": str(marks)},
    )

    def notes():
        return [tuple(l.split()) for l in note.read_text().splitlines()] if note.exists() else []

    wait_for(lambda: len(notes()) == 5, what="5 callpy notes")
    n = notes()
    m = str(srv.pid)
    assert n[0] == ("pre_app", m) and n[1] == ("post_app", m), n
    kids = {str(p) for p in srv.children()}
    assert {pid for label, pid in n if label in ("accepting", "as_mule")} == kids, (n, kids)
    assert sorted(label for label, _ in n[2:]) == ["accepting", "accepting", "as_mule"]
    # bare name: a function of __main__, once the app has put it there
    assert os.listdir(marks) == ["callpy-bare-%d" % srv.pid]
    srv.wait_log(r"hook callpy:hook_bare failed:\n(.*\n)*?AttributeError: .*hook_bare")
    srv.wait_log(r"hook callpy:hookmod.boom failed:\n(.*\n)*?RuntimeError: hookmod-boom")
    srv.wait_log(r"hook callpy:hookmod.no_such_function failed:\n(.*\n)*?AttributeError")
    assert srv.get("/")[0] == 200


@pytest.mark.parametrize(
    "opt,value,why",
    [
        ("--hook-accepting", "bogus:x", "unknown action"),
        ("--hook-pre-app", "exek:true", "unknown action"),
        ("--hook-accepting", "unix_signal:15 gracefully_kill_them_all", "only works in hook-master-start"),
        ("--hook-master-start", "unix_signal:15 no_such_function", "want unix_signal:N"),
    ],
    ids=["unknown", "typo", "unix_signal-phase", "unix_signal-fn"],
)
def test_bad_action_is_a_config_error(server, opt, value, why):
    srv = server(BASIC + [opt, value], wait=False)
    rc = srv.wait_exit(10)
    assert rc != 0
    log = srv.log_text()
    assert "%s '%s'" % (opt.lstrip("-"), value) in log, log
    assert why in log, log
    assert "spawned worker" not in log


def test_hooks_from_an_ini_file(server, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[uwsgi]\n"
        "wsgi-file = %s\n"
        "hook-pre-app = print:INI-PRE\n"
        "hook-accepting1 = print:INI-ACC1\n"
        "hook-accepting = exec:echo $PPID >> %s/acc\n"
        "hook-master-start = print:INI-START-1\n"
        "hook-master-start = print:INI-START-2\n" % (app_path("basic.py"), out)
    )
    srv = server(["--ini", str(ini), "--processes", "2"])
    wait_for(lambda: lines_of(srv, "INI-ACC1"), what="hook-accepting1 from the ini")
    assert lines_of(srv, "INI-PRE") == [("master", 0, srv.pid)]
    log = srv.log_text()
    # repeated keys run in order
    assert 0 < log.index("] INI-START-1\n") < log.index("] INI-START-2\n")
    wait_for(lambda: (out / "acc").exists() and len((out / "acc").read_text().split()) == 2, what="exec hooks")


def test_ini_unknown_action_names_file_and_line(server, tmp_path):
    ini = tmp_path / "bad.ini"
    ini.write_text(
        "[uwsgi]\n"
        "wsgi-file = %s\n"
        "hook-accepting = print:fine\n"
        "hook-post-app = frobnicate:now\n" % app_path("basic.py")
    )
    srv = server(["--ini", str(ini)], wait=False)
    assert srv.wait_exit(10) != 0
    log = srv.log_text()
    assert re.search(r"bad\.ini:4: hook-post-app 'frobnicate:now': unknown action", log), log


def test_if_exists_blocks_in_an_ini_file(server, tmp_path):
    """if-exists / if-not-exists / if-env ... endif pick hooks (and any
    option); %(_) is the value tested; the markers are not in uwsgi.opt."""
    present = tmp_path / "present.flag"
    present.write_text("")
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[uwsgi]\n"
        "wsgi-file = %s\n"
        "if-exists = %s\n"
        "hook-post-app = print:FOUND %%(_)\n"
        "endif =\n"
        "if-not-exists = %s\n"
        "hook-post-app = print:NEVER\n"
        "endif =\n"
        "if-env = MF_TEST_COND\n"
        "hook-post-app = print:ENV-ON\n"
        "endif =\n" % (app_path("uwsgiapp.py"), present, present)
    )
    srv = server(["--ini", str(ini)], env={"MF_TEST_COND": "yes"})
    srv.wait_log(r"\] FOUND %s\n" % re.escape(str(present)))
    srv.wait_log(r"\] ENV-ON\n")
    assert "NEVER" not in srv.log_text()
