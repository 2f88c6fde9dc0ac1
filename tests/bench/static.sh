#!/usr/bin/env bash
# Side-by-side static-file benchmark: mulefarm --static-map vs uWSGI
# --static-map, with nginx serving the same files beside them.
#
# Two files, 4 KiB and 1 MiB of random bytes, under one directory mapped at
# /static. Every server also runs the hello-world app (examples/hello/app.py)
# with 2 worker processes x 1 thread, logging off; the files never reach
# Python. Load is `wrk -t1 -c50 -d${DURATION}s --latency`, keep-alive (wrk's
# default), after a ${WARMUP}s warm-up, one file at a time.
#
#   4k, 1m   mulefarm --http-socket vs uWSGI --http-socket             >= 1.5
#            (uWSGI's --http-socket closes the connection after every
#            response: wrk reconnects, and counts the closes as read errors)
#            mulefarm vs uWSGI --http11-socket, for information: uWSGI keeps
#            the connection but a worker then serves only that one client, so
#            2 workers serve 2 of wrk's 50 connections and the other 48 wait
#            in the accept queue for the whole run ("probe" column: a 51st
#            client's request half-way through). Its req/s and p99 cover the 2
#            connections it served; it does not decide a target.
#            nginx (sendfile on, 2 workers) beside: the machine's ceiling.
#   cpu      the server's CPU time per request, mulefarm vs uWSGI --http-socket,
#            for information
#   4k-equal-load, 1m-equal-load
#            p99 at the same offered load, mulefarm vs uWSGI --http-socket,
#            with tests/bench/httplat (open loop, keep-alive, 60% of uWSGI's
#            wrk rate for that file offered to each)        p99 <= uWSGI's
#            uWSGI closes after every response, so its requests each come
#            on a new connection; mulefarm's reuse theirs.
#   4k-equal-load-close, 1m-equal-load-close
#            the same with a new connection for every request to both
#            (httplat -C): like for like              p99 <= uWSGI's
#            The kernel's congestion control is shown with the results:
#            under BBR (pacing) a 1 MiB response on a reused connection has
#            a longer tail than on a new one, nginx's too (docs/benchmarks.md).
#
# Latency, as in http.sh: "p99 no worse than uWSGI's" is decided at an equal
# offered load. wrk is a closed loop, so the faster server is also sent more
# requests (mulefarm serves about 3x uWSGI's load of 4 KiB files here, where
# a 2-CPU machine has a tail that nginx shares), and uWSGI's --http-socket
# closes after every response, so its reconnects are in no wrk latency
# sample. The wrk p99 is still shown next to uWSGI's, for information.
#
# Environment:
#   DURATION=10        seconds of measured load per run
#   WARMUP=2           seconds of wrk warm-up before each measured run
#   MULEFARM_BIN=...   mulefarm binary (default build/mulefarm)
#   SKIP_MULEFARM=1    benchmark only uWSGI and nginx (mulefarm rows: skipped)
#   ROUNDS=1           run each server this many times, alternating, and keep
#                      each one's best round (steadier on a busy machine)
#   APP=...            WSGI file (default examples/hello/app.py)
#   OUT=...            machine-readable summary (default build/bench/static.txt)
#   LAT_ROUNDS=6       equal-load rounds per file, the servers alternating;
#                      each one's median p99 is compared
#   LAT_DURATION=5     seconds of each equal-load run (after 1s unmeasured)
#   LAT_RATE_4k=...    offered load for the 4 KiB file, req/s (default: 60% of
#   LAT_RATE_1m=...    uWSGI --http-socket's wrk rate, two significant digits)
#   HTTPLAT_BIN=...    the latency client (default build/bench/httplat)
#   STRICT=1           exit 1 if any target is missed (default: report only)
#
# Needs: wrk, uwsgi + uwsgi-plugin-python3, nginx, curl, ss (iproute2).
set -euo pipefail

SCRIPT=static.sh
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SKIP_MULEFARM=${SKIP_MULEFARM:-0}
STRICT=${STRICT:-0}
ROUNDS=${ROUNDS:-1}
CONNS=50
WORKERS=2
# Also measure the server's CPU time per request (its process group).
CPU_ACCOUNT=1
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BIN=$(abspath "${MULEFARM_BIN:-$ROOT/build/mulefarm}")
APP=$(abspath "${APP:-$ROOT/examples/hello/app.py}")
OUT=$(abspath "${OUT:-$ROOT/build/bench/static.txt}")

check_load_params
check_rounds
need wrk wrk
need uwsgi uwsgi
need nginx nginx
need curl curl
need python3 "$PY"
need setsid setsid
need cmp cmp
need_uwsgi_plugins python3
[[ -f $APP ]] || die "WSGI app $APP not found"
need_mulefarm --static-map

