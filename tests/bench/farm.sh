#!/usr/bin/env bash
# Farm messages, mulefarm vs Debian's uWSGI in one run (issue 6).
#
# Each server runs the same app and mule code (tests/bench/farm/app.py and
# mule.py, only the `uwsgi` module's API): 1 worker x 1 thread, and 2 mules
# in the farm "bench", default queue options, logging off. The mules take
# messages with farm_get_msg(), as Galaxy's job handlers do.
#
#   burst    one sender (the worker) calls farm_msg("bench", "b<i>") N times
#            as fast as it can; the mules count what they receive.
#            delivered: messages the mules received (uWSGI drops silently
#            when the farm's socket buffer is full: ~16% lost is expected;
#            mulefarm makes the sender wait instead: 100%).
#            rate: delivered messages / s, from the first message received
#            to the last (wall clock, across both mules): mulefarm >= uWSGI.
#   rtt      RTT_N round trips, one at a time (after RTT_WARM warm-up ones):
#            the worker sends farm_msg("bench", "r<seq> <socket path>"), a
#            mule replies on the worker's unix datagram socket, the worker
#            times send -> reply. p50 and p99: mulefarm <= uWSGI.
# Ratios are mulefarm / uWSGI. The servers alternate for ROUNDS rounds;
# the table shows each one's median rate, p50 and p99 over its rounds
# (round-trip times on a small machine swing by tens of percent from one
# run to the next with where the scheduler puts the 3 processes), and its
# lowest delivered count.
#
# Environment:
#   N=200000           burst size
#   RTT_N=2000         measured round trips; RTT_WARM=200 before them
#   ROUNDS=3           rounds per server, alternating
#   MULEFARM_BIN=...   mulefarm binary (default build/mulefarm)
#   OUT=...            machine-readable summary (default build/bench/farm.txt)
#   STRICT=1           exit 1 if a target is missed (default: report only)
#
# Needs: uwsgi + uwsgi-plugin-python3 (scripts/deps.sh bench), curl.
set -euo pipefail

SCRIPT=farm.sh
N=${N:-200000}
RTT_N=${RTT_N:-2000}
RTT_WARM=${RTT_WARM:-200}
ROUNDS=${ROUNDS:-3}
STRICT=${STRICT:-0}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BIN=$(abspath "${MULEFARM_BIN:-$ROOT/build/mulefarm}")
OUT=$(abspath "${OUT:-$ROOT/build/bench/farm.txt}")
APPDIR=$ROOT/tests/bench/farm

for v in N RTT_N RTT_WARM ROUNDS; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer"
done
need uwsgi uwsgi
need curl curl
need python3 "$PY"
need setsid setsid
need_uwsgi_plugins python3
[[ -x $BIN ]] || die "mulefarm binary $BIN not found: build it with 'make' (or set MULEFARM_BIN)"

declare -A DELIVERED RATE RTT50 RTT99 SEND_S

# settle DIR: waits until both mules wrote their counts and the total
# stayed the same for 1.5 s; prints "<count> <first> <last>".
settle() {
	"$PY" - "$1" <<'EOF'
import json, os, sys, time
d = sys.argv[1]
prev, deadline = None, time.time() + 300
while time.time() < deadline:
    cur = []
    for k in (1, 2):
        p = os.path.join(d, "mule-%d.json" % k)
        try:
            with open(p) as f:
                cur.append(json.load(f))
        except (OSError, ValueError):
            pass
    if len(cur) == 2:
        total = sum(c["count"] for c in cur)
        if prev == total:
            got = [c for c in cur if c["count"]]
            first = min((c["first"] for c in got), default=0)
            last = max((c["last"] for c in got), default=0)
            print(total, first, last)
            sys.exit(0)
        prev = total
    time.sleep(1.5)
sys.exit("the mules' counts did not settle")
EOF
}

