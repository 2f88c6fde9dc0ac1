"""Mule of the cluster test: loops on uwsgi.farm_get_msg(); each job
{"key": K, "sleep": S} sleeps S s then records its completion in
`completions` -- fenced: the row is written only while this mule still
holds the job's lease (same uuid, handler and attempt in mulefarm.jobs,
row-locked). A refused write (the lease moved on) goes to `refused`."""
import json
import os
import time

import mulefarm
import psycopg2
import uwsgi

DSN = os.environ["CLUSTER_DSN"]
_conn = None


def db():
    global _conn
    while _conn is None or _conn.closed:
        try:
            _conn = psycopg2.connect(DSN, connect_timeout=3, keepalives_idle=2,
                                     keepalives_interval=1, keepalives_count=3)
            _conn.autocommit = True
        except psycopg2.Error:
            time.sleep(0.1)
    return _conn


FENCED = """INSERT INTO completions (key, uuid, handler, attempt)
SELECT %(key)s, %(uuid)s, %(handler)s, %(attempt)s FROM (
  SELECT 1 FROM mulefarm.jobs WHERE uuid = %(uuid)s AND handler = %(handler)s
    AND attempt = %(attempt)s AND state = 'running' FOR SHARE) AS lease"""


def record(key, cur):
    global _conn
    args = {"key": key, "uuid": cur.get("uuid"), "handler": cur.get("handler"),
            "attempt": cur.get("attempt", 0)}
    for _ in range(1200):
        try:
            with db().cursor() as c:
                c.execute(FENCED, args)
                if c.rowcount == 0:
                    c.execute("INSERT INTO refused (key, uuid, handler, attempt) VALUES"
                              " (%(key)s, %(uuid)s, %(handler)s, %(attempt)s)", args)
            return
        except psycopg2.Error:
            try:
                _conn.close()
            except Exception:
                pass
            _conn = None
            time.sleep(0.1)


while True:
    job = json.loads(uwsgi.farm_get_msg())
    cur = mulefarm.current_job() or {}
    if job.get("sleep"):
        time.sleep(job["sleep"])
    record(job["key"], cur)
