"""mulefarm-handler (issue 7): the webless handler of database farms,
against a throwaway PostgreSQL (pgcluster.py) and a web host (mulefarm)
that enqueues.

--migrate, --status, the ignored web options, 2 handler instances
completing 2,000 jobs exactly once, SIGKILL of a handler mid-job (re-run
elsewhere within lease + 5 s), pg_terminate_backend of every handler
connection and a PostgreSQL restart under load (no loss, no crash), the
systemd notification protocol on a NOTIFY_SOCKET, and SIGTERM draining.
"""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from dbfarm_util import (DB_MULE, HANDLER_BIN, effect_counts, effects_db, handler_args,  # noqa: F401
                         handlers, need_handler, post, wait_until, web_args)
from pgcluster import pg_cluster  # noqa: F401 (fixture)

pytest.importorskip("psycopg2")


def env(dsn):
    return {"EFFECTS_DSN": dsn}


def run_handler(*args, timeout=30):
    need_handler()
    return subprocess.run([HANDLER_BIN] + list(args), capture_output=True, text=True, timeout=timeout)


def test_migrate_and_status(pg_cluster, server):
    dsn = effects_db(pg_cluster, "h_status")
    r = run_handler("--migrate", "--dbqueue", dsn)
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout
    assert pg_cluster.sql("SELECT count(*) > 0 FROM mulefarm.schema_version", db="h_status") == "t"
    again = run_handler("--migrate", "--dbqueue", dsn)  # idempotent
    assert again.returncode == 0, again.stderr
    web = server(web_args(dsn))
    post(web, "/enqueue_many", {"farm": "jobs", "payloads": ["a", "b", "c"]})
    pg_cluster.sql("UPDATE mulefarm.jobs SET created_at = now() - interval '60 s',"
                   " run_at = now() - interval '60 s'", db="h_status")
    r = run_handler("--status", "--db-farm", "jobs", "--db-farm", "other", "--dbqueue", dsn)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("jobs: 3 queued, 0 running, 0 failed, 0 discarded, 0 done"), r.stdout
    assert "oldest queued" in lines[0] and "live handlers" in lines[0]
    age = float(lines[0].split("oldest queued ")[1].split(" s")[0])
    assert 55 <= age < 600, lines[0]
    assert lines[1].startswith("other: 0 queued"), r.stdout


def test_status_and_migrate_fail_loudly_without_database():
    r = run_handler("--status", "--db-farm", "jobs", "--dbqueue",
                    "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=2", "--dbqueue-timeout", "2")
    assert r.returncode == 1
    assert "cannot connect to the database" in r.stderr and "port 1" in r.stderr, r.stderr
    r = run_handler("--migrate")
    assert r.returncode == 1 and "--dbqueue" in r.stderr


def test_needs_database_farms_and_mules():
    r = run_handler("--mule", DB_MULE)
    assert r.returncode == 2 and "--db-farm" in r.stderr, r.stderr
    r = run_handler("--db-farm", "jobs", "--dbqueue", "dbname=x")
    assert r.returncode == 2 and "no --mule" in r.stderr, r.stderr


def test_web_options_ignored_in_one_line(pg_cluster, handlers, tmp_path):
    dsn = effects_db(pg_cluster, "h_ignored")
    ini = tmp_path / "galaxy.ini"
    ini.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:1\nprocesses = 4\nthreads = 8\n"
                   "static-map = /static=/tmp\nharakiri = 60\ndb-farm = jobs\n"
                   "dbqueue = %s\nmule = %s\nfarm = jobs:1\nhandler-name = hi\n" % (dsn, DB_MULE))
    h = handlers(["--ini", str(ini)], env=env(dsn))
    h.wait_log(r"spawned mule 1")
    lines = [l for l in h.log_text().splitlines() if "ignoring" in l]
    assert len(lines) == 1, h.log_text()
    assert "ignoring http-socket, processes, threads, static-map, harakiri" in lines[0], lines
    assert "listening" not in h.log_text() and "spawned worker" not in h.log_text()
    assert h.stop() == 0


def submit(web, n, prefix, batch=100):
    for start in range(0, n, batch):
        msgs = [json.dumps({"key": "%s%d" % (prefix, i)}) for i in range(start, min(n, start + batch))]
        r = post(web, "/enqueue_many", {"farm": "jobs", "payloads": msgs})
        assert "uuids" in r, r


