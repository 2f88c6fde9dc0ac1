"""Database farms in the web server (issue 7): --db-farm NAME with
--dbqueue CONNINFO, against a throwaway PostgreSQL (pgcluster.py).

farm_msg() to a database farm inserts a job row (handler NULL) committed
before it returns True; an unreachable database makes it fail loudly after
--dbqueue-timeout while the worker keeps serving; the same mule script
runs as a local-farm mule and as a database-farm mule; mulefarm.enqueue,
enqueue_many, job, job_done, job_failed; a mule that raises fails its job
with the traceback recorded, and the job is retried.
"""
import json
import re
import time

import pytest

from conftest import free_port_number
from dbfarm_util import (DB_MULE, effect_counts, effects_db, handlers, post,  # noqa: F401
                         wait_until, web_args)
from pgcluster import pg_cluster  # noqa: F401 (fixture)

pytest.importorskip("psycopg2")


def jobs_rows(pg, db, where="true"):
    return pg.sql("SELECT count(*) FROM mulefarm.jobs WHERE %s" % where, db=db)


def test_farm_msg_inserts_a_committed_job(server, pg_cluster):
    dsn = effects_db(pg_cluster, "dbf_insert")
    srv = server(web_args(dsn))
    r = post(srv, "/farm_msg?farm=jobs", b"hello")
    assert r["ok"] is True, (r, srv.log_text())
    # True means committed: another session sees it at once
    assert jobs_rows(pg_cluster, "dbf_insert", "farm = 'jobs' AND handler IS NULL AND state = 'queued'") == "1"
    payload = pg_cluster.sql("SELECT convert_from(payload, 'UTF8') FROM mulefarm.jobs", db="dbf_insert")
    assert payload == "hello"
    # a local farm name is not a database farm: still refused as before
    r = post(srv, "/farm_msg?farm=nosuch", b"x")
    assert r["ok"] is False


def test_unreachable_database_fails_loudly(server):
    port = free_port_number()  # nothing listens there
    dsn = "host=127.0.0.1 port=%d user=postgres dbname=x connect_timeout=2" % port
    srv = server(web_args(dsn, ["--dbqueue-timeout", "2"]))
    r = post(srv, "/farm_msg?farm=jobs", b"lost?")
    assert r["ok"] is False, r
    assert 1.5 <= r["seconds"] < 10, r
    srv.wait_log(r"farm_msg\(jobs\): the message was NOT queued: the database failed for 2\.0 s")
    assert re.search(r"NOT queued.*(connect|refused)", srv.log_text(), re.I), srv.log_text()
    # enqueue raises QueueUnavailable (a QueueFull) naming the problem
    r = post(srv, "/enqueue", {"farm": "jobs", "payload": "p"})
    assert r.get("error") == "QueueUnavailable", r
    assert re.search(r"connect|refused", r["msg"], re.I), r
    # the worker keeps serving
    assert post(srv, "/ping") == "pong"


def test_enqueue_enqueue_many_and_job(server, pg_cluster):
    dsn = effects_db(pg_cluster, "dbf_api")
    srv = server(web_args(dsn))
    u = post(srv, "/enqueue", {"farm": "jobs", "payload": "one", "priority": 5, "max_attempts": 2,
                               "unique_key": "k1", "run_at": time.time() + 3600})["uuid"]
    assert re.fullmatch(r"[0-9a-f-]{36}", u), u
    row = pg_cluster.sql("SELECT priority, max_attempts, unique_key, run_at > now() + interval '50 minutes'"
                         " FROM mulefarm.jobs WHERE uuid = '%s'" % u, db="dbf_api")
    assert row == "5|2|k1|t", row
    # the unique key is taken while the job is queued
    assert post(srv, "/enqueue", {"farm": "jobs", "payload": "two", "unique_key": "k1"})["uuid"] is None
    # an explicit uuid is idempotent
    fixed = "0b8f2a6e-5d7c-4c1e-9f3a-2a1b0c9d8e7f"
    for _ in range(2):
        assert post(srv, "/enqueue", {"farm": "jobs", "payload": "x", "uuid": fixed})["uuid"] == fixed
    uuids = post(srv, "/enqueue_many", {"farm": "jobs", "payloads": ["a", "b", "c"]})["uuids"]
    assert len(set(uuids)) == 3
    assert jobs_rows(pg_cluster, "dbf_api") == "5"
    j = post(srv, "/job?uuid=" + uuids[0], b"")["job"]
    assert j == {"uuid": uuids[0], "state": "queued", "attempt": 0}, j
    assert post(srv, "/job?uuid=6a1b2c3d-0000-4000-8000-000000000000", b"")["job"] is None
    r = post(srv, "/enqueue", {"farm": "nosuch", "payload": "x"})
    assert r["error"] == "ValueError" and "not a database farm" in r["msg"], r


