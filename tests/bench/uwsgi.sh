#!/usr/bin/env bash
# Side-by-side uwsgi-protocol benchmark: nginx -> uwsgi_pass -> mulefarm
# --socket vs nginx -> uwsgi_pass -> uWSGI --socket.
#
# One nginx (the same process and config for both servers) has four fronts:
# for each server, one passes to a 127.0.0.1:<port> upstream and one to a
# unix socket. Both application servers run at once (an idle one costs
# nothing), each bound to its own two upstream addresses, with the
# hello-world app (examples/hello/app.py), 2 worker processes x 1 thread,
# logging off. Load is `wrk -t1 -c50 -d${DURATION}s --latency` with
# keep-alive to nginx (nginx opens one upstream connection per request: the
# uwsgi protocol has no keep-alive), after a ${WARMUP}s warm-up. One
# transport after the other, the two servers' runs alternate for ROUNDS
# rounds, the first one changing every round, so that both meet the same
# moments of a noisy machine; each server's median round is compared.
#
#   tcp    nginx -> 127.0.0.1:port   mulefarm --socket vs uWSGI --socket   >= 1.1
#   unix   nginx -> unix socket      mulefarm --socket vs uWSGI --socket   >= 1.1
#   cpu    the server's CPU time per request (its process group, during the
#          measured run), for information: nginx with one upstream connection
#          per request is itself a large share of the work on a small machine,
#          and when it is the bottleneck both servers reach about the same
#          req/s; the CPU each needs per request still tells them apart
#   memory average worker PSS after the load, for information
#   equal load   p99 at the same offered load, which must be no worse than
#          uWSGI's, per transport: httplat sends a fixed rate (60% of uWSGI's
#          wrk rate) through nginx to each server in turn, keep-alive, for
#          LAT_ROUNDS alternating rounds; the median p99 is compared. (wrk is
#          a closed loop: the faster server is sent more requests, so its
#          wrk p99 is shown beside uWSGI's for information only.)
#
# Environment:
#   DURATION=5         seconds of measured load per run
#   WARMUP=2           seconds of wrk warm-up before each measured run
#   NGX_WORKERS=auto   nginx worker_processes: "auto" (one per CPU) is
#                      what Debian's stock nginx.conf sets, so it is the
#                      default; with 1 the single nginx worker is the
#                      bottleneck and both servers reach its rate
#   ROUNDS=4           rounds per transport, the servers alternating; each
#                      server's median round (by req/s) is compared
#   LAT_ROUNDS=6       equal-load rounds per transport, the servers alternating
#   LAT_DURATION=5     seconds of each equal-load run (after 1s unmeasured)
#   LAT_RATE_tcp=...   offered load through each front, req/s (default: 60%
#   LAT_RATE_unix=...  of uWSGI's wrk rate, two significant digits)
#   HTTPLAT_BIN=...    the latency client (default build/bench/httplat)
#   MULEFARM_BIN=...   mulefarm binary (default build/mulefarm)
#   SKIP_MULEFARM=1    benchmark only uWSGI (mulefarm rows: skipped)
#   APP=...            WSGI file (default examples/hello/app.py)
#   OUT=...            machine-readable summary (default build/bench/uwsgi.txt)
#   STRICT=1           exit 1 if any target is missed (default: report only)
#
# Needs: wrk, uwsgi + uwsgi-plugin-python3, nginx, curl, ss (iproute2).
set -euo pipefail

SCRIPT=uwsgi.sh
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
SKIP_MULEFARM=${SKIP_MULEFARM:-0}
STRICT=${STRICT:-0}
NGX_WORKERS=${NGX_WORKERS:-auto}
ROUNDS=${ROUNDS:-4}
CONNS=50
WORKERS=2
# Also measure the server's CPU time per request (its process group).
CPU_ACCOUNT=1
# The servers sit behind nginx, which answers 502 until they listen.
READY_VIA_PROXY=1
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BIN=$(abspath "${MULEFARM_BIN:-$ROOT/build/mulefarm}")
APP=$(abspath "${APP:-$ROOT/examples/hello/app.py}")
OUT=$(abspath "${OUT:-$ROOT/build/bench/uwsgi.txt}")

check_load_params
check_rounds
[[ $NGX_WORKERS =~ ^([1-9][0-9]*|auto)$ ]] || die "NGX_WORKERS must be a positive integer or auto"
NGX_DESC=$NGX_WORKERS
[[ $NGX_WORKERS != auto ]] || NGX_DESC="auto: $(nproc)"
need wrk wrk
need uwsgi uwsgi
need nginx nginx
need curl curl
need python3 "$PY"
need setsid setsid
need_uwsgi_plugins python3
[[ -f $APP ]] || die "WSGI app $APP not found"
need_mulefarm --socket

NAME[mf]="mulefarm --socket"
NAME[uw]="uWSGI --socket"

# ---- nginx, in front for the whole run -----------------------------------------

