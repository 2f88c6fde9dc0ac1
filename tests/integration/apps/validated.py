"""The app wrapped in wsgiref.validate.validator; WSGI warnings are turned
into errors, so any protocol violation by the server shows up as a 500 (or
an "Exception ignored" / WSGIWarning line in the log)."""
import hashlib
import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)


def inner(environ, start_response):
    path = environ["PATH_INFO"]
    inp = environ["wsgi.input"]
    if path == "/upload":
        h = hashlib.sha256()
        n = 0
        while True:
            d = inp.read(65536)
            if not d:
                break
            h.update(d)
            n += len(d)
        body = ("%d %s" % (n, h.hexdigest())).encode()
    elif path == "/echo":
        parts = []
        while True:
            d = inp.read(8192)
            if not d:
                break
            parts.append(d)
        body = b"".join(parts)
    elif path == "/lines":
        first = inp.readline()
        rest = inp.readlines()
        body = b"|".join([first] + rest)
    elif path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen():
            for i in range(5):
                yield b"stream-%d\n" % i

        return gen()
    else:
        body = b"hello validated\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = validator(inner)
