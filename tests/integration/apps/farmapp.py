"""Worker side of the mule/farm tests (test_mules_farms.py).

Imported in the master before the fork (FARMAPP_IMPORT_PID tells the mules
so). Endpoints, all answering JSON:

  POST /call    {"mod": "uwsgi"|"mulefarm", "fn": name, "args": [...],
                 "kwargs": {...}, "bytes": [indexes of args to encode]}
                -> {"r": result, "type": type name} or {"exc": name, "msg": str}
                   plus "elapsed" (seconds)
  POST /calls   {"calls": [call, ...]} -> [result, ...], in one request thread
  POST /api     -> {name: [in uwsgi, in mulefarm]} for the farm API
  POST /burst   {"farm": f, "n": N, "prefix": p} -> farm_msg(f, "<p><i>") for
                i in 0..N-1 as fast as possible: {"sent": count of True,
                "false": [indexes that got False], "elapsed": s}
  POST /big     {"farm": f, "size": n} -> sends n random bytes:
                {"r": result, "sha256": hex}
  POST /counter {"path": p, "n": N, "lock": k} -> N read-increment-write
                cycles of the integer in file p under lock(k)
  GET  /        "ok"

With $FARMAPP_HOOK_OUT set, installs uwsgi.mule_msg_hook, which appends
each message to that file.
"""
import hashlib
import json
import os
import time

import mulefarm
import uwsgi

FARMAPP_IMPORT_PID = os.getpid()

if os.environ.get("FARMAPP_HOOK_OUT"):

    def _hook(msg):
        with open(os.environ["FARMAPP_HOOK_OUT"], "ab") as f:
            f.write(b"%d %r %s\n" % (uwsgi.mule_id(), type(msg), msg))

    uwsgi.mule_msg_hook = _hook


def enc(v):
    if isinstance(v, bytes):
        return {"bytes": v.decode("latin-1")}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return {"repr": repr(v)}


def counter_step(path):
    """One read-modify-write with a yield in the middle: without mutual
    exclusion, concurrent steps lose updates."""
    with open(path, "r+") as f:
        v = int(f.read() or "0")
        time.sleep(0.0002)
        f.seek(0)
        f.write(str(v + 1))
        f.truncate()


def call(req):
    mod = mulefarm if req.get("mod") == "mulefarm" else uwsgi
    args = list(req.get("args", []))
    for i in req.get("bytes", []):
        args[i] = args[i].encode("latin-1")
    t0 = time.monotonic()
    try:
        r = getattr(mod, req["fn"])(*args, **req.get("kwargs", {}))
        out = {"r": enc(r), "type": type(r).__name__}
    except Exception as e:  # reported to the test
        out = {"exc": type(e).__name__, "msg": str(e), "mro": [c.__name__ for c in type(e).__mro__]}
    out["elapsed"] = time.monotonic() - t0
    return out


def burst(req):
    farm, n, prefix = req["farm"], req["n"], req.get("prefix", "")
    sent, false = 0, []
    t0 = time.monotonic()
    for i in range(n):
        if uwsgi.farm_msg(farm, "%s%d" % (prefix, i)):
            sent += 1
        else:
            false.append(i)
    return {"sent": sent, "false": false[:100], "elapsed": time.monotonic() - t0}


def big(req):
    data = os.urandom(req["size"])
    out = call({"fn": "farm_msg", "args": [req["farm"], data.decode("latin-1")], "bytes": [1]})
    out["sha256"] = hashlib.sha256(data).hexdigest()
    return out


def counter(req):
    k = req.get("lock", 0)
    for _ in range(req["n"]):
        uwsgi.lock(k)
        try:
            counter_step(req["path"])
        finally:
            uwsgi.unlock(k)
    return {"done": req["n"]}


def calls(req):
    return [call(c) for c in req["calls"]]


API = ["mule_id", "in_farm", "farm_msg", "mule_msg", "farm_get_msg", "mule_get_msg", "lock", "unlock",
       "farm_msg_wait", "QueueFull"]


def api(req):
    out = {n: [hasattr(uwsgi, n), hasattr(mulefarm, n)] for n in API}
    out["QueueFull_is_exception"] = issubclass(getattr(mulefarm, "QueueFull", object), Exception)
    return out


ROUTES = {"/call": call, "/calls": calls, "/api": api, "/burst": burst, "/big": big, "/counter": counter}


def application(environ, start_response):
    fn = ROUTES.get(environ.get("PATH_INFO"))
    if fn is None:
        body = b"ok"
    else:
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.dumps(fn(json.loads(environ["wsgi.input"].read(n)))).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