@pytest.mark.timeout(120)
def test_two_handlers_2000_jobs_exactly_once(pg_cluster, handlers, server):
    dsn = effects_db(pg_cluster, "h_exact")
    web = server(web_args(dsn))
    hs = [handlers(handler_args(dsn, "h%d" % i), env=env(dsn)) for i in (1, 2)]
    for h in hs:
        h.wait_log(r"spawned mule 2")
    # half through farm_msg (one commit each), half in batches
    for start in range(0, 1000, 100):
        msgs = [{"key": "m%d" % i} for i in range(start, start + 100)]
        assert all(post(web, "/farm_msg_many?farm=jobs", msgs)["ok"])
    submit(web, 1000, "b")
    wait_until(lambda: sum(effect_counts(pg_cluster, "h_exact").values()) >= 2000, 90, "2,000 effects")
    time.sleep(0.5)
    counts = effect_counts(pg_cluster, "h_exact")
    assert len(counts) == 2000 and set(counts.values()) == {1}, \
        {k: v for k, v in counts.items() if v != 1}
    by = pg_cluster.sql("SELECT split_part(handler, '.', 1), count(*) FROM effects GROUP BY 1 ORDER BY 1",
                        db="h_exact")
    assert [l.split("|")[0] for l in by.splitlines()] == ["h1", "h2"], by  # both took a share
    wait_until(lambda: pg_cluster.sql("SELECT count(*) FROM mulefarm.history WHERE state = 'done'",
                                      db="h_exact") == "2000", 10, "2,000 done")
    assert pg_cluster.sql("SELECT count(*) FROM mulefarm.jobs", db="h_exact") == "0"
    for h in hs:
        assert h.stop() == 0, h.log_text()


@pytest.mark.timeout(90)
def test_sigkill_handler_mid_job_reruns_elsewhere(pg_cluster, handlers, server):
    lease = 3
    dsn = effects_db(pg_cluster, "h_kill")
    web = server(web_args(dsn))
    a = handlers(handler_args(dsn, "ha", mules=1, lease=lease), env=env(dsn))
    a.wait_log(r"spawned mule 1")
    u = post(web, "/enqueue", {"farm": "jobs", "payload": json.dumps({"key": "slow", "sleep": 4})})["uuid"]
    wait_until(lambda: pg_cluster.sql("SELECT handler FROM mulefarm.jobs WHERE uuid = '%s'" % u,
                                      db="h_kill") == "ha.jobs.1", 10, "handler A to claim the job")
    b = handlers(handler_args(dsn, "hb", mules=1, lease=lease), env=env(dsn))
    b.wait_log(r"spawned mule 1")
    killed = time.monotonic()
    a.kill_all()
    wait_until(lambda: effect_counts(pg_cluster, "h_kill").get("slow") == 1, lease + 5 + 4 + 5,
               "handler B to run the job")
    row = pg_cluster.sql("SELECT handler, attempt, extract(epoch FROM at) FROM effects", db="h_kill")
    handler, attempt, _ = row.split("|")
    assert handler == "hb.jobs.1" and attempt == "2", row
    started = time.monotonic() - killed - 4  # the job sleeps 4 s once B has it
    assert started <= lease + 5, "re-run started %.1f s after the kill" % started
    assert "lease expired" in pg_cluster.sql(
        "SELECT last_error FROM mulefarm.history WHERE uuid = '%s'" % u, db="h_kill")


@pytest.mark.timeout(90)
def test_killed_mule_job_failed_by_master_and_retried(pg_cluster, handlers, server):
    dsn = effects_db(pg_cluster, "h_mulekill")
    web = server(web_args(dsn))
    h = handlers(handler_args(dsn, "hm", mules=1), env=env(dsn))
    h.wait_log(r"spawned mule 1 \(pid (\d+)\)")
    u = post(web, "/enqueue", {"farm": "jobs", "payload": json.dumps({"key": "k", "sleep": 3})})["uuid"]
    wait_until(lambda: pg_cluster.sql("SELECT state FROM mulefarm.jobs WHERE uuid = '%s'" % u,
                                      db="h_mulekill") == "running", 10, "the claim")
    pid = int(h.wait_log(r"spawned mule 1 \(pid (\d+)\)").group(1))
    os.kill(pid, signal.SIGKILL)
    err = wait_until(lambda: pg_cluster.sql("SELECT last_error FROM mulefarm.jobs WHERE uuid = '%s'"
                                            " AND state = 'queued'" % u, db="h_mulekill"), 10, "failed")
    assert "killed by signal 9" in err, err
    wait_until(lambda: effect_counts(pg_cluster, "h_mulekill").get("k") == 1, 30, "the retry")


def load_and_count(pg, db, web, n, prefix):
    """Enqueues <n> jobs in batches from a thread; returns it."""
    import threading

    t = threading.Thread(target=submit, args=(web, n, prefix, 50))
    t.start()
    return t


