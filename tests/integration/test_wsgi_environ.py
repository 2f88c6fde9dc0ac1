"""PEP 3333 environ as built by mulefarm."""
import json

from conftest import app_path, module_server
from httpclient import simple_request

srv = module_server("srv", ["--wsgi-file", app_path("basic.py"), "--processes", "1", "--threads", "2"])


def raw_env(srv, path="/env", headers=(), method="GET", body=b"", version="HTTP/1.1", host=None):
    host = host or "127.0.0.1:%d" % srv.port
    with srv.raw() as c:
        c.send(simple_request(method, path, host=host, headers=headers, body=body, version=version, close=True))
        r = c.read_response()
        port = c.local_port()
    assert r.status == 200, r
    d = json.loads(r.body)
    d["client_port"] = port
    return d


def test_request_uri_raw_with_query(srv):
    d = raw_env(srv, "/env/a%20b%2Fc?x=1&y=%20z&y=2")
    e = d["env"]
    assert e["REQUEST_URI"] == "/env/a%20b%2Fc?x=1&y=%20z&y=2"
    assert e["QUERY_STRING"] == "x=1&y=%20z&y=2"


def test_path_info_percent_decoded(srv):
    e = raw_env(srv, "/env/a%20b%2Fc")["env"]
    assert e["PATH_INFO"] == "/env/a b/c"
    assert e["SCRIPT_NAME"] == ""


def test_path_info_non_ascii_is_latin1(srv):
    e = raw_env(srv, "/env/caf%C3%A9")["env"]
    assert e["PATH_INFO"] == "/env/caf\xc3\xa9"
    assert e["REQUEST_URI"] == "/env/caf%C3%A9"


def test_query_string_empty_when_absent(srv):
    e = raw_env(srv, "/env/plain")["env"]
    assert e["QUERY_STRING"] == ""
    assert e["REQUEST_URI"] == "/env/plain"
    assert e["PATH_INFO"] == "/env/plain"


def test_query_not_percent_decoded_and_path_stops_at_question_mark(srv):
    e = raw_env(srv, "/env/p%3Fq?a=%3F&b=%26")["env"]
    assert e["PATH_INFO"] == "/env/p?q"
    assert e["QUERY_STRING"] == "a=%3F&b=%26"


def test_server_and_remote_fields(srv):
    d = raw_env(srv, "/env")
    e = d["env"]
    assert e["REQUEST_METHOD"] == "GET"
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["SERVER_PORT"] == str(srv.port)
    assert isinstance(e["SERVER_NAME"], str) and e["SERVER_NAME"]
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["REMOTE_PORT"] == str(d["client_port"])
    assert e["HTTP_HOST"] == "127.0.0.1:%d" % srv.port