NGX=$TMP/nginx
mkdir -p "$NGX"
ports=() # six distinct free ports
while ((${#ports[@]} < 6)); do
	p=$(free_port)
	[[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
done
declare -A SPID SLOG
declare -A UP_PORT=([mf]=${ports[0]} [uw]=${ports[1]}) NGX_TCP=([mf]=${ports[2]} [uw]=${ports[3]})
declare -A NGX_UNIX=([mf]=${ports[4]} [uw]=${ports[5]}) UP_SOCK=([mf]=$TMP/mf.sock [uw]=$TMP/uw.sock)
# ngx_front PORT UPSTREAM: a server block passing to UPSTREAM.
ngx_front() {
	cat <<EOF
    server {
        listen 127.0.0.1:$1;
        location / {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass $2;
        }
    }
EOF
}
# keepalive_requests: wrk's connections stay open for the whole run (nginx
# would close them every 1000 requests). uwsgi_params is Debian's, as a
# deployment would include it.
cat >"$NGX/nginx.conf" <<EOF
$(ngx_user)
worker_processes $NGX_WORKERS;
daemon off;
master_process on;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
$(ngx_temps "$NGX")

$(for id in mf uw; do
	ngx_front "${NGX_TCP[$id]}" "127.0.0.1:${UP_PORT[$id]}"
	ngx_front "${NGX_UNIX[$id]}" "unix:${UP_SOCK[$id]}"
done)
}
EOF
ngx_e_opt "$NGX"
(cd "$TMP" && exec setsid nginx "${NGX_E[@]}" -p "$NGX" -c "$NGX/nginx.conf") </dev/null >"$TMP/nginx.log" 2>&1 &
NGX_PID=$!
BG_PIDS+=("$NGX_PID")
for ((i = 0; i < 100; i++)); do
	alive "$NGX_PID" || { cat "$TMP/nginx.log" "$NGX/error.log" >&2 2>/dev/null; die "nginx exited during startup"; }
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:${NGX_TCP[mf]}/" 2>/dev/null) || code=
	[[ $code =~ ^[1-5][0-9][0-9]$ ]] && break
	sleep 0.1
done
[[ ${code:-} =~ ^[1-5][0-9][0-9]$ ]] || die "nginx did not answer on 127.0.0.1:${NGX_TCP[mf]}"
echo "$SCRIPT: nginx ($NGX_DESC worker(s)): mulefarm behind 127.0.0.1:${NGX_TCP[mf]} (tcp) and :${NGX_UNIX[mf]} (unix), uWSGI behind :${NGX_TCP[uw]} and :${NGX_UNIX[uw]}"

# up ID CMD...: start a server bound to its two upstream addresses (behind
# ID's fronts); it stays up until the rounds are over.
up() {
	local id=$1
	shift
	rm -f "${UP_SOCK[$id]}"
	echo "== ${NAME[$id]} behind 127.0.0.1:${NGX_TCP[$id]} and 127.0.0.1:${NGX_UNIX[$id]}"
	start_server "$id" "${NGX_TCP[$id]}" "$@" --socket "127.0.0.1:${UP_PORT[$id]}" --socket "${UP_SOCK[$id]}"
	# the unix front must work too before it is measured
	[[ $(curl -s --max-time 2 "http://127.0.0.1:${NGX_UNIX[$id]}/") == "Hello, World!" ]] ||
		die "${NAME[$id]}: no answer through the unix socket"
	SPID[$id]=$SRV_PID
	SLOG[$id]=$SRV_LOG
	BG_PIDS+=("$SRV_PID")
	SRV_PID=
}

# measure ID MODE ROUND: one wrk run through ID's MODE (tcp or unix) front.
measure() {
	local id=$1 mode=$2 round=$3 port=${NGX_TCP[$1]}
	[[ $mode == tcp ]] || port=${NGX_UNIX[$id]}
	SRV_PID=${SPID[$id]}
	SRV_LOG=${SLOG[$id]}
	echo "-- ${NAME[$id]}, $mode, round $round of $ROUNDS"
	load "$id" "$mode-r$round" "$port"
	SRV_PID=
}

MF_ARGS=(--master --processes "$WORKERS" --threads 1 --wsgi-file "$APP" --disable-logging)
# Same options for uWSGI; --need-app only makes a broken app fail fast.
UW_ARGS=(--master --processes "$WORKERS" --threads 1 --wsgi-file "$APP" --disable-logging --need-app)

echo "$SCRIPT: wrk -t1 -c$CONNS -d${DURATION}s (after ${WARMUP}s warm-up) to nginx, $WORKERS workers each, $(nproc) CPUs"
check_idle

ids=(uw)
if [[ $SKIP_MULEFARM == 1 ]]; then
	echo "== ${NAME[mf]}: skipped"
else
	up mf "$BIN" "${MF_ARGS[@]}"
	ids=(mf uw)
fi
up uw uwsgi --plugin python3 "${UW_ARGS[@]}"
: >"$NGX/error.log" # forget the 502s of the start-up
for m in tcp unix; do
	for ((r = 1; r <= ROUNDS; r++)); do
		order=("${ids[@]}")
		((r % 2)) || order=("${ids[@]:1}" "${ids[0]}")
		for id in "${order[@]}"; do measure "$id" "$m" "$r"; done
	done
done
for id in "${ids[@]}"; do
	for m in tcp unix; do
		keys=()
		for ((r = 1; r <= ROUNDS; r++)); do keys+=("$id.$m-r$r"); done
		median_of "$id.$m" "${keys[@]}"
	done
done

# ---- p99 at the same offered load, through the same fronts ------------------

lat_setup
declare -A LAT_RATE_OF=()
for m in tcp unix; do LAT_RATE_OF[$m]=$(lat_rate "LAT_RATE_$m" "uw.$m"); done
if lat_ready "equal load"; then
	echo "== equal load: httplat -c$CONNS -d${LAT_DURATION}s (after 1s) to nginx, $LAT_ROUNDS round(s) per transport, alternating"
	declare -A LAT_PORT=()
	for m in tcp unix; do
		for id in mf uw; do
			LAT_PORT[$id]=${NGX_TCP[$id]}
			[[ $m == tcp ]] || LAT_PORT[$id]=${NGX_UNIX[$id]}
		done
		echo "-- $m at ${LAT_RATE_OF[$m]} req/s"
		lat_rounds mf uw "$m-eq" "${LAT_RATE_OF[$m]}"
	done
fi

for id in "${ids[@]}"; do
	SRV_PID=${SPID[$id]}
	SRV_LOG=${SLOG[$id]}
	measure_mem "$id"
	stop_server INT
	BG_PIDS=("${BG_PIDS[@]/#${SPID[$id]}/}") # gone: cleanup must not kill a reused pid
done
if grep -qaE '\[(error|crit|alert|emerg)\]' "$NGX/error.log"; then
	echo "$SCRIPT: warning: nginx logged errors:" >&2
	grep -aE '\[(error|crit|alert|emerg)\]' "$NGX/error.log" | tail -n 5 >&2
fi
echo "$SCRIPT: each figure below is the median of $ROUNDS rounds"

# ---- report -----------------------------------------------------------------

# wrk's p99 next to uWSGI's, for information ("~"): the equal-load rows decide.
row tcp mf.tcp uw.tcp ">=1.1" "~uw.tcp"
row unix mf.unix uw.unix ">=1.1" "~uw.unix"
for m in tcp unix; do lat_row "$m-equal-load" "mf.$m-eq" "uw.$m-eq" "${LAT_RATE_OF[$m]}"; done
row tcp-vs-unix uw.tcp uw.unix - -
cpu_row tcp-cpu mf.tcp uw.tcp
cpu_row unix-cpu mf.unix uw.unix
mem_row memory mf uw -

echo
echo "Results: wrk -t1 -c$CONNS -d${DURATION}s through nginx ($NGX_DESC worker(s)), median of $ROUNDS round(s), $WORKERS workers, $(nproc) CPUs (${IDLE}% idle before); req/s, latency in ms; ratio = req/s / compared req/s"
print_table
echo
summary="$MISSES target(s) missed"
((SKIPS == 0)) || summary="$summary, $SKIPS row(s) skipped"
echo "$SCRIPT: $summary"

mkdir -p "$(dirname "$OUT")"
{
	echo "# mulefarm uwsgi-protocol benchmark (nginx uwsgi_pass), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# wrk -t1 -c$CONNS -d${DURATION}s --latency to nginx, warm-up ${WARMUP}s, rounds $ROUNDS (cmp: median round), nginx workers $NGX_DESC, workers $WORKERS, cpus $(nproc), cpu idle before ${IDLE}%"
	echo "# run <id.mode> <rps> <p50_ms> <p99_ms> <requests> <socket_errors> <non2xx> <probe_ms|timeout> <accept_queue_mid_run>"
	echo "# mem <id> <workers> <avg_pss_kib> <pid:pss_kib,...>"
	echo "# cmp <scenario> <id.mode> <rps> <p50_ms> <p99_ms> <vs_id.mode> <vs_rps> <ratio> <target> <uwsgi_p99_ms> <PASS|MISS|SKIP|info>"
	echo "# latcmp <scenario> <id.mode-eq> <offered_rps> <p50_ms> <p99_ms> <vs_id.mode-eq> <vs_p50_ms> <vs_p99_ms> <PASS|MISS|SKIP> (medians)"
	echo "# memcmp <scenario> <id> <avg_pss_kib> <vs_id> <vs_avg_pss_kib> <ratio> <target> <PASS|MISS|SKIP|info>"
	echo "# ids: mf nginx -> mulefarm --socket, uw nginx -> uWSGI --socket; modes: tcp, unix (upstream transport), -rN: round N, -eq: equal load"
	write_runs
	printf '%s\n' "${CMP[@]}"
	echo "result misses=$MISSES skips=$SKIPS"
} >"$OUT"
echo "$SCRIPT: summary written to $OUT"

if [[ $STRICT == 1 ]] && ((MISSES > 0)); then exit 1; fi
exit 0
