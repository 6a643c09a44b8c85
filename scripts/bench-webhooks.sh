#!/usr/bin/env bash
# Webhook delivery benchmarks: events published through the API and delivered to the shared
# benchmark receiver (../shared/bench/webhook-receiver, which answers 200 at once), against a
# release build of Herald on SQLite and on a throwaway PostgreSQL, driven by
# `herald-bench --scenario webhooks`. Per backend it runs
#
#   single-1        BENCH_SINGLE_EVENTS events, one per POST /api/v1/events (as game servers
#                   publish), 256-byte data, 64 connections, 1 endpoint
#   single-10       BENCH_SINGLE_EVENTS_FANOUT events the same way, 10 endpoints per event
#   single-low      BENCH_SINGLE_LOW_EVENTS events the same way over 4 connections (low load:
#                   the latency a lone publish sees)
#   single-10-rated events the same way to 10 endpoints at a steady rate for
#                   BENCH_SINGLE_RATED_SECONDS: 80% of issue 20's target (14,000 deliveries/s on
#                   SQLite, 8,000 on PostgreSQL), so 1,120 or 640 events/s; BENCH_SINGLE_RATE
#                   sets another. The latency a busy server keeps while it keeps up.
#   throughput-1    BENCH_EVENTS events as fast as possible, 1 endpoint
#   throughput-10   BENCH_EVENTS_FANOUT events as fast as possible, 10 endpoints per event
#   latency-1       BENCH_RATE events/s for BENCH_RATE_SECONDS, 1 endpoint
#   sustained-10    BENCH_SUSTAINED_RATE events/s for BENCH_SUSTAINED_SECONDS, 10 endpoints per
#                   event (the default, 1,100 events/s, offers 11,000 deliveries/s for 30 s)
#
# and prints one JSON line per (backend, run): publish rate, delivery rate, latency from the
# publish response to the arrival p50/p99/max, duplicates and missing deliveries ("result"),
# and the cores Herald, the receiver, PostgreSQL and everything else used meanwhile ("cpu";
# `others_cores` well above 0 means other work on the machine disturbed the run, and
# `herald_cpu_us_per_delivery` is the figure least moved by it). Exits 1 if a run lost
# deliveries or events. Sizes: BENCH_EVENTS, BENCH_EVENTS_FANOUT, BENCH_RATE,
# BENCH_RATE_SECONDS, BENCH_SUSTAINED_RATE, BENCH_SUSTAINED_SECONDS, BENCH_BATCH,
# BENCH_RATE_BATCH, BENCH_PUBLISHERS, BENCH_SINGLE_EVENTS, BENCH_SINGLE_EVENTS_FANOUT,
# BENCH_SINGLE_LOW_EVENTS, BENCH_SINGLE_RATE, BENCH_SINGLE_RATED_SECONDS, BENCH_DRAIN_TIMEOUT,
# BENCH_RUNS (which runs, by name).
#
# Durability: PostgreSQL runs with its durable defaults (fsync, synchronous_commit on;
# BENCH_PG_DURABLE=0 turns them off) and SQLite with Herald's default, synchronous = FULL
# (HERALD_DATABASE__SQLITE_SYNCHRONOUS=normal for the other setting); every line names it.
#
#   scripts/bench-webhooks.sh
#   BENCH_BACKENDS=postgres BENCH_EVENTS=50000 scripts/bench-webhooks.sh
#   HERALD_WEBHOOKS__MAX_IN_FLIGHT=1024 scripts/bench-webhooks.sh   # any HERALD_* setting passes through
#   BENCH_BREAKDOWN=1 scripts/bench-webhooks.sh                     # also where the time goes, from the database
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# The server under test: this checkout's release build, or BENCH_HERALD (another build, to
# compare two versions on the same machine in one sitting).
HERALD_BIN="${BENCH_HERALD:-$ROOT/target/release/herald}"
EVENTS="${BENCH_EVENTS:-20000}"
EVENTS_FANOUT="${BENCH_EVENTS_FANOUT:-5000}"
BATCH="${BENCH_BATCH:-100}"
PUBLISHERS="${BENCH_PUBLISHERS:-4}"
RATE="${BENCH_RATE:-1000}"
RATE_SECS="${BENCH_RATE_SECONDS:-15}"
RATE_BATCH="${BENCH_RATE_BATCH:-10}"
DRAIN="${BENCH_DRAIN_TIMEOUT:-60}"
SUSTAINED_RATE="${BENCH_SUSTAINED_RATE:-1100}"
SUSTAINED_SECS="${BENCH_SUSTAINED_SECONDS:-30}"
SINGLE_EVENTS="${BENCH_SINGLE_EVENTS:-20000}"
SINGLE_EVENTS_FANOUT="${BENCH_SINGLE_EVENTS_FANOUT:-5000}"
SINGLE_LOW_EVENTS="${BENCH_SINGLE_LOW_EVENTS:-4000}"
SINGLE_RATED_SECS="${BENCH_SINGLE_RATED_SECONDS:-15}"
RUNS="${BENCH_RUNS:-single-1 single-10 single-low single-10-rated throughput-1 throughput-10 latency-1 sustained-10}"
export PG_DURABLE="${BENCH_PG_DURABLE:-1}"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
RECEIVER_DIR="${BENCH_RECEIVER_DIR:-$ROOT/../shared/bench/webhook-receiver}"
RECEIVER="$ROOT/target/bench-receiver/release/webhook-receiver"

