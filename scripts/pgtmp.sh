#!/bin/sh
# A throwaway PostgreSQL cluster for tests and benchmarks.
#
#   scripts/pgtmp.sh start DIR   initdb in DIR/data, start the server, print
#                                its conninfo line on stdout:
#                                host=DIR port=N dbname=postgres user=postgres
#   scripts/pgtmp.sh stop DIR    stop the server (fast shutdown) and delete DIR
#
# The server listens on 127.0.0.1 only, on a free port (it retries other
# ports when one is taken), and on a unix socket in DIR; every local
# connection is trusted; the superuser is `postgres`. As root the cluster
# belongs to the `postgres` user (runuser), so DIR and its parents must be
# searchable by it (a directory under /tmp is).
#
# Durability is PostgreSQL's default (fsync and synchronous_commit on), so
# benchmarks measure real commits. PGTMP_FAST=1 turns fsync,
# synchronous_commit and full_page_writes off, for tests that only need a
# database. PGTMP_OPTS adds server options ("-c name=value ..."). The
# binaries come from $PG_BINDIR, else the newest /usr/lib/postgresql/*/bin.
# The server log is DIR/postgres.log; it is printed when start-up fails.
set -eu

usage() {
	echo "usage: $0 start|stop DIR" >&2
	exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case $dir in /*) ;; *) dir=$(pwd)/$dir ;; esac

bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
	bindir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
	echo "pgtmp.sh: PostgreSQL binaries not found (install: scripts/deps.sh test)" >&2
	exit 1
fi

# Runs a PostgreSQL program as the cluster's owner.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

start() {
	mkdir -p "$dir"
	[ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
	if [ -e "$dir/data/PG_VERSION" ]; then
		echo "pgtmp.sh: $dir/data already holds a cluster" >&2
		exit 1
	fi
	sync=
	[ "${PGTMP_FAST:-0}" = 1 ] && sync=--no-sync
	if ! as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
		--locale=C $sync >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		exit 1
	fi
	opts="-k $dir -c listen_addresses=127.0.0.1 -c max_connections=200"
	if [ "${PGTMP_FAST:-0}" = 1 ]; then
		opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	fi
	opts="$opts ${PGTMP_OPTS:-}"
	# A port in 20000-59999 that nobody holds: try, and try another when
	# the server cannot bind (no window between a check and the bind).
	tries=0
	while :; do
		port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
		if as_owner "$bindir/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/postgres.log" \
			-o "-p $port $opts" >/dev/null 2>&1; then
			break
		fi
		tries=$((tries + 1))
		if [ $tries -ge 10 ] || ! grep -q "could not bind\|could not create lock file\|Address already in use" "$dir/postgres.log"; then
			echo "pgtmp.sh: the server did not start; its log:" >&2
			cat "$dir/postgres.log" >&2
			exit 1
		fi
	done
	info="host=$dir port=$port dbname=postgres user=postgres"
	echo "$info" >"$dir/conninfo"
	echo "$info"
}

stop() {
	if [ -e "$dir/data/postmaster.pid" ]; then
		as_owner "$bindir/pg_ctl" stop -w -t 60 -m fast -D "$dir/data" >/dev/null 2>&1 ||
			as_owner "$bindir/pg_ctl" stop -w -m immediate -D "$dir/data" >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
