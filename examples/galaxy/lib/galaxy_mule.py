"""A trivial mule script, the stand-in for Galaxy's lib/galaxy/main.py.

examples/galaxy.yml names it twice (`mule: lib/galaxy_mule.py`), and
`farm: job-handlers:1,2` groups those two mules. mulefarm does not run mules
yet: today both entries are kept as placeholders (visible in `uwsgi.opt`)
and this file is never executed. Under uWSGI each mule runs it as its main
loop: wait for a message addressed to the farm, handle it, repeat.
"""
import os
import sys


def main():
    try:
        import uwsgi
    except ImportError:
        sys.exit("galaxy_mule.py runs inside a mule, not on its own")
    mule_id = uwsgi.mule_id() if hasattr(uwsgi, "mule_id") else 0
    print("galaxy_mule: mule %s (pid %d) waiting for jobs" % (mule_id, os.getpid()), flush=True)
    while True:
        msg = uwsgi.farm_get_msg() if hasattr(uwsgi, "farm_get_msg") else uwsgi.mule_get_msg()
        if msg:
            print("galaxy_mule: mule %s got %r" % (mule_id, msg), flush=True)


if __name__ == "__main__":
    main()
