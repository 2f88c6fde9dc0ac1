"""Driver of the cluster test (run by cluster.sh inside the web namespace):
starts mulefarm (web) and mulefarm-handler (h1, h2) in their namespaces,
runs the six scenarios of issue 8 and prints the Jepsen-style counters.
Exit status 0 only when every scenario passes."""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg2

E = os.environ
REPO, TMP, DSN = E["REPO"], E["TMPDIR_CLUSTER"], E["DSN"]
NS = {"db": E["NS_DB"], "web": E["NS_WEB"], "h1": E["NS_H1"], "h2": E["NS_H2"], "br": E["NS_BR"]}
HERE = os.path.dirname(os.path.abspath(__file__))
LEASE = 5
FARM = "job-handlers"
STEADY = int(E.get("CLUSTER_STEADY_JOBS", "20000"))
T0 = time.monotonic()


def log(*a):
    print("[%6.1f] %s" % (time.monotonic() - T0, " ".join(str(x) for x in a)), flush=True)


def sql(q, args=None):
    for _ in range(300):
        try:
            c = psycopg2.connect(DSN)
            c.autocommit = True
            try:
                with c.cursor() as cur:
                    cur.execute(q, args)
                    return cur.fetchall() if cur.description else None
            finally:
                c.close()
        except psycopg2.OperationalError:
            time.sleep(0.2)
    raise RuntimeError("database unreachable")


def ns_pids(host):
    """The processes in a namespace, but this driver (which runs in web's)."""
    out = subprocess.run(["ip", "netns", "pids", NS[host]], capture_output=True, text=True).stdout
    pids = []
    for p in map(int, out.split()):
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        comm, ppid = st.split("(", 1)[1].rsplit(")", 1)[0], int(st.rsplit(")", 1)[1].split()[1])
        if p != os.getpid() and not (comm == "ip" and ppid == os.getpid()):  # `ip netns pids`
            pids.append(p)
    return pids


def kill_ns(host):
    for _ in range(10):
        pids = ns_pids(host)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


