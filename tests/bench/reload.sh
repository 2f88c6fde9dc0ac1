#!/usr/bin/env bash
# Graceful reload under load, side by side: mulefarm vs uWSGI.
#
# Each server runs the hello-world app (examples/hello/app.py), 2 workers x
# 2 threads, logging off, with a pidfile (uWSGI on --http11-socket, so both
# keep connections alive). `wrk -t2 -c50` runs for DURATION
# seconds; RELOADS times, evenly spaced, the benchmark sends SIGHUP to the
# master and measures
#   reload time   from SIGHUP until the master has only new workers again
#                 (every worker pid is new, and there are as many as before)
#   errors        wrk's socket errors plus non-2xx responses, whole run
#   max latency   wrk's maximum: the longest a client waited
# uWSGI stops its workers, re-executes and re-imports before anyone is
# served again (clients wait in the backlog); mulefarm's new master imports
# while the old workers serve. Target: mulefarm reloads in under 1 s with 0
# errors.
#
# Environment: DURATION=10 RELOADS=3 MULEFARM_BIN=... SKIP_MULEFARM=1
#   APP=examples/hello/app.py  OUT=build/bench/reload.txt
# Needs: wrk, uwsgi + uwsgi-plugin-python3.
set -euo pipefail

SCRIPT=reload.sh
DURATION=${DURATION:-10}
WARMUP=0
CONNS=50
WORKERS=2
RELOADS=${RELOADS:-3}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
check_load_params
MULEFARM_BIN=$(abspath "${MULEFARM_BIN:-$ROOT/build/mulefarm}")
APP=$(abspath "${APP:-$ROOT/examples/hello/app.py}")
OUT=${OUT:-$ROOT/build/bench/reload.txt}
need wrk wrk
need uwsgi uwsgi
need_uwsgi_plugins python3
[[ ${SKIP_MULEFARM:-0} == 1 || -x $MULEFARM_BIN ]] || die "no $MULEFARM_BIN: run make first"
mkdir -p "$(dirname "$OUT")"

children() { pgrep -P "$1" | sort | tr '\n' ' '; }

# reload_once MASTER: SIGHUP, then poll every 10 ms until the worker set is
# entirely new and complete; prints the milliseconds it took.
reload_once() {
	local master=$1 before now start end p fresh
	before=$(children "$master")
	start=$(date +%s%N)
	kill -HUP "$master"
	for ((i = 0; i < 3000; i++)); do
		now=$(children "$master")
		fresh=1
		for p in $before; do [[ " $now " == *" $p "* ]] && fresh=0; done
		if [[ $fresh == 1 && $(wc -w <<<"$now") -eq $(wc -w <<<"$before") ]]; then
			end=$(date +%s%N)
			echo $(((end - start) / 1000000))
			return
		fi
		sleep 0.01
	done
	echo 30000
}

# run ID CMD...: one server under load with RELOADS reloads.
run() {
	local id=$1 port times=() t gap errs
	shift
	port=$(free_port)
	local pidfile=$TMP/$id.pid
	start_server "$id" "$port" "${@//PORT/$port}" --pidfile "$pidfile"
	gap=$((DURATION * 1000 / (RELOADS + 1)))
	wrk -t2 -c$CONNS -d"${DURATION}s" "http://127.0.0.1:$port/" >"$TMP/$id.wrk" 2>&1 &
	local wrk_pid=$!
	for ((r = 0; r < RELOADS; r++)); do
		sleep "$(awk -v g="$gap" 'BEGIN { printf "%.3f", g / 1000 }')"
		t=$(reload_once "$(cat "$pidfile")")
		times+=("$t")
	done
	wait "$wrk_pid"
	stop_server INT
	errs=$(awk '/Socket errors/ { n += $4 + $6 + $8 + $10 } /Non-2xx/ { n += $NF } END { print n + 0 }' \
		"$TMP/$id.wrk" | tr -d ',')
	local maxlat reqs
	maxlat=$(awk '/Latency/ { print $4; exit }' "$TMP/$id.wrk")
	reqs=$(awk '/requests in/ { print $1 }' "$TMP/$id.wrk")
	local worst=0
	for t in "${times[@]}"; do ((t > worst)) && worst=$t; done
	printf '%-9s reloads(ms): %-20s worst %5d ms  errors %s  max latency %s  requests %s\n' \
		"$id" "${times[*]}" "$worst" "$errs" "$maxlat" "$reqs" | tee -a "$OUT"
	eval "WORST_$id=$worst ERRS_$id=$errs"
}

: >"$OUT"
echo "reload.sh: ${RELOADS} graceful reloads (SIGHUP) under wrk -c$CONNS for ${DURATION}s, hello app, 2 workers x 2 threads"
if [[ ${SKIP_MULEFARM:-0} != 1 ]]; then
	run mulefarm "$MULEFARM_BIN" --http-socket 127.0.0.1:PORT --wsgi-file "$APP" \
		--processes $WORKERS --threads 2 --disable-logging
fi
run uwsgi uwsgi --plugin python3 --master --http11-socket 127.0.0.1:PORT --wsgi-file "$APP" \
	--processes $WORKERS --threads 2 --disable-logging --die-on-term
if [[ ${SKIP_MULEFARM:-0} != 1 ]]; then
	verdict=missed
	((WORST_mulefarm < 1000 && ERRS_mulefarm == 0)) && verdict=met
	echo "target (reload < 1 s, 0 errors): $verdict; uWSGI worst $WORST_uwsgi ms with $ERRS_uwsgi errors" |
		tee -a "$OUT"
fi