# ---- the files ----------------------------------------------------------------

WWW=$TMP/www
mkdir -p "$WWW"
head -c 4096 /dev/urandom >"$WWW/4k.bin"
head -c 1048576 /dev/urandom >"$WWW/1m.bin"
FILES="4k 1m"

# check_files ID PORT: every file comes back whole (a server that answers
# /static/... from the app, or a truncated sendfile, must not be measured).
check_files() {
	local id=$1 port=$2 f
	for f in $FILES; do
		curl -s --max-time 5 -o "$TMP/got.bin" "http://127.0.0.1:$port/static/$f.bin" ||
			die "${NAME[$id]}: GET /static/$f.bin failed"
		cmp -s "$TMP/got.bin" "$WWW/$f.bin" || die "${NAME[$id]}: /static/$f.bin is not the file"
	done
}

NAME[mf]="mulefarm --http-socket"
NAME[uw_hs]="uWSGI --http-socket"
NAME[uw_h11]="uWSGI --http11-socket"
NAME[ngx]="nginx"

# sfx ROUND: the run-name suffix of a round ("" when ROUNDS is 1)
sfx() { ((ROUNDS == 1)) || echo "-r$1"; }

# run_server ID ROUND STOPSIG CMD... (CMD may use the word @PORT@): the runs
# are ID.4k and ID.1m (ID.4k-rN, ID.1m-rN for round N when ROUNDS > 1).
run_server() {
	local id=$1 round=$2 sig=$3 port arg args=() f s
	shift 3
	s=$(sfx "$round")
	port=$(free_port)
	for arg in "$@"; do args+=("${arg//@PORT@/$port}"); done
	echo "== ${NAME[$id]} on 127.0.0.1:$port${s:+ (round $round of $ROUNDS)}"
	start_server "$id" "$port" "${args[@]}"
	check_files "$id" "$port"
	for f in $FILES; do load "$id" "$f$s" "$port" "/static/$f.bin"; done
	measure_mem "$id"
	stop_server "$sig"
}

MAP=(--static-map "/static=$WWW")
MF_ARGS=(--master --processes "$WORKERS" --threads 1 --wsgi-file "$APP" --disable-logging "${MAP[@]}")
# Same options for uWSGI; --need-app only makes a broken app fail fast.
UW_ARGS=(--master --processes "$WORKERS" --threads 1 --wsgi-file "$APP" --disable-logging --need-app "${MAP[@]}")

echo "$SCRIPT: wrk -t1 -c$CONNS -d${DURATION}s (after ${WARMUP}s warm-up), $WORKERS workers each, $(nproc) CPUs; files 4 KiB and 1 MiB"
check_idle

# nginx: the same files with the usual static tuning (sendfile, tcp_nopush),
# and the hello world at / for start_server.
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
    keepalive_requests 1000000;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
$(ngx_temps "$NGX")

    server {
        listen 127.0.0.1:$1;
        location = / {
            default_type text/plain;
            return 200 "Hello, World!\n";
        }
        location /static/ {
            alias $WWW/;
        }
    }
}
EOF
}
ngx_e_opt "$NGX"
run_nginx() { # run_nginx ROUND
	local port f s
	s=$(sfx "$1")
	port=$(free_port)
	ngx_conf "$port" >"$NGX/nginx.conf"
	echo "== ${NAME[ngx]} on 127.0.0.1:$port${s:+ (round $1 of $ROUNDS)}"
	start_server ngx "$port" nginx "${NGX_E[@]}" -p "$NGX" -c "$NGX/nginx.conf"
	check_files ngx "$port"
	for f in $FILES; do load ngx "$f$s" "$port" "/static/$f.bin"; done
	measure_mem ngx
	stop_server TERM
}

[[ $SKIP_MULEFARM != 1 ]] || echo "== ${NAME[mf]}: skipped"
for ((r = 1; r <= ROUNDS; r++)); do
	[[ $SKIP_MULEFARM == 1 ]] || run_server mf "$r" INT "$BIN" --http-socket 127.0.0.1:@PORT@ "${MF_ARGS[@]}"
	run_server uw_hs "$r" INT uwsgi --plugin python3 --http-socket 127.0.0.1:@PORT@ "${UW_ARGS[@]}"
	run_server uw_h11 "$r" INT uwsgi --plugin python3 --http11-socket 127.0.0.1:@PORT@ "${UW_ARGS[@]}"
	run_nginx "$r"
done
if ((ROUNDS > 1)); then
	for id in mf uw_hs uw_h11 ngx; do
		for f in $FILES; do
			keys=()
			for ((r = 1; r <= ROUNDS; r++)); do keys+=("$id.$f-r$r"); done
			best_of "$id.$f" "${keys[@]}"
		done
	done
	echo "$SCRIPT: best of $ROUNDS rounds per server and file"
