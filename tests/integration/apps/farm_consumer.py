"""A mule script: appends every message of its farms to
$MULEFARM_TEST_MULE_LOG as "msg <message> <pid>". Each start appends
"start <pid>"."""
import os

import uwsgi

LOG = os.environ["MULEFARM_TEST_MULE_LOG"]


def note(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")


note("start %d" % os.getpid())
while True:
    msg = uwsgi.farm_get_msg()
    note("msg %s %d" % (msg.decode(), os.getpid()))
