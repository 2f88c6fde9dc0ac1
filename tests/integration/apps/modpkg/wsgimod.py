"""Loaded with --module modpkg.wsgimod:... and --pythonpath <apps dir>."""
FACTORY_CALLS = []


def _respond(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def named_app(environ, start_response):
    return _respond(start_response, b"named_app from modpkg.wsgimod")


def application(environ, start_response):
    return _respond(start_response, b"default application from modpkg.wsgimod")


def make_app():
    FACTORY_CALLS.append(1)

    def made(environ, start_response):
        return _respond(start_response, ("made by factory (calls=%d)" % len(FACTORY_CALLS)).encode())

    return made
