#!/usr/bin/env bash
# The database queue (dbqueue/) against pgbench running the same SQL.
#
# One throwaway PostgreSQL (scripts/pgtmp.sh: fsync and synchronous_commit
# on, shared_buffers=512MB, max_wal_size=4GB) serves every run; each run
# starts from empty tables, vacuumed and checkpointed. The load driver is
# build/bench/dbqueue_bench (tests/bench/dbqueue_bench.c, linked with the
# library); pgbench runs the library's own statements (same SQL text; the
# arrays it would send are built server-side) with the same number of
# clients, and its figure is the ceiling the ratio is taken against.
#
#   (a) batched   2 producers enqueue_many(100) + 2 consumers claim(100)
#                 and complete the batch (no-op handler): completed jobs/s.
#                 pgbench: 4 clients mixing the enqueue statement and the
#                 claim + complete statements 1:1, with the hot table
#                 vacuumed every 0.25 s as the library does by itself.
#                 targets: >= 30000 jobs/s and >= 0.7x pgbench
#   (a0) the same without history (--dbqueue-retention 0: completions
#                 only delete; dbqueue_bench -H), pgbench likewise.
#   (b) durable   4 clients, one dbq_enqueue (one commit) at a time:
#                 enqueues/s vs pgbench single-row INSERT commits, 4 clients.
#                 target: >= 0.8x
#   (c) latency   1000 jobs/s, one at a time (open loop), NOTIFY after
#                 commit (coalesced, 1 ms window); a LISTENing consumer
#                 claims: insert-commit -> claim p50 / p99.
#                 targets: p50 <= 2 ms, p99 <= 10 ms
#   (d) idle      a consumer waiting (LISTEN + adaptive safety-net poll up
#                 to 2 s) in a database of its own: its transactions per
#                 second from pg_stat_database. target: <= 1/s
#   (e) bloat     the batched pipeline for JOBS_1M jobs: the rate of every
#                 100,000 jobs (median of the first three vs the last
#                 three), and the hot table's size at the end.
#                 target: last >= 0.9x first
#
# (a) and (b) alternate mulefarm and pgbench for ROUNDS rounds and show
# each one's median (a small shared machine swings by tens of percent from
# one run to the next).
#
# Environment:
#   DURATION=15     seconds measured per throughput run (after 3 s warm-up)
#   ROUNDS=3        rounds of (a) and (b)
#   JOBS_1M=1000000 jobs of run (e)
#   PG_BINDIR=...   PostgreSQL binaries (default: newest /usr/lib/postgresql/*/bin)
#   OUT=...         summary (default build/bench/dbqueue.txt)
#   STRICT=1        exit 1 if a target is missed (default: report only)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-3}
WARMUP=3
JOBS_1M=${JOBS_1M:-1000000}
OUT=${OUT:-$ROOT/build/bench/dbqueue.txt}
STRICT=${STRICT:-0}
BIN=$ROOT/build/bench/dbqueue_bench