# run_farm ID ROUND CMD...: start the server, time the round trips, then
# the burst; results in DELIVERED/RATE/RTT50/RTT99/SEND_S[ID.ROUND].
run_farm() {
	local id=$1 key=$1.$2 port dir i rtt n r count first last
	shift 2
	port=$(free_port)
	dir=$TMP/$key
	mkdir -p "$dir"
	echo "== ${NAME[$id]} (round ${key#*.} of $ROUNDS)"
	FARM_BENCH_DIR=$dir start_server "$key" "$port" "$@" --http-socket "127.0.0.1:$port"
	for ((i = 0; i < 200; i++)); do
		[[ -e $dir/ready-1 && -e $dir/ready-2 ]] && break
		sleep 0.1
	done
	[[ -e $dir/ready-1 && -e $dir/ready-2 ]] || die "${NAME[$id]}: the 2 mules did not start"
	rtt=$dir/rtt.txt
	curl -sf --max-time 300 "http://127.0.0.1:$port/rtt?n=$RTT_N&warm=$RTT_WARM" >"$rtt" ||
		die "${NAME[$id]}: round trips failed (see $SRV_LOG)"
	n=$(wc -l <"$rtt")
	((n == RTT_N)) || die "${NAME[$id]}: $n round trips measured, $RTT_N expected"
	RTT50[$key]=$(awk -v n="$n" 'NR == int((n * 50 + 99) / 100) { printf "%.1f", $1; exit }' "$rtt")
	RTT99[$key]=$(awk -v n="$n" 'NR == int((n * 99 + 99) / 100) { printf "%.1f", $1; exit }' "$rtt")
	r=$(curl -sf --max-time 900 "http://127.0.0.1:$port/burst?n=$N") ||
		die "${NAME[$id]}: the burst request failed (see $SRV_LOG)"
	SEND_S[$key]=${r#* }
	read -r count first last < <(settle "$dir") || die "${NAME[$id]}: no counts from the mules"
	DELIVERED[$key]=$count
	RATE[$key]=$(awk -v c="$count" -v a="$first" -v b="$last" 'BEGIN { if (b > a) printf "%.0f", c / (b - a) }')
	printf '   burst: %d sent in %.2f s, %d delivered (%.1f%%), %s msg/s first-to-last received\n' \
		"$N" "${SEND_S[$key]}" "$count" "$(awk -v c="$count" -v n="$N" 'BEGIN { print 100 * c / n }')" "${RATE[$key]:-?}"
	printf '   round trip worker -> mule -> worker: p50 %s us, p99 %s us (%d rounds)\n' "${RTT50[$key]}" "${RTT99[$key]}" "$n"
	stop_server INT
}

NAME[mf]="mulefarm"
NAME[uw]="uWSGI $(uwsgi --version 2>/dev/null || echo '?')"
# shellcheck disable=SC2054 # bench:1,2 is one argument
COMMON=(--master --processes 1 --threads 1 --wsgi-file "$APPDIR/app.py"
	--mule="$APPDIR/mule.py" --mule="$APPDIR/mule.py" --farm bench:1,2 --disable-logging
	--enable-threads) # the mules' count-writing thread (uWSGI needs it)

echo "$SCRIPT: burst of $N messages, $RTT_N round trips, 1 worker, 2-mule farm, $(nproc) CPUs"
check_idle
for ((r = 1; r <= ROUNDS; r++)); do
	run_farm mf "$r" "$BIN" "${COMMON[@]}"
	run_farm uw "$r" uwsgi --plugin python3 "${COMMON[@]}"
done

# agg ARRAY ID median|min: over the rounds of ID.
agg() {
	local -n arr=$1
	local r
	for ((r = 1; r <= ROUNDS; r++)); do echo "${arr[$2.$r]:-}"; done | sort -g | awk -v how="$3" '
		NF { v[++n] = $1 }
		END { if (!n) exit; if (how == "min") print v[1]; else print (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2) }'
}
for id in mf uw; do
	DELIVERED[$id]=$(agg DELIVERED "$id" min)
	RATE[$id]=$(agg RATE "$id" median)
	SEND_S[$id]=$(agg SEND_S "$id" median)
	RTT50[$id]=$(agg RTT50 "$id" median)
	RTT99[$id]=$(agg RTT99 "$id" median)
done

# ---- report -----------------------------------------------------------------

verdict() { # verdict VALUE OP TARGET -> PASS/MISS
	awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == ">=") ? (v + 0 >= t) : (v + 0 <= t); print (v != "" && ok) ? "PASS" : "MISS" }'
}
MISSES=0
R_RATE=$(ratio "${RATE[mf]:-}" "${RATE[uw]:-}")
R_P50=$(ratio "${RTT50[mf]}" "${RTT50[uw]}")
R_P99=$(ratio "${RTT99[mf]}" "${RTT99[uw]}")
V_DELIV=$([[ ${DELIVERED[mf]} == "$N" ]] && echo PASS || echo MISS)
V_RATE=$(verdict "$R_RATE" ">=" 1)
V_P50=$(verdict "$R_P50" "<=" 1)
V_P99=$(verdict "$R_P99" "<=" 1)
for v in "$V_DELIV" "$V_RATE" "$V_P50" "$V_P99"; do [[ $v == PASS ]] || MISSES=$((MISSES + 1)); done

