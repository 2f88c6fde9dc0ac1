"""The console scripts `mulefarm` and `mulefarm-handler`.

Each hands sys.argv to the main function of the binary of the same name
(mulefarm._server.run), in this interpreter. A reload re-executes this
interpreter with the same command line, so it runs this stub again.
"""
import os
import sys


def _drop_script_dir():
    """Python put the script's directory (for -m, the working directory)
    first on sys.path. The binaries have '' there instead, which the
    server adds: the app imports from its --chdir, and nothing else."""
    if getattr(sys.flags, "safe_path", False) or not sys.path:
        return
    if sys.path[0] in (os.getcwd(), os.path.dirname(os.path.realpath(sys.argv[0]))):
        del sys.path[0]


def _run(program):
    from mulefarm import _server

    _drop_script_dir()
    command = [sys.executable] + sys.orig_argv[1:]
    status = _server.run(program, list(sys.argv), command)
    # As the binaries: the master exits without finalizing the interpreter
    # (no exit hooks or thread joins of the app's code run in the master).
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(status)


def main():
    _run("mulefarm")


def handler_main():
    _run("mulefarm-handler")
