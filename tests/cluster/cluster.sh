#!/bin/bash
# The multi-host cluster of issue 8 in network namespaces (run as root):
# db (PostgreSQL), web (mulefarm), h1 and h2 (mulefarm-handler, 2 mules
# each), joined by veth pairs to a bridge in its own namespace; addresses
# 10.77.0.0/24 exist only inside those namespaces. driver.py (run inside
# the web namespace) starts mulefarm and the handlers, runs the six fault
# scenarios and prints the counter table. Everything is torn down on exit.
#   CLUSTER_STEADY_JOBS (default 20000)  CLUSTER_KEEP=1 keeps the temp dir
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "cluster.sh: must run as root" >&2; exit 2; }
for b in mulefarm mulefarm-handler; do
	[ -x "$repo/build/$b" ] || { echo "cluster.sh: build/$b missing (make)" >&2; exit 2; }
done
bindir=${PG_BINDIR:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)}

sfx=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
NS_DB=mf-db-$sfx NS_WEB=mf-web-$sfx NS_H1=mf-h1-$sfx NS_H2=mf-h2-$sfx NS_BR=mf-br-$sfx
ALL_NS="$NS_DB $NS_WEB $NS_H1 $NS_H2 $NS_BR"
tmp=$(mktemp -d /tmp/mf-cluster.XXXXXX)
chmod 755 "$tmp"

killns() { # SIGKILL every process of a namespace
	local ns=$1 pids
	for _ in 1 2 3 4 5; do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[ -n "$pids" ] || return 0
		kill -KILL $pids 2>/dev/null || true
		sleep 0.2
	done
}
teardown() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	for ns in $NS_WEB $NS_H1 $NS_H2; do killns "$ns"; done
	if [ -e "$tmp/pg/data/postmaster.pid" ]; then
		runuser -u postgres -- "$bindir/pg_ctl" stop -w -t 20 -m immediate -D "$tmp/pg/data" >/dev/null 2>&1
	fi
	killns "$NS_DB"
	for ns in $ALL_NS; do ip netns del "$ns" 2>/dev/null; done
	if [ $rc -ne 0 ]; then
		for f in "$tmp"/*.log "$tmp"/pg/postgres.log; do
			[ -e "$f" ] || continue
			echo "----- tail of $f" >&2
			tail -n 25 "$f" >&2
		done
	fi
	if [ "${CLUSTER_KEEP:-0}" = 1 ]; then echo "cluster.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
	exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- network: a bridge namespace, one veth pair per host ---
for ns in $ALL_NS; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$NS_BR" link add br0 type bridge
ip -n "$NS_BR" link set br0 up
i=1
for pair in "db:$NS_DB" "web:$NS_WEB" "h1:$NS_H1" "h2:$NS_H2"; do
	name=${pair%%:*} ns=${pair#*:}
	ip link add "mfv$sfx$i" type veth peer name "mfp$sfx$i" # created in our ns, moved at once
	ip link set "mfv$sfx$i" netns "$NS_BR"
	ip link set "mfp$sfx$i" netns "$ns"
	ip -n "$NS_BR" link set "mfv$sfx$i" name "v-$name" master br0 up
	ip -n "$ns" link set "mfp$sfx$i" name eth0
	ip -n "$ns" addr add "10.77.0.$i/24" dev eth0
	ip -n "$ns" link set eth0 up
	i=$((i + 1))
done
DB_ADDR=10.77.0.1 WEB_ADDR=10.77.0.2

# --- PostgreSQL in db ---
mkdir -p "$tmp/pg" && chown postgres: "$tmp/pg"
runuser -u postgres -- "$bindir/initdb" -D "$tmp/pg/data" -U postgres --auth=trust -E UTF8 \
	--locale=C --no-sync >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }
echo "host all all 10.77.0.0/24 trust" >>"$tmp/pg/data/pg_hba.conf"
pgstart() {
	ip netns exec "$NS_DB" runuser -u postgres -- "$bindir/pg_ctl" start -w -t 60 -D "$tmp/pg/data" \
		-l "$tmp/pg/postgres.log" -o "-p 5432 -k $tmp/pg -c listen_addresses=$DB_ADDR \
		-c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
}
pgstart
DSN="host=$DB_ADDR port=5432 dbname=postgres user=postgres connect_timeout=3"

export NS_DB NS_WEB NS_H1 NS_H2 NS_BR DSN WEB_ADDR REPO=$repo TMPDIR_CLUSTER=$tmp PG_BINDIR=$bindir
export PG_DATA=$tmp/pg/data PG_LOG=$tmp/pg/postgres.log PG_SOCK=$tmp/pg
# In the background, so that a signal to this script runs the teardown at once.
ip netns exec "$NS_WEB" /usr/bin/python3 -u "$here/driver.py" &
wait $!
