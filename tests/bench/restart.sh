#!/usr/bin/env bash
# Latency while an app whose import takes 3 s is restarted, side by side:
#   mulefarm-zerg   `mulefarm --transparent-restart PIDFILE`: a new instance
#                   imports and forks while the old one serves, takes the
#                   sockets over (zerg mode), then the old one stops
#   mulefarm-hup    SIGHUP: mulefarm's graceful reload re-executes the
#                   master, which imports while the old workers serve (it
#                   already overlaps old and new workers)
#   uwsgi-hup       SIGHUP to uWSGI: its workers stop, the master
#                   re-executes and re-imports; clients wait in the backlog
# Each server runs a hello-world app behind a 3 s import (IMPORT_SLEEP),
# 2 workers x 2 threads, logging off (uWSGI on --http11-socket, so all keep
# connections alive). `wrk -t2 -c$CONNS --latency --timeout 30s` runs
# DURATION seconds (the long timeout: wrk leaves requests that time out
# out of its latencies, which would hide a stall);
# RESTARTS times, evenly spaced, the restart is triggered, and measured:
#   restart(ms)  until it is done: the command returns (the new instance
#                accepts), or every worker of the master is new (SIGHUP)
#   p50 p99 max  wrk's latency over the whole run
#   errors       socket errors plus non-2xx responses
# p99 is over requests, so a stall that holds only the CONNS in-flight
# requests shows in max: uWSGI's clients wait for the import there.
# Target: the transparent restart keeps p99 under 50 ms, with 0 errors.
#
# Environment: DURATION=12 RESTARTS=2 CONNS=20 IMPORT_SLEEP=3
#   MULEFARM_BIN=...  SKIP_UWSGI=1  OUT=build/bench/restart.txt
# Needs: wrk, uwsgi + uwsgi-plugin-python3.
set -euo pipefail

SCRIPT=restart.sh
DURATION=${DURATION:-12}
WARMUP=0
CONNS=${CONNS:-20}
WORKERS=2
RESTARTS=${RESTARTS:-2}
IMPORT_SLEEP=${IMPORT_SLEEP:-3}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
check_load_params
MULEFARM_BIN=$(abspath "${MULEFARM_BIN:-$ROOT/build/mulefarm}")
OUT=${OUT:-$ROOT/build/bench/restart.txt}
need wrk wrk
[[ -x $MULEFARM_BIN ]] || die "no $MULEFARM_BIN: run make first"
if [[ ${SKIP_UWSGI:-0} != 1 ]]; then
	need uwsgi uwsgi
	need_uwsgi_plugins python3
fi
mkdir -p "$(dirname "$OUT")"

APP=$TMP/slow_hello.py
cat >"$APP" <<EOF
import time
time.sleep($IMPORT_SLEEP)  # a big app's import (Galaxy takes tens of seconds)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, World!"]
EOF

children() { pgrep -P "$1" | sort | tr '\n' ' '; }

# sighup_once MASTER: SIGHUP, then poll every 10 ms until the worker set is
# entirely new and complete; prints the milliseconds it took.
sighup_once() {
	local master=$1 before now start p fresh i
	before=$(children "$master")
	start=$(date +%s%N)
	kill -HUP "$master"
	for ((i = 0; i < 6000; i++)); do
		now=$(children "$master")
		fresh=1
		for p in $before; do [[ " $now " == *" $p "* ]] && fresh=0; done
		if [[ $fresh == 1 && $(wc -w <<<"$now") -eq $(wc -w <<<"$before") ]]; then
			echo $((($(date +%s%N) - start) / 1000000))
			return
		fi
		sleep 0.01
	done
	echo 60000
}

# transparent_once PIDFILE: the command; prints the milliseconds it took.
transparent_once() {
	local start rc=0
	start=$(date +%s%N)
	"$MULEFARM_BIN" --transparent-restart "$1" >>"$TMP/restart-command.log" 2>&1 || rc=$?
	((rc == 0)) || {
		cat "$TMP/restart-command.log" >&2
		die "mulefarm --transparent-restart failed"
	}
	echo $((($(date +%s%N) - start) / 1000000))
}

