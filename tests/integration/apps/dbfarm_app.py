"""The web side of the database-farm tests: each path calls one API and
answers JSON ({"error": name, "msg": text} when it raised)."""
import json
import time
from urllib.parse import parse_qs

import mulefarm
import uwsgi


def call(path, q, body):
    if path == "/ping":
        return "pong"
    if path == "/farm_msg":
        t0 = time.monotonic()
        ok = uwsgi.farm_msg(q["farm"], body)
        return {"ok": ok, "seconds": time.monotonic() - t0}
    if path == "/farm_msg_many":
        msgs = json.loads(body)
        return {"ok": [uwsgi.farm_msg(q["farm"], json.dumps(m)) for m in msgs]}
    args = json.loads(body) if body else {}
    if path == "/enqueue":
        return {"uuid": mulefarm.enqueue(**args)}
    if path == "/enqueue_many":
        return {"uuids": mulefarm.enqueue_many(**args)}
    if path == "/job":
        return {"job": mulefarm.job(q["uuid"])}
    raise LookupError(path)


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    try:
        out = call(environ["PATH_INFO"], q, body)
    except Exception as e:
        out = {"error": type(e).__name__, "msg": str(e)}
    data = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
