# shellcheck shell=bash
# Helpers shared by the side-by-side benchmarks (http.sh, uwsgi.sh, static.sh).
#
# Source it after `set -euo pipefail`, with these set by the caller:
#   SCRIPT    name used in messages (e.g. http.sh)
#   DURATION WARMUP CONNS WORKERS    load parameters
# It sets ROOT, PY and TMP (a temp directory removed on exit) and installs
# the EXIT/INT/TERM/HUP traps that kill every server still running.
#
# Globals the functions use:
#   SRV_PID SRV_LOG   the server being measured (own process group: setsid)
#   BG_PIDS           more process groups to kill on exit (e.g. an nginx in front)
#   NAME[id]          display name of a server
#   READY_VIA_PROXY   1: during start_server, 502/503/504 mean "not up yet"
#                     (the server sits behind a proxy that is already up)
#   CPU_ACCOUNT       1: load also records the CPU time the server's process
#                     group used per request (CPU_US[ID.MODE], microseconds)

# shellcheck disable=SC2034 # used by the scripts that source this file
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=/usr/bin/python3 # the system Python, whatever pyenv & co. put on PATH
SCRIPT=${SCRIPT:-$(basename "$0")}
READY_VIA_PROXY=${READY_VIA_PROXY:-0}
CPU_ACCOUNT=${CPU_ACCOUNT:-0}

abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac; }

die() {
	echo "$SCRIPT: $*" >&2
	exit 1
}
need() { # need NAME PATH-OR-COMMAND
	command -v "$2" >/dev/null 2>&1 || [[ -x $2 ]] ||
		die "$1 not found ($2). Install the benchmark dependencies: scripts/deps.sh bench"
}

# need_mulefarm [OPTION]: $BIN is runnable (and its --help lists OPTION),
# unless SKIP_MULEFARM=1. Not grep -q: it stops reading early, and pipefail
# would take mulefarm's SIGPIPE for a failure.
need_mulefarm() {
	if [[ ${SKIP_MULEFARM:-0} == 1 ]]; then
		echo "$SCRIPT: SKIP_MULEFARM=1: mulefarm is skipped"
	elif [[ ! -x $BIN ]]; then
		die "mulefarm binary $BIN not found: build it with 'make' (or set MULEFARM_BIN, or SKIP_MULEFARM=1)"
	elif [[ -n ${1:-} ]] && ! "$BIN" --help 2>&1 | grep -- "$1" >/dev/null; then
		die "$BIN has no $1 option"
	fi
}

# need_uwsgi_plugins P...: Debian's uwsgi is modular (python3 comes from
# uwsgi-plugin-python3, the --http router is the http plugin of uwsgi-core);
# a plugin that fails to load is only a message, the exit status is 0.
need_uwsgi_plugins() {
	local p out
	for p in "$@"; do
		out=$(uwsgi --plugin "$p" --version 2>&1 || true)
		[[ $out != *"UNABLE to load"* ]] ||
			die "uWSGI plugin '$p' cannot be loaded. Install the benchmark dependencies: scripts/deps.sh bench"
	done
}