# ms VALUE: wrk's "1.23ms" / "456.00us" / "1.02s" in milliseconds.
ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
		printf "%.1f", n }'
}

# run ID HOW CMD...: one server under load with RESTARTS restarts (HOW:
# transparent or sighup).
run() {
	local id=$1 how=$2 port times=() t gap errs pidfile pgid
	shift 2
	port=$(free_port)
	pidfile=$TMP/$id.pid
	start_server "$id" "$port" "${@//PORT/$port}" --pidfile "$pidfile"
	pgid=$SRV_PID
	BG_PIDS+=("$pgid") # the new masters of transparent restarts are in its group
	gap=$((DURATION * 1000 / (RESTARTS + 1)))
	wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 30s --latency "http://127.0.0.1:$port/" >"$TMP/$id.wrk" 2>&1 &
	local wrk_pid=$!
	for ((r = 0; r < RESTARTS; r++)); do
		sleep "$(awk -v g="$gap" 'BEGIN { printf "%.3f", g / 1000 }')"
		if [[ $how == transparent ]]; then
			t=$(transparent_once "$pidfile")
		else
			t=$(sighup_once "$(cat "$pidfile")")
		fi
		times+=("$t")
	done
	wait "$wrk_pid"
	SRV_PID=$(cat "$pidfile")
	stop_server INT
	kill -KILL -- "-$pgid" 2>/dev/null || true
	errs=$(awk '/Socket errors/ { n += $4 + $6 + $8 + $10 } /Non-2xx/ { n += $NF } END { print n + 0 }' \
		"$TMP/$id.wrk" | tr -d ',')
	local p50 p99 max reqs worst=0
	p50=$(ms "$(awk '/^ +50%/ { print $2; exit }' "$TMP/$id.wrk")")
	p99=$(ms "$(awk '/^ +99%/ { print $2; exit }' "$TMP/$id.wrk")")
	max=$(ms "$(awk '/Latency/ && !/Distribution/ { print $4; exit }' "$TMP/$id.wrk")")
	reqs=$(awk '/requests in/ { print $1 }' "$TMP/$id.wrk")
	for t in "${times[@]}"; do ((t > worst)) && worst=$t; done
	printf '%-15s restart(ms): %-12s p50 %7s ms  p99 %8s ms  max %8s ms  errors %s  requests %s\n' \
		"$id" "${times[*]}" "$p50" "$p99" "$max" "$errs" "$reqs" | tee -a "$OUT"
	eval "P99_${id//-/_}=$p99 ERRS_${id//-/_}=$errs MAX_${id//-/_}=$max"
}

: >"$OUT"
echo "restart.sh: ${RESTARTS} restarts under wrk -c$CONNS for ${DURATION}s, an app with a ${IMPORT_SLEEP} s import, 2 workers x 2 threads" |
	tee -a "$OUT"
MF=("$MULEFARM_BIN" --http-socket 127.0.0.1:PORT --wsgi-file "$APP" --processes $WORKERS --threads 2
	--disable-logging)
run mulefarm-zerg transparent "${MF[@]}"
run mulefarm-hup sighup "${MF[@]}"
if [[ ${SKIP_UWSGI:-0} != 1 ]]; then
	run uwsgi-hup sighup uwsgi --plugin python3 --master --http11-socket 127.0.0.1:PORT --wsgi-file "$APP" \
		--processes $WORKERS --threads 2 --disable-logging --die-on-term
fi
verdict=missed
awk -v p="$P99_mulefarm_zerg" 'BEGIN { exit !(p < 50) }' && ((ERRS_mulefarm_zerg == 0)) && verdict=met
echo "target (transparent restart: p99 < 50 ms, 0 errors): $verdict" | tee -a "$OUT"
