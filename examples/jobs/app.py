"""The web side of the Galaxy-style job example (see README.md).

POST /jobs        body: optional JSON {"payload": "..."}
                  inserts a `job` row with handler NULL, commits, then
                  uwsgi.farm_msg("job-handlers", <JSON message>) as Galaxy's
                  web workers do; answers 201 {"id": N}, or 503 when the
                  farm's queue stayed full (the row stays unassigned: a job
                  handler picks it up when it next starts)
GET  /jobs        {"new": n, "running": n, "done": n}
GET  /jobs/<id>   the row
GET  /            a one-line description

The schema is created in the master at import, before the fork, with a
connection closed again right away: workers and mules each open their own
after the fork (a libpq connection must not be shared across fork()).
$JOBS_DSN is the libpq connection string.
"""
import json
import os
import threading

import psycopg2
import uwsgi

DSN = os.environ.get("JOBS_DSN", "dbname=jobs")
FARM = "job-handlers"

SCHEMA = """
CREATE TABLE IF NOT EXISTS job (
    id       serial PRIMARY KEY,
    payload  text NOT NULL DEFAULT '',
    handler  text,                        -- main.job-handlers.K once claimed
    state    text NOT NULL DEFAULT 'new', -- new, running, done
    result   text,
    created  timestamptz NOT NULL DEFAULT now(),
    finished timestamptz
);
-- one row per execution: the test counts them
CREATE TABLE IF NOT EXISTS job_run (
    job_id   integer NOT NULL REFERENCES job (id),
    handler  text NOT NULL,
    pid      integer NOT NULL,
    ran_at   timestamptz NOT NULL DEFAULT now()
);
"""


def init_schema():
    conn = psycopg2.connect(DSN)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(SCHEMA)
    finally:
        conn.close()


init_schema()

_local = threading.local()


def db():
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg2.connect(DSN)
    return conn


def reply(start_response, status, obj):
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def submit(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(n) if n else b""
    payload = json.loads(raw).get("payload", "") if raw else ""
    conn = db()
    with conn, conn.cursor() as cur:  # committed before the message goes
        cur.execute("INSERT INTO job (payload) VALUES (%s) RETURNING id", (payload,))
        job_id = cur.fetchone()[0]
    msg = {"target": "job_handler", "params": {"task": "setup", "job_id": job_id}, "__classname__": "JobHandlerMessage"}
    if not uwsgi.farm_msg(FARM, json.dumps(msg)):
        return reply(start_response, "503 Service Unavailable", {"id": job_id, "error": "job queue full"})
    return reply(start_response, "201 Created", {"id": job_id})


def application(environ, start_response):
    path, method = environ.get("PATH_INFO", "/"), environ["REQUEST_METHOD"]
    if path == "/jobs" and method == "POST":
        return submit(environ, start_response)
    conn = db()
    if path == "/jobs":
        with conn, conn.cursor() as cur:
            cur.execute("SELECT state, count(*) FROM job GROUP BY state")
            counts = {"new": 0, "running": 0, "done": 0}
            counts.update(dict(cur.fetchall()))
        return reply(start_response, "200 OK", counts)
    if path.startswith("/jobs/") and path[6:].isdigit():
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id, payload, handler, state, result FROM job WHERE id = %s", (int(path[6:]),))
            row = cur.fetchone()
        if row is None:
            return reply(start_response, "404 Not Found", {"error": "no such job"})
        return reply(start_response, "200 OK", dict(zip(("id", "payload", "handler", "state", "result"), row)))
    if path == "/":
        return reply(start_response, "200 OK", {"app": "mulefarm jobs example", "submit": "POST /jobs"})
    return reply(start_response, "404 Not Found", {"error": "not found"})
