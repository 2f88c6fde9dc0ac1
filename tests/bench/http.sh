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
#   memory      average worker PSS (/proc/PID/smaps_rollup, after the load),
#               mulefarm vs uWSGI                                             <= 1.0
# In every mulefarm/uWSGI pair mulefarm's p99 must be no worse than uWSGI's.
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
#
# Needs: wrk, uwsgi + uwsgi-plugin-python3, gunicorn, nginx, curl (and ss
# from iproute2 for the accept-queue column; `scripts/deps.sh bench test`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac; }
# Paths given in the environment are relative to the caller's directory,
# the defaults to the repository root.
BIN=$(abspath "${MULEFARM_BIN:-$ROOT/build/mulefarm}")
APP=$(abspath "${APP:-$ROOT/examples/hello/app.py}")
OUT=$(abspath "${OUT:-$ROOT/build/bench/http.txt}")
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SKIP_MULEFARM=${SKIP_MULEFARM:-0}
STRICT=${STRICT:-0}
PY=/usr/bin/python3 # the system Python, whatever pyenv & co. put on PATH
CONNS=50
WORKERS=2

die() {
	echo "http.sh: $*" >&2
	exit 1
}
need() { # need NAME PATH-OR-COMMAND
	command -v "$2" >/dev/null 2>&1 || [[ -x $2 ]] ||
		die "$1 not found ($2). Install the benchmark dependencies: scripts/deps.sh bench"
}

