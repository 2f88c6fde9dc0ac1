#!/usr/bin/env bash
# Side-by-side HTTP benchmark: mulefarm vs uWSGI, gunicorn and nginx.
#
# Every server runs the same hello-world WSGI app (examples/hello/app.py; nginx
# answers `return 200` itself and is the machine's ceiling) with 2 worker
# processes on a free 127.0.0.1 port, one server after the other. Load is
# `wrk -t1 -c50 -d${DURATION}s --latency`, after a ${WARMUP}s wrk warm-up.
# Request logging is off everywhere.
#
#   scenario 1  keep-alive   mulefarm --http-socket vs uWSGI --http-socket    >= 1.5
#                            (uWSGI's --http-socket closes every connection)
#   scenario 2  close        mulefarm --http-socket vs nginx (Connection: close
#                            on every request)                                >= 0.95
#                            uWSGI --http-socket with close is shown too
#   scenario 3  keep-alive   mulefarm --http-socket vs uWSGI --http11-socket  >= 1.2
#   scenario 4  keep-alive   mulefarm --http vs uWSGI --http (router process) >= 2.5
#   scenario 5  gunicorn (sync, 2 workers) keep-alive and close, for information
#   scenario 6  p99 at the same offered load: mulefarm --http-socket vs uWSGI
#               --http-socket, keep-alive and close, with tests/bench/httplat
#               (open loop, LAT_RATE req/s to each)                   p99 <= uWSGI's
#   memory      average worker PSS (/proc/PID/smaps_rollup, after the load),
#               mulefarm vs uWSGI                                             <= 1.0
#
# Latency. "p99 no worse than uWSGI's" is decided by scenario 6. wrk is a
# closed loop: each connection sends its next request when the last one is
# answered, so the faster server is also sent more requests, and wrk's p99
# of two servers are taken at different loads (scenario 1: mulefarm serves
# 4x uWSGI's load there, and a 2-CPU machine at that load has a tail nginx
# shares). httplat sends requests at one fixed rate to both, and a request's
# latency runs from when it was due, so a server that falls behind pays for
# it. The wrk p99 of each run is still shown next to uWSGI's, for information.
# uWSGI's --http-socket never says Connection: close, so with wrk every one of
# its requests ends in a socket error, and those attempts are in no latency
# sample; its close run is therefore also shown with --add-header
# "Connection: close" (uw_hsc), which makes wrk's figures for it honest.
# Half-way through every run one extra client times a request ("probe"): a
# server that leaves connections waiting in its accept queue (uWSGI
# --http11-socket: each of the 2 workers holds one keep-alive connection, the
# other 48 wait for the whole run) reports a flattering wrk p99 that covers only
# the connections it served; such a p99 is shown but does not decide a pair,
# and mulefarm starving clients is a MISS.
# uWSGI --http runs with --http-keepalive (see scenario 4 below).
#
# Environment:
#   DURATION=10        seconds of measured load per run
#   WARMUP=2           seconds of wrk warm-up before each measured run
#   MULEFARM_BIN=...   mulefarm binary (default build/mulefarm)
#   SKIP_MULEFARM=1    benchmark only the other servers (mulefarm rows: skipped)
#   APP=...            WSGI file (default examples/hello/app.py)
#   OUT=...            machine-readable summary (default build/bench/http.txt)
#   STRICT=1           exit 1 if any target is missed (default: report only)
#   LAT_RATE=...       scenario 6's offered load, req/s (default: 60% of what
#                      uWSGI --http-socket served with close in this run, two
#                      significant digits)
#   LAT_ROUNDS=6       scenario 6 rounds, the servers alternating; each
#                      server's median p99 is compared
#   LAT_DURATION=5     seconds of each scenario 6 run (after 1s unmeasured)
#   HTTPLAT_BIN=...    the latency client (default build/bench/httplat)
#
# Needs: wrk, uwsgi + uwsgi-plugin-python3, gunicorn, nginx, curl (and ss
# from iproute2 for the accept-queue column; `scripts/deps.sh bench test`).
set -euo pipefail

SCRIPT=http.sh
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SKIP_MULEFARM=${SKIP_MULEFARM:-0}
STRICT=${STRICT:-0}
CONNS=50
WORKERS=2
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Paths given in the environment are relative to the caller's directory,
# the defaults to the repository root.
BIN=$(abspath "${MULEFARM_BIN:-$ROOT/build/mulefarm}")
APP=$(abspath "${APP:-$ROOT/examples/hello/app.py}")
OUT=$(abspath "${OUT:-$ROOT/build/bench/http.txt}")

check_load_params
need wrk wrk
need uwsgi uwsgi
need gunicorn gunicorn
need nginx nginx
need curl curl
need python3 "$PY"
need setsid setsid
need_uwsgi_plugins python3 http
[[ -f $APP ]] || die "WSGI app $APP not found"
need_mulefarm

# ---- the servers ------------------------------------------------------------

