"""A job-handler mule for test_zerg.py: says "mule-start <id> <pid>" on
stderr (the server log, so the line sits in time order between the
masters' lines), then handles farm messages, taking $ZERG_TEST_JOB_MS
(default 2) ms each, and
appends "<message> <mule id> <pid>" to $ZERG_TEST_MULE_LOG for each, with
one write(2)."""
import os
import sys
import time

import uwsgi

LOG = os.environ["ZERG_TEST_MULE_LOG"]
JOB_S = float(os.environ.get("ZERG_TEST_JOB_MS", "2")) / 1000
sys.stderr.write("mule-start %d %d\n" % (uwsgi.mule_id(), os.getpid()))
sys.stderr.flush()
while True:
    msg = uwsgi.farm_get_msg()
    time.sleep(JOB_S)  # the job
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"%s %d %d\n" % (msg, uwsgi.mule_id(), os.getpid()))
    os.close(fd)
