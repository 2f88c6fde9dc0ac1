"""Web app of the cluster test: POST /submit with a JSON list of messages;
each goes through uwsgi.farm_msg('job-handlers', ...) (one commit each);
answers the list of farm_msg results (True = acknowledged)."""
import json

import uwsgi


def application(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    if environ["PATH_INFO"] == "/submit":
        out = [bool(uwsgi.farm_msg("job-handlers", json.dumps(m))) for m in json.loads(body)]
    else:
        out = "pong"
    data = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
