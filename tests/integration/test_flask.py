"""A Flask (python3-flask) application served by mulefarm."""
import json
from urllib.parse import urlencode

from conftest import APPS, app_path, module_server

fsrv = module_server("fsrv", ["--wsgi-file", app_path("flaskapp.py"), "--processes", "1", "--threads", "2"])


def test_index(fsrv):
    status, headers, body = fsrv.get("/")
    assert status == 200
    assert body == b"flask index"
    assert headers["content-type"].startswith("text/html")


def test_json_route(fsrv):
    status, headers, body = fsrv.get("/api/item/42?q=hello%20world")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"id": 42, "q": "hello world", "method": "GET"}


def test_json_post(fsrv):
    status, headers, body = fsrv.request(
        "POST", "/api/echo", body=json.dumps({"a": [1, 2, "x"]}), headers={"Content-Type": "application/json"}
    )
    assert status == 201
    assert json.loads(body) == {"received": {"a": [1, 2, "x"]}}


def test_form_post(fsrv):
    form = urlencode([("name", "Zoë & co"), ("tag", "a"), ("tag", "b")])
    status, headers, body = fsrv.request(
        "POST", "/form", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 200
    assert json.loads(body) == {"name": "Zoë & co", "tags": ["a", "b"]}


def test_not_found(fsrv):
    status, headers, body = fsrv.get("/no/such/page")
    assert status == 404
    assert b"Not Found" in body


def test_method_not_allowed(fsrv):
    status, _, _ = fsrv.request("DELETE", "/api/item/1")
    assert status == 405


def test_abort_403(fsrv):
    status, _, _ = fsrv.get("/forbidden")
    assert status == 403


def test_redirect(fsrv):
    status, headers, body = fsrv.get("/old")
    assert status == 302
    assert headers["location"].endswith("/new")
    status, _, body = fsrv.get(headers["location"] if headers["location"].startswith("/") else "/new")
    assert status == 200 and body == b"new page"


def test_flask_via_module(server):
    srv = server(["--module", "flaskapp:app", "--pythonpath", str(APPS)])
    status, _, body = srv.get("/api/item/7")
    assert status == 200
    assert json.loads(body)["id"] == 7
