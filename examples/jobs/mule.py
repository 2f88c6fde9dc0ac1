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

SIGTERM (a graceful stop): the handler finishes the job it is running and
stops; one waiting for a message stops at once. Galaxy's handlers instead
send __SHUTDOWN__ to their farm and stop when a mule receives it
(examples/galaxy does). That message queues behind every job message
already in the farm, and during a transparent restart the farm's queue is
handed to the new instance, whose mules wait for the old ones to exit: an
old mule would first run every queued job, and a mule still recovering
when SIGTERM came would find its shutdown message only after that. Jobs it
leaves are not lost: the queue keeps their messages, and a job it had
claimed and not run is recovered by the next mule with its name. (A
SIGTERM landing just as farm_get_msg() returns loses that one message, as
a kill there does; the job is then claimed as unassigned at the next
start.)
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
            if stopping:  # the next mule with our name runs the rest
                break
            self.run(job_id)


class Stop(Exception):
    """Raised by the SIGTERM handler into a wait for a message."""


stopping = False  # SIGTERM came: stop before the next job
waiting = False  # in (or about to enter) farm_get_msg(): nothing to finish


def on_term(signum, frame):
    global stopping
    first = not stopping
    stopping = True
    if waiting and first:  # a second SIGTERM must not raise into cleanup
        raise Stop()


def next_job(h):
    """The next job this handler claimed, or None once stopping. lock(0)
    is held around farm_get_msg() and the claim, as in Galaxy."""
    global waiting
    uwsgi.lock(LOCK)
    try:
        while True:
            # waiting is set before stopping is read: a SIGTERM before the
            # read is seen by it, one after it raises Stop.
            waiting = True
            if stopping:
                return None
            msg = uwsgi.farm_get_msg()
            waiting = False
            job_id = json.loads(msg)["params"]["job_id"]
            if h.claim(job_id):
                return job_id
    except Stop:
        return None
    finally:
        waiting = False
        uwsgi.unlock(LOCK)


def main():
    h = Handler()
    signal.signal(signal.SIGTERM, on_term)
    log(h.name, "started (mule %d)" % uwsgi.mule_id())
    h.recover()
    while True:
        job_id = next_job(h)
        if job_id is None:
            break
        h.run(job_id)
    log(h.name, "shutting down")
    h.db.close()


if __name__ == "__main__":
    main()