@pytest.mark.timeout(150)
def test_terminated_connections_and_postgres_restart_lose_nothing(pg_cluster, handlers, server):
    dsn = effects_db(pg_cluster, "h_faults")
    web = server(web_args(dsn, ["--dbqueue-timeout", "30"]))
    hs = [handlers(handler_args(dsn, "h%d" % i, lease=5), env=env(dsn)) for i in (1, 2)]
    for h in hs:
        h.wait_log(r"spawned mule 2")
    t = load_and_count(pg_cluster, "h_faults", web, 1000, "t")
    wait_until(lambda: sum(effect_counts(pg_cluster, "h_faults").values()) >= 100, 30, "some progress")
    killed = pg_cluster.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE"
                            " datname = 'h_faults' AND pid <> pg_backend_pid()", db="h_faults")
    assert int(killed) >= 3, killed  # keepers, mules, the web host's pool
    t.join(60)
    wait_until(lambda: len(effect_counts(pg_cluster, "h_faults")) >= 1000, 60, "all 1,000 after terminate")
    t = load_and_count(pg_cluster, "h_faults", web, 1000, "r")
    wait_until(lambda: sum(1 for k in effect_counts(pg_cluster, "h_faults") if k[0] == "r") >= 100, 30,
               "progress before the restart")
    pg_cluster._run("pg_ctl", "restart", "-w", "-m", "fast", "-D", pg_cluster.data, "-l", pg_cluster.logfile)
    t.join(90)
    wait_until(lambda: len(effect_counts(pg_cluster, "h_faults")) >= 2000, 90, "all 2,000 after the restart")
    counts = effect_counts(pg_cluster, "h_faults")
    dup = {k: v for k, v in counts.items() if v > 1}
    print("at-least-once re-runs after the faults: %d of 2000" % len(dup))
    assert len(dup) <= 20, dup  # re-runs only of jobs in flight when a connection died
    for h in hs:
        assert h.proc.poll() is None, h.log_text()  # no crash
    wait_until(lambda: pg_cluster.sql("SELECT count(*) FROM mulefarm.jobs", db="h_faults") == "0", 30,
               "an empty queue")
    for h in hs:
        assert h.stop() == 0