[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "DURATION must be a positive integer (seconds)"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be an integer (seconds)"
need wrk wrk
need uwsgi uwsgi
need gunicorn gunicorn
need nginx nginx
need curl curl
need python3 "$PY"
need setsid setsid
for p in python3 http; do
	# Debian's uwsgi is modular: python3 comes from uwsgi-plugin-python3 and
	# the --http router is the separate http plugin of uwsgi-core.
	# (A plugin that fails to load is only a message; the exit status is 0.)
	out=$(uwsgi --plugin "$p" --version 2>&1 || true)
	[[ $out != *"UNABLE to load"* ]] ||
		die "uWSGI plugin '$p' cannot be loaded. Install the benchmark dependencies: scripts/deps.sh bench"
done
[[ -f $APP ]] || die "WSGI app $APP not found"
if [[ $SKIP_MULEFARM == 1 ]]; then
	echo "http.sh: SKIP_MULEFARM=1: mulefarm is skipped"
elif [[ ! -x $BIN ]]; then
	die "mulefarm binary $BIN not found: build it with 'make' (or set MULEFARM_BIN, or SKIP_MULEFARM=1)"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mulefarm-bench.XXXXXX")
SRV_PID= # process (and process group: servers run under setsid) being measured

# Kill whatever is left of the current server, whatever happened.
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	local rc=$?
	if [[ -n $PROBE_PID ]]; then
		kill -KILL -- "-$PROBE_PID" 2>/dev/null || true
	fi
	if [[ -n $SRV_PID ]]; then
		kill -KILL -- "-$SRV_PID" 2>/dev/null || true
		wait "$SRV_PID" 2>/dev/null || true
		SRV_PID=
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# proc_field PID N: field N (1 = state, 2 = ppid, 3 = pgrp) of /proc/PID/stat,
# counted after the parenthesised command name (which may contain spaces).
proc_field() {
	local stat rest
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	rest=${stat##*) }
	# shellcheck disable=SC2086
	set -- "$2" $rest
	local n=$1
	shift
	printf '%s\n' "${!n}"
}

alive() { # alive PID: exists and is not a zombie
	local st
	st=$(proc_field "$1" 1) || return 1
	[[ $st != Z ]]
}

# pids_where FIELD VALUE: processes whose stat field (see proc_field) is VALUE.
pids_where() {
	local f pid
	for f in /proc/[0-9]*; do
		pid=${f#/proc/}
		[[ $(proc_field "$pid" "$1" 2>/dev/null) == "$2" ]] && echo "$pid"
	done
	return 0
}

# ---- server lifecycle ------------------------------------------------------

# start_server NAME PORT CMD...: run CMD in its own session/process group, log
# to $TMP/NAME.log, and wait until it answers the hello world on PORT.
start_server() {
	local name=$1 port=$2 i body
	shift 2
	SRV_LOG=$TMP/$name.log
	# setsid: the server and its workers form one process group we can kill as
	# a whole, and a Ctrl-C at the terminal reaches only this script (whose
	# trap then cleans up). Not a group leader here, so setsid does not fork
	# and $! is the server's (master's) pid.
	(cd "$TMP" && exec setsid "$@") </dev/null >"$SRV_LOG" 2>&1 &
	SRV_PID=$!
	for ((i = 0; i < 200; i++)); do
		if ! alive "$SRV_PID"; then
			echo "--- $SRV_LOG" >&2
			tail -n 30 "$SRV_LOG" >&2
			die "$name exited during startup: $*"
		fi
		if body=$(curl -s --max-time 1 http://127.0.0.1:"$port"/ 2>/dev/null) && [[ -n $body ]]; then
			[[ $body == "Hello, World!" ]] || die "$name answered '$body' instead of 'Hello, World!'"
			return 0
		fi
		sleep 0.1
	done
	echo "--- $SRV_LOG" >&2
	tail -n 30 "$SRV_LOG" >&2
	die "$name did not answer on 127.0.0.1:$port within 20s: $*"
}

# stop_server SIGNAL: ask the server to stop, kill -9 whatever remains after 10s.
stop_server() {
	local sig=$1 i left
	kill -s "$sig" "$SRV_PID" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$SRV_PID" || break
		sleep 0.1
	done
	if alive "$SRV_PID"; then
		echo "http.sh: warning: pid $SRV_PID ignored SIG$sig for 10s, killing it" >&2
		kill -KILL -- "-$SRV_PID" 2>/dev/null || true
	fi
	wait "$SRV_PID" 2>/dev/null || true
	# Workers/routers must be gone with their master.
	for ((i = 0; i < 30; i++)); do
		left=$(pids_where 3 "$SRV_PID")
		[[ -z $left ]] && break
		sleep 0.1
	done
	if [[ -n $left ]]; then
		echo "http.sh: warning: leftover processes after stop: ${left//$'\n'/ } - killing them" >&2
		kill -KILL -- "-$SRV_PID" 2>/dev/null || true
	fi
	SRV_PID=
}

# ---- worker processes and memory --------------------------------------------

# worker_pids MASTER LOG: the worker processes of a master.
# uWSGI logs "spawned uWSGI worker N (pid: M, cores: 1)" (mulefarm:
# "spawned worker N (pid M)") and, for uWSGI --http,
#   "spawned uWSGI http 1 (pid: R)" for the router, which is also a child of
# the master and is not a worker. The log is authoritative when it names
# workers; otherwise the workers are the master's children minus anything the
# log names as a router/gateway. Only live children of MASTER are returned.
worker_pids() {
	local master=$1 log=$2 pids routers p
	pids=$(grep -aoE 'spawned ([A-Za-z]+ )?worker [0-9]+ \(pid:? [0-9]+' "$log" | grep -oE '[0-9]+$' || true)
	if [[ -z $pids ]]; then
		routers=$(grep -aoE 'spawned .*(http|router|gateway)[^(]*\(pid:? [0-9]+' "$log" | grep -oE '[0-9]+$' || true)
		pids=
		for p in $(pids_where 2 "$master"); do
			grep -qx "$p" <<<"$routers" || pids="$pids $p"
		done
	fi
	for p in $pids; do
		[[ $(proc_field "$p" 2 2>/dev/null) == "$master" ]] && alive "$p" && echo "$p"
	done
	return 0
}

pss_kib() { # pss_kib PID
	if [[ -r /proc/$1/smaps_rollup ]]; then
		awk '/^Pss:/ { print $2; exit }' "/proc/$1/smaps_rollup"
	else
		awk '/^Pss:/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps"
	fi
}

declare -A MEM_AVG MEM_N MEM_LIST

# measure_mem ID: average PSS of the current server's workers.
measure_mem() {
	local id=$1 pids p v sum=0 n=0 list=
	pids=$(worker_pids "$SRV_PID" "$SRV_LOG")
	for p in $pids; do
		v=$(pss_kib "$p") || continue
		[[ -n $v ]] || continue
		sum=$((sum + v))
		n=$((n + 1))
		list="$list${list:+,}$p:$v"
	done
	MEM_N[$id]=$n
	MEM_LIST[$id]=${list:--}
	if ((n > 0)); then
		MEM_AVG[$id]=$((sum / n))
	else
		MEM_AVG[$id]=
	fi
	((n == WORKERS)) || echo "http.sh: warning: $id: found $n worker processes, expected $WORKERS" >&2
	printf '   %-28s workers %s, avg PSS %s KiB (pid:KiB %s)\n' "${NAME[$id]}" "$n" "${MEM_AVG[$id]:-?}" "${MEM_LIST[$id]}"
}

# ---- load -------------------------------------------------------------------

declare -A RPS P50 P99 REQS ERRS NON2XX NAME PROBE QUEUED

to_ms() { # wrk duration (812.00us, 5.90ms, 1.02s, 1.50m) -> milliseconds
	awk -v d="$1" 'BEGIN {
		v = d + 0; u = d; sub(/^[0-9.]+/, "", u)
		if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
		printf "%.2f", v }'
}

PROBE_PID=
# start_probe PORT FILE: in DURATION/2 s, write "<accept queue> <probe ms>"
# to FILE; the probe ms is "timeout" if no answer before wrk ends + 2s.
start_probe() {
	local half
	half=$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')
	# Own process group, so cleanup can kill it with its children.
	# shellcheck disable=SC2016 # expanded by the inner bash
	setsid bash -c '
		sleep "$1"
		q=$(ss -Hltn "sport = :$2" 2>/dev/null | awk "{ print \$2; exit }")
		t=$(curl -s -o /dev/null -w "%{http_code} %{time_total}" --max-time "$3" "http://127.0.0.1:$2/") || t=
		case $t in 200\ *) t=$(awk -v t="${t#* }" "BEGIN { printf \"%.1f\", t * 1000 }") ;; *) t=timeout ;; esac
		echo "${q:--} $t" >"$4"' probe "$half" "$1" "$(awk -v d="$DURATION" 'BEGIN { print d / 2 + 2 }')" "$2" &
	PROBE_PID=$!
}
wait_probe() {
	wait "$PROBE_PID" || true
	PROBE_PID=
}

# starved KEY: did the probe get no answer, or wait for a quarter of the run
# or more? (A starved probe is only served when wrk lets go of its
# connections at the end, DURATION/2 after it started.)
starved() {
	local t=${PROBE[$1]:-}
	[[ $t == timeout ]] ||
		{ [[ -n $t && $t != - ]] && awk -v t="$t" -v d="$DURATION" 'BEGIN { exit !(t + 0 >= d * 250) }'; }
}

# load ID MODE PORT: warm up, then measure; MODE is ka (keep-alive, wrk's
# default) or close (Connection: close on every request).
load() {
	local id=$1 mode=$2 port=$3 key=$1.$2 out hdr=() p50 p99
	[[ $mode == close ]] && hdr=(-H "Connection: close")
	out=$TMP/$key.wrk
	if ((WARMUP > 0)); then
		wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${hdr[@]}" "http://127.0.0.1:$port/" >/dev/null ||
			die "wrk warm-up failed against ${NAME[$id]}"
	fi
	# Starvation probe: wrk's latencies only cover requests that completed, so
	# a server that serves a few connections and leaves the rest waiting in
	# its accept queue (uWSGI --http11-socket: each worker holds one
	# keep-alive connection; 48 of wrk's 50 never get an answer) shows a
	# great p99. Half-way through, note the listen queue (ss Recv-Q) and time
	# one more request from a 51st client.
	start_probe "$port" "$TMP/$key.probe"
	wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${hdr[@]}" "http://127.0.0.1:$port/" >"$out" ||
		{ cat "$out" >&2; die "wrk failed against ${NAME[$id]}"; }
	wait_probe
	local q='' t=''
	read -r q t <"$TMP/$key.probe" || true
	QUEUED[$key]=$q
	PROBE[$key]=$t
	RPS[$key]=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
	p50=$(awk '$1 == "50%" { print $2 }' "$out")
	p99=$(awk '$1 == "99%" { print $2 }' "$out")
	REQS[$key]=$(awk '/requests in/ { print $1 }' "$out")
	# "Socket errors: connect 0, read 19279, write 0, timeout 0" - wrk counts a
	# server closing a keep-alive connection (uWSGI --http-socket) as a read
	# error, so this is informational.
	ERRS[$key]=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out")
	ERRS[$key]=${ERRS[$key]:-0}
	NON2XX[$key]=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
	NON2XX[$key]=${NON2XX[$key]:-0}
	[[ -n ${RPS[$key]} && -n $p50 && -n $p99 ]] || {
		cat "$out" >&2
		die "cannot parse wrk output for ${NAME[$id]} ($mode)"
	}
	P50[$key]=$(to_ms "$p50")
	P99[$key]=$(to_ms "$p99")
	printf '   %-28s %-6s %9s req/s  p50 %7s ms  p99 %7s ms  socket errors %s  non-2xx %s  probe %s ms, %s queued\n' \
		"${NAME[$id]}" "$mode" "${RPS[$key]}" "${P50[$key]}" "${P99[$key]}" "${ERRS[$key]}" "${NON2XX[$key]}" \
		"${PROBE[$key]:-?}" "${QUEUED[$key]:-?}"
	starved "$key" && echo "http.sh: note: ${NAME[$id]} ($mode) starves clients: a 51st request took ${PROBE[$key]} ms; its p99 only covers the connections it served" >&2
	[[ ${NON2XX[$key]} == 0 ]] || echo "http.sh: warning: ${NAME[$id]} ($mode): ${NON2XX[$key]} non-2xx responses" >&2
}

# ---- the servers ------------------------------------------------------------

NAME[mf_hs]="mulefarm --http-socket"
NAME[mf_http]="mulefarm --http"
NAME[uw_hs]="uWSGI --http-socket"
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

# Everything shares the same CPUs: anything else running skews the numbers.
idle_pct() { # percentage of CPU time idle over one second
	local a b
	a=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
		t = y[2] - x[2]; printf "%.0f", (t > 0 ? 100 * (y[1] - x[1]) / t : 100) }'
}
IDLE=$(idle_pct)
if ((IDLE < 85)); then
	echo "http.sh: warning: the CPUs are only ${IDLE}% idle before the benchmark: other load will skew the numbers" >&2