NAME[mf_hs]="mulefarm --http-socket"
NAME[mf_http]="mulefarm --http"
NAME[mf_rp]="mulefarm --reuse-port"
NAME[uw_hs]="uWSGI --http-socket"
NAME[uw_hsc]="uWSGI +Connection: close"
NAME[uw_h11]="uWSGI --http11-socket"
NAME[uw_http]="uWSGI --http"
NAME[gu]="gunicorn sync"
NAME[ngx]="nginx return 200"

# run_server ID STOPSIG "MODES" CMD... (CMD may use the word @PORT@)
run_server() {
	local id=$1 sig=$2 modes=$3 port arg args=() m
	shift 3
	port=$(free_port)
	for arg in "$@"; do args+=("${arg//@PORT@/$port}"); done
	echo "== ${NAME[$id]} on 127.0.0.1:$port"
	start_server "$id" "$port" "${args[@]}"
	for m in $modes; do load "$id" "$m" "$port"; done
	measure_mem "$id"
	stop_server "$sig"
}

MF_ARGS=(--master --processes "$WORKERS" --threads 1 --wsgi-file "$APP" --disable-logging)
# Same options for uWSGI; --need-app only makes a broken app fail fast.
UW_ARGS=(--master --processes "$WORKERS" --threads 1 --wsgi-file "$APP" --disable-logging --need-app)

echo "http.sh: wrk -t1 -c$CONNS -d${DURATION}s (after ${WARMUP}s warm-up), $WORKERS workers each, $(nproc) CPUs"

check_idle

if [[ $SKIP_MULEFARM == 1 ]]; then
	echo "== ${NAME[mf_hs]}: skipped"
else
	# Scenarios 1, 2, 3.
	run_server mf_hs INT "ka close" "$BIN" --http-socket 127.0.0.1:@PORT@ "${MF_ARGS[@]}"
	# Scenario 2 again with a queue per worker, as the nginx ceiling has
	# (reuseport): like for like.
	run_server mf_rp INT "close" "$BIN" --http-socket 127.0.0.1:@PORT@ --reuse-port "${MF_ARGS[@]}"
fi
# Scenario 1 (keep-alive; uWSGI closes every connection) and 2 (close).
run_server uw_hs INT "ka close" uwsgi --plugin python3 --http-socket 127.0.0.1:@PORT@ "${UW_ARGS[@]}"
# The same, telling the client it closes (see "Latency" above).
run_server uw_hsc INT "close" uwsgi --plugin python3 --http-socket 127.0.0.1:@PORT@ "${UW_ARGS[@]}" \
	--add-header "Connection: close"
# Scenario 3: uWSGI's keep-alive capable HTTP/1.1 socket.
run_server uw_h11 INT "ka" uwsgi --plugin python3 --http11-socket 127.0.0.1:@PORT@ "${UW_ARGS[@]}"
# Scenario 4: the --http router. The router lives in the separate "http"
# plugin on Debian, hence --plugin python3,http; it is a child of the master
# (which --http needs) and forwards to the workers over an auto-assigned
# uwsgi-protocol socket.
# --http-keepalive: passed, because it is the fair setting. wrk speaks
# keep-alive, mulefarm --http keeps client connections open, and uWSGI's
# router can too but only when asked; without it the router closes every
# client connection and uWSGI would lose throughput to reconnects that a
# tuned deployment would not pay (about -20% here). The router still opens a
# new uwsgi-protocol connection to a worker per request either way.
if [[ $SKIP_MULEFARM == 1 ]]; then
	echo "== ${NAME[mf_http]}: skipped"
else
	run_server mf_http INT "ka" "$BIN" --http 127.0.0.1:@PORT@ "${MF_ARGS[@]}"
fi
run_server uw_http INT "ka" uwsgi --plugin python3,http --http 127.0.0.1:@PORT@ --http-keepalive "${UW_ARGS[@]}"
# Scenario 5: gunicorn's sync workers (they close every connection). No access
# log unless asked for. It runs in the temp dir (no ./gunicorn.conf.py to pick
# up) and without GUNICORN_CMD_ARGS, which could change the setup.
run_server gu INT "ka close" env -u GUNICORN_CMD_ARGS gunicorn --workers "$WORKERS" --worker-class sync --threads 1 \
	--bind 127.0.0.1:@PORT@ --chdir "$(dirname "$APP")" "$(basename "$APP" .py):application"

