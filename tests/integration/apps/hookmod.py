"""callpy: hook targets (test_hooks.py). Each appends "<label> <pid>" to
$HOOKMOD_OUT."""
import os


def _note(label):
    with open(os.environ["HOOKMOD_OUT"], "a") as f:
        f.write("%s %d\n" % (label, os.getpid()))


def pre_app():
    _note("pre_app")


def post_app():
    _note("post_app")


def accepting():
    _note("accepting")


def as_mule():
    _note("as_mule")


def boom():
    raise RuntimeError("hookmod-boom")
