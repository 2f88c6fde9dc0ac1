"""A throwaway PostgreSQL cluster for integration tests.

    from pgcluster import pg_cluster     # module-scoped fixture

    def test_x(pg_cluster):
        dsn = pg_cluster.create_db("mytest")    # libpq DSN of a fresh database
        pg_cluster.sql("SELECT 1", db="mytest") # -> "1" (psql -At)

The cluster lives in a new directory under $TMPDIR (not under pytest's
tmp dir: that one is private to root, and the server runs as the
`postgres` user when the tests run as root), listens on 127.0.0.1:<free
port> and on a unix socket in that directory, trusts every local
connection (user `postgres`) and runs without fsync. Teardown stops it
(pg_ctl stop -m immediate) and removes the directory; the server log is
printed when start-up fails.

The PostgreSQL binaries are found in $PG_BINDIR, else the newest
/usr/lib/postgresql/*/bin; without them the tests that use the fixture
are skipped.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import free_port_number


def find_bindir():
    d = os.environ.get("PG_BINDIR")
    if d:
        return d if os.path.exists(os.path.join(d, "initdb")) else None
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return os.path.dirname(found[-1]) if found else None


class PgCluster:
    def __init__(self, bindir):
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="mulefarm-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sockdir = self.dir
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.port = free_port_number()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.started = False
        # root may not run PostgreSQL: the cluster belongs to `postgres`
        self.as_user = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, prog, *args, check=True, timeout=60):
        cmd = self.as_user + [os.path.join(self.bindir, prog)] + list(args)
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
        return r

    def start(self):
        self._run("initdb", "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        opts = " ".join(
            [
                "-p %d" % self.port,
                "-k %s" % self.sockdir,
                "-c listen_addresses=%s" % self.host,
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        r = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", self.data, "-l", self.logfile, "-o", opts, check=False)
        if r.returncode != 0:
            log = ""
            try:
                with open(self.logfile) as f:
                    log = f.read()
            except OSError:
                pass
            raise RuntimeError("pg_ctl start failed:\n%s%s\n--- server log ---\n%s" % (r.stdout, r.stderr, log))
        self.started = True
        return self

    def stop(self):
        if self.started:
            self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", self.data, check=False)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def dsn(self, db="postgres"):
        return "host=%s port=%d user=%s dbname=%s" % (self.host, self.port, self.user, db)

    def sql(self, query, db="postgres"):
        """Runs <query> with psql; returns its unaligned, tuples-only output."""
        r = subprocess.run(
            [os.path.join(self.bindir, "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
             "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", db, "-c", query],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )
        if r.returncode != 0:
            raise RuntimeError("psql %r failed: %s" % (query, r.stderr))
        return r.stdout.strip()

    def create_db(self, name):
        """Creates database <name> (dropping an old one); returns its DSN."""
        self.sql('DROP DATABASE IF EXISTS "%s"' % name)
        self.sql('CREATE DATABASE "%s"' % name)
        return self.dsn(name)


@pytest.fixture(scope="module")
def pg_cluster():
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found (scripts/deps.sh test installs postgresql)")
    c = PgCluster(bindir)
    try:
        c.start()
        yield c
    finally:
        c.stop()
