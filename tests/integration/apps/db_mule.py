"""A job handler for the database-farm tests, run unchanged as a local-farm
mule (mulefarm --mule) and under mulefarm-handler: it loops on
uwsgi.farm_get_msg() and records each job's side effect in the `effects`
table of $EFFECTS_DSN before asking for the next one.

A message is JSON: {"key": K, "sleep": S, "raise_until": N, "explicit": X}
  - sleep S seconds first;
  - raise ValueError while the job's attempt is <= N (database farms; the
    mule dies and is respawned, the job is failed with the traceback);
  - explicit "done"/"failed": call mulefarm.job_done() / job_failed(...)
    and record what it returned.
"""
import json
import os
import time

import mulefarm
import psycopg2
import uwsgi

DSN = os.environ["EFFECTS_DSN"]
_conn = None


def db():
    global _conn
    while _conn is None or _conn.closed:
        try:
            _conn = psycopg2.connect(DSN, connect_timeout=3)
            _conn.autocommit = True
        except psycopg2.Error:
            time.sleep(0.1)
    return _conn


def record(key, handler, attempt, note=""):
    """The side effect: one row per run (retried until the database takes it)."""
    global _conn
    for _ in range(600):
        try:
            with db().cursor() as c:
                c.execute(
                    "INSERT INTO effects (key, handler, pid, attempt, note) VALUES (%s, %s, %s, %s, %s)",
                    (key, handler, os.getpid(), attempt, note),
                )
            return
        except psycopg2.Error:
            _conn = None
            time.sleep(0.1)


while True:
    msg = uwsgi.farm_get_msg()
    job = json.loads(msg)
    cur = mulefarm.current_job() or {}
    attempt = cur.get("attempt", 0)
    handler = cur.get("handler", "local:%d" % uwsgi.mule_id())
    if job.get("sleep"):
        time.sleep(job["sleep"])
    if 0 < attempt <= job.get("raise_until", 0):
        raise ValueError("job %s refuses attempt %d" % (job["key"], attempt))
    note = ""
    if job.get("explicit") == "done":
        note = "job_done=%r" % mulefarm.job_done()
    elif job.get("explicit") == "failed":
        note = "job_failed=%r" % mulefarm.job_failed("explicitly failed by the test")
    record(job["key"], handler, attempt, note)