@pytest.mark.timeout(60)
def test_notify_socket(pg_cluster, handlers, tmp_path, server):
    dsn = effects_db(pg_cluster, "h_notify")
    web = server(web_args(dsn))
    post(web, "/enqueue_many", {"farm": "jobs", "payloads": [json.dumps({"key": "x", "sleep": 30})]})
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(1)
    h = handlers(handler_args(dsn, "hn", mules=1, extra=["--mule-reload-mercy", "2"]),
                 env=dict(env(dsn), NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000"))
    got = []

    def until(pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not any(pred(m) for m in got):
            if time.monotonic() > deadline:
                pytest.fail("no %s in %r\n%s" % (what, got, h.log_text()))
            try:
                got.append(s.recv(4096).decode())
            except socket.timeout:
                pass

    until(lambda m: "READY=1" in m, 15, "READY=1")
    ready = next(m for m in got if "READY=1" in m)
    assert "MAINPID=%d" % h.pid in ready, ready
    until(lambda m: m == "WATCHDOG=1", 5, "WATCHDOG=1")
    until(lambda m: m.startswith("STATUS=") and "jobs:" in m and "running" in m, 20, "STATUS with the queue")
    h.proc.send_signal(signal.SIGTERM)
    until(lambda m: m == "STOPPING=1", 5, "STOPPING=1")
    assert h.proc.wait(15) == 0


@pytest.mark.timeout(60)
def test_sigterm_drains(pg_cluster, handlers, server):
    """SIGTERM: a job that ends within --mule-reload-mercy is done; one
    that does not is released (its attempt not counted); exit 0."""
    dsn = effects_db(pg_cluster, "h_drain")
    web = server(web_args(dsn))
    h = handlers(handler_args(dsn, "hd", mules=2, extra=["--mule-reload-mercy", "3"]), env=env(dsn))
    h.wait_log(r"spawned mule 2")
    quick = post(web, "/enqueue", {"farm": "jobs", "payload": json.dumps({"key": "quick", "sleep": 1.5})})["uuid"]
    slow = post(web, "/enqueue", {"farm": "jobs", "payload": json.dumps({"key": "slow", "sleep": 30})})["uuid"]
    wait_until(lambda: pg_cluster.sql("SELECT count(*) FROM mulefarm.jobs WHERE state = 'running'",
                                      db="h_drain") == "2", 10, "both claimed")
    t0 = time.monotonic()
    assert h.stop(signal.SIGTERM, timeout=20) == 0, h.log_text()
    assert time.monotonic() - t0 < 10
    assert effect_counts(pg_cluster, "h_drain") == {"quick": 1}
    assert post(web, "/job?uuid=" + quick)["job"]["state"] == "done"
    j = post(web, "/job?uuid=" + slow)["job"]
    assert j["state"] == "queued", j  # released, ready for another handler
    assert pg_cluster.sql("SELECT attempt, handler IS NULL FROM mulefarm.jobs WHERE uuid = '%s'" % slow,
                          db="h_drain") == "0|t"


@pytest.mark.timeout(60)
def test_idle_handler_queries_at_most_once_a_second(pg_cluster, handlers):
    """Counted by PostgreSQL: log_statement = all for this database only,
    statements logged in 10 s of an idle handler with 4 mules."""
    dsn = effects_db(pg_cluster, "h_idle")
    pg_cluster.sql("ALTER DATABASE h_idle SET log_statement = 'all'")
    h = handlers(handler_args(dsn, "hi", mules=4), env=env(dsn))
    h.wait_log(r"spawned mule 4")
    time.sleep(3)  # start-up: migrations, LISTEN, first claims
    mark = os.path.getsize(pg_cluster.logfile)
    time.sleep(10)
    with open(pg_cluster.logfile, errors="replace") as f:
        f.seek(mark)
        logged = [l for l in f.read().splitlines() if "LOG:  execute" in l or "LOG:  statement:" in l]
    pg_cluster.sql("ALTER DATABASE h_idle RESET log_statement")
    print("idle handler: %d statements in 10 s" % len(logged))
    assert len(logged) <= 10, "\n".join(logged)


@pytest.mark.timeout(60)
def test_graceful_reload_keeps_taking_jobs(pg_cluster, handlers, server):
    """SIGHUP re-executes the handler's master: a new keeper replaces the
    old one (which sees the master go), new mules take over, jobs flow."""
    dsn = effects_db(pg_cluster, "h_reload")
    web = server(web_args(dsn))
    h = handlers(handler_args(dsn, "hr", mules=2), env=env(dsn))
    mules = [int(h.wait_log(r"spawned mule %d \(pid (\d+)\)" % i).group(1)) for i in (1, 2)]
    old_keeper = int(h.wait_log(r"spawned the database keeper \(pid (\d+)\)").group(1))
    # A mule still starting (not yet in farm_get_msg) dies of SIGTERM by
    # design (mule.c on_stop): wait until both wait for messages.
    def title(pid):
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0]
    wait_until(lambda: all(title(m).endswith(b"(idle)") for m in mules), 15, "both mules waiting for messages")
    h.proc.send_signal(signal.SIGHUP)
    h.wait_log(r"previous mule 2 \(pid \d+\) exited with status 0", timeout=15)
    wait_until(lambda: not os.path.exists("/proc/%d" % old_keeper) or
               open("/proc/%d/stat" % old_keeper).read().split(") ")[1][0] == "Z", 10, "the old keeper to exit")
    submit(web, 200, "r")
    wait_until(lambda: len(effect_counts(pg_cluster, "h_reload")) == 200, 30, "200 effects after the reload")
    assert h.stop() == 0


@pytest.mark.timeout(60)
def test_poll_only(pg_cluster, handlers, server):
    """--dbqueue-poll-only (PgBouncer transaction pooling): no LISTEN, no
    NOTIFY; jobs are found by the poll within a few seconds."""
    dsn = effects_db(pg_cluster, "h_poll")
    web = server(web_args(dsn, ["--dbqueue-poll-only"]))
    h = handlers(handler_args(dsn, "hp", mules=1, extra=["--dbqueue-poll-only"]), env=env(dsn))
    h.wait_log(r"spawned mule 1")
    time.sleep(1)
    t0 = time.monotonic()
    post(web, "/enqueue", {"farm": "jobs", "payload": json.dumps({"key": "p"})})
    wait_until(lambda: effect_counts(pg_cluster, "h_poll").get("p") == 1, 10, "the polled job")
    assert time.monotonic() - t0 < 4.5
    assert pg_cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'h_poll'"
                          " AND query ILIKE 'LISTEN%'", db="h_poll") == "0"


@pytest.mark.timeout(90)
def test_mule_killed_while_claiming_leaves_the_job_to_its_lease(pg_cluster, handlers, server):
    """A claim can go through with nobody knowing (the mule is killed, or
    the reply is lost). Simulated: job "stuck" is made running under
    hk.jobs.1 by hand. Then mule 1 is SIGKILLed while its claim of job
    "ck" waits on a table lock: new claims take the next epoch's names
    (hk~1), the keeper stops renewing hk.*, so "stuck" runs again once its
    lease expires (without the epoch it would be renewed for ever)."""
    import psycopg2

    lease = 8  # longer than the lock is held: it alone cannot make a lease lapse
    dsn = effects_db(pg_cluster, "h_claimkill")
    web = server(web_args(dsn))
    h = handlers(handler_args(dsn, "hk", mules=1, lease=lease), env=env(dsn))
    pid = int(h.wait_log(r"spawned mule 1 \(pid (\d+)\)").group(1))
    stuck = post(web, "/enqueue", {"farm": "jobs", "run_at": time.time() + 3600,
                                   "payload": json.dumps({"key": "stuck"})})["uuid"]
    pg_cluster.sql("UPDATE mulefarm.jobs SET state = 'running', handler = 'hk.jobs.1', attempt = 1,"
                   " run_at = now(), claimed_at = now(), lease_until = now() + interval '8 s'"
                   " WHERE uuid = '%s'" % stuck, db="h_claimkill")
    time.sleep(lease + 1)  # renewed meanwhile: it is the instance's prefix
    assert pg_cluster.sql("SELECT state FROM mulefarm.jobs WHERE uuid = '%s'" % stuck,
                          db="h_claimkill") == "running"
    post(web, "/enqueue", {"farm": "jobs", "run_at": time.time() + 1, "payload": json.dumps({"key": "ck"})})
    lock = psycopg2.connect(dsn)
    try:
        cur = lock.cursor()
        cur.execute("LOCK TABLE mulefarm.jobs IN EXCLUSIVE MODE")
        # the poll wakes the mule once run_at has come: its claim waits
        wait_until(lambda: pg_cluster.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'h_claimkill'"
            " AND wait_event_type = 'Lock' AND query LIKE '%run_at <= now()%'", db="h_claimkill") == "1",
            15, "the mule's claim to wait on the lock")
        os.kill(pid, signal.SIGKILL)
        h.wait_log(r"mule 1 died while claiming a job: .* new claims are made as hk~1\.\*")
    finally:
        lock.rollback()
        lock.close()
    wait_until(lambda: effect_counts(pg_cluster, "h_claimkill") == {"ck": 1, "stuck": 1}, lease + 20,
               "both jobs to run")
    rows = pg_cluster.sql("SELECT key, handler, attempt FROM effects ORDER BY key", db="h_claimkill")
    # "ck": attempt 2 if the killed claim went through (then it too waited
    # for its lease), else 1
    assert rows.splitlines()[0] in ("ck|hk~1.jobs.1|1", "ck|hk~1.jobs.1|2"), rows
    assert rows.splitlines()[1] == "stuck|hk~1.jobs.1|2", rows
    err = pg_cluster.sql("SELECT last_error FROM mulefarm.history WHERE uuid = '%s'" % stuck, db="h_claimkill")
    assert "lease expired (handler hk.jobs.1)" in err, err


