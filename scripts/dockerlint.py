#!/usr/bin/python3
"""Lints docker/Dockerfile without a Docker engine (issue 8).

    scripts/dockerlint.py [--context DIR] [--binary PATH]... DOCKERFILE

This machine cannot build the image, so the checks are the ones that can
be made here, each reported as DOCKERFILE:LINE: message (exit 1 if any):

- instructions: known keywords, continuation lines joined, FROM images on
  Debian bookworm, at least two stages (build, then runtime), COPY --from
  naming an earlier stage, COPY sources present in the build context;
- RUN steps: the shell text, at its own line numbers, through `sh -n` and
  `shellcheck -s sh` (docker runs RUN with /bin/sh -c);
- apt-get install: every package known to this machine's apt (bookworm);
  the build stage installs at least scripts/deps.sh's build group;
- the runtime stage: every shared library that each --binary links
  (readelf NEEDED) belongs to a package that the stage's apt-get install
  brings, with its dependencies. Sanitizer runtimes (libasan, libubsan...)
  are skipped: they are there when the binary under test is a `make check`
  build, while the image builds with plain `make`;
- the last stage runs as a non-root USER.
"""
import argparse
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

KEYWORDS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
            "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


class Lint:
    def __init__(self, path):
        self.path = path
        self.errors = []

    def err(self, line, msg):
        self.errors.append("%s:%d: %s" % (self.path, line, msg))


def instructions(text):
    """Yields (line, keyword, args, raw): continuation lines joined; raw keeps
    the original lines (for RUN, so shell line numbers match the file)."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        start, line = i + 1, lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        raw = [line]
        while raw[-1].rstrip().endswith("\\") and i < len(lines):
            raw.append(lines[i])
            i += 1
        joined = " ".join(r.rstrip()[:-1] if r.rstrip().endswith("\\") else r
                          for r in raw if not r.lstrip().startswith("#"))
        kw, _, args = joined.strip().partition(" ")
        yield start, kw.upper(), args.strip(), raw


def check_shell(lint, line, raw):
    """The RUN's shell text, placed at its own line numbers."""
    first = re.sub(r"^\s*RUN\s+", "", raw[0], flags=re.I)
    script = "\n" * (line - 1) + "\n".join([first] + raw[1:]) + "\n"
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    try:
        r = subprocess.run(["sh", "-n", f.name], capture_output=True, text=True)
        if r.returncode != 0:
            lint.err(line, "RUN: shell syntax: %s" % r.stderr.strip().replace(f.name + ": ", ""))
            return
        r = subprocess.run(["shellcheck", "-s", "sh", "-f", "gcc", f.name],
                           capture_output=True, text=True)
        for m in re.finditer(r"^[^:]+:(\d+):\d+: (\w+): (.*)$", r.stdout, re.M):
            lint.err(int(m.group(1)), "RUN: shellcheck %s: %s" % (m.group(2), m.group(3)))
    finally:
        os.unlink(f.name)


def apt_packages(cmd):
    """Packages named by `apt-get install` in a RUN command."""
    pkgs = []
    for part in re.split(r"&&|;|\|\|", cmd):
        words = shlex.split(part.replace("\\", " "))
        if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
            after = words[words.index("install") + 1:]
            pkgs += [w for w in after if not w.startswith("-")]
    return pkgs


def apt_known(pkgs):
    """The subset of <pkgs> that apt on this machine can install (one
    apt-cache call: it takes a second to load its cache)."""
    if not pkgs:
        return set()
    r = subprocess.run(["apt-cache", "policy"] + sorted(set(pkgs)), capture_output=True, text=True)
    known, name = set(), None
    for ln in r.stdout.split("\n"):
        m = re.match(r"^(\S+):$", ln)
        if m:
            name = m.group(1)
        elif name and re.match(r"^\s+Candidate: (?!\(none\))", ln):
            known.add(name)
    return known


def apt_closure(pkgs):
    """The packages that installing <pkgs> brings (Depends and PreDepends,
    recursively), as apt on this bookworm machine resolves them."""
    if not pkgs:
        return set()
    r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + pkgs,
                       capture_output=True, text=True)
    return {ln.split(":")[0] for ln in r.stdout.split("\n") if ln and not ln[0].isspace()}


SANITIZER_RUNTIME = re.compile(r"lib(asan|ubsan|tsan|lsan|hwasan)\.so")


