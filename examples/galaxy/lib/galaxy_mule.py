"""The stand-in for Galaxy's lib/galaxy/main.py, run by each mule.

examples/galaxy.yml names it twice (`mule: lib/galaxy_mule.py`), and
`farm: job-handlers:1,2` groups those two mules. mulefarm runs it as
`__main__` in the forked interpreter (no exec), as uWSGI does. It follows
Galaxy 20.09's dispatcher: take the farm's lock, wait for one message,
handle it while holding the lock, release; on SIGTERM/SIGINT, send
`__SHUTDOWN__` to the farm so that the dispatcher wakes and stops.
"""
import json
import os
import signal
import sys
import threading

FARM = "job-handlers"
LOCK = 0  # Galaxy: the i-th farm in name order uses lock i


def main():
    try:
        import uwsgi
    except ImportError:
        sys.exit("galaxy_mule.py runs inside a mule, not on its own")
    mule_id = uwsgi.mule_id()
    if not uwsgi.in_farm():
        sys.exit("Mule %d is not in a farm!" % mule_id)
    name = "main.%s.%d" % (FARM, mule_id)
    stop = threading.Event()

    def handle_signal(signum, frame):
        uwsgi.farm_msg(FARM, "__SHUTDOWN__")
        stop.set()

    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)

    def dispatcher():
        while True:
            uwsgi.lock(LOCK)
            try:
                msg = uwsgi.farm_get_msg()
                if msg == b"__SHUTDOWN__":
                    return
                job = json.loads(msg)
                print("%s (pid %d): job %s" % (name, os.getpid(), job["params"]["job_id"]), flush=True)
            finally:
                uwsgi.unlock(LOCK)

    t = threading.Thread(target=dispatcher, daemon=True)
    t.start()
    print("galaxy_mule: %s (pid %d) waiting for jobs" % (name, os.getpid()), flush=True)
    while not stop.wait(20):
        pass
    t.join(5)


if __name__ == "__main__":
    main()
