"""docker/ without a Docker engine (issue 8).

This machine cannot run containers, so these tests check what can be
checked here:
- docker-compose.yml, as `docker-compose config` resolves it, has the
  topology the README promises (postgres, web with no local mules, two
  handler hosts with 2 mules each, healthchecks on the stats server,
  configs mounted from examples/);
- scripts/dockerlint.py passes on docker/Dockerfile and catches each kind
  of mistake it claims to, naming Dockerfile:line;
- the compose services' own commands and environment, with only the
  addresses and the image paths mapped to this machine, run the cluster on
  loopback against a throwaway PostgreSQL: jobs posted to web are run
  exactly once, by both handler hosts, and the healthchecks' URLs answer.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import BIN, REPO, free_port_number, wait_for
from dbfarm_util import HANDLER_BIN
from pgcluster import pg_cluster  # noqa: F401 (fixture)

yaml = pytest.importorskip("yaml")
psycopg2 = pytest.importorskip("psycopg2")

COMPOSE = REPO / "docker" / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
LINT = REPO / "scripts" / "dockerlint.py"
IMAGE_EXAMPLES = "/srv/mulefarm/examples"
NJOBS = 200


def compose_config(path=COMPOSE):
    r = subprocess.run(["docker-compose", "-f", str(path), "config"], capture_output=True, text=True,
                       cwd=str(REPO))
    return r


@pytest.fixture(scope="module")
def services():
    r = compose_config()
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)["services"]


def service_config(svc):
    """The config file a service's command names, as a path in the repo."""
    cmd = svc["command"]
    path = cmd[cmd.index("--yaml") + 1]
    assert path.startswith(IMAGE_EXAMPLES + "/"), path
    local = REPO / "examples" / path[len(IMAGE_EXAMPLES) + 1:]
    assert local.is_file(), "%s names %s, which is not in examples/" % (cmd, path)
    return local, yaml.safe_load(local.read_text())["uwsgi"]


def test_compose_topology(services):
    assert set(services) == {"postgres", "web", "handler-a", "handler-b"}
    assert services["postgres"]["image"].startswith("postgres:")
    web = services["web"]
    assert web["command"][0] == "mulefarm"
    _, wcfg = service_config(web)
    assert "mule" not in wcfg and "farm" not in wcfg, "web must run no local mules"
    assert wcfg["db-farm"] == "job-handlers" and wcfg["processes"] == 2
    assert web["environment"]["JOBS_HTTP"].endswith(":8080")
    assert [str(p) for p in web["ports"]] == ["127.0.0.1:8080:8080/tcp"]
    for name in ("handler-a", "handler-b"):
        h = services[name]
        assert h["command"][0] == "mulefarm-handler"
        _, hcfg = service_config(h)
        assert hcfg["db-farm"] == "job-handlers"
        assert hcfg["mule"] == ["mule.py", "mule.py"], "2 mules of examples/jobs' mule code"
        assert hcfg["chdir"].endswith("../jobs")
        assert h["hostname"] == name
        assert h["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "handler-a", "handler-b"):
        s = services[name]
        assert s["volumes"] == ["%s:%s:ro" % (REPO / "examples", IMAGE_EXAMPLES)]
        port = s["environment"]["JOBS_STATS"].rsplit(":", 1)[1]
        test = s["healthcheck"]["test"]
        assert test[:2] == ["CMD", "curl"] and test[-1] == "http://127.0.0.1:%s/" % port, test
        _, cfg = service_config(s)
        assert cfg["stats"] == "$(JOBS_STATS)" and cfg["stats-http"] is True


def test_compose_config_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    text = COMPOSE.read_text().replace("    hostname: handler-b\n", "    hostname: [handler-b\n")
    bad.write_text(text)
    r = compose_config(bad)
    assert r.returncode != 0
    assert "docker-compose.yml" in r.stderr and "line" in r.stderr, r.stderr


def lint(path, binaries=(BIN, HANDLER_BIN)):
    args = [sys.executable, str(LINT), "--context", str(REPO)]
    for b in binaries:
        args += ["--binary", b]
    return subprocess.run(args + [str(path)], capture_output=True, text=True)


def test_dockerlint_passes_on_the_dockerfile():
    r = lint(DOCKERFILE)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def _line_of(text, needle):
    return text[:text.index(needle)].count("\n") + 1


@pytest.mark.parametrize("case", ["shell", "shellcheck", "package", "runtime-lib", "root", "copy", "from",
                                  "build-deps"])
def test_dockerlint_catches(tmp_path, case):
    text = DOCKERFILE.read_text()
    if case == "shell":
        text = text.replace("RUN make -j", "RUN if make -j")
        want = (r"Dockerfile:%d: RUN: shell syntax" % _line_of(text, "RUN if make"))
    elif case == "shellcheck":
        text = text.replace('make -j"$(nproc)" all', "make -j$(nproc) all")
        want = r"Dockerfile:%d: RUN: shellcheck \w+: Quote this.*SC2046" % _line_of(text, "make -j$(nproc)")
    elif case == "package":
        text = text.replace("libyaml-0-2 ", "libyaml-0-2 no-such-package-here ")
        want = r"Dockerfile:\d+: apt-get install: no package 'no-such-package-here'"
    elif case == "runtime-lib":
        # (libpq5 would still come with python3-psycopg2: the check follows Depends)
        text = text.replace("libyaml-0-2 ", "")
        want = r"Dockerfile:\d+: mulefarm needs libyaml-0\.so\.2 \(package libyaml-0-2\)"
    elif case == "root":
        text = text.replace("USER mulefarm\n", "")
        want = r"the last stage runs as root"
    elif case == "copy":
        text = text.replace("COPY examples ", "COPY exemples ")
        want = r"COPY: 'exemples' is not in the build context"
    elif case == "from":
        text = text.replace("FROM debian:bookworm-slim", "FROM ubuntu:latest")
        want = r"FROM: want debian:bookworm or debian:bookworm-slim, found 'ubuntu:latest'"
    else:
        text = text.replace(" libyaml-dev", "")
        want = r"the build stage lacks scripts/deps.sh build packages: libyaml-dev"
    assert text != DOCKERFILE.read_text(), "the mutation did not apply"
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    # the libraries' check (ldd, dpkg -S) takes seconds: only where it is the point
    r = lint(path, (BIN,) if case == "runtime-lib" else ())
    assert r.returncode == 1
    assert re.search(want, r.stderr), r.stderr


# ---------------------------------------------------------------------------
# the compose services, run on loopback


class Service:
    """One compose service's command, run here: the image's paths mapped
    to the repository, its environment with the addresses mapped to
    loopback."""

    def __init__(self, name, svc, env, workdir, extra=()):
        cmd = [{"mulefarm": BIN, "mulefarm-handler": HANDLER_BIN}.get(a, a) for a in svc["command"]]
        cmd = [a.replace(IMAGE_EXAMPLES, str(REPO / "examples")) for a in cmd] + list(extra)
        self.name = name
        self.env = dict(os.environ)
        self.env.update({k: str(v) for k, v in svc["environment"].items()})
        self.env.update(env)
        self.env.pop("PYTHONPATH", None)
        self.stats_port = int(self.env["JOBS_STATS"].rsplit(":", 1)[1])
        self.health = svc["healthcheck"]["test"][-1].replace(":9191/", ":%d/" % self.stats_port)
        self.log = workdir / (name + ".log")
        self._f = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._f, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=str(workdir), start_new_session=True)

    def healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited %s:\n%s" % (self.name, self.proc.returncode, self.text()))
        try:
            with urllib.request.urlopen(self.health, timeout=2) as r:
                return r.status == 200 and "workers" in json.loads(r.read())
        except OSError:
            return False

    def text(self):
        return self.log.read_text(errors="replace")

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None
        finally:
            self._f.close()