def needed_packages(binary):
    """{library: owning package or None} for the binary's direct NEEDED
    entries (readelf -d), resolved to paths by ldd and owned by dpkg -S."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]",
                        subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                                       check=True).stdout)
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(
        ["ldd", binary], capture_output=True, text=True, check=True).stdout, re.M))
    out = {}
    for lib in needed:
        if SANITIZER_RUNTIME.match(lib):
            continue
        path = paths.get(lib) or next(iter(glob.glob("/lib*/%s" % lib) + glob.glob("/lib*/*/%s" % lib)), lib)
        owner = None
        for p in (path, os.path.realpath(path)):
            d = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
            if d.returncode == 0:
                owner = d.stdout.split(":", 1)[0]
                break
        out[lib] = owner
    return out


def deps_group(repo, group):
    text = open(os.path.join(repo, "scripts", "deps.sh")).read()
    m = re.search(r'^pkgs_%s="([^"]*)"' % group, text, re.M)
    return m.group(1).split() if m else []


def lint(path, context, binaries, repo):
    lint = Lint(path)
    stages = []  # [{name, line, pkgs, user}]
    for line, kw, args, raw in instructions(open(path).read()):
        if kw not in KEYWORDS:
            lint.err(line, "unknown instruction %r" % kw)
            continue
        if kw == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", args, re.I)
            if not m:
                lint.err(line, "FROM: want 'image [AS name]', found %r" % args)
                continue
            if not re.match(r"debian:bookworm(-slim)?$", m.group(1)):
                lint.err(line, "FROM: want debian:bookworm or debian:bookworm-slim, found %r" % m.group(1))
            stages.append({"name": m.group(2), "line": line, "pkgs": [], "user": None})
            continue
        if not stages:
            lint.err(line, "%s before the first FROM" % kw)
            continue
        st = stages[-1]
        if kw == "RUN":
            if args.startswith("["):
                lint.err(line, "RUN: use the shell form (it is checked with sh -n and shellcheck)")
                continue
            check_shell(lint, line, raw)
            pkgs = apt_packages(args)
            st["pkgs"] += pkgs
            known = apt_known(pkgs)
            for p in pkgs:
                if p not in known:
                    lint.err(line, "apt-get install: no package %r in this machine's apt (bookworm)" % p)
        elif kw in ("COPY", "ADD"):
            words = shlex.split(args)
            frm = [w.split("=", 1)[1] for w in words if w.startswith("--from=")]
            paths = [w for w in words if not w.startswith("--")]
            if len(paths) < 2:
                lint.err(line, "%s: want a source and a destination" % kw)
                continue
            if frm:
                if frm[0] not in [s["name"] for s in stages[:-1]]:
                    lint.err(line, "COPY --from=%s: no earlier stage of that name" % frm[0])
            else:
                for src in paths[:-1]:
                    if not glob.glob(os.path.join(context, src)):
                        lint.err(line, "%s: %r is not in the build context %s" % (kw, src, context))
        elif kw == "USER":
            st["user"] = args.split(":")[0]
    if len(stages) < 2:
        lint.err(1, "want a multi-stage build (a build stage, then the runtime), found %d FROM" % len(stages))
        return lint.errors
    build, runtime = stages[0], stages[-1]
    missing = [p for p in deps_group(repo, "build") if p not in build["pkgs"]]
    if missing:
        lint.err(build["line"], "the build stage lacks scripts/deps.sh build packages: %s" % " ".join(missing))
    if runtime["user"] in (None, "root", "0"):
        lint.err(runtime["line"], "the last stage runs as root: add USER <non-root>")
    closure = apt_closure(runtime["pkgs"])
    for b in binaries:
        for lib, pkg in sorted(needed_packages(b).items()):
            if pkg is None:
                lint.err(runtime["line"], "%s needs %s, which no Debian package owns" % (b, lib))
            elif pkg not in closure:
                lint.err(runtime["line"], "%s needs %s (package %s), which the runtime stage does not install"
                         % (os.path.basename(b), lib, pkg))
    return lint.errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dockerfile")
    ap.add_argument("--context", help="build context (default: the Dockerfile's parent's parent)")
    ap.add_argument("--binary", action="append", default=[], help="a binary the image runs (ldd check)")
    a = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    context = a.context or os.path.dirname(os.path.dirname(os.path.abspath(a.dockerfile)))
    errors = lint(a.dockerfile, context, a.binary, repo)
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print("dockerlint: %d problem(s) in %s" % (len(errors), a.dockerfile), file=sys.stderr)
        return 1
    print("dockerlint: %s ok" % a.dockerfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
