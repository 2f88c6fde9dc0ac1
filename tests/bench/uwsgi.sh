#!/usr/bin/env bash
# Side-by-side uwsgi-protocol benchmark: nginx -> uwsgi_pass -> mulefarm
# --socket vs nginx -> uwsgi_pass -> uWSGI --socket.
#
# One nginx (the same process and config for both servers) listens on two
# ports: one passes to 127.0.0.1:<upstream port>, the other to a unix socket.
# Each application server in turn binds both upstream addresses with the
# hello-world app (examples/hello/app.py), 2 worker processes x 1 thread,
# logging off. Load is `wrk -t1 -c50 -d${DURATION}s --latency` with
# keep-alive to nginx (nginx opens one upstream connection per request: the
# uwsgi protocol has no keep-alive), after a ${WARMUP}s warm-up.
#
#   tcp    nginx -> 127.0.0.1:port   mulefarm --socket vs uWSGI --socket   >= 1.1
#   unix   nginx -> unix socket      mulefarm --socket vs uWSGI --socket   >= 1.1
#   cpu    the server's CPU time per request (its process group, during the
#          measured run), for information: nginx with one upstream connection
#          per request is itself a large share of the work on a small machine,
#          and when it is the bottleneck both servers reach about the same
#          req/s; the CPU each needs per request still tells them apart
#   memory average worker PSS after the load, for information
# In each pair mulefarm's p99 must be no worse than uWSGI's.
#
# Environment:
#   DURATION=10        seconds of measured load per run
#   WARMUP=2           seconds of wrk warm-up before each measured run
#   NGX_WORKERS=1      nginx worker processes (it shares the CPUs with
#                      the servers and wrk)
#   ROUNDS=1           run each server this many times, alternating, and keep
#                      each one's best round (steadier on a busy machine)
#   MULEFARM_BIN=...   mulefarm binary (default build/mulefarm)
#   SKIP_MULEFARM=1    benchmark only uWSGI (mulefarm rows: skipped)
#   APP=...            WSGI file (default examples/hello/app.py)
#   OUT=...            machine-readable summary (default build/bench/uwsgi.txt)
#   STRICT=1           exit 1 if any target is missed (default: report only)
#
# Needs: wrk, uwsgi + uwsgi-plugin-python3, nginx, curl, ss (iproute2).
set -euo pipefail

SCRIPT=uwsgi.sh
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SKIP_MULEFARM=${SKIP_MULEFARM:-0}
STRICT=${STRICT:-0}
NGX_WORKERS=${NGX_WORKERS:-1}
ROUNDS=${ROUNDS:-1}
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
[[ $NGX_WORKERS =~ ^[1-9][0-9]*$ ]] || die "NGX_WORKERS must be a positive integer"
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
UP_PORT=$(free_port)
UP_SOCK=$TMP/upstream.sock
NGX_TCP=$(free_port)
NGX_UNIX=$(free_port)
[[ $NGX_TCP != "$NGX_UNIX" ]] || NGX_UNIX=$(free_port)
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

    server {
        listen 127.0.0.1:$NGX_TCP;
        location / {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass 127.0.0.1:$UP_PORT;
        }
    }
    server {
        listen 127.0.0.1:$NGX_UNIX;
        location / {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:$UP_SOCK;
        }
    }
}
EOF
ngx_e_opt "$NGX"
(cd "$TMP" && exec setsid nginx "${NGX_E[@]}" -p "$NGX" -c "$NGX/nginx.conf") </dev/null >"$TMP/nginx.log" 2>&1 &
NGX_PID=$!
BG_PIDS+=("$NGX_PID")
for ((i = 0; i < 100; i++)); do
	alive "$NGX_PID" || { cat "$TMP/nginx.log" "$NGX/error.log" >&2 2>/dev/null; die "nginx exited during startup"; }
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$NGX_TCP/" 2>/dev/null) || code=
	[[ $code =~ ^[1-5][0-9][0-9]$ ]] && break
	sleep 0.1
done
[[ ${code:-} =~ ^[1-5][0-9][0-9]$ ]] || die "nginx did not answer on 127.0.0.1:$NGX_TCP"
echo "$SCRIPT: nginx ($NGX_WORKERS worker(s)) on 127.0.0.1:$NGX_TCP -> 127.0.0.1:$UP_PORT and 127.0.0.1:$NGX_UNIX -> unix:$UP_SOCK"