die() {
	echo "dbqueue.sh: $*" >&2
	exit 1
}
bindir=${PG_BINDIR:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)}
[[ -x $bindir/pgbench ]] || die "pgbench not found (install PostgreSQL: scripts/deps.sh test)"
if [[ ! -x $BIN || $ROOT/tests/bench/dbqueue_bench.c -nt $BIN ]]; then
	make -C "$ROOT" --no-print-directory build/bench/dbqueue_bench >/dev/null
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mulefarm-dbqbench.XXXXXX")
chmod 755 "$TMP"
BG=()
cleanup() {
	local rc=$? p
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
	"$ROOT/scripts/pgtmp.sh" stop "$TMP/pg" || true
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

CI=$(PGTMP_OPTS="-c shared_buffers=512MB -c max_wal_size=4GB" "$ROOT/scripts/pgtmp.sh" start "$TMP/pg")
psql() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
sql() { psql "$CI" -At -c "$1"; }
pgbench() { "$bindir/pgbench" -n -M prepared "$@"; }
"$BIN" idle "$CI" -d 0 >/dev/null # applies the schema (dbq_migrate)

reset() {
	sql "TRUNCATE mulefarm.jobs, mulefarm.history" >/dev/null
	sql "VACUUM ANALYZE mulefarm.jobs" >/dev/null
	sql "VACUUM ANALYZE mulefarm.history" >/dev/null
	sql "CHECKPOINT" >/dev/null
}
field() { awk -v k="$1" '$1 == k { print $2 }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
missed=0
verdict() { if "$@"; then echo ok; else missed=1; echo MISS; fi; }

# ---- the statements, as pgbench scripts ------------------------------------
# Same text as dbqueue/enqueue.c and claim.c; $n parameters become
# server-side arrays (enqueue) or pgbench variables (claim -> complete);
# claim and complete commit asynchronously, as the library's do.
# The library sends fresh jobs (its own UUIDv7s, no unique key) as a plain
# INSERT (enqueue.c: enqueue_fresh_stmt); pgbench builds the same v7 uuids
# server-side (48 bits of milliseconds, then random), so that both fill the
# uuid index at its right edge.
cat >"$TMP/enqueue.sql" <<'SQL'
INSERT INTO mulefarm.jobs (uuid, farm, payload, priority, run_at, max_attempts) SELECT u, f, p, pr, CASE WHEN r = 0 THEN now() ELSE to_timestamp(r / 1000.0) END, m FROM unnest(ARRAY(SELECT encode(overlay(uuid_send(gen_random_uuid()) placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::int8) from 3) from 1), 'hex')::uuid FROM generate_series(1, 100)), array_fill('bench'::text, ARRAY[100]), array_fill(decode(repeat('78', 100), 'hex'), ARRAY[100]), array_fill(0, ARRAY[100]), array_fill(0::int8, ARRAY[100]), array_fill(5, ARRAY[100])) AS t(u, f, p, pr, r, m);
SQL
cat >"$TMP/claim_complete.sql" <<'SQL'
WITH c AS MATERIALIZED ( SELECT ctid FROM mulefarm.jobs WHERE state = 'queued' AND farm = 'bench' AND run_at <= now() AND (SELECT set_config('synchronous_commit', CASE WHEN true THEN 'off' ELSE current_setting('synchronous_commit') END, true)) IS NOT NULL ORDER BY priority, run_at, id LIMIT 100 FOR NO KEY UPDATE SKIP LOCKED), u AS ( UPDATE mulefarm.jobs j SET state = 'running', handler = 'pgbench.bench.' || :client_id, attempt = j.attempt + 1, lease_until = now() + 300 * interval '1 second', claimed_at = now() WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM c)) RETURNING j.id, j.uuid, j.attempt, j.max_attempts, j.priority, j.run_at, j.payload) SELECT coalesce(array_agg(uuid), '{}') AS ids, coalesce(array_agg(attempt), '{}') AS atts FROM (SELECT id, uuid, attempt, max_attempts, priority, payload, run_at FROM u ORDER BY priority, run_at, id) s \gset
WITH d AS ( DELETE FROM mulefarm.jobs j WHERE j.uuid = ANY (:ids::uuid[]) AND j.handler = 'pgbench.bench.' || :client_id AND j.state = 'running' AND j.attempt = (:atts::int4[])[array_position(:ids::uuid[], j.uuid)] AND (SELECT set_config('synchronous_commit', CASE WHEN true THEN 'off' ELSE current_setting('synchronous_commit') END, true)) IS NOT NULL RETURNING j.*) INSERT INTO mulefarm.history (id, uuid, farm, state, priority, handler, attempt, max_attempts, created_at, payload, last_error) SELECT id, uuid, farm, 'done', priority, handler, attempt, max_attempts, created_at, NULL, last_error FROM d;
SQL
sed -e 's/^WITH d AS ( DELETE/DELETE/' -e 's/ RETURNING j\.\*) INSERT INTO mulefarm\.history .*$/;/' \
	"$TMP/claim_complete.sql" >"$TMP/claim_drop.sql"
grep -q "^DELETE FROM mulefarm.jobs j WHERE .*IS NOT NULL;$" "$TMP/claim_drop.sql" || die "claim_drop.sql"
cat >"$TMP/insert1.sql" <<'SQL'
INSERT INTO mulefarm.jobs (uuid, farm, payload) VALUES (gen_random_uuid(), 'single', decode(repeat('78', 100), 'hex'));
SQL

echo "dbqueue.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}'), fsync=$(sql "SHOW fsync"), synchronous_commit=$(sql "SHOW synchronous_commit"), $(nproc) CPUs; ${DURATION}s per run"

