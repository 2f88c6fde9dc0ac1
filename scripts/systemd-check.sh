#!/bin/sh
# systemd-check.sh BINARY UNIT: `systemd-analyze verify` on a unit file
# (part of `make test`). verify checks that ExecStart's binary exists: the
# unit names /usr/local/bin/mulefarm-handler, so a scratch copy of the unit
# names BINARY instead (nothing else changes), as instance "check".
# Skips, saying why, only when systemd-analyze is not installed.
set -eu
bin=$(readlink -f "$1")
unit=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "systemd-check: SKIPPED: systemd-analyze is not installed (Debian package systemd)"
	exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
name=$(basename "$unit" | sed 's/@\.service$/@check.service/')
sed "s|/usr/local/bin/mulefarm-handler|$bin|g" "$unit" >"$dir/$name"
if ! out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$dir/$name" 2>&1); then
	echo "$out"
	echo "systemd-check: systemd-analyze verify FAILED on $unit"
	exit 1
fi
# verify exits 0 on some warnings: any line about the unit is a failure.
if echo "$out" | grep -q "$dir/"; then
	echo "$out"
	echo "systemd-check: systemd-analyze verify reported problems in $unit"
	exit 1
fi
echo "systemd-check: $unit verified ($(systemd-analyze --version | head -1))"
