"""Fails to import: the server must exit non-zero with the traceback."""
import os  # noqa: F401

import this_module_does_not_exist_mulefarm  # noqa: F401


def application(environ, start_response):
    start_response("200 OK", [])
    return [b"unreachable"]