def post_jobs(port, n):
    ids = []
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for i in range(n):
            c.request("POST", "/jobs", body=json.dumps({"payload": "compose %d" % i}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            assert r.status == 201, (r.status, body)
            ids.append(json.loads(body)["id"])
    finally:
        c.close()
    return ids


@pytest.mark.timeout(150)
def test_compose_services_run_the_cluster_on_loopback(services, pg_cluster, tmp_path):  # noqa: F811
    dsn = pg_cluster.create_db("compose")

    def query(sql):
        conn = psycopg2.connect(dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()

    http_port = free_port_number()
    started = []
    try:
        web = Service("web", services["web"], {"JOBS_DSN": dsn, "JOBS_HTTP": "127.0.0.1:%d" % http_port,
                                               "JOBS_STATS": "127.0.0.1:%d" % free_port_number()}, tmp_path)
        started.append(web)
        wait_for(web.healthy, timeout=30, what="web's healthcheck")
        for name in ("handler-a", "handler-b"):
            # in a container the hostname names the handlers; here both
            # share one host, so the hostname compose gives is passed on
            h = Service(name, services[name], {"JOBS_DSN": dsn, "JOBS_STATS": "127.0.0.1:%d" % free_port_number()},
                        tmp_path, extra=["--handler-name", services[name]["hostname"]])
            started.append(h)
        for h in started[1:]:
            wait_for(h.healthy, timeout=30, what="%s's healthcheck" % h.name)
        ids = post_jobs(http_port, NJOBS)
        assert len(set(ids)) == NJOBS

        wait_for(lambda: query("SELECT count(*) FROM job WHERE state = 'done'")[0][0] == NJOBS, timeout=60,
                 what="all %d jobs done" % NJOBS)
        rows = query("""SELECT j.id, j.handler, count(r.job_id) FROM job j LEFT JOIN job_run r ON r.job_id = j.id
                        GROUP BY j.id, j.handler""")
        assert sorted(r[0] for r in rows) == sorted(ids)
        assert [r for r in rows if r[2] != 1] == [], "every job runs exactly once"
        hosts = {r[1].split(".")[0] for r in rows}
        assert hosts == {"handler-a", "handler-b"}, "both handler hosts ran jobs: %r" % hosts
        # the queue's own records name the handler hosts too
        qh = {r[0].split(".")[0] for r in query("SELECT DISTINCT handler FROM mulefarm.history")}
    finally:
        codes = {s.name: s.stop() for s in reversed(started)}
    assert codes == {s.name: 0 for s in started}, "SIGTERM stops every service with status 0: %r\n%s" % (
        codes, "\n".join(s.name + ":\n" + s.text()[-2000:] for s in started))
    # A job is acknowledged when its mule asks for the next message; the
    # mule waiting for lock 0 has not asked yet, so its last job is acked by
    # the drain on SIGTERM. Afterwards the queue is empty and its history
    # holds each job once, done.
    assert query("SELECT state, count(*) FROM mulefarm.jobs GROUP BY state") == []
    assert query("SELECT state, count(*), count(DISTINCT uuid) FROM mulefarm.history GROUP BY state") == [
        ("done", NJOBS, NJOBS)]