cargo build --release -q -p herald -p herald-bench
cargo build --release -q --manifest-path "$RECEIVER_DIR/Cargo.toml" --target-dir target/bench-receiver
. scripts/pg.sh

SERVER_PID=""
RECEIVER_PID=""
FAILED=0
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null && wait "$RECEIVER_PID" 2>/dev/null
  stop_throwaway_pg
}

# Where the time of one run's deliveries went, from Herald's own rows: event written ->
# delivery row (fan-out), delivery row -> attempt recorded (claim, send, answer; the
# attempt's time is taken after the answer), and the send itself (latency_ms).
breakdown() {
  local backend="$1" url="$2" since="$3" dir="$4"
  if [ "$backend" = postgres ]; then
    psql -qAtX "$url" -c "
      SELECT json_build_object(
        'deliveries', count(*),
        'fanout_p50_ms', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY fanout)::numeric, 2),
        'fanout_p99_ms', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY fanout)::numeric, 2),
        'to_attempt_p50_ms', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY attempt)::numeric, 2),
        'to_attempt_p99_ms', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY attempt)::numeric, 2),
        'send_p50_ms', percentile_disc(0.5) WITHIN GROUP (ORDER BY send),
        'send_p99_ms', percentile_disc(0.99) WITHIN GROUP (ORDER BY send),
        'attempts_per_delivery', round(avg(attempts)::numeric, 3))
      FROM (SELECT extract(epoch FROM d.created_at - e.occurred_at) * 1000 AS fanout,
                   extract(epoch FROM a.attempted_at - d.created_at) * 1000 AS attempt,
                   a.latency_ms AS send, d.attempts
            FROM deliveries d JOIN events e ON e.id = d.event_id
            JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt = 1
            WHERE d.created_at >= '$since') t"
  else
    # SQLite has no percentiles: averages and maxima.
    sqlite3 "$dir/herald-data/herald.db" "
      SELECT json_object(
        'deliveries', count(*),
        'fanout_avg_ms', round(avg(fanout), 2), 'fanout_max_ms', round(max(fanout), 2),
        'to_attempt_avg_ms', round(avg(attempt), 2), 'to_attempt_max_ms', round(max(attempt), 2),
        'send_avg_ms', round(avg(send), 2), 'send_max_ms', max(send),
        'attempts_per_delivery', round(avg(attempts), 3))
      FROM (SELECT (julianday(d.created_at) - julianday(e.occurred_at)) * 86400000 AS fanout,
                   (julianday(a.attempted_at) - julianday(d.created_at)) * 86400000 AS attempt,
                   a.latency_ms AS send, d.attempts
            FROM deliveries d JOIN events e ON e.id = d.event_id
            JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt = 1
            WHERE julianday(d.created_at) >= julianday('$since'))"
  fi
}

