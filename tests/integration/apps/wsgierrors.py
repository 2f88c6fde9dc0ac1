"""Apps that break the WSGI protocol before any output: the server must
answer 500 (and log the error), never crash or hang."""


def application(environ, start_response):
    p = environ["PATH_INFO"]
    if p == "/returns-none":
        start_response("200 OK", [])
        return None
    if p == "/returns-int":
        start_response("200 OK", [])
        return 42
    if p == "/headers-dict":
        start_response("200 OK", {"X-A": "b"})
        return [b"x"]
    if p == "/header-int-value":
        start_response("200 OK", [("X-A", 5)])
        return [b"x"]
    if p == "/header-not-pair":
        start_response("200 OK", ["X-A: b"])
        return [b"x"]
    if p == "/status-int":
        start_response(200, [])
        return [b"x"]
    if p == "/status-no-code":
        start_response("OK", [])
        return [b"x"]
    if p == "/status-crlf":
        start_response("200 OK\r\nX-Injected: 1", [])
        return [b"x"]
    if p == "/write-str":
        write = start_response("200 OK", [])
        write("a str")
        return []
    if p == "/no-start-response":
        return [b"never started"]
    if p == "/no-start-response-empty":
        return []
    if p == "/iter-raises-first":

        class It:
            def __iter__(self):
                raise RuntimeError("iter boom")

        start_response("200 OK", [])
        return It()
    if p == "/system-exit":
        raise SystemExit(3)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