# nginx: the ceiling. `deferred` (TCP_DEFER_ACCEPT: accept once the request
# is there) and `reuseport` (a listen socket per worker) are the usual tuning
# and help it by ~15-20% with a connection per request, where the kernel's
# TCP setup/teardown and wrk's connect() dominate: on a 2-CPU machine expect
# ~10k req/s with close, ~50k with keep-alive.
# A throw-away prefix holds its config, pid, logs and temp paths (see
# ngx_user and ngx_temps in lib.sh).
NGX=$TMP/nginx
mkdir -p "$NGX"
ngx_conf() { # ngx_conf PORT
	cat <<EOF
$(ngx_user)
worker_processes $WORKERS;
daemon off;
master_process on;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
$(ngx_temps "$NGX")

    server {
        listen 127.0.0.1:$1 deferred reuseport;
        location / {
            default_type text/plain;
            return 200 "Hello, World!\n";
        }
    }
}
EOF
}
NGX_PORT=$(free_port)
ngx_conf "$NGX_PORT" >"$NGX/nginx.conf"
# Start it by hand (the port is in the config, not on the command line).
echo "== ${NAME[ngx]} on 127.0.0.1:$NGX_PORT"
ngx_e_opt "$NGX"
start_server ngx "$NGX_PORT" nginx "${NGX_E[@]}" -p "$NGX" -c "$NGX/nginx.conf"
load ngx close "$NGX_PORT"
load ngx ka "$NGX_PORT"
measure_mem ngx
stop_server TERM

# ---- scenario 6: p99 at the same offered load -------------------------------

lat_setup
LAT_RATE=$(lat_rate LAT_RATE uw_hs.close)
if lat_ready "scenario 6"; then
	echo "== scenario 6: httplat -c$CONNS -r$LAT_RATE -d${LAT_DURATION}s (after 1s), $LAT_ROUNDS round(s), alternating"
	lat_servers mf_hs uw_hs
	# One mode after the other: what a run leaves behind (uWSGI's
	# keep-alive run closes tens of thousands of connections, whose
	# TIME_WAIT timers fire a minute later) falls on both alike.
	for m in ka close; do lat_rounds mf_hs uw_hs "$m" "$LAT_RATE"; done
	lat_servers_stop
fi

# ---- report -----------------------------------------------------------------

# wrk's p99 next to uWSGI's, for information ("~"): scenario 6 decides.
row 1-keepalive mf_hs.ka uw_hs.ka ">=1.5" "~uw_hs.ka"
row 2-close mf_hs.close ngx.close ">=0.95" "~uw_hsc.close"
row 2-close mf_rp.close ngx.close ">=0.95" "~uw_hsc.close"
row 2-close uw_hs.close ngx.close - -
row 2-close uw_hsc.close ngx.close - -
row 3-keepalive mf_hs.ka uw_h11.ka ">=1.2" "~uw_h11.ka"
row 4-http mf_http.ka uw_http.ka ">=2.5" "~uw_http.ka"
row 5-gunicorn gu.ka uw_hs.ka - -
row 5-gunicorn gu.close uw_hs.close - -
row ceiling ngx.ka ngx.close - -
lat_row 6-equal-load mf_hs.ka uw_hs.ka "$LAT_RATE"
lat_row 6-equal-load mf_hs.close uw_hs.close "$LAT_RATE"
mem_row memory mf_hs uw_hs "<=1.0"
mem_row memory-http mf_http uw_http -

echo
echo "Results: wrk -t1 -c$CONNS -d${DURATION}s, $WORKERS workers, $(nproc) CPUs (${IDLE}% idle before); req/s, latency in ms; ratio = req/s / compared req/s"
print_table
echo
summary="$MISSES target(s) missed"
((SKIPS == 0)) || summary="$summary, $SKIPS row(s) skipped"
echo "http.sh: $summary"

# ---- machine-readable summary -------------------------------------------------
mkdir -p "$(dirname "$OUT")"
{
	echo "# mulefarm HTTP benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# wrk -t1 -c$CONNS -d${DURATION}s --latency, warm-up ${WARMUP}s, workers $WORKERS, cpus $(nproc), cpu idle before ${IDLE}%"
	echo "# run <id.mode> <rps> <p50_ms> <p99_ms> <requests> <socket_errors> <non2xx> <probe_ms|timeout> <accept_queue_mid_run>"
	echo "# mem <id> <workers> <avg_pss_kib> <pid:pss_kib,...>"
	echo "# cmp <scenario> <id.mode> <rps> <p50_ms> <p99_ms> <vs_id.mode> <vs_rps> <ratio> <target> <uwsgi_p99_ms> <PASS|MISS|SKIP|info>"
	echo "# memcmp <scenario> <id> <avg_pss_kib> <vs_id> <vs_avg_pss_kib> <ratio> <target> <PASS|MISS|SKIP|info>"
	echo "# ids: mf_hs mulefarm --http-socket, mf_http mulefarm --http, uw_hs uWSGI --http-socket,"
	echo "#      uw_hsc uWSGI --http-socket --add-header 'Connection: close',"
	echo "#      uw_h11 uWSGI --http11-socket, uw_http uWSGI --http --http-keepalive, gu gunicorn sync, ngx nginx"
	echo "# latcmp <scenario> <id.mode> <offered_rps> <p50_ms> <p99_ms> <vs_id.mode> <vs_p50_ms> <vs_p99_ms> <PASS|MISS|SKIP> (medians)"
	write_runs
	printf '%s\n' "${CMP[@]}"
	echo "result misses=$MISSES skips=$SKIPS"
} >"$OUT"
echo "http.sh: summary written to $OUT"

if [[ $STRICT == 1 ]] && ((MISSES > 0)); then exit 1; fi
exit 0
