"""App for the master tests (test_master_health.py, test_hooks.py).

Imported in the master. Marker files go to $MASTERAPP_DIR (if set):

  at import      registers uWSGI signal 30 -> "workers", 31 -> "mule1",
                 32 -> "worker" (each handler creates
                 sig<num>-<role><id>-<pid>); $MASTERAPP_TIMER=1 adds
                 add_timer(32, 1), whose handler appends a line to timer.log.
                 Puts hook_bare() into __main__ (for callpy: without MOD).
  post_fork_hook $MASTERAPP_FORK_EXIT=N: os._exit(N) at once (a worker that
                 dies at start-up); otherwise installs a Python SIGUSR1
                 handler that creates usr1-worker<id>-<pid>.

Routes:
  /              "ok <pid>"
  /info          JSON: pid, ppid, worker_id, masterpid, workers
                 (uwsgi.workers()), registered (signal_registered 30..33)
  /sleep?s=N     stuck_in_app(N): time.sleep(N)
  /signal?n=N    uwsgi.signal(N)
  /reload        uwsgi.reload()
  /stop          uwsgi.stop()
  /farm?name=F&msg=M  uwsgi.farm_msg(F, M)
  /grow?mb=N     keeps N more MiB (touched) in a global
"""
import json
import os
import signal
import time
from urllib.parse import parse_qs

import uwsgi

OUT = os.environ.get("MASTERAPP_DIR")
BALLAST = []


def touch(name, content=""):
    if OUT:
        path = os.path.join(OUT, name)
        with open(path + ".tmp", "w") as f:
            f.write(content)
        os.rename(path + ".tmp", path)


def whoami():
    mid = uwsgi.mule_id()
    return ("mule%d" % mid) if mid else ("worker%d" % uwsgi.worker_id())


def on_usignal(num):
    touch("sig%d-%s-%d" % (num, whoami(), os.getpid()))


def on_timer(num):
    if OUT:
        with open(os.path.join(OUT, "timer.log"), "a") as f:
            f.write("%s %d %.3f\n" % (whoami(), os.getpid(), time.time()))


uwsgi.register_signal(30, "workers", on_usignal)
uwsgi.register_signal(31, "mule1", on_usignal)
if os.environ.get("MASTERAPP_TIMER"):
    uwsgi.register_signal(32, "worker", on_timer)
    uwsgi.add_timer(32, 1)
else:
    uwsgi.register_signal(32, "worker", on_usignal)


def hook_bare():
    touch("callpy-bare-%d" % os.getpid())


import __main__  # noqa: E402

__main__.hook_bare = hook_bare


def on_usr1(signum, frame):
    touch("usr1-%s-%d" % (whoami(), os.getpid()))


def _post_fork():
    code = os.environ.get("MASTERAPP_FORK_EXIT")
    if code:
        os._exit(int(code))
    if uwsgi.worker_id():
        signal.signal(signal.SIGUSR1, on_usr1)


uwsgi.post_fork_hook = _post_fork


def stuck_in_app(seconds):
    time.sleep(seconds)


def text(sr, body, ctype="text/plain"):
    sr("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def plain(v):
    if isinstance(v, bytes):
        return v.decode("latin-1")
    return v


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/info":
        ws = uwsgi.workers()
        data = {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "worker_id": uwsgi.worker_id(),
            "masterpid": uwsgi.masterpid(),
            "workers_type": type(ws).__name__,
            "workers": [{k: plain(v) for k, v in w.items()} for w in ws],
            "item_types": sorted({type(w).__name__ for w in ws}),
            "registered": {n: uwsgi.signal_registered(n) for n in (30, 31, 32, 33)},
        }
        return text(start_response, json.dumps(data).encode(), "application/json")
    if path == "/sleep":
        stuck_in_app(float(q.get("s", "1")))
        return text(start_response, b"slept\n")
    if path == "/signal":
        uwsgi.signal(int(q["n"]))
        return text(start_response, b"raised\n")
    if path == "/reload":
        return text(start_response, b"reload %r\n" % (uwsgi.reload(),))
    if path == "/stop":
        return text(start_response, b"stop %r\n" % (uwsgi.stop(),))
    if path == "/farm":
        ok = uwsgi.farm_msg(q.get("name", "f"), q.get("msg", "m").encode())
        return text(start_response, b"farm %r\n" % (ok,))
    if path == "/grow":
        block = bytearray(int(q.get("mb", "1")) * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        BALLAST.append(block)
        return text(start_response, b"grown %d\n" % len(BALLAST))
    return text(start_response, b"ok %d\n" % os.getpid())