fi

# ---- p99 at the same offered load -------------------------------------------

lat_setup
declare -A LAT_RATE_OF=()
for f in $FILES; do LAT_RATE_OF[$f]=$(lat_rate "LAT_RATE_$f" "uw_hs.$f"); done
if lat_ready "equal load"; then
	echo "== equal load: httplat -c$CONNS -d${LAT_DURATION}s (after 1s), $LAT_ROUNDS round(s) per file, alternating"
	lat_servers mf uw_hs
	check_files mf "${LAT_PORT[mf]}"
	check_files uw_hs "${LAT_PORT[uw_hs]}"
	for f in $FILES; do
		echo "-- /static/$f.bin at ${LAT_RATE_OF[$f]} req/s"
		lat_rounds mf uw_hs "$f-eq" "${LAT_RATE_OF[$f]}" "/static/$f.bin"
		lat_rounds mf uw_hs "$f-eq-close" "${LAT_RATE_OF[$f]}" "/static/$f.bin"
	done
	lat_servers_stop
fi

# ---- report -----------------------------------------------------------------

for f in $FILES; do
	# wrk's p99 next to uWSGI's, for information ("~"): the equal-load
	# rows decide.
	row "$f" "mf.$f" "uw_hs.$f" ">=1.5" "~uw_hs.$f"
	row "$f" "mf.$f" "uw_h11.$f" - -
	row "$f" "mf.$f" "ngx.$f" - -
	row "$f" "uw_hs.$f" "ngx.$f" - -
done
for f in $FILES; do
	lat_row "$f-equal-load" "mf.$f-eq" "uw_hs.$f-eq" "${LAT_RATE_OF[$f]}"
	lat_row "$f-equal-load-close" "mf.$f-eq-close" "uw_hs.$f-eq-close" "${LAT_RATE_OF[$f]}"
done
mem_row memory mf uw_hs -
for f in $FILES; do cpu_row "$f-cpu" "mf.$f" "uw_hs.$f"; done

echo
echo "Results: wrk -t1 -c$CONNS -d${DURATION}s keep-alive, best of $ROUNDS round(s), $WORKERS workers, $(nproc) CPUs (${IDLE}% idle before); req/s, latency in ms; ratio = req/s / compared req/s"
print_table
echo "TCP congestion control: $(tcp_cc) (equal-load: keep-alive rows reuse mulefarm's connections; -close rows open one per request to both)"
echo "uWSGI --http11-socket: with $WORKERS workers it serves $WORKERS of the $CONNS connections; its numbers cover those only."
echo
summary="$MISSES target(s) missed"
((SKIPS == 0)) || summary="$summary, $SKIPS row(s) skipped"
echo "$SCRIPT: $summary"

mkdir -p "$(dirname "$OUT")"
{
	echo "# mulefarm static-file benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# wrk -t1 -c$CONNS -d${DURATION}s --latency keep-alive, warm-up ${WARMUP}s, rounds $ROUNDS (cmp: best round), workers $WORKERS, cpus $(nproc), cpu idle before ${IDLE}%, tcp congestion control $(tcp_cc)"
	echo "# run <id.file> <rps> <p50_ms> <p99_ms> <requests> <socket_errors> <non2xx> <probe_ms|timeout> <accept_queue_mid_run>"
	echo "# mem <id> <workers> <avg_pss_kib> <pid:pss_kib,...>"
	echo "# cmp <file> <id.file> <rps> <p50_ms> <p99_ms> <vs_id.file> <vs_rps> <ratio> <target> <uwsgi_p99_ms> <PASS|MISS|SKIP|info>"
	echo "# latcmp <scenario> <id.file-eq> <offered_rps> <p50_ms> <p99_ms> <vs_id.file-eq> <vs_p50_ms> <vs_p99_ms> <PASS|MISS|SKIP> (medians)"
	echo "# memcmp <scenario> <id> <avg_pss_kib> <vs_id> <vs_avg_pss_kib> <ratio> <target> <PASS|MISS|SKIP|info>"
	echo "# ids: mf mulefarm --http-socket, uw_hs uWSGI --http-socket, uw_h11 uWSGI --http11-socket, ngx nginx;"
	echo "#      files: 4k (4096 bytes), 1m (1048576 bytes), GET /static/<file>.bin; -rN: round N"
	write_runs
	printf '%s\n' "${CMP[@]}"
	echo "result misses=$MISSES skips=$SKIPS"
} >"$OUT"
echo "$SCRIPT: summary written to $OUT"

if [[ $STRICT == 1 ]] && ((MISSES > 0)); then exit 1; fi
exit 0
