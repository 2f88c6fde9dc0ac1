"""Mule script for test_master_health.py: a Python SIGUSR1 handler creates
$MASTERAPP_DIR/usr1-mule<id>-<pid>; then it idles (the handlers run
between sleeps; uWSGI signals arrive on mulefarm's delivery thread)."""
import os
import signal
import time

import uwsgi

OUT = os.environ["MASTERAPP_DIR"]


def on_usr1(signum, frame):
    path = os.path.join(OUT, "usr1-mule%d-%d" % (uwsgi.mule_id(), os.getpid()))
    with open(path, "w"):
        pass


signal.signal(signal.SIGUSR1, on_usr1)
with open(os.path.join(OUT, "mule-ready-%d" % os.getpid()), "w"):
    pass
while True:
    time.sleep(0.2)
