#!/usr/bin/env bash
# HTTP benchmarks for docs/BENCHMARKS.md: `GET /api/v1/game-worlds` and `POST /api/v1/users`
# against a release build of Herald, on SQLite and on a throwaway PostgreSQL, driven by
# crates/herald-bench. Prints one JSON line per (backend, scenario).
#
#   scripts/bench.sh                      # both backends, 10 s per scenario, 32 connections
#   BENCH_SECONDS=30 BENCH_CONNECTIONS=64 scripts/bench.sh
#   BENCH_HERALD=/path/to/other/herald scripts/bench.sh   # another build, for an A/B comparison
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# The server under test: this checkout's release build, or BENCH_HERALD (another build, to
# compare two versions on the same machine in one sitting).
HERALD_BIN="${BENCH_HERALD:-$ROOT/target/release/herald}"
SECS="${BENCH_SECONDS:-10}"
CONNS="${BENCH_CONNECTIONS:-32}"

cargo build --release -q -p herald -p herald-bench
. scripts/pg.sh
# Benchmarks run PostgreSQL durable (its defaults); BENCH_PG_DURABLE=0 for fsync off.
export PG_DURABLE="${BENCH_PG_DURABLE:-1}"

SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  stop_throwaway_pg
}

bench_backend() {
  local backend="$1" url="$2" dir port key
  dir="$(mktemp -d /tmp/herald-bench.XXXXXX)"
  port="$(free_port)"
  (cd "$dir" && HERALD_LISTEN="127.0.0.1:$port" HERALD_DATABASE_URL="$url" HERALD_LOG=warn HERALD_HTTP__RATE_LIMIT_PER_SEC="${HERALD_HTTP__RATE_LIMIT_PER_SEC:-0}" \
    exec "$HERALD_BIN" serve >"$dir/out.log" 2>"$dir/err.log") &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening" "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
  key="$(grep -oE 'hk_[A-Za-z0-9_-]+' "$dir/out.log" | head -1)"
  [ -n "$key" ] || { echo "no key from herald serve ($backend)"; cat "$dir/err.log"; exit 1; }
  for i in $(seq 1 20); do
    curl -sf -o /dev/null -H "X-API-Key: $key" -H 'content-type: application/json' \
      -d "{\"worldId\":\"world_$i\",\"name\":\"World $i\",\"tags\":[\"asia\"],\"displayOrder\":$i}" \
      "http://127.0.0.1:$port/api/v1/game-worlds"
  done
  for scenario in get-worlds post-users; do
    printf '{"backend":"%s","scenario":"%s","result":' "$backend" "$scenario"
    "$ROOT/target/release/herald-bench" --addr "127.0.0.1:$port" --key "$key" --scenario "$scenario" \
      --connections "$CONNS" --seconds "$SECS" | tr -d '\n'
    echo "}"
  done
  kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  rm -rf "$dir"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)" >&2
start_throwaway_pg
trap cleanup EXIT
bench_backend sqlite ""
bench_backend postgres "$PG_URL"