# run_server ID ROUND CMD...: start a server bound to both upstream addresses,
# load nginx's tcp and unix fronts, measure memory, stop it. The runs are
# ID.tcp and ID.unix (ID.tcp-rN and ID.unix-rN for round N when ROUNDS > 1).
run_server() {
	local id=$1 round=$2 sfx=''
	shift 2
	((ROUNDS == 1)) || sfx=-r$round
	rm -f "$UP_SOCK"
	echo "== ${NAME[$id]}${sfx:+ (round $round of $ROUNDS)}"
	start_server "$id" "$NGX_TCP" "$@"
	# the unix front must work too before it is measured
	[[ $(curl -s --max-time 2 "http://127.0.0.1:$NGX_UNIX/") == "Hello, World!" ]] ||
		die "${NAME[$id]}: no answer through the unix socket"
	: >"$NGX/error.log" # forget the 502s of the start-up
	load "$id" "tcp$sfx" "$NGX_TCP"
	load "$id" "unix$sfx" "$NGX_UNIX"
	measure_mem "$id"
	if grep -qaE '\[(error|crit|alert|emerg)\]' "$NGX/error.log"; then
		echo "$SCRIPT: warning: nginx logged errors with ${NAME[$id]}:" >&2
		grep -aE '\[(error|crit|alert|emerg)\]' "$NGX/error.log" | tail -n 5 >&2
	fi
	stop_server INT
}

SOCKS=(--socket "127.0.0.1:$UP_PORT" --socket "$UP_SOCK")
MF_ARGS=(--master --processes "$WORKERS" --threads 1 --wsgi-file "$APP" --disable-logging)
# Same options for uWSGI; --need-app only makes a broken app fail fast.
UW_ARGS=(--master --processes "$WORKERS" --threads 1 --wsgi-file "$APP" --disable-logging --need-app)

echo "$SCRIPT: wrk -t1 -c$CONNS -d${DURATION}s (after ${WARMUP}s warm-up) to nginx, $WORKERS workers each, $(nproc) CPUs"
check_idle

[[ $SKIP_MULEFARM != 1 ]] || echo "== ${NAME[mf]}: skipped"
for ((r = 1; r <= ROUNDS; r++)); do
	[[ $SKIP_MULEFARM == 1 ]] || run_server mf "$r" "$BIN" "${SOCKS[@]}" "${MF_ARGS[@]}"
	run_server uw "$r" uwsgi --plugin python3 "${SOCKS[@]}" "${UW_ARGS[@]}"
done
if ((ROUNDS > 1)); then
	for id in mf uw; do
		for m in tcp unix; do
			keys=()
			for ((r = 1; r <= ROUNDS; r++)); do keys+=("$id.$m-r$r"); done
			best_of "$id.$m" "${keys[@]}"
		done
	done
	echo "$SCRIPT: best of $ROUNDS rounds per server and transport"
fi

# ---- report -----------------------------------------------------------------

row tcp mf.tcp uw.tcp ">=1.1" uw.tcp
row unix mf.unix uw.unix ">=1.1" uw.unix
row tcp-vs-unix uw.tcp uw.unix - -
cpu_row tcp-cpu mf.tcp uw.tcp
cpu_row unix-cpu mf.unix uw.unix
mem_row memory mf uw -

echo
echo "Results: wrk -t1 -c$CONNS -d${DURATION}s through nginx ($NGX_WORKERS worker(s)), best of $ROUNDS round(s), $WORKERS workers, $(nproc) CPUs (${IDLE}% idle before); req/s, latency in ms; ratio = req/s / compared req/s"
print_table
echo
summary="$MISSES target(s) missed"
((SKIPS == 0)) || summary="$summary, $SKIPS row(s) skipped"
echo "$SCRIPT: $summary"

mkdir -p "$(dirname "$OUT")"
{
	echo "# mulefarm uwsgi-protocol benchmark (nginx uwsgi_pass), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# wrk -t1 -c$CONNS -d${DURATION}s --latency to nginx, warm-up ${WARMUP}s, rounds $ROUNDS (cmp: best round), nginx workers $NGX_WORKERS, workers $WORKERS, cpus $(nproc), cpu idle before ${IDLE}%"
	echo "# run <id.mode> <rps> <p50_ms> <p99_ms> <requests> <socket_errors> <non2xx> <probe_ms|timeout> <accept_queue_mid_run>"
	echo "# mem <id> <workers> <avg_pss_kib> <pid:pss_kib,...>"
	echo "# cmp <scenario> <id.mode> <rps> <p50_ms> <p99_ms> <vs_id.mode> <vs_rps> <ratio> <target> <uwsgi_p99_ms> <PASS|MISS|SKIP|info>"
	echo "# memcmp <scenario> <id> <avg_pss_kib> <vs_id> <vs_avg_pss_kib> <ratio> <target> <PASS|MISS|SKIP|info>"
	echo "# ids: mf nginx -> mulefarm --socket, uw nginx -> uWSGI --socket; modes: tcp, unix (upstream transport), -rN: round N"
	write_runs
	printf '%s\n' "${CMP[@]}"
	echo "result misses=$MISSES skips=$SKIPS"
} >"$OUT"
echo "$SCRIPT: summary written to $OUT"

if [[ $STRICT == 1 ]] && ((MISSES > 0)); then exit 1; fi
exit 0