class Proc:
    def __init__(self, host, argv, name, env=None):
        self.host, self.name = host, name
        self.logf = open(os.path.join(TMP, name + ".log"), "ab")
        e = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", CLUSTER_DSN=DSN)
        self.proc = subprocess.Popen(["ip", "netns", "exec", NS[host]] + argv, stdout=self.logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=e,
                                     start_new_session=True)

    def text(self):
        with open(os.path.join(TMP, self.name + ".log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, s, timeout=30):
        end = time.monotonic() + timeout
        while s not in self.text():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("%s never logged %r:\n%s" % (self.name, s, self.text()[-3000:]))
            time.sleep(0.05)


def start_handler(host, gen):
    argv = [REPO + "/build/mulefarm-handler", "--db-farm", FARM, "--dbqueue", DSN,
            "--handler-name", "%sg%d" % (host, gen), "--dbqueue-lease", str(LEASE),
            "--farm", FARM + ":1,2", "--mule", HERE + "/mule.py", "--mule", HERE + "/mule.py",
            "--mule-reload-mercy", "10"]
    p = Proc(host, argv, "%s-g%d" % (host, gen))
    p.wait_log("spawned mule 2")
    return p


def start_web():
    argv = [REPO + "/build/mulefarm", "--http-socket", "0.0.0.0:8080", "--processes", "2",
            "--wsgi-file", HERE + "/app.py", "--db-farm", FARM, "--dbqueue", DSN,
            "--handler-name", "web", "--dbqueue-timeout", "30", "--worker-reload-mercy", "30"]
    p = Proc("web", argv, "web")
    end = time.monotonic() + 30
    while True:
        try:
            c = http.client.HTTPConnection(E["WEB_ADDR"], 8080, timeout=5)
            c.request("GET", "/ping")
            if c.getresponse().status == 200:
                return p
        except OSError:
            pass
        if time.monotonic() > end or p.proc.poll() is not None:
            raise RuntimeError("web did not start:\n" + p.text()[-3000:])
        time.sleep(0.1)


class Load(threading.Thread):
    """Submits n jobs {"key": prefix-i, "sleep": s} over HTTP, in batches,
    spread over `duration` seconds (0: as fast as possible)."""

    def __init__(self, prefix, n, sleep=0.0, duration=0.0, batch=50):
        super().__init__(daemon=True)
        self.prefix, self.n, self.sleep, self.duration, self.batch = prefix, n, sleep, duration, batch
        self.submitted, self.acked = set(), set()
        self.http_fail, self.nacks, self.max_latency = 0, 0, 0.0
        self.errors = []

    def run(self):
        start = time.monotonic()
        for b in range(0, self.n, self.batch):
            if self.duration:
                due = start + self.duration * b / self.n
                time.sleep(max(0.0, due - time.monotonic()))
            keys = ["%s-%d" % (self.prefix, i) for i in range(b, min(self.n, b + self.batch))]
            self.submitted.update(keys)
            body = json.dumps([{"key": k, "sleep": self.sleep} for k in keys])
            t = time.monotonic()
            try:
                c = http.client.HTTPConnection(E["WEB_ADDR"], 8080, timeout=60)
                c.request("POST", "/submit", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
                c.close()
                if r.status != 200:
                    raise OSError("HTTP %d" % r.status)
                oks = json.loads(data)
            except (OSError, ValueError, http.client.HTTPException) as e:
                self.http_fail += 1
                self.errors.append(repr(e))
                continue
            self.max_latency = max(self.max_latency, time.monotonic() - t)
            for k, ok in zip(keys, oks):
                if ok:
                    self.acked.add(k)
                else:
                    self.nacks += 1


def completions(prefix):
    rows = sql("SELECT key, handler, attempt FROM completions WHERE key LIKE %s", (prefix + "-%",))
    return rows


def wait_all(load, timeout):
    """Waits until every acknowledged key of the load has a completion."""
    end = time.monotonic() + timeout
    while True:
        done = {r[0] for r in sql("SELECT DISTINCT key FROM completions WHERE key LIKE %s",
                                  (load.prefix + "-%",))}
        if not load.is_alive() and load.acked <= done:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.3)


RESULTS = []


def counters(name, load, recovery, limit, ok_extra=True, note="", t_start=None):
    rows = completions(load.prefix)
    per = {}
    for key, handler, attempt in rows:
        per.setdefault(key, []).append((handler, attempt))
    lost = len(load.acked - set(per))
    reruns = sum(len(v) - 1 for v in per.values())
    same_attempt = sum(len(v) - len(set(a for _, a in v)) for v in per.values())
    unexpected = len(set(per) - load.submitted)
    refused = sql("SELECT count(*) FROM refused WHERE key LIKE %s", (load.prefix + "-%",))[0][0]
    # the server's own fencing: the done row's handler ran the last attempt
    mism = sql("""SELECT count(*) FROM mulefarm.history h JOIN (
          SELECT DISTINCT ON (key) key, handler FROM completions WHERE key LIKE %s
          ORDER BY key, attempt DESC) c ON c.key = convert_from(h.payload, 'UTF8')::json->>'key'
        WHERE h.state = 'done' AND h.handler <> c.handler""", (load.prefix + "-%",))[0][0]
    hosts = {}
    for v in per.values():
        for h, _ in v:
            hosts[h[:2]] = hosts.get(h[:2], 0) + 1
    ok = (lost == 0 and unexpected == 0 and same_attempt == 0 and mism == 0 and load.http_fail == 0
          and load.nacks == 0 and (recovery is None or recovery <= limit) and ok_extra)
    RESULTS.append(dict(name=name, jobs=load.n, acked=len(load.acked), done=len(per), lost=lost,
                        reruns=reruns, unexpected=unexpected, refused=refused, fence=mism,
                        http=load.http_fail + load.nacks, rec=recovery, limit=limit,
                        split="h1:%d h2:%d" % (hosts.get("h1", 0), hosts.get("h2", 0)),
                        secs=time.monotonic() - t_start, ok=ok, note=note))
    log("%s: %s" % (name, RESULTS[-1]))
    if load.errors:
        log("  http errors:", load.errors[:5])


def running_of(prefix):
    return {r[0] for r in sql("SELECT uuid::text FROM mulefarm.jobs WHERE state = 'running'"
                              " AND handler LIKE %s", (prefix + "%",))}


def main():
    sql("CREATE TABLE IF NOT EXISTS completions (key text NOT NULL, uuid uuid, handler text,"
        " attempt int, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    sql("CREATE TABLE IF NOT EXISTS refused (key text NOT NULL, uuid uuid, handler text,"
        " attempt int, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    mig = subprocess.run(["ip", "netns", "exec", NS["h1"], REPO + "/build/mulefarm-handler",
                          "--migrate", "--dbqueue", DSN], capture_output=True, text=True)
    assert mig.returncode == 0, mig.stderr
    web = start_web()
    gen = {"h1": 0, "h2": 0}
    hs = {h: start_handler(h, 0) for h in ("h1", "h2")}
    log("cluster up: web, h1, h2 (2 mules each), lease %d s" % LEASE)

    # 1 steady
    t = time.monotonic()
    ld = Load("steady", STEADY, batch=100)
    ld.start()
    ok = wait_all(ld, 150)
    c = completions("steady")
    both = len({h[:2] for _, h, _ in c}) == 2
    counters("1 steady", ld, None, None, ok and both, "%.0f jobs/s" % (len(c) / (time.monotonic() - t)),
             t_start=t)

    # 2 host crash: SIGKILL every process of h1 mid-load
    t = time.monotonic()
    ld = Load("crash", 300, sleep=0.2, duration=6)
    ld.start()
    time.sleep(2)
    killed = time.monotonic()
    kill_ns("h1")
    hs["h1"].proc.wait(10)
    inflight = running_of("h1g")  # what the dead host still holds
    log("crash: killed h1 with %d jobs in flight" % len(inflight))
    rec = None
    while time.monotonic() - killed < LEASE + 20:
        if inflight:
            left = sql("SELECT count(*) FROM mulefarm.jobs WHERE uuid::text = ANY(%s)", (list(inflight),))[0][0]
            rerun = sql("SELECT count(DISTINCT uuid) FROM completions WHERE handler LIKE 'h2%%'"
                        " AND uuid::text = ANY(%s)", (list(inflight),))[0][0]
            if left == 0 and rerun == len(inflight):
                rec = time.monotonic() - killed
                break
        time.sleep(0.1)
    ok = bool(inflight) and not ns_pids("h1")
    gen["h1"] += 1
    hs["h1"] = start_handler("h1", gen["h1"])  # the host comes back (a new prefix)
    ok = wait_all(ld, 60) and ok
    counters("2 host crash", ld, rec, LEASE + 5, ok, "%d in flight re-run by h2" % len(inflight), t_start=t)

    # 3 partition: h1's link down for lease + 3 s
    t = time.monotonic()
    ld = Load("part", 500, sleep=0.1, duration=14)
    ld.start()
    time.sleep(2)
    inflight = running_of("h1g")
    subprocess.run(["ip", "-n", NS["br"], "link", "set", "v-h1", "down"], check=True)
    down = time.monotonic()
    log("partition: h1 cut off with %d jobs in flight" % len(inflight))
    time.sleep(LEASE + 3)
    subprocess.run(["ip", "-n", NS["br"], "link", "set", "v-h1", "up"], check=True)
    up_wall = sql("SELECT clock_timestamp()")[0][0]
    up = time.monotonic()
    rec = None
    while time.monotonic() - up < 40:
        n = sql("SELECT count(*) FROM completions WHERE handler LIKE 'h1%%' AND at > %s", (up_wall,))[0][0]
        if n:
            rec = time.monotonic() - up
            break
        time.sleep(0.1)
    ok = wait_all(ld, 60) and hs["h1"].proc.poll() is None
    counters("3 partition", ld, rec, 30, ok, "down %.0f s; rec = h1 claims again after link up"
             % (up - down), t_start=t)

    # 4 database restart during load
    t = time.monotonic()
    ld = Load("dbrestart", 1500, duration=8)
    ld.start()
    time.sleep(2)
    r = subprocess.run(["ip", "netns", "exec", NS["db"], "runuser", "-u", "postgres", "--",
                        E["PG_BINDIR"] + "/pg_ctl", "restart", "-w", "-m", "fast", "-D", E["PG_DATA"],
                        "-l", E["PG_LOG"]], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    back_wall = sql("SELECT clock_timestamp()")[0][0]
    back = time.monotonic()
    rec = None
    while time.monotonic() - back < 40:
        hosts = {x[0] for x in sql("SELECT DISTINCT left(handler, 2) FROM completions WHERE at > %s",
                                   (back_wall,))}
        if hosts >= {"h1", "h2"}:
            rec = time.monotonic() - back
            break
        time.sleep(0.1)
    ok = wait_all(ld, 60) and all(p.proc.poll() is None for p in (web, hs["h1"], hs["h2"]))
    counters("4 db restart", ld, rec, 30, ok, "rec = both handlers complete again", t_start=t)

    # 5 rolling restart: SIGTERM drains, then restart, one host at a time
    t = time.monotonic()
    ld = Load("rolling", 800, sleep=0.05, duration=10)
    ld.start()
    time.sleep(1)
    drains, clean = [], True
    for h in ("h1", "h2"):
        s = time.monotonic()
        os.killpg(hs[h].proc.pid, signal.SIGTERM)  # ip netns exec execs the master itself
        rc = hs[h].proc.wait(30)
        drains.append(time.monotonic() - s)
        left = ns_pids(h)
        if rc != 0 or left:
            clean = False
            log("rolling: %s exited %s, left running: %s" % (h, rc, left))
        gen[h] += 1
        hs[h] = start_handler(h, gen[h])
        time.sleep(1)
    ok = wait_all(ld, 60) and clean
    counters("5 rolling restart", ld, max(drains), 15, ok,
             "rec = longest drain; exit 0, no process left: %s" % clean, t_start=t)

    # 6 web reload (SIGHUP) during load
    t = time.monotonic()
    lds = [Load("reload-%s" % i, 750, duration=8, batch=25) for i in "ab"]
    for x in lds:
        x.start()
    time.sleep(2)
    os.kill(web.proc.pid, signal.SIGHUP)
    time.sleep(0.5)
    for x in lds:
        x.join()
    ld = lds[0]
    ok = wait_all(lds[1], 60) and wait_all(ld, 60) and web.proc.poll() is None
    ld2 = lds[1]
    ld.n += ld2.n
    ld.submitted |= ld2.submitted
    ld.acked |= ld2.acked
    ld.http_fail += ld2.http_fail
    ld.nacks += ld2.nacks
    ld.errors += ld2.errors
    ld.prefix = "reload"
    counters("6 web reload", ld, max(ld.max_latency, ld2.max_latency), 10, ok,
             "rec = slowest request across the reload", t_start=t)

    # nothing left running after a graceful stop of everything
    for p in (hs["h1"], hs["h2"], web):
        os.killpg(p.proc.pid, signal.SIGTERM)
    stray = []
    for p in (hs["h1"], hs["h2"], web):
        try:
            rc = p.proc.wait(40)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        if rc != 0 or ns_pids(p.host):
            stray.append("%s rc=%s pids=%s" % (p.host, rc, ns_pids(p.host)))
    crashes = [l for p in (web,) for l in p.text().splitlines() if "signal 11" in l or "signal 6" in l]
    for h in ("h1", "h2"):
        for g in range(gen[h] + 1):
            with open(os.path.join(TMP, "%s-g%d.log" % (h, g)), "rb") as f:
                crashes += [l for l in f.read().decode("utf-8", "replace").splitlines()
                            if "signal 11" in l or "signal 6" in l or "Segmentation" in l]

    print()
    hdr = "%-18s %6s %6s %6s %4s %6s %5s %7s %5s %4s %-15s %-13s %6s %s" % (
        "scenario", "jobs", "acked", "done", "lost", "reruns", "unexp", "refused", "fence", "http",
        "split", "recovery", "secs", "result")
    print(hdr)
    print("-" * len(hdr))
    for r in RESULTS:
        rec = "-" if r["rec"] is None else "%.1fs<=%ss" % (r["rec"], r["limit"])
        print("%-18s %6d %6d %6d %4d %6d %5d %7d %5d %4d %-15s %-13s %6.1f %s  %s" % (
            r["name"], r["jobs"], r["acked"], r["done"], r["lost"], r["reruns"], r["unexpected"],
            r["refused"], r["fence"], r["http"], r["split"], rec, r["secs"],
            "PASS" if r["ok"] else "FAIL", r["note"]))
    print("(lost = acked, never completed; reruns = extra at-least-once completions; refused ="
          " fenced writes refused, lease moved on; fence = done rows not by the last run; http ="
          " failed requests + farm_msg False)")
    if stray:
        print("left running / bad exit at the end:", stray)
    if crashes:
        print("crashes in logs:", crashes[:5])
    good = all(r["ok"] for r in RESULTS) and not stray and not crashes and len(RESULTS) == 6
    print("cluster: %s in %.0f s" % ("PASS" if good else "FAIL", time.monotonic() - T0))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