fi

if [[ $SKIP_MULEFARM == 1 ]]; then
	echo "== ${NAME[mf_hs]}: skipped"
else
	# Scenarios 1, 2, 3.
	run_server mf_hs INT "ka close" "$BIN" --http-socket 127.0.0.1:@PORT@ "${MF_ARGS[@]}"
fi
# Scenario 1 (keep-alive; uWSGI closes every connection) and 2 (close).
run_server uw_hs INT "ka close" uwsgi --plugin python3 --http-socket 127.0.0.1:@PORT@ "${UW_ARGS[@]}"
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
# A throw-away prefix holds its config, pid, logs and temp paths, so it runs
# as root or not; as root its workers run as the invoking user too (the
# `user` directive is only meaningful, and only allowed without a warning,
# for root).
NGX=$TMP/nginx
mkdir -p "$NGX"
ngx_conf() { # ngx_conf PORT
	local user='' temps='' t
	if [[ $(id -u) -eq 0 ]]; then user="user $(id -un) $(id -gn);"; fi
	for t in client_body proxy fastcgi uwsgi scgi; do
		# Only the modules this nginx has (nginx-light may lack some).
		case $t in client_body) ;; *) nginx -V 2>&1 | grep -q -- "--without-http_${t}_module" && continue ;; esac
		temps="$temps    ${t}_temp_path $NGX/$t;"$'\n'
	done
	cat <<EOF
