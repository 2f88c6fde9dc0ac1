"""Sender side of tests/bench/farm.sh, for mulefarm and uWSGI alike (only
the `uwsgi` module's farm_msg is used).

  GET /                 Hello, World! (readiness)
  GET /burst?n=N        farm_msg("bench", "b<i>") for i < N as fast as it
                        goes; answers "<calls> <seconds>"
  GET /rtt?n=N&warm=W   W + N round trips, one at a time: farm_msg("bench",
                        "r<seq> <socket path>"), then wait for the mule's
                        reply on this worker's unix datagram socket;
                        answers the N latencies (microseconds), sorted,
                        one per line
"""
import os
import socket
import time

import uwsgi

FARM = "bench"


def burst(n):
    fm = uwsgi.farm_msg
    t0 = time.perf_counter()
    for i in range(n):
        fm(FARM, "b%d" % i)
    return "%d %.6f\n" % (n, time.perf_counter() - t0)


def rtt(n, warm):
    path = os.path.join(os.environ["FARM_BENCH_DIR"], "rtt-%d.sock" % os.getpid())
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    lat = []
    try:
        for i in range(warm + n):
            msg = "r%d %s" % (i, path)
            t0 = time.perf_counter()
            uwsgi.farm_msg(FARM, msg)
            while True:  # a late reply from a timed-out round is skipped
                if s.recv(256).decode() == "r%d" % i:
                    break
            if i >= warm:
                lat.append(int((time.perf_counter() - t0) * 1e6))
    finally:
        s.close()
        os.unlink(path)
    return "".join("%d\n" % x for x in sorted(lat))


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    q = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    if path == "/burst":
        body = burst(int(q.get("n", "1000")))
    elif path == "/rtt":
        body = rtt(int(q.get("n", "1000")), int(q.get("warm", "100")))
    else:
        body = "Hello, World!"
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
