"""Receiver side of tests/bench/farm.sh (runs as __main__ in each mule of
mulefarm and of uWSGI).

Takes messages with farm_get_msg(), as Galaxy's job handlers do. Counts
the burst messages ("b<i>"), with the wall-clock time of the first and the
last; answers round-trip messages ("r<seq> <path>") with "r<seq>" on the
sender's unix datagram socket. A thread writes the counts to
$FARM_BENCH_DIR/mule-<id>.json ({"count", "first", "last"}) every 0.2 s
when they changed (uWSGI's farm_get_msg has no timeout). uWSGI's
farm_get_msg returns None when another mule won the race for the same
message: not counted.
"""
import json
import os
import socket
import threading
import time

import uwsgi

DIR = os.environ["FARM_BENCH_DIR"]
me = uwsgi.mule_id()
out = os.path.join(DIR, "mule-%d.json" % me)
state = {"count": 0, "first": 0.0, "last": 0.0}


def writer():
    written = -1
    while True:
        time.sleep(0.2)
        s = dict(state)
        if s["count"] != written:
            with open(out + ".tmp", "w") as f:
                json.dump(s, f)
            os.rename(out + ".tmp", out)
            written = s["count"]


threading.Thread(target=writer, daemon=True).start()
reply = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
open(os.path.join(DIR, "ready-%d" % me), "w").close()
get = uwsgi.farm_get_msg
count = 0
while True:
    m = get()
    if not m:
        continue
    if m[:1] == b"b":
        last = time.time()
        if count == 0:
            state["first"] = last
        count += 1
        state["last"] = last
        state["count"] = count
    elif m[:1] == b"r":
        seq, path = m.split(b" ", 1)
        try:
            reply.sendto(seq, path.decode())
        except OSError:
            pass