# CPU time (clock ticks) a process used, with its reaped children's.
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Herald, the receiver, PostgreSQL (postmaster and backends), and the whole machine (busy, all).
cpu_snapshot() {
  local pg=0 pm pid
  if [ -n "${PG_DIR:-}" ] && pm="$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null)"; then
    pg="$(ticks "$pm")"
    for pid in $(pgrep -P "$pm"); do pg=$((pg + $(ticks "$pid"))); done
  fi
  awk -v h="$(ticks "$SERVER_PID")" -v r="$(ticks "$RECEIVER_PID")" -v pg="$pg" \
    '/^cpu / {all = $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; print h, r, pg, all - $5 - $6, all}' /proc/stat
}
# Where the machine's CPU went during a run, in cores: on a shared machine `others_cores` says
# how much of it other work took (the numbers are only comparable when that is near 0).
cpu_report() {
  local delivered="$1"
  awk -v hz="$(getconf CLK_TCK)" -v cores="$(nproc)" -v n="$delivered" '
    NR == 1 { for (i = 1; i <= 5; i++) a[i] = $i } NR == 2 { for (i = 1; i <= 5; i++) b[i] = $i - a[i] }
    END {
      wall = b[5] / cores; if (wall <= 0) wall = 1
      printf "{\"herald_cores\":%.2f,\"receiver_cores\":%.2f,\"postgres_cores\":%.2f,\"others_cores\":%.2f,", \
        b[1] / wall, b[2] / wall, b[3] / wall, (b[4] - b[1] - b[2] - b[3]) / wall
      printf "\"machine_busy_cores\":%.2f,\"cores\":%d,\"herald_cpu_us_per_delivery\":%.0f}", \
        b[4] / wall, cores, (n > 0 ? b[1] / hz * 1e6 / n : 0)
    }'
}

# The durability setting a backend ran with.
durability() {
  if [ "$1" = postgres ]; then
    [ "$PG_DURABLE" = 1 ] && echo "fsync on, synchronous_commit on" || echo "fsync off, synchronous_commit off"
  else
    echo "synchronous ${HERALD_DATABASE__SQLITE_SYNCHRONOUS:-full}"
  fi
}

run() {
  local backend="$1" url="$2" dir="$3" port="$4" key="$5" name="$6" out since before delivered
  shift 6
  case " $RUNS " in *" $name "*) ;; *) return 0 ;; esac
  since="$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)"
  before="$(cpu_snapshot)"
  if out="$("$ROOT/target/release/herald-bench" --scenario webhooks --addr "127.0.0.1:$port" --key "$key" \
    --receiver "127.0.0.1:$RECEIVER_PORT" --drain-timeout "$DRAIN" "$@")"; then
    :
  else
    FAILED=1
  fi
  delivered="$(grep -oE '"delivered":[0-9]+' <<<"$out" | cut -d: -f2 || true)"
  printf '{"backend":"%s","durability":"%s","run":"%s","result":%s' "$backend" "$(durability "$backend")" "$name" "${out:-null}"
  printf ',"cpu":%s' "$(printf '%s\n%s\n' "$before" "$(cpu_snapshot)" | cpu_report "${delivered:-0}")"
  if [ -n "${BENCH_BREAKDOWN:-}" ]; then
    sleep 1 # the receiver has a delivery a little before Herald has recorded it
    printf ',"breakdown":%s' "$(breakdown "$backend" "$url" "$since" "$dir" || echo null)"
  fi
  echo "}"
}

