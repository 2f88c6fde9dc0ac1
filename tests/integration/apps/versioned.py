"""Template for the reload tests: a test copies it into its own directory
and edits VERSION (or makes the import fail) before reloading.

Each import appends "<pid>\\n" to $MULEFARM_TEST_IMPORT_LOG, so a test can
count how many times the app was imported (a reload re-imports it; the
FIFO's 'w' does not)."""
import json
import os
import time
from urllib.parse import parse_qs

VERSION = "v1"
IMPORT_PID = os.getpid()

_import_log = os.environ.get("MULEFARM_TEST_IMPORT_LOG")
if _import_log:
    with open(_import_log, "a") as _f:
        _f.write("%d\n" % IMPORT_PID)


def _touch(path, content):
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(content)
        os.rename(path + ".tmp", path)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/sleep":
        _touch(q.get("marker"), str(os.getpid()))
        time.sleep(float(q.get("s", "1")))
    elif path == "/farm":
        import uwsgi

        uwsgi.farm_msg(q.get("farm", "jobs"), q["msg"].encode())
    body = json.dumps({"version": VERSION, "pid": os.getpid(), "import_pid": IMPORT_PID}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
