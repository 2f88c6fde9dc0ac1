"""A second WSGI app for --mount tests: reports which app answered and the
SCRIPT_NAME / PATH_INFO it was given."""
import json


def _answer(name, environ, start_response):
    body = json.dumps(
        {
            "app": name,
            "SCRIPT_NAME": environ.get("SCRIPT_NAME"),
            "PATH_INFO": environ.get("PATH_INFO"),
            "REQUEST_URI": environ.get("REQUEST_URI"),
            "QUERY_STRING": environ.get("QUERY_STRING"),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    return _answer("mounted", environ, start_response)


def other(environ, start_response):
    return _answer("other", environ, start_response)