bench_backend() {
  local backend="$1" url="$2" dir port key
  dir="$(mktemp -d /tmp/herald-bench-webhooks.XXXXXX)"
  port="$(free_port)"
  (cd "$dir" && HERALD_LISTEN="127.0.0.1:$port" HERALD_DATABASE_URL="$url" HERALD_LOG__LEVEL=warn HERALD_HTTP__RATE_LIMIT_PER_SEC="${HERALD_HTTP__RATE_LIMIT_PER_SEC:-0}" \
    exec "$HERALD_BIN" serve >"$dir/out.log" 2>"$dir/err.log") &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening" "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
  key="$(grep -oE 'hk_[A-Za-z0-9_-]+' "$dir/out.log" | head -1)"
  [ -n "$key" ] || { echo "no key from herald serve ($backend)"; cat "$dir/err.log"; exit 1; }
  local single=(--single --batch 1 --payload-bytes 256)
  run "$backend" "$url" "$dir" "$port" "$key" single-1 "${single[@]}" --publishers 64 --events "$SINGLE_EVENTS" --endpoints 1
  run "$backend" "$url" "$dir" "$port" "$key" single-10 "${single[@]}" --publishers 64 --events "$SINGLE_EVENTS_FANOUT" \
    --endpoints 10
  run "$backend" "$url" "$dir" "$port" "$key" single-low "${single[@]}" --publishers 4 --events "$SINGLE_LOW_EVENTS" \
    --endpoints 1
  local rated="${BENCH_SINGLE_RATE:-$([ "$backend" = postgres ] && echo 640 || echo 1120)}"
  run "$backend" "$url" "$dir" "$port" "$key" single-10-rated "${single[@]}" --publishers 64 --endpoints 10 \
    --rate "$rated" --events "$((rated * SINGLE_RATED_SECS))"
  run "$backend" "$url" "$dir" "$port" "$key" throughput-1 --publishers "$PUBLISHERS" --events "$EVENTS" --endpoints 1 \
    --batch "$BATCH"
  run "$backend" "$url" "$dir" "$port" "$key" throughput-10 --publishers "$PUBLISHERS" --events "$EVENTS_FANOUT" \
    --endpoints 10 --batch "$BATCH"
  run "$backend" "$url" "$dir" "$port" "$key" latency-1 --publishers "$PUBLISHERS" --events "$((RATE * RATE_SECS))" \
    --endpoints 1 --rate "$RATE" --batch "$RATE_BATCH"
  run "$backend" "$url" "$dir" "$port" "$key" sustained-10 --publishers "$PUBLISHERS" \
    --events "$((SUSTAINED_RATE * SUSTAINED_SECS))" --endpoints 10 --rate "$SUSTAINED_RATE" --batch "$BATCH"
  kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  if grep -q . "$dir/err.log"; then
    echo "herald ($backend) logged $(wc -l <"$dir/err.log") line(s) at warn or above; the last:" >&2
    tail -n 3 "$dir/err.log" >&2
  fi
  rm -rf "$dir"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
case " $BACKENDS " in *" postgres "*) start_throwaway_pg ;; esac
trap cleanup EXIT # after start_throwaway_pg, which sets its own
RECEIVER_PORT="$(free_port)"
"$RECEIVER" --listen "127.0.0.1:$RECEIVER_PORT" >/dev/null 2>&1 &
RECEIVER_PID=$!
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$RECEIVER_PORT/__stats" && break; sleep 0.1; done
for backend in $BACKENDS; do
  case "$backend" in
    sqlite) bench_backend sqlite "" ;;
    postgres) bench_backend postgres "$PG_URL" ;;
    *) echo "unknown backend $backend (sqlite, postgres)" >&2; exit 2 ;;
  esac
done
exit "$FAILED"
