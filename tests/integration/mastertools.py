"""Helpers shared by test_master_reload.py and test_master_control.py:
waiting for reloads and new workers, writing to the master FIFO, a slow
request on its own thread."""
import errno
import json
import os
import threading

from conftest import wait_for
import httpclient

# logged by the master once the new workers accept and the previous
# generation is told to go: the end of a graceful reload
RETIRED = "new workers accepting: stopping"


def count_log(srv, text):
    return srv.log_text().count(text)


def wait_reloads(srv, n, timeout=10):
    """Waits until the log reports <n> retired generations in total."""
    wait_for(lambda: count_log(srv, RETIRED) >= n, timeout=timeout, what="reload %d to finish" % n)


def workers_now(srv, n, not_in=()):
    """Waits for exactly <n> children, none of them in <not_in>; returns them."""
    bad = set(not_in)

    def check():
        kids = srv.children()
        return kids if len(kids) == n and not (set(kids) & bad) else None

    return wait_for(check, timeout=10, what="%d new workers (old ones gone)" % n)


def info(srv, path="/"):
    status, _, body = srv.get(path)
    assert status == 200, (status, body)
    return json.loads(body)


def fifo_write(path, data):
    """Writes <data> to the master FIFO, waiting for the master to have it
    open (it reopens it after a re-exec)."""

    def attempt():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):
                return False
            raise
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
        return True

    wait_for(attempt, timeout=10, what="the master to open its FIFO %s" % path)


class SlowRequest:
    """A request to /sleep?s=<seconds> on its own thread; started() waits
    until the app is running it."""

    def __init__(self, srv, tmp_path, seconds, name="slow"):
        self.marker = str(tmp_path / (name + ".started"))
        self.result = {}
        self.srv = srv
        self.seconds = seconds
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        wait_for(lambda: os.path.exists(self.marker), what="the slow request to start")
        self.worker = int(open(self.marker).read())

    def _run(self):
        try:
            with self.srv.raw(timeout=self.seconds + 10) as c:
                c.send("GET /sleep?s=%s&marker=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (self.seconds, self.marker))
                try:
                    self.result["resp"] = c.read_response()
                except httpclient.ConnectionClosed as e:
                    self.result["closed"] = e
        except Exception as e:  # reported by the test
            self.result["error"] = e

    def join(self, timeout=15):
        self.t.join(timeout)
        assert not self.t.is_alive(), "the slow request never finished"
        return self.result
