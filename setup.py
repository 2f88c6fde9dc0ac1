"""Builds the extension module mulefarm._server with the Makefile, which
holds the one list of sources (`make pyext`), and states the system
libraries the module links (Requires-External in the wheel's metadata).
Everything else is in pyproject.toml."""
import io
import os
import re
import shutil
import subprocess

from setuptools import Distribution, Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("MULEFARM_BUILD", "build")
# Debian's runtime packages of the shared libraries the module links
# (libpq, libyaml, libuuid); CPython's symbols come from the interpreter.
REQUIRES_EXTERNAL = ["libpq5", "libyaml-0-2", "libuuid1"]


def version():
    with open(os.path.join(ROOT, "server", "main.c")) as f:
        return re.search(r'#define MULEFARM_VERSION "([^"]+)"', f.read()).group(1)


class BuildWithMake(build_ext):
    def build_extension(self, ext):
        env = dict(os.environ)
        for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # not the calling make's jobserver
            env.pop(k, None)
        jobs = str(len(os.sched_getaffinity(0)))
        subprocess.check_call(["make", "--no-print-directory", "-j" + jobs, "BUILD=" + BUILD, "pyext"],
                              cwd=ROOT, env=env)
        out = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copyfile(os.path.join(ROOT, BUILD, "pyext", "_server.so"), out)


class MulefarmDistribution(Distribution):
    """setuptools has no option for Requires-External (core metadata 1.2+):
    the field goes in with the other headers, before the description."""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        write = self.metadata.write_pkg_file

        def write_pkg_file(file):
            buf = io.StringIO()
            write(buf)
            text = buf.getvalue()
            at = text.find("\n\n")
            at = len(text) if at == -1 else at + 1
            extra = "".join("Requires-External: %s\n" % r for r in REQUIRES_EXTERNAL)
            file.write(text[:at] + extra + text[at:])

        self.metadata.write_pkg_file = write_pkg_file


# setuptools' own build and metadata directories go under build/, not next
# to the sources.
os.makedirs(os.path.join(ROOT, BUILD, "setuptools"), exist_ok=True)
setup(
    version=version(),
    distclass=MulefarmDistribution,
    ext_modules=[Extension("mulefarm._server", sources=[])],
    cmdclass={"build_ext": BuildWithMake},
    options={
        "build": {"build_base": os.path.join(BUILD, "setuptools")},
        "egg_info": {"egg_base": os.path.join(BUILD, "setuptools")},
    },
)
