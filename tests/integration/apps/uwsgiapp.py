"""Reports what the embedded `uwsgi` module says. Imports uwsgi at import
time (so it fails to load outside mulefarm/uWSGI) and installs a
post_fork_hook that records the pid it runs in."""
import json
import os

import uwsgi

IMPORT_PID = os.getpid()
HOOK_PIDS = []


def _post_fork():
    HOOK_PIDS.append(os.getpid())


uwsgi.post_fork_hook = _post_fork


def enc(v):
    if isinstance(v, bytes):
        return {"bytes": v.decode("latin-1")}
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [enc(x) for x in v]
    return {"repr": repr(v)}


def application(environ, start_response):
    opt = uwsgi.opt
    data = {
        "numproc": uwsgi.numproc,
        "worker_id": uwsgi.worker_id(),
        "masterpid": uwsgi.masterpid(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "import_pid": IMPORT_PID,
        "hook_pids": HOOK_PIDS,
        "opt_type": type(opt).__name__,
        "opt": {str(k): enc(v) for k, v in opt.items()},
        "opt_key_types": sorted({type(k).__name__ for k in opt}),
    }
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