check_load_params() {
	[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "DURATION must be a positive integer (seconds)"
	[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be an integer (seconds)"
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mulefarm-bench.XXXXXX")
SRV_PID= # process (and process group: servers run under setsid) being measured
SRV_LOG=
PROBE_PID=
BG_PIDS=()

# Kill whatever is left of the current server, whatever happened.
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	local rc=$? p
	if [[ -n $PROBE_PID ]]; then
		kill -KILL -- "-$PROBE_PID" 2>/dev/null || true
	fi
	if [[ -n $SRV_PID ]]; then
		kill -KILL -- "-$SRV_PID" 2>/dev/null || true
		wait "$SRV_PID" 2>/dev/null || true
		SRV_PID=
	fi
	for p in "${BG_PIDS[@]}"; do
		[[ -n $p ]] || continue
		kill -KILL -- "-$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
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
	local name=$1 port=$2 i body code
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
		if [[ $READY_VIA_PROXY == 1 ]]; then
			# The proxy answers 502 until the server behind it listens.
			code=$(curl -s -o "$TMP/ready.body" -w '%{http_code}' --max-time 1 http://127.0.0.1:"$port"/ 2>/dev/null) || code=
			case $code in '' | 000 | 502 | 503 | 504)
				sleep 0.1
				continue
				;;
			esac
			body=$(cat "$TMP/ready.body")
		elif ! body=$(curl -s --max-time 1 http://127.0.0.1:"$port"/ 2>/dev/null) || [[ -z $body ]]; then
			sleep 0.1
			continue
		fi
		[[ $body == "Hello, World!" ]] || die "$name answered '$body' instead of 'Hello, World!'"
		return 0
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
		echo "$SCRIPT: warning: pid $SRV_PID ignored SIG$sig for 10s, killing it" >&2
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
		echo "$SCRIPT: warning: leftover processes after stop: ${left//$'\n'/ } - killing them" >&2
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
	((n == WORKERS)) || echo "$SCRIPT: warning: $id: found $n worker processes, expected $WORKERS" >&2
	printf '   %-28s workers %s, avg PSS %s KiB (pid:KiB %s)\n' "${NAME[$id]}" "$n" "${MEM_AVG[$id]:-?}" "${MEM_LIST[$id]}"
}

# ---- load -------------------------------------------------------------------

declare -A RPS P50 P99 REQS ERRS NON2XX NAME PROBE QUEUED CPU_US

# group_cpu_ticks PGID: user + system clock ticks of the group's live processes.
group_cpu_ticks() {
	local p u s sum=0
	for p in $(pids_where 3 "$1"); do
		u=$(proc_field "$p" 12) || continue
		s=$(proc_field "$p" 13) || continue
		sum=$((sum + u + s))
	done
	echo "$sum"
}

to_ms() { # wrk duration (812.00us, 5.90ms, 1.02s, 1.50m) -> milliseconds
	awk -v d="$1" 'BEGIN {
		v = d + 0; u = d; sub(/^[0-9.]+/, "", u)
		if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
		printf "%.2f", v }'
}

# start_probe PORT FILE [PATH]: in DURATION/2 s, write "<accept queue> <probe ms>"
# to FILE; the probe ms is "timeout" if no answer before wrk ends + 2s.
start_probe() {
	local half
	half=$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')
	# Own process group, so cleanup can kill it with its children.
	# shellcheck disable=SC2016 # expanded by the inner bash
	setsid bash -c '
		sleep "$1"
		q=$(ss -Hltn "sport = :$2" 2>/dev/null | awk "{ print \$2; exit }")
		t=$(curl -s -o /dev/null -w "%{http_code} %{time_total}" --max-time "$3" "http://127.0.0.1:$2$5") || t=
		case $t in 200\ *) t=$(awk -v t="${t#* }" "BEGIN { printf \"%.1f\", t * 1000 }") ;; *) t=timeout ;; esac
		echo "${q:--} $t" >"$4"' probe "$half" "$1" "$(awk -v d="$DURATION" 'BEGIN { print d / 2 + 2 }')" "$2" "${3:-/}" &
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

# load ID MODE PORT [PATH]: warm up, then measure GET PATH (default /); MODE is
# close (Connection: close on every request) or anything else for keep-alive
# (wrk's default): ka, or a label such as 4k. The results go under ID.MODE.
load() {
	local id=$1 mode=$2 port=$3 path=${4:-/} key=$1.$2 out hdr=() p50 p99 url
	[[ $mode == close ]] && hdr=(-H "Connection: close")
	url="http://127.0.0.1:$port$path"
	out=$TMP/$key.wrk
	if ((WARMUP > 0)); then
		wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${hdr[@]}" "$url" >/dev/null ||
			die "wrk warm-up failed against ${NAME[$id]}"
	fi
	# Starvation probe: wrk's latencies only cover requests that completed, so
	# a server that serves a few connections and leaves the rest waiting in
	# its accept queue (uWSGI --http11-socket: each worker holds one
	# keep-alive connection; 48 of wrk's 50 never get an answer) shows a
	# great p99. Half-way through, note the listen queue (ss Recv-Q) and time
	# one more request from a 51st client.
	start_probe "$port" "$TMP/$key.probe" "$path"
	local cpu0=''
	[[ $CPU_ACCOUNT != 1 || -z $SRV_PID ]] || cpu0=$(group_cpu_ticks "$SRV_PID")
	wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${hdr[@]}" "$url" >"$out" ||
		{ cat "$out" >&2; die "wrk failed against ${NAME[$id]}"; }
	[[ -z $cpu0 ]] || CPU_US[$key]=$(($(group_cpu_ticks "$SRV_PID") - cpu0))
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
	local cpu=''
	if [[ -n ${CPU_US[$key]:-} ]]; then
		# ticks -> microseconds per request (the probe's one request is noise)
		CPU_US[$key]=$(awk -v t="${CPU_US[$key]}" -v hz="$(getconf CLK_TCK)" -v n="${REQS[$key]}" \
			'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n }')
		cpu="  server CPU ${CPU_US[$key]} us/req"
	fi
	printf '   %-28s %-6s %9s req/s  p50 %7s ms  p99 %7s ms  socket errors %s  non-2xx %s  probe %s ms, %s queued%s\n' \
		"${NAME[$id]}" "$mode" "${RPS[$key]}" "${P50[$key]}" "${P99[$key]}" "${ERRS[$key]}" "${NON2XX[$key]}" \
		"${PROBE[$key]:-?}" "${QUEUED[$key]:-?}" "$cpu"
	starved "$key" && echo "$SCRIPT: note: ${NAME[$id]} ($mode) starves clients: a 51st request took ${PROBE[$key]} ms; its p99 only covers the connections it served" >&2
	# A server that closes after each response without saying so (uWSGI
	# --http-socket sends no Connection: close) makes wrk write its next
	# request into a closed connection, fail, and reconnect: nearly every
	# request then counts a socket error, and the failed attempts are in no
	# latency sample.
	((ERRS[$key] * 10 < REQS[$key] * 9)) ||
		echo "$SCRIPT: note: ${NAME[$id]} ($mode): ${ERRS[$key]} socket errors in ${REQS[$key]} requests (a server closing without Connection: close does this); wrk's failed attempts are in no latency sample" >&2
	[[ ${NON2XX[$key]} == 0 ]] || echo "$SCRIPT: warning: ${NAME[$id]} ($mode): ${NON2XX[$key]} non-2xx responses" >&2
}

# copy_run DEST SRC: make run DEST a copy of run SRC (all its figures).
copy_run() {
	local dest=$1 src=$2
	RPS[$dest]=${RPS[$src]}
	P50[$dest]=${P50[$src]}
	P99[$dest]=${P99[$src]}
	REQS[$dest]=${REQS[$src]:-}
	ERRS[$dest]=${ERRS[$src]}
	NON2XX[$dest]=${NON2XX[$src]}
	PROBE[$dest]=${PROBE[$src]:-}
	QUEUED[$dest]=${QUEUED[$src]:-}
	CPU_US[$dest]=${CPU_US[$src]:-}
}

# best_of KEY CANDIDATE...: make KEY the candidate run with the most req/s
# (for ROUNDS > 1: each server runs several times, alternating with the
# others, and each keeps its best round - background load then hurts every
# server alike instead of whichever happened to run during it).
best_of() {
	local dest=$1 best='' k
	shift
	for k in "$@"; do
		[[ -n ${RPS[$k]:-} ]] || continue
		if [[ -z $best ]] || ((RPS[$k] > RPS[$best])); then best=$k; fi
	done
	[[ -z $best ]] || copy_run "$dest" "$best"
}

# median_of KEY CANDIDATE...: make KEY the candidate run with the median
# req/s (the lower middle one of an even count); its CPU per request is the
# median of the candidates' own, taken apart from the req/s.
median_of() {
	local dest=$1 k mid
	shift
	mid=$(for k in "$@"; do [[ -z ${RPS[$k]:-} ]] || echo "${RPS[$k]} $k"; done |
		sort -n | awk '{ k[NR] = $2 } END { if (NR) print k[int((NR + 1) / 2)] }')
	[[ -n $mid ]] || return 0
	copy_run "$dest" "$mid"
	local cpus=()
	for k in "$@"; do [[ -z ${CPU_US[$k]:-} ]] || cpus+=("${CPU_US[$k]}"); done
	CPU_US[$dest]=$(median "${cpus[@]}")
}

# median NUMBER...: the middle value (the lower middle one of an even count).
median() {
	(($# > 0)) || return 0
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# check_rounds: ROUNDS must be a positive integer.
check_rounds() {
	[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
}

# Everything shares the same CPUs: anything else running skews the numbers.
idle_pct() { # percentage of CPU time idle over one second
	local a b
	a=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
		t = y[2] - x[2]; printf "%.0f", (t > 0 ? 100 * (y[1] - x[1]) / t : 100) }'
}

# check_idle: set IDLE, warn when the machine is busy.
check_idle() {
	IDLE=$(idle_pct)
	if ((IDLE < 85)); then
		echo "$SCRIPT: warning: the CPUs are only ${IDLE}% idle before the benchmark: other load will skew the numbers" >&2
	fi
}

# ---- nginx ------------------------------------------------------------------

# ngx_user: the `user` line. A throw-away prefix holds nginx's config, pid,
# logs and temp paths, so it runs as root or not; as root its workers run as
# the invoking user too (the `user` directive is only meaningful, and only
# allowed without a warning, for root).
ngx_user() {
	if [[ $(id -u) -eq 0 ]]; then echo "user $(id -un) $(id -gn);"; fi
}

# ngx_temps DIR: temp path lines under DIR, for the modules this nginx has
# (nginx-light may lack some).
ngx_temps() {
	local t
	for t in client_body proxy fastcgi uwsgi scgi; do
		case $t in client_body) ;; *) nginx -V 2>&1 | grep -q -- "--without-http_${t}_module" && continue ;; esac
		printf '    %s_temp_path %s;\n' "$t" "$1/$t"
	done
}

# ngx_e_opt DIR: sets NGX_E to nginx's -e (the error log used before the
# config is read; nginx >= 1.19.5), if it has it.
# shellcheck disable=SC2034 # NGX_E is used by the caller
ngx_e_opt() {
	NGX_E=()
	if nginx -h 2>&1 | grep -q -- '-e filename'; then NGX_E=(-e "$1/error.log"); fi
}

# ---- report -----------------------------------------------------------------

ratio() { # ratio A B -> A/B with 2 decimals, or empty
	[[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
	return 0
}

ROWS=() # table lines
CMP=()  # machine-readable cmp records
MISSES=0
SKIPS=0

# row SCENARIO KEY VS_KEY TARGET P99_KEY
#   KEY/VS_KEY: ID.MODE; TARGET: ">=1.5" or "-" (information);
#   P99_KEY: the uWSGI run whose p99 KEY's must not exceed, or "-"; with a
#   leading "~" the two p99 are shown but do not decide (http.sh decides
#   latency at an equal offered load instead).
row() {
	local sc=$1 key=$2 vs=$3 target=$4 pk=$5 id=${2%.*} vid=${3%.*} r p99ok=- res p99info=0
	if [[ $pk == "~"* ]]; then
		pk=${pk#"~"}
		p99info=1
	fi
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
			elif ((p99info)); then
				p99ok="higher(${P99[$pk]:-?}),info"
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

# cpu_row SCENARIO KEY VS_KEY: server CPU per request, for information;
# ratio = VS's us/req / KEY's (above 1: KEY needs less CPU per request).
cpu_row() {
	local sc=$1 key=$2 vs=$3 a=${CPU_US[$2]:-} b=${CPU_US[$3]:-} r res=info
	r=$(ratio "$b" "$a")
	if [[ -z $a ]]; then
		res=SKIP
		SKIPS=$((SKIPS + 1))
	fi
	ROWS+=("$(printf '%-12s %-23s %-5s %8s %-24s  %-22s %-5s %8s %6s %6s  %-24s %s' \
		"$sc" "${NAME[${key%.*}]}" "${key#*.}" "${a:-skipped}" " us CPU/req (inverse)" "${NAME[${vs%.*}]}" "${vs#*.}" \
		"${b:--}" "${r:--}" - "" "$res")")
	CMP+=("cpucmp $sc $key ${a:--} $vs ${b:--} ${r:--} $res")
}

# print_table: the rows, under a header line.
print_table() {
	printf '%-12s %-23s %-5s %8s %7s %7s %8s  %-22s %-5s %8s %6s %6s  %-24s %s\n' \
		scenario server mode "req/s" p50 p99 probe "compared with" mode "req/s" ratio target "p99 vs uWSGI" result
	local r
	for r in "${ROWS[@]}"; do echo "$r"; done
	echo "probe: ms for one extra (51st) client's request half-way through the run; >= $((DURATION * 250)) (a quarter of the"
	echo "run) or timeout: the server starves clients and its wrk latencies only cover the connections it served."
}

# write_runs: the run/mem records of the machine-readable summary.
write_runs() {
	local k
	for k in $(printf '%s\n' "${!RPS[@]}" | sort); do
		echo "run $k ${RPS[$k]} ${P50[$k]} ${P99[$k]} ${REQS[$k]:--} ${ERRS[$k]} ${NON2XX[$k]} ${PROBE[$k]:--} ${QUEUED[$k]:--}"
	done
	for k in $(printf '%s\n' "${!MEM_N[@]}" | sort); do
		echo "mem $k ${MEM_N[$k]} ${MEM_AVG[$k]:--} ${MEM_LIST[$k]}"
	done
	for k in $(printf '%s\n' "${!CPU_US[@]}" | sort); do
		echo "cpu $k ${CPU_US[$k]:--}"
	done
}

# ---- p99 at an equal offered load (tests/bench/httplat) -----------------------
# wrk is a closed loop, so the faster server is also sent more requests and
# two servers' wrk p99 are taken at different loads. httplat offers one
# fixed rate to both; a request's latency runs from when it was due.

# lat_setup: LAT (the client), LAT_ROUNDS and LAT_DURATION, checked.
lat_setup() {
	declare -gA LAT_P50S=() LAT_P99S=() LAT_BAD=()
	LAT=$(abspath "${HTTPLAT_BIN:-$ROOT/build/bench/httplat}")
	LAT_ROUNDS=${LAT_ROUNDS:-6}
	LAT_DURATION=${LAT_DURATION:-5}
	[[ $LAT_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "LAT_ROUNDS must be a positive integer"
	[[ $LAT_DURATION =~ ^[1-9][0-9]*$ ]] || die "LAT_DURATION must be a positive integer"
}

# lat_rate VAR KEY: the offered load for an equal-load run: $VAR when set,
# else 60% of RPS[KEY] (a wrk rate, usually uWSGI's: below both servers'
# capacity) to two significant digits.
lat_rate() {
	local rate=${!1:-$(awk -v r="${RPS[$2]:-0}" 'BEGIN {
		r *= 0.6; m = 1; while (r >= 100 * m) m *= 10; printf "%d", int(r / m) * m }')}
	[[ $rate =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer (the $2 run gave no rate to start from)"
	echo "$rate"
}

# lat_load ID MODE PORT RATE [PATH]: one httplat run offering RATE req/s of
# GET PATH (default /), keep-alive unless MODE ends in "close" (a new
# connection for each request); appends its p99 to LAT_P99S[ID.MODE] (and
# p50 to LAT_P50S).
lat_load() {
	local id=$1 mode=$2 port=$3 rate=$4 path=${5:-/} key=$1.$2 out=$TMP/$1.$2.lat opt=() k v
	[[ $mode == *close ]] && opt=(-C)
	"$LAT" -c"$CONNS" -r"$rate" -d"$LAT_DURATION" -w1 "${opt[@]}" 127.0.0.1:"$port" "$path" >"$out" ||
		{ cat "$out" >&2; die "httplat failed against ${NAME[$id]}"; }
	declare -A f=()
	while read -r k v; do f[$k]=$v; done <"$out"
	[[ -n ${f[p99]:-} ]] || { cat "$out" >&2; die "cannot parse httplat output for ${NAME[$id]} ($mode)"; }
	printf '   %-28s %-6s %6s req/s offered, %6s served  p50 %7s ms  p99 %7s ms  p99.9 %7s ms  errors %s  unsent %s  connections %s  retries %s\n' \
		"${NAME[$id]}" "$mode" "$rate" "${f[rate]}" "${f[p50]}" "${f[p99]}" "${f[p999]}" "${f[errors]}" \
		"${f[unsent]}" "${f[connects]}" "${f[retries]}"
	LAT_P50S[$key]="${LAT_P50S[$key]:-} ${f[p50]}"
	LAT_P99S[$key]="${LAT_P99S[$key]:-} ${f[p99]}"
	LAT_BAD[$key]=$((${LAT_BAD[$key]:-0} + f[errors] + f[unsent]))
}

# lat_row SCENARIO KEY VS_KEY RATE: at the offered load RATE, KEY's median
# p99 must not exceed VS_KEY's, and KEY must answer every request it was
# offered.
lat_row() {
	local sc=$1 key=$2 vs=$3 rate=$4 a b p50 vp50 res=PASS note verdict
	# shellcheck disable=SC2086 # the lists are space-separated numbers
	{
		a=$(median ${LAT_P99S[$key]:-})
		b=$(median ${LAT_P99S[$vs]:-})
		p50=$(median ${LAT_P50S[$key]:-})
		vp50=$(median ${LAT_P50S[$vs]:-})
	}
	verdict=-
	if [[ -z $a ]]; then
		res=SKIP
		SKIPS=$((SKIPS + 1))
	else
		verdict="ok($b)"
		awk -v a="$a" -v b="$b" 'BEGIN { exit !(b != "" && a + 0 <= b + 0) }' ||
			{ verdict="WORSE(${b:-?})" && res=MISS; }
		((${LAT_BAD[$key]:-0} == 0)) || { verdict="${LAT_BAD[$key]}-unanswered" && res=MISS; }
		[[ $res == MISS ]] && MISSES=$((MISSES + 1))
	fi
	note="p99 of each round:${LAT_P99S[$key]:- -} vs${LAT_P99S[$vs]:- -}"
	ROWS+=("$(printf '%-12s %-23s %-5s %8s %7s %7s %8s  %-22s %-5s %8s %6s %6s  %-24s %s  (%s)' \
		"$sc" "${NAME[${key%.*}]}" "${key#*.}" "$rate" "${p50:--}" "${a:--}" - "${NAME[${vs%.*}]}" "${vs#*.}" \
		"$rate" - "p99<=" "$verdict" "$res" "$note")")
	CMP+=("latcmp $sc $key $rate ${p50:--} ${a:--} $vs ${vp50:--} ${b:--} $res")
}

# lat_ready WHAT: true when the equal-load runs can go (httplat is built and
# mulefarm is measured); otherwise says why WHAT is skipped.
lat_ready() {
	if [[ ! -x $LAT ]]; then
		echo "$SCRIPT: warning: $LAT not built (make bench builds it): $1 skipped" >&2
	elif [[ $SKIP_MULEFARM == 1 ]]; then
		echo "== $1: skipped (SKIP_MULEFARM)"
	else
		return 0
	fi
	return 1
}

# lat_servers MF_ID UW_ID: mulefarm (BIN, MF_ARGS) and uWSGI (UW_ARGS) with
# --http-socket on free ports, both up at once (an idle one costs nothing);
# their ports are LAT_PORT[MF_ID] and LAT_PORT[UW_ID]. lat_servers_stop
# stops both.
lat_servers() {
	local mf=$1 uw=$2
	declare -gA LAT_PORT=()
	LAT_PORT[$mf]=$(free_port)
	start_server "$mf" "${LAT_PORT[$mf]}" "$BIN" --http-socket 127.0.0.1:"${LAT_PORT[$mf]}" "${MF_ARGS[@]}"
	LAT_MF_PID=$SRV_PID
	BG_PIDS+=("$LAT_MF_PID")
	LAT_PORT[$uw]=$(free_port)
	start_server "$uw" "${LAT_PORT[$uw]}" uwsgi --plugin python3 --http-socket 127.0.0.1:"${LAT_PORT[$uw]}" "${UW_ARGS[@]}"
}

# tcp_cc: the kernel's TCP congestion control for new connections. BBR
# paces what it sends, so a large response on a reused connection can take
# longer than on a new one (see docs/benchmarks.md, static files).
tcp_cc() {
	cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown
}

lat_servers_stop() {
	stop_server INT
	SRV_PID=$LAT_MF_PID
	stop_server INT
	BG_PIDS=("${BG_PIDS[@]/#$LAT_MF_PID/}") # gone: cleanup must not kill a reused pid
}

# lat_rounds MF_ID UW_ID MODE RATE [PATH]: LAT_ROUNDS lat_load runs of each
# server, alternating, the first one changing every round, so that both
# meet the same moments of a noisy machine.
lat_rounds() {
	local mf=$1 uw=$2 mode=$3 rate=$4 path=${5:-/} round id order
	for ((round = 1; round <= LAT_ROUNDS; round++)); do
		order=("$mf" "$uw")
		((round % 2)) || order=("$uw" "$mf")
		for id in "${order[@]}"; do lat_load "$id" "$mode" "${LAT_PORT[$id]}" "$rate" "$path"; done
	done
}