def mule_env(dsn):
    return {"EFFECTS_DSN": dsn}


def test_same_mule_script_local_farm_and_database_farm(server, handlers, pg_cluster):
    """db_mule.py unchanged: first a local-farm mule of the web server,
    then a database-farm mule under mulefarm-handler; only the options
    differ."""
    dsn = effects_db(pg_cluster, "dbf_same")
    local = server(["--wsgi-file", "tests/integration/apps/dbfarm_app.py", "--mule", DB_MULE,
                    "--farm", "jobs:1"], env=mule_env(dsn), cwd=str(__import__("conftest").REPO))
    msgs = [{"key": "local-%d" % i} for i in range(20)]
    assert all(post(local, "/farm_msg_many?farm=jobs", msgs)["ok"])
    wait_until(lambda: len(effect_counts(pg_cluster, "dbf_same")) == 20, 20, "local mule effects")
    local.stop()
    web = server(web_args(dsn))
    h = handlers(["--db-farm", "jobs", "--dbqueue", dsn, "--handler-name", "h1", "--mule", DB_MULE,
                  "--farm", "jobs:1"], env=mule_env(dsn))
    h.wait_log(r"spawned mule 1")
    msgs = [{"key": "db-%d" % i} for i in range(20)]
    assert all(post(web, "/farm_msg_many?farm=jobs", msgs)["ok"])
    wait_until(lambda: len(effect_counts(pg_cluster, "dbf_same")) == 40, 20, "handler effects")
    counts = effect_counts(pg_cluster, "dbf_same")
    assert set(counts.values()) == {1}
    handlers_seen = pg_cluster.sql("SELECT DISTINCT handler FROM effects WHERE key LIKE 'db-%'", db="dbf_same")
    assert handlers_seen == "h1.jobs.1"
    wait_until(lambda: pg_cluster.sql("SELECT count(*) FROM mulefarm.history WHERE state = 'done'",
                                      db="dbf_same") == "20", 10, "jobs recorded done")


@pytest.mark.timeout(60)
def test_raise_fails_with_traceback_then_retried(server, handlers, pg_cluster):
    """The mule raises on attempt 1: the job is failed with the traceback
    as last_error and queued again (backoff ~2 s); attempt 2 succeeds."""
    dsn = effects_db(pg_cluster, "dbf_raise")
    web = server(web_args(dsn))
    h = handlers(["--db-farm", "jobs", "--dbqueue", dsn, "--handler-name", "h1", "--mule", DB_MULE,
                  "--farm", "jobs:1"], env=mule_env(dsn))
    h.wait_log(r"spawned mule 1")
    u = post(web, "/enqueue", {"farm": "jobs", "payload": json.dumps({"key": "r1", "raise_until": 1})})["uuid"]

    def failed_row():
        out = pg_cluster.sql("SELECT attempt, last_error FROM mulefarm.jobs WHERE uuid = '%s'"
                             " AND state = 'queued' AND last_error IS NOT NULL" % u, db="dbf_raise")
        return out or None

    row = wait_until(failed_row, 10, "the job failed with its traceback")
    assert row.startswith("1|"), row
    assert "Traceback (most recent call last)" in row and "ValueError: job r1 refuses attempt 1" in row, row
    assert post(web, "/job?uuid=" + u)["job"]["state"] in ("failed", "running", "done")
    wait_until(lambda: effect_counts(pg_cluster, "dbf_raise").get("r1") == 1, 20, "the retry ran")
    assert pg_cluster.sql("SELECT attempt FROM effects WHERE key = 'r1'", db="dbf_raise") == "2"
    wait_until(lambda: post(web, "/job?uuid=" + u)["job"]["state"] == "done", 10, "done")
    assert post(web, "/job?uuid=" + u)["job"]["attempt"] == 2