# ---- (a) batched ------------------------------------------------------------
# jobs completed so far: enqueued (the identity) minus still there
completed() { sql "SELECT (SELECT last_value FROM mulefarm.jobs_id_seq) - (SELECT count(*) FROM mulefarm.jobs)"; }
pgbench_a() { # $1: the claim + complete script
	local h0 h1 t0 t1 pgb vac
	(while :; do sql "VACUUM (SKIP_LOCKED, TRUNCATE false, INDEX_CLEANUP on) mulefarm.jobs" >/dev/null 2>&1 || true; sleep 0.25; done) &
	vac=$!
	BG+=("$vac")
	pgbench -c 4 -j 2 -T $((WARMUP + DURATION)) -f "$TMP/enqueue.sql@1" -f "$1@1" \
		"$CI" >"$TMP/pgb_a.log" 2>&1 &
	pgb=$!
	sleep "$WARMUP"
	h0=$(completed)
	t0=$(date +%s.%N)
	wait "$pgb" || { cat "$TMP/pgb_a.log" >&2; die "pgbench (a) failed"; }
	h1=$(completed)
	t1=$(date +%s.%N)
	kill "$vac" 2>/dev/null || true
	wait "$vac" 2>/dev/null || true
	BG=()
	awk -v a="$h0" -v b="$h1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", (b - a) / (e - s) }'
}
a_mfs=() a_pgs=() a0_mfs=() a0_pgs=() b_mfs=() b_pgs=()
for ((r = 1; r <= ROUNDS; r++)); do
	reset
	a_mfs+=("$("$BIN" pipeline "$CI" -p 2 -c 2 -b 100 -d "$DURATION" -w "$WARMUP" | field jobs_per_s)")
	reset
	a_pgs+=("$(pgbench_a "$TMP/claim_complete.sql")")
	echo "round $r: (a) mulefarm ${a_mfs[-1]} pgbench ${a_pgs[-1]} jobs/s" >&2
	reset
	a0_mfs+=("$("$BIN" pipeline "$CI" -p 2 -c 2 -b 100 -d "$DURATION" -w "$WARMUP" -H | field jobs_per_s)")
	reset
	a0_pgs+=("$(pgbench_a "$TMP/claim_drop.sql")")
	echo "round $r: (a0) mulefarm ${a0_mfs[-1]} pgbench ${a0_pgs[-1]} jobs/s" >&2
done
a_mf=$(median "${a_mfs[@]}")
a_pg=$(median "${a_pgs[@]}")
a0_mf=$(median "${a0_mfs[@]}")
a0_pg=$(median "${a0_pgs[@]}")

# ---- (b) durable, one job per transaction -----------------------------------
for ((r = 1; r <= ROUNDS; r++)); do
	reset
	b_mfs+=("$("$BIN" single "$CI" -c 4 -d "$DURATION" -w "$WARMUP" | field enqueues_per_s)")
	reset
	b_pgs+=("$(pgbench -c 4 -j 2 -T "$DURATION" -f "$TMP/insert1.sql" "$CI" 2>&1 | awk '/^tps/ { printf "%.0f", $3 }')")
	echo "round $r: (b) mulefarm ${b_mfs[-1]} pgbench ${b_pgs[-1]} commits/s" >&2
done
b_mf=$(median "${b_mfs[@]}")
b_pg=$(median "${b_pgs[@]}")

# ---- (c) latency --------------------------------------------------------------
reset
"$BIN" latency "$CI" -R 1000 -d "$DURATION" -W 1 >"$TMP/lat.txt"
c_p50=$(field p50_ms <"$TMP/lat.txt")
c_p99=$(field p99_ms <"$TMP/lat.txt")
c_max=$(field max_ms <"$TMP/lat.txt")
c_n=$(field samples <"$TMP/lat.txt")

# ---- (d) idle -------------------------------------------------------------------
sql "CREATE DATABASE idle" >/dev/null
CI_IDLE="$CI dbname=idle"
"$BIN" idle "$CI_IDLE" -d 1 >/dev/null # schema
xacts() { sql "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'idle'"; }
sleep 1.5 # let the stats of the set-up arrive
x0=$(xacts)
d_claims=$("$BIN" idle "$CI_IDLE" -d 30 | field claims)
sleep 1.5 # the backend's last report
x1=$(xacts)
# The driver's connection itself: dbq_migrate's checks and the LISTEN (4).
d_qps=$(awk -v a="$x0" -v b="$x1" 'BEGIN { printf "%.2f", (b - a - 4) / 30 }')

