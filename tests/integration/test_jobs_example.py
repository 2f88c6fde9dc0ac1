"""examples/jobs end to end (issue 6): the Galaxy job pattern against a
throwaway PostgreSQL (pgcluster.py).

1,000 jobs are submitted over HTTP (POST /jobs: a `job` row with handler
NULL, then farm_msg("job-handlers", json)); 2 mules take lock 0 around
farm_get_msg, claim each job under their name (fenced UPDATE) and run it.
"Ran exactly once" is counted in the database: every job is `done` and has
exactly one `job_run` row, written in the same transaction that marks it
done (so a run cut short by SIGKILL leaves nothing and is redone by the
respawned mule; see examples/jobs/README.md).
"""
import http.client
import json
import os
import re
import signal
import threading

import pytest

from conftest import REPO, free_port_number, pid_alive, wait_for
from pgcluster import pg_cluster  # noqa: F401 (fixture)

psycopg2 = pytest.importorskip("psycopg2")

JOBS_INI = str(REPO / "examples" / "jobs" / "jobs.ini")
NJOBS = 1000
HANDLERS = {"main.job-handlers.1", "main.job-handlers.2"}


def start_jobs(server, pg, db, work_ms="1"):
    dsn = pg.create_db(db)
    return start_on(server, dsn, work_ms), dsn


def start_on(server, dsn, work_ms="1"):
    """The example on the database <dsn>, once both mules have started."""
    port = free_port_number()
    srv = server(
        ["--ini", JOBS_INI],
        addr=("127.0.0.1", port),
        env={"JOBS_DSN": dsn, "JOBS_HTTP": "127.0.0.1:%d" % port, "JOBS_WORK_MS": work_ms},
    )
    srv.wait_log(r"job-handler main\.job-handlers\.1 .*started")
    srv.wait_log(r"job-handler main\.job-handlers\.2 .*started")
    return srv


def submit(srv, n, nclients=4):
    """POSTs <n> jobs from <nclients> keep-alive connections; returns the ids."""
    ids, errors = [], []
    lock = threading.Lock()

    def client(k):
        c = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
        try:
            for i in range(k, n, nclients):
                c.request("POST", "/jobs", body=json.dumps({"payload": "job %d" % i}),
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                body = r.read()
                with lock:
                    if r.status == 201:
                        ids.append(json.loads(body)["id"])
                    else:
                        errors.append((r.status, body))
        except Exception as e:  # reported below
            with lock:
                errors.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(nclients)]
    for t in threads:
        t.start()
    return threads, ids, errors


def query(dsn, sql):
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def done_count(dsn):
    return query(dsn, "SELECT count(*) FROM job WHERE state = 'done'")[0][0]


def handlers_stopped(srv):
    """How many job handlers logged their graceful stop."""
    return len(re.findall(r"job-handler main\.job-handlers\.\d .*shutting down", srv.log_text()))


def assert_exactly_once(dsn, ids, njobs=NJOBS):
    assert sorted(ids) == sorted(set(ids)) and len(ids) == njobs
    rows = query(
        dsn,
        """SELECT j.id, j.state, j.handler, count(r.job_id), min(r.handler), max(r.handler)
           FROM job j LEFT JOIN job_run r ON r.job_id = j.id GROUP BY j.id ORDER BY j.id""",
    )
    assert [r[0] for r in rows] == sorted(ids)
    bad = [r for r in rows if r[1] != "done" or r[3] != 1 or r[2] not in HANDLERS or r[4] != r[2] or r[5] != r[2]]
    assert bad == [], "jobs not run exactly once by their handler: %r" % bad[:10]
    return rows


def mule_pids(srv):
    d = {}
    for m in re.finditer(r"spawned mule (\d+) \(pid (\d+)\)", srv.log_text()):
        d[int(m.group(1))] = int(m.group(2))
    return d


@pytest.mark.timeout(120)
def test_jobs_run_exactly_once(server, pg_cluster):
    srv, dsn = start_jobs(server, pg_cluster, "jobs_plain")
    threads, ids, errors = submit(srv, NJOBS)
    for t in threads:
        t.join(90)
    assert errors == []
    wait_for(lambda: done_count(dsn) == NJOBS, timeout=60, what="%d jobs done" % NJOBS)
    rows = assert_exactly_once(dsn, ids)
    assert {r[2] for r in rows} <= HANDLERS
    # a graceful stop: each mule finishes its job, or leaves its wait, and says so
    assert srv.stop(signal.SIGTERM, timeout=30) == 0, srv.log_text()[-3000:]
    assert handlers_stopped(srv) == 2


@pytest.mark.timeout(180)
def test_sigterm_stops_each_mule_after_its_job_and_the_rest_run_once_later(server, pg_cluster):
    """SIGTERM with a backlog of 40 ms jobs queued: each mule stops once the
    job it runs is done, instead of running the backlog first. The same
    when SIGTERM comes while a mule recovers that backlog at the next start.
    Nothing is lost: a third start runs every job exactly once."""
    n = 300
    srv, dsn = start_jobs(server, pg_cluster, "jobs_stop", work_ms="40")
    threads, ids, errors = submit(srv, n)
    for t in threads:
        t.join(60)
    assert errors == []
    before = done_count(dsn)
    assert n - before >= 100, "a backlog to leave"
    assert srv.stop(signal.SIGTERM, timeout=30) == 0, srv.log_text()[-3000:]
    # each mule finishes one job (a few more if the signal is slow to come)
    assert done_count(dsn) - before <= 20

    srv = start_on(server, dsn, work_ms="40")
    m = srv.wait_log(r"main\.job-handlers\.\d .*recovering (\d+) jobs")
    assert int(m.group(1)) >= 80, "the first mule to start claims the unassigned backlog"
    before = done_count(dsn)
    assert srv.stop(signal.SIGTERM, timeout=30) == 0, srv.log_text()[-3000:]
    assert done_count(dsn) - before <= 20
    assert handlers_stopped(srv) == 2

    srv = start_on(server, dsn)
    wait_for(lambda: done_count(dsn) == n, timeout=60, what="%d jobs done" % n)
    assert_exactly_once(dsn, ids, n)
    assert srv.stop(signal.SIGTERM, timeout=30) == 0


@pytest.mark.timeout(150)
def test_jobs_run_exactly_once_with_mule_sigkilled_mid_run(server, pg_cluster):
    srv, dsn = start_jobs(server, pg_cluster, "jobs_kill", work_ms="3")
    threads, ids, errors = submit(srv, NJOBS)
    wait_for(lambda: done_count(dsn) >= 250, timeout=60, what="250 jobs done")
    victim_id = 1
    victim = mule_pids(srv)[victim_id]
    os.kill(victim, signal.SIGKILL)
    at_kill = done_count(dsn)
    wait_for(lambda: not pid_alive(victim), what="the mule to die")
    wait_for(lambda: mule_pids(srv)[victim_id] != victim, what="the mule to be respawned")
    for t in threads:
        t.join(90)
    assert errors == []
    wait_for(lambda: done_count(dsn) == NJOBS, timeout=90, what="%d jobs done" % NJOBS)
    assert_exactly_once(dsn, ids)
    log = srv.log_text()
    assert re.search(r"mule 1 \(pid %d\) killed by signal 9" % victim, log), log[-3000:]
    assert at_kill < NJOBS, "the mule was killed mid-run"
