"""A mule script that ignores SIGTERM: only SIGKILL stops it. It writes
its pid to $MULEFARM_TEST_MULE_PIDFILE once SIGTERM is ignored."""
import os
import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
path = os.environ["MULEFARM_TEST_MULE_PIDFILE"]
with open(path + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(path + ".tmp", path)
while True:
    time.sleep(1)