# ---- (e) 1M jobs ------------------------------------------------------------------
reset
"$BIN" pipeline "$CI" -p 2 -c 2 -b 100 -n "$JOBS_1M" -r 100000 -w 0 >"$TMP/1m.txt"
# the median of the first three and of the last three 100k chunks (one
# chunk is a few seconds: a neighbour's burst on the machine moves it)
mapfile -t chunks < <(awk '$1 == "chunk" { print $3 }' "$TMP/1m.txt")
n=${#chunks[@]}
((n >= 6)) || die "(e) needs JOBS_1M >= 600000 (6 chunks of 100k)"
e_first=$(median "${chunks[@]:0:3}")
e_last=$(median "${chunks[@]:n-3:3}")
e_rate=$(field jobs_per_s <"$TMP/1m.txt")
e_hot=$(sql "SELECT pg_size_pretty(pg_total_relation_size('mulefarm.jobs'))")
e_hot_rows=$(sql "SELECT count(*) FROM mulefarm.jobs")
e_hist=$(sql "SELECT pg_size_pretty(pg_total_relation_size('mulefarm.history'))")
e_chunks=$(awk '$1 == "chunk" { printf "%s%s", sep, $3; sep = " " }' "$TMP/1m.txt")

# ---- report -------------------------------------------------------------------------
{
	printf '%-34s %12s %12s %7s  %-26s %s\n' scenario mulefarm pgbench ratio target verdict
	printf '%-34s %12s %12s %7s  %-26s %s\n' "(a) batched pipeline, jobs/s" "$a_mf" "$a_pg" \
		"$(ratio "$a_mf" "$a_pg")" ">=30000 and >=0.7x" \
		"$(verdict ge "$(ratio "$a_mf" "$a_pg")" 0.7)$(ge "$a_mf" 30000 || echo ' (abs MISS)')"
	printf '%-34s %12s %12s %7s  %-26s %s\n' "(a0) the same, retention 0, jobs/s" "$a0_mf" "$a0_pg" \
		"$(ratio "$a0_mf" "$a0_pg")" ">=30000 and >=0.7x" \
		"$(verdict ge "$(ratio "$a0_mf" "$a0_pg")" 0.7)$(ge "$a0_mf" 30000 || echo ' (abs MISS)')"
	printf '%-34s %12s %12s %7s  %-26s %s\n' "(b) durable enqueue, 4 clients/s" "$b_mf" "$b_pg" \
		"$(ratio "$b_mf" "$b_pg")" ">=0.8x" "$(verdict ge "$(ratio "$b_mf" "$b_pg")" 0.8)"
	printf '%-34s %12s %12s %7s  %-26s %s\n' "(c) commit->claim p50 ms @1000/s" "$c_p50" - - "<=2" \
		"$(verdict le "$c_p50" 2)"
	printf '%-34s %12s %12s %7s  %-26s %s\n' "(c) commit->claim p99 ms (max $c_max)" "$c_p99" - - \
		"<=10" "$(verdict le "$c_p99" 10)"
	printf '%-34s %12s %12s %7s  %-26s %s\n' "(d) idle consumer, queries/s" "$d_qps" - - "<=1" \
		"$(verdict le "$d_qps" 1)"
	printf '%-34s %12s %12s %7s  %-26s %s\n' "(e) first 3x100k jobs, jobs/s" "$e_first" - - "" ""
	printf '%-34s %12s %12s %7s  %-26s %s\n' "(e) last 3x100k of $JOBS_1M, jobs/s" "$e_last" - \
		"$(ratio "$e_last" "$e_first")" ">=0.9x first" "$(verdict ge "$(ratio "$e_last" "$e_first")" 0.9)"
	echo
	echo "(a) rounds: mulefarm ${a_mfs[*]}; pgbench ${a_pgs[*]}"
	echo "(a0) rounds: mulefarm ${a0_mfs[*]}; pgbench ${a0_pgs[*]}"
	echo "(b) rounds: mulefarm ${b_mfs[*]}; pgbench ${b_pgs[*]}"
	echo "(c) $c_n samples; (d) $d_claims safety-net claims in 30 s"
	echo "(e) per 100k jobs: $e_chunks; overall $e_rate jobs/s;"
	echo "    at the end: hot table $e_hot ($e_hot_rows rows, indexes included), history $e_hist"
} | tee "$OUT.tmp"
mkdir -p "$(dirname "$OUT")"
mv "$OUT.tmp" "$OUT"
[[ $STRICT != 1 || $missed == 0 ]]
