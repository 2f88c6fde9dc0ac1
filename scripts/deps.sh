#!/bin/sh
# Installs (as root) or names (otherwise) the Debian packages mulefarm needs.
# Usage: scripts/deps.sh [build|test|bench]...   (default: build)
# This file is the one list of every package the project uses; nothing is
# installed from anywhere but Debian's archive.
set -eu

pkgs_build="make gcc pkg-config libpython3-dev libpq-dev libyaml-dev uuid-dev"
pkgs_test="libcmocka-dev python3-pytest python3-flask python3-yaml python3-psycopg2 nginx-light postgresql clang libclang-rt-14-dev clang-format curl procps iproute2 systemd python3-setuptools python3-wheel python3-pip python3-venv docker-compose shellcheck"
pkgs_bench="uwsgi uwsgi-plugin-python3 gunicorn wrk nginx-light"

want=""
[ $# -eq 0 ] && set -- build
for group in "$@"; do
	case "$group" in
	build) want="$want $pkgs_build" ;;
	test) want="$want $pkgs_build $pkgs_test" ;;
	bench) want="$want $pkgs_build $pkgs_bench" ;;
	*) echo "deps.sh: unknown group '$group' (build, test or bench)" >&2; exit 2 ;;
	esac
done

missing=""
for p in $want; do
	case " $missing " in *" $p "*) continue ;; esac
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	echo "deps.sh: installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >&2
else
	echo "deps.sh: missing Debian packages. Run as root:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	exit 1
fi