$user
worker_processes $WORKERS;
daemon off;
master_process on;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
$temps
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
NGX_E=()
# -e (nginx >= 1.19.5): the error log used before the config is read.
nginx -h 2>&1 | grep -q -- '-e filename' && NGX_E=(-e "$NGX/error.log")
start_server ngx "$NGX_PORT" nginx "${NGX_E[@]}" -p "$NGX" -c "$NGX/nginx.conf"
load ngx close "$NGX_PORT"
load ngx ka "$NGX_PORT"
measure_mem ngx
stop_server TERM

# ---- report -----------------------------------------------------------------

ratio() { # ratio A B -> A/B with 2 decimals, or empty
	[[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
	return 0
}

ROWS=()  # table lines
CMP=()   # machine-readable cmp records
MISSES=0
SKIPS=0

# row SCENARIO KEY VS_KEY TARGET P99_KEY
#   KEY/VS_KEY: ID.MODE; TARGET: ">=1.5" or "-" (information);
#   P99_KEY: the uWSGI run whose p99 KEY's must not exceed, or "-".
row() {
	local sc=$1 key=$2 vs=$3 target=$4 pk=$5 id=${2%.*} vid=${3%.*} r p99ok=- res
	local rps=${RPS[$key]:-} p50=${P50[$key]:-} p99=${P99[$key]:-} vrps=${RPS[$vs]:-}
	r=$(ratio "$rps" "$vrps")
	if [[ -z $rps ]]; then
		res=SKIP
		SKIPS=$((SKIPS + 1))
	elif [[ $target == - ]]; then
		res=info
	else
		res=PASS
		awk -v r="${r:-0}" -v t="${target#>=}" 'BEGIN { exit !(r + 0 >= t + 0) }' || res=MISS
		if starved "$key"; then
			p99ok="starves-clients"
			res=MISS
		elif [[ $pk != - ]] && starved "$pk"; then
			# The uWSGI run left most connections unserved: its p99 is not
			# comparable (see start_probe), so it does not decide.
			p99ok="n/a:uWSGI-starves(${P99[$pk]})"
		elif [[ $pk != - ]]; then
			if awk -v a="$p99" -v b="${P99[$pk]:-}" 'BEGIN { exit !(b != "" && a + 0 <= b + 0) }'; then
				p99ok="ok(${P99[$pk]})"
			else
				p99ok="WORSE(${P99[$pk]:-?})"
				res=MISS
			fi
		fi
		[[ $res == MISS ]] && MISSES=$((MISSES + 1))
	fi
	ROWS+=("$(printf '%-12s %-23s %-5s %8s %7s %7s %8s  %-22s %-5s %8s %6s %6s  %-24s %s' \
		"$sc" "${NAME[$id]}" "${key#*.}" "${rps:-skipped}" "${p50:--}" "${p99:--}" "${PROBE[$key]:--}" \
		"${NAME[$vid]}" "${vs#*.}" "${vrps:--}" "${r:--}" "$target" "$p99ok" "$res")")
	CMP+=("cmp $sc $key ${rps:--} ${p50:--} ${p99:--} $vs ${vrps:--} ${r:--} $target ${P99[$pk]:--} $res")
}

# mem_row SCENARIO ID VS_ID TARGET
mem_row() {
	local sc=$1 id=$2 vid=$3 target=$4 a=${MEM_AVG[$2]:-} b=${MEM_AVG[$3]:-} r res
	r=$(ratio "$a" "$b")
	if [[ -z $a ]]; then
		res=SKIP
		SKIPS=$((SKIPS + 1))
	elif [[ $target == - ]]; then
		res=info
	else
		res=PASS
		awk -v r="${r:-999}" -v t="${target#<=}" 'BEGIN { exit !(r + 0 <= t + 0) }' || res=MISS
		[[ $res == MISS ]] && MISSES=$((MISSES + 1))
	fi
	ROWS+=("$(printf '%-12s %-23s %-5s %8s %-24s  %-22s %-5s %8s %6s %6s  %-24s %s' \
		"$sc" "${NAME[$id]}" "" "${a:-skipped}" " KiB PSS per worker" "${NAME[$vid]}" "" "${b:--}" "${r:--}" "$target" "" "$res")")
	CMP+=("memcmp $sc $id ${a:--} $vid ${b:--} ${r:--} $target $res")
}

row 1-keepalive mf_hs.ka uw_hs.ka ">=1.5" uw_hs.ka
row 2-close mf_hs.close ngx.close ">=0.95" uw_hs.close
row 2-close uw_hs.close ngx.close - -
row 3-keepalive mf_hs.ka uw_h11.ka ">=1.2" uw_h11.ka
row 4-http mf_http.ka uw_http.ka ">=2.5" uw_http.ka
row 5-gunicorn gu.ka uw_hs.ka - -
row 5-gunicorn gu.close uw_hs.close - -
row ceiling ngx.ka ngx.close - -
mem_row memory mf_hs uw_hs "<=1.0"
mem_row memory-http mf_http uw_http -

echo
echo "Results: wrk -t1 -c$CONNS -d${DURATION}s, $WORKERS workers, $(nproc) CPUs (${IDLE}% idle before); req/s, latency in ms; ratio = req/s / compared req/s"
printf '%-12s %-23s %-5s %8s %7s %7s %8s  %-22s %-5s %8s %6s %6s  %-24s %s\n' \
	scenario server mode "req/s" p50 p99 probe "compared with" mode "req/s" ratio target "p99 vs uWSGI" result
for r in "${ROWS[@]}"; do echo "$r"; done
echo "probe: ms for one extra (51st) client's request half-way through the run; >= $((DURATION * 250)) (a quarter of the"
echo "run) or timeout: the server starves clients and its wrk latencies only cover the connections it served."
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
	echo "#      uw_h11 uWSGI --http11-socket, uw_http uWSGI --http --http-keepalive, gu gunicorn sync, ngx nginx"
	for k in $(printf '%s\n' "${!RPS[@]}" | sort); do
		echo "run $k ${RPS[$k]} ${P50[$k]} ${P99[$k]} ${REQS[$k]:--} ${ERRS[$k]} ${NON2XX[$k]} ${PROBE[$k]:--} ${QUEUED[$k]:--}"
	done
	for k in $(printf '%s\n' "${!MEM_N[@]}" | sort); do
		echo "mem $k ${MEM_N[$k]} ${MEM_AVG[$k]:--} ${MEM_LIST[$k]}"
	done
	printf '%s\n' "${CMP[@]}"
	echo "result misses=$MISSES skips=$SKIPS"
} >"$OUT"
echo "http.sh: summary written to $OUT"

if [[ $STRICT == 1 ]] && ((MISSES > 0)); then exit 1; fi
exit 0
