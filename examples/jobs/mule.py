"""A Galaxy-style job handler, run by each mule as __main__ (README.md).

Name: main.job-handlers.K, K the mule's 1-based position in the farm, as
Galaxy names its handlers; stable because mule ids are stable across
respawns.

Loop (Galaxy's dispatcher): lock(0), farm_get_msg(), claim the job while
still holding the lock, unlock, run the job.

  claim: UPDATE job SET handler = <me>, state = 'running'
         WHERE id = <id> AND handler IS NULL          (fenced: one winner)
  run:   one transaction: lock the row (still ours and running), do the
         work, INSERT INTO job_run, UPDATE job SET state = 'done'.

Exactly once, also when a mule is SIGKILLed:
  - killed between claim and done: the run's transaction dies with the
    connection, nothing of it stays; the respawned mule (same id, same
    name) reruns at start every job claimed under its name and not done,
    as Galaxy recovers its handler's jobs;
  - killed after farm_get_msg() returned but before the claim: that one
    message is gone with the process, so at start a handler also claims
    the jobs nobody claimed (fenced: if their message is still queued,
    whoever receives it finds the job taken and skips it);
  - killed while holding lock 0: the next lock() recovers it (robust
    mutex, "[deadlock-detector]" in the log).

SIGTERM (a graceful stop): the handler sends __SHUTDOWN__ to the farm and
the loop ends when a mule receives it, as Galaxy's galaxy-main does.
"""
import hashlib
import json
import os
import signal
import sys
import time

import psycopg2
import uwsgi

DSN = os.environ.get("JOBS_DSN", "dbname=jobs")
FARM = "job-handlers"
LOCK = 0  # Galaxy: lock i for the i-th farm in name order
SERVER_NAME = os.environ.get("JOBS_SERVER_NAME", "main")
WORK_MS = float(os.environ.get("JOBS_WORK_MS", "1"))


def values(v):
    v = v if isinstance(v, list) else [v]
    return [x.decode() if isinstance(x, bytes) else str(x) for x in v]


def handler_name():
    """main.job-handlers.K: K is this mule's position in the farm."""
    for spec in values(uwsgi.opt.get("farm", [])):
        name, _, ids = spec.partition(":")
        ids = [int(i) for i in ids.split(",") if i]
        if name == FARM and uwsgi.mule_id() in ids:
            return "%s.%s.%d" % (SERVER_NAME, FARM, ids.index(uwsgi.mule_id()) + 1)
    raise SystemExit("mule %d is not in farm %s" % (uwsgi.mule_id(), FARM))


def log(me, text):
    # One write per line: print() writes the text and the newline apart, and
    # two processes logging at once could then run their lines together.
    sys.stderr.write("[job-handler %s pid %d] %s\n" % (me, os.getpid(), text))
    sys.stderr.flush()


def work(payload):
    if WORK_MS > 0:
        time.sleep(WORK_MS / 1000.0)
    return hashlib.sha256(payload.encode()).hexdigest()


class Handler:
    def __init__(self):
        self.name = handler_name()
        self.db = psycopg2.connect(DSN)

    def claim(self, job_id):
        with self.db, self.db.cursor() as cur:
            cur.execute(
                "UPDATE job SET handler = %s, state = 'running' WHERE id = %s AND handler IS NULL",
                (self.name, job_id),
            )
            return cur.rowcount == 1

    def run(self, job_id):
        with self.db, self.db.cursor() as cur:
            cur.execute(
                "SELECT payload FROM job WHERE id = %s AND handler = %s AND state = 'running' FOR UPDATE",
                (job_id, self.name),
            )
            row = cur.fetchone()
            if row is None:
                return
            result = work(row[0])
            cur.execute("INSERT INTO job_run (job_id, handler, pid) VALUES (%s, %s, %s)", (job_id, self.name, os.getpid()))
            cur.execute("UPDATE job SET state = 'done', result = %s, finished = now() WHERE id = %s", (result, job_id))

    def recover(self):
        """Jobs our previous incarnation claimed and did not finish, and
        jobs whose message may have died with a killed mule."""
        with self.db, self.db.cursor() as cur:
            cur.execute("UPDATE job SET handler = %s, state = 'running' WHERE handler IS NULL", (self.name,))
            adopted = cur.rowcount
            cur.execute("SELECT id FROM job WHERE handler = %s AND state = 'running' ORDER BY id", (self.name,))
            ids = [r[0] for r in cur.fetchall()]
        if ids:
            log(self.name, "recovering %d jobs (%d unassigned adopted)" % (len(ids), adopted))
        for job_id in ids:
            self.run(job_id)


def on_term(signum, frame):
    uwsgi.farm_msg(FARM, "__SHUTDOWN__")


def main():
    h = Handler()
    signal.signal(signal.SIGTERM, on_term)
    log(h.name, "started (mule %d)" % uwsgi.mule_id())
    h.recover()
    while True:
        uwsgi.lock(LOCK)
        try:
            msg = uwsgi.farm_get_msg()
            if msg == b"__SHUTDOWN__":
                break
            job_id = json.loads(msg)["params"]["job_id"]
            claimed = h.claim(job_id)
        finally:
            uwsgi.unlock(LOCK)
        if claimed:
            h.run(job_id)
    log(h.name, "shutting down")
    h.db.close()


if __name__ == "__main__":
    main()
