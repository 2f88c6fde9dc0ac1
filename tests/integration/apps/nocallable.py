"""Has no `application`: loading it with the default --callable must fail."""


def some_other_name(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wrong"]
