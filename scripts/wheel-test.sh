#!/bin/sh
# Installs the wheel built in BUILD/wheel/ into a fresh venv, checks that its
# extension module does not link libpython, and runs the integration suite's
# smoke subset (pytest -m smoke) against the venv's console scripts.
# Usage: scripts/wheel-test.sh BUILD PYTHON
set -eu
build=$1
python=$2
venv=$build/wheel-venv

rm -rf "$venv"
# The system site-packages give the tests (and apps) pytest, flask and
# psycopg2; the system pip installs into the venv.
"$python" -m venv --system-site-packages --without-pip "$venv"
venv=$(cd "$venv" && pwd)
"$venv/bin/python" -m pip install -q --no-index --no-build-isolation --no-deps \
	--disable-pip-version-check "$build"/wheel/mulefarm-*.whl

ext=$(cd / && "$venv/bin/python" -c 'import mulefarm._server as m; print(m.__file__)')
case "$ext" in "$venv"/*) ;; *) echo "wheel-test: mulefarm._server is $ext, not the venv's" >&2; exit 1 ;; esac
libs=$(ldd "$ext")
if echo "$libs" | grep -q -e libpython -e "not found"; then
	echo "wheel-test: $ext must not link libpython, and must find its libraries:" >&2
	echo "$libs" >&2
	exit 1
fi
echo "wheel-test: $(basename "$ext") links no libpython; needs $(echo "$libs" |
	awk '{print $1}' | grep -E '^lib(pq|yaml|uuid)' | tr '\n' ' ')"

MULEFARM_BIN=$venv/bin/mulefarm MULEFARM_HANDLER_BIN=$venv/bin/mulefarm-handler \
	"$python" -m pytest -q -m smoke tests/integration