@pytest.mark.timeout(60)
def test_job_done_and_job_failed(server, handlers, pg_cluster):
    dsn = effects_db(pg_cluster, "dbf_explicit")
    web = server(web_args(dsn))
    h = handlers(["--db-farm", "jobs", "--dbqueue", dsn, "--handler-name", "h1", "--mule", DB_MULE,
                  "--farm", "jobs:1"], env=mule_env(dsn))
    h.wait_log(r"spawned mule 1")
    ud = post(web, "/enqueue", {"farm": "jobs", "payload": json.dumps({"key": "d", "explicit": "done"})})["uuid"]
    uf = post(web, "/enqueue", {"farm": "jobs", "max_attempts": 1,
                                "payload": json.dumps({"key": "f", "explicit": "failed"})})["uuid"]
    wait_until(lambda: len(effect_counts(pg_cluster, "dbf_explicit")) == 2, 15, "both jobs ran")
    notes = dict(line.split("|") for line in
                 pg_cluster.sql("SELECT key, note FROM effects", db="dbf_explicit").splitlines())
    assert notes == {"d": "job_done=True", "f": "job_failed=True"}, notes
    wait_until(lambda: post(web, "/job?uuid=" + ud)["job"]["state"] == "done", 10, "d done")
    wait_until(lambda: post(web, "/job?uuid=" + uf)["job"]["state"] == "discarded", 10, "f discarded")
    err = pg_cluster.sql("SELECT last_error FROM mulefarm.history WHERE uuid = '%s'" % uf, db="dbf_explicit")
    assert err == "explicitly failed by the test"
    # asking for the next message did not settle them a second time
    assert "not recorded" not in h.log_text(), h.log_text()


@pytest.mark.timeout(60)
def test_retention_zero_deletes_done_jobs(server, handlers, pg_cluster):
    """--dbqueue-retention 0: a done job is deleted, not moved to the
    history (mulefarm.job() forgets it); a discarded one is still kept."""
    dsn = effects_db(pg_cluster, "dbf_noret")
    web = server(web_args(dsn))
    h = handlers(["--db-farm", "jobs", "--dbqueue", dsn, "--handler-name", "h1", "--mule", DB_MULE,
                  "--farm", "jobs:1", "--dbqueue-retention", "0"], env=mule_env(dsn))
    h.wait_log(r"spawned mule 1")
    ud = post(web, "/enqueue", {"farm": "jobs", "payload": json.dumps({"key": "d"})})["uuid"]
    uf = post(web, "/enqueue", {"farm": "jobs", "max_attempts": 1,
                                "payload": json.dumps({"key": "f", "explicit": "failed"})})["uuid"]
    wait_until(lambda: len(effect_counts(pg_cluster, "dbf_noret")) == 2, 15, "both jobs ran")
    wait_until(lambda: jobs_rows(pg_cluster, "dbf_noret") == "0", 15, "both jobs settled")
    assert pg_cluster.sql("SELECT uuid || ':' || state FROM mulefarm.history", db="dbf_noret") == uf + ":discarded"
    assert post(web, "/job?uuid=" + ud)["job"] is None
    assert post(web, "/job?uuid=" + uf)["job"]["state"] == "discarded"


def test_stats_json_has_database_farms(server, pg_cluster):
    dsn = effects_db(pg_cluster, "dbf_stats")
    port = free_port_number()
    srv = server(web_args(dsn, ["--stats", "127.0.0.1:%d" % port]))
    for i in range(3):
        assert post(srv, "/farm_msg?farm=jobs", b"s%d" % i)["ok"] is True
    import socket

    def snapshot():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        d = json.loads(data)
        f = d.get("dbfarms", [{}])[0]
        return d if f.get("valid") and f.get("queued") == 3 else None

    d = wait_until(snapshot, 25, "the stats to show 3 queued jobs")
    f = d["dbfarms"][0]
    assert f["name"] == "jobs" and f["running"] == 0 and f["connected"] is True, f


@pytest.mark.timeout(60)
def test_web_host_mules_consume_from_the_database(server, pg_cluster):
    """mulefarm itself: --db-farm jobs plus --farm jobs:1,2 makes its own
    mules 1 and 2 claim from the database (woken directly by the worker)."""
    dsn = effects_db(pg_cluster, "dbf_webmules")
    srv = server(web_args(dsn, ["--mule", DB_MULE, "--mule", DB_MULE, "--farm", "jobs:1,2"]),
                 env=mule_env(dsn))
    srv.wait_log(r"spawned mule 2")
    msgs = [{"key": "w%d" % i} for i in range(100)]
    t0 = time.monotonic()
    assert all(post(srv, "/farm_msg_many?farm=jobs", msgs)["ok"])
    wait_until(lambda: len(effect_counts(pg_cluster, "dbf_webmules")) == 100, 20, "100 effects")
    assert time.monotonic() - t0 < 10
    counts = effect_counts(pg_cluster, "dbf_webmules")
    assert set(counts.values()) == {1}
    names = pg_cluster.sql("SELECT DISTINCT handler FROM effects ORDER BY 1", db="dbf_webmules")
    assert set(names.splitlines()) <= {"web.jobs.1", "web.jobs.2"}, names
