"""The app of the zerg and transparent-restart tests (test_zerg.py).

Its import sleeps $ZERG_TEST_IMPORT_SLEEP seconds (default 0), like a big
app (Galaxy) whose import takes long; each import appends "<pid>" to
$ZERG_TEST_IMPORT_LOG if set.

GET /                 {"pid", "ppid", "import_pid"}
GET /farm?start=S&n=N sends messages S..S+N-1 (as text) to farm "jobs"
                      with farm_msg_wait, so none is refused: 200 once all
                      are queued
"""
import json
import os
import time
from urllib.parse import parse_qs

time.sleep(float(os.environ.get("ZERG_TEST_IMPORT_SLEEP", "0")))
IMPORT_PID = os.getpid()
_log = os.environ.get("ZERG_TEST_IMPORT_LOG")
if _log:
    with open(_log, "a") as _f:
        _f.write("%d\n" % IMPORT_PID)


def application(environ, start_response):
    q = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if environ.get("PATH_INFO") == "/farm":
        import mulefarm

        start = int(q["start"])
        for i in range(start, start + int(q.get("n", "1"))):
            mulefarm.farm_msg_wait("jobs", str(i).encode(), 30)
    body = json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "import_pid": IMPORT_PID}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