@pytest.mark.timeout(90)
def test_mule_completes_and_claims_in_one_transaction(pg_cluster, handlers, server):
    """Asking for the next job completes the last one and claims the next
    in one round trip (libpq pipeline mode) and one transaction
    (dbq_complete_claim). Counted by PostgreSQL, once the handler has
    exited (its backends' statistics are flushed then): per job, the mule's
    side effect (one autocommit INSERT) and one queue transaction, where a
    completion and a separate claim would make two."""
    dsn = effects_db(pg_cluster, "h_pipe")
    web = server(web_args(dsn))
    h = handlers(handler_args(dsn, "hp", mules=1), env=env(dsn))
    h.wait_log(r"spawned mule 1")
    time.sleep(2)  # start-up: migrations, LISTEN, the first claim
    xacts = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'h_pipe'"
    before = int(pg_cluster.sql(xacts))
    n = 400
    submit(web, n, "p", batch=n)  # one enqueue transaction
    wait_until(lambda: sum(effect_counts(pg_cluster, "h_pipe").values()) >= n, 60, "%d effects" % n)
    assert h.stop() == 0, h.log_text()
    time.sleep(1)
    per_job = (int(pg_cluster.sql(xacts)) - before) / n
    print("transactions per job: %.2f" % per_job)
    counts = effect_counts(pg_cluster, "h_pipe")
    assert len(counts) == n and set(counts.values()) == {1}
    assert pg_cluster.sql("SELECT count(*) FROM mulefarm.history WHERE state = 'done'", db="h_pipe") == str(n)
    # 2 plus the keeper's renewals and statistics; 3 without the pipeline
    assert per_job < 2.4, per_job