def test_server_protocol_http10(srv):
    e = raw_env(srv, "/env", version="HTTP/1.0")["env"]
    assert e["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_all_non_wsgi_values_are_str(srv):
    d = raw_env(srv, "/env?q=1", headers=[("X-Thing", "v")])
    for k, t in d["types"].items():
        if "." not in k:
            assert t == "str", (k, t)


def test_content_type_and_length(srv):
    d = raw_env(
        srv,
        "/env?read=1",
        method="POST",
        body=b"a=1&b=2",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
    )
    e = d["env"]
    assert e["REQUEST_METHOD"] == "POST"
    assert e["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert e["CONTENT_LENGTH"] == "7"
    assert "HTTP_CONTENT_TYPE" not in e
    assert "HTTP_CONTENT_LENGTH" not in e


def test_http_headers_mapped(srv):
    e = raw_env(srv, "/env", headers=[("X-Custom-Thing", "v1"), ("User-Agent", "mf-test/1.0"), ("accept", "*/*")])["env"]
    assert e["HTTP_X_CUSTOM_THING"] == "v1"
    assert e["HTTP_USER_AGENT"] == "mf-test/1.0"
    assert e["HTTP_ACCEPT"] == "*/*"


def test_header_value_whitespace_trimmed(srv):
    e = raw_env(srv, "/env", headers=[("X-Spacey", "   padded value \t")])["env"]
    assert e["HTTP_X_SPACEY"] == "padded value"


def test_underscore_headers_dropped(srv):
    d = raw_env(srv, "/env", headers=[("X_Forwarded", "evil"), ("X-Forwarded", "good"), ("Some_Header", "1")])
    e = d["env"]
    assert e.get("HTTP_X_FORWARDED") == "good"
    assert "evil" not in json.dumps(e)
    assert not any("SOME" in k for k in e), [k for k in e if "SOME" in k]


def test_underscore_header_alone_dropped(srv):
    e = raw_env(srv, "/env", headers=[("X_Forwarded", "x")])["env"]
    assert not any("FORWARDED" in k for k in e)


def test_duplicate_headers_joined(srv):
    e = raw_env(srv, "/env", headers=[("X-Dup", "a"), ("X-Dup", "b"), ("x-dup", "c")])["env"]
    assert e["HTTP_X_DUP"] == "a, b, c"


def test_duplicate_cookie_headers_joined_with_semicolon(srv):
    e = raw_env(srv, "/env", headers=[("Cookie", "a=1"), ("Cookie", "b=2")])["env"]
    assert e["HTTP_COOKIE"] == "a=1; b=2"


def test_wsgi_keys(srv):
    d = raw_env(srv, "/env")
    e, t = d["env"], d["types"]
    assert e["wsgi.version"] == {"tuple": [1, 0]}
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.multithread"] is True  # --threads 2
    assert e["wsgi.multiprocess"] is False  # --processes 1
    assert e["wsgi.run_once"] is False
    assert e["wsgi.input_terminated"] is True
    for k in ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper"):
        assert k in e
    assert d["callable"]["wsgi.file_wrapper"]
    assert set(d["input_attrs"]) == {"read", "readline", "readlines", "__iter__"}
    assert set(d["errors_attrs"]) == {"write", "writelines", "flush"}


def test_multiprocess_flags(server):
    s = server(["--wsgi-file", app_path("basic.py"), "--processes", "2", "--threads", "1"])
    e = s.get_json("/env")["env"]
    assert e["wsgi.multithread"] is False
    assert e["wsgi.multiprocess"] is True


def test_environ_is_fresh_per_request(srv):
    # headers of one request must not leak into the next on the same connection
    with srv.raw() as c:
        c.send(simple_request("GET", "/env", headers=[("X-Only-First", "1")]))
        e1 = json.loads(c.read_response().body)["env"]
        c.send(simple_request("GET", "/env"))
        e2 = json.loads(c.read_response().body)["env"]
    assert e1["HTTP_X_ONLY_FIRST"] == "1"
    assert "HTTP_X_ONLY_FIRST" not in e2


def test_many_distinct_header_names_all_mapped(srv):
    # Keys are cached per worker, and the cache stops growing when half
    # full: past that point (here 150 new names), keys are still all right,
    # and a name seen before maps to its own key, not a neighbour's.
    for batch in range(3):
        names = ["X-Name-%d-%d" % (batch, i) for i in range(50)]
        e = raw_env(srv, "/env", headers=[(n, n.lower()) for n in names] + [("X-Again", str(batch))])["env"]
        for n in names:
            assert e["HTTP_" + n.upper().replace("-", "_")] == n.lower()
        assert e["HTTP_X_AGAIN"] == str(batch)
        assert sum(k.startswith("HTTP_X_NAME_") for k in e) == 50


def test_wsgi_errors_goes_to_log(srv):
    status, _, _ = srv.get("/errors?msg=needle-1234")
    assert status == 200
    srv.wait_log(r"wsgi-errors-says:needle-1234")


def test_header_obs_text_value_is_latin1(srv):
    with srv.raw() as c:
        c.send(b"GET /env HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9 \xff\r\nConnection: close\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    e = json.loads(r.body)["env"]
    assert e["HTTP_X_LATIN"] == "caf\xe9 \xff"


def test_empty_header_value(srv):
    with srv.raw() as c:
        c.send(b"GET /env HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nConnection: close\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    assert json.loads(r.body)["env"]["HTTP_X_EMPTY"] == ""