echo
printf '%-22s %14s %14s %8s %8s  %s\n' measure mulefarm uWSGI ratio target result
printf '%-22s %14s %14s %8s %8s  %s\n' "delivered of $N" "${DELIVERED[mf]}" "${DELIVERED[uw]}" \
	"$(ratio "${DELIVERED[mf]}" "${DELIVERED[uw]}")" "=$N" "$V_DELIV"
printf '%-22s %14s %14s %8s %8s  %s\n' "delivered %" \
	"$(awk -v c="${DELIVERED[mf]}" -v n="$N" 'BEGIN { printf "%.1f", 100 * c / n }')" \
	"$(awk -v c="${DELIVERED[uw]}" -v n="$N" 'BEGIN { printf "%.1f", 100 * c / n }')" - - info
printf '%-22s %14s %14s %8s %8s  %s\n' "received msg/s" "${RATE[mf]:-?}" "${RATE[uw]:-?}" "${R_RATE:--}" ">=1" "$V_RATE"
printf '%-22s %14s %14s %8s %8s  %s\n' "sender seconds" "${SEND_S[mf]}" "${SEND_S[uw]}" \
	"$(ratio "${SEND_S[mf]}" "${SEND_S[uw]}")" - info
printf '%-22s %14s %14s %8s %8s  %s\n' "round trip p50 us" "${RTT50[mf]}" "${RTT50[uw]}" "${R_P50:--}" "<=1" "$V_P50"
printf '%-22s %14s %14s %8s %8s  %s\n' "round trip p99 us" "${RTT99[mf]}" "${RTT99[uw]}" "${R_P99:--}" "<=1" "$V_P99"
echo "median of $ROUNDS rounds (delivered: lowest); ratio = mulefarm / uWSGI; msg/s from the first message received to the last; CPUs ${IDLE}% idle before"
echo "$SCRIPT: $MISSES target(s) missed"

mkdir -p "$(dirname "$OUT")"
{
	echo "# mulefarm farm-message benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# burst $N, rtt $RTT_N (warm-up $RTT_WARM), rounds $ROUNDS, 1 worker, 2 mules, cpus $(nproc), cpu idle before ${IDLE}%"
	echo "# farm <id[.round]> <delivered> <received_msgs_per_s> <sender_s> <rtt_p50_us> <rtt_p99_us> (no round: lowest / medians)"
	for id in mf uw; do
		for ((r = 1; r <= ROUNDS; r++)); do
			echo "farm $id.$r ${DELIVERED[$id.$r]} ${RATE[$id.$r]:--} ${SEND_S[$id.$r]} ${RTT50[$id.$r]} ${RTT99[$id.$r]}"
		done
		echo "farm $id ${DELIVERED[$id]} ${RATE[$id]:--} ${SEND_S[$id]} ${RTT50[$id]} ${RTT99[$id]}"
	done
	echo "cmp delivered ${DELIVERED[mf]} =$N $V_DELIV"
	echo "cmp rate ${R_RATE:--} >=1 $V_RATE"
	echo "cmp rtt_p50 ${R_P50:--} <=1 $V_P50"
	echo "cmp rtt_p99 ${R_P99:--} <=1 $V_P99"
	echo "result misses=$MISSES"
} >"$OUT"
echo "$SCRIPT: summary written to $OUT"

if [[ $STRICT == 1 ]] && ((MISSES > 0)); then exit 1; fi
exit 0
