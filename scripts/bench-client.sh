#!/usr/bin/env bash
# The game-client benchmark of docs/BENCHMARKS.md: `GET /api/v1/client/bootstrap` with a
# client key, every answer in full (`client-bootstrap`) and revalidating with If-None-Match
# (`client-bootstrap-revalidate`: 304s), against a release build of Herald on SQLite and on a
# throwaway PostgreSQL, driven by crates/herald-bench. The project has 20 visible worlds (one
# in maintenance, with messages in three languages) and two client versions. The per-address
# rate limit is off: every connection comes from 127.0.0.1. Prints one JSON line per
# (backend, scenario).
#
#   scripts/bench-client.sh                       # both backends, 10 s per scenario, 32 connections
#   BENCH_SECONDS=30 BENCH_CONNECTIONS=64 scripts/bench-client.sh
#   BENCH_BACKENDS=sqlite scripts/bench-client.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
SECS="${BENCH_SECONDS:-10}"
CONNS="${BENCH_CONNECTIONS:-32}"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

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
  local backend="$1" url="$2" dir port key client_key api
  dir="$(mktemp -d /tmp/herald-bench.XXXXXX)"
  port="$(free_port)"
  (cd "$dir" && HERALD_LISTEN="127.0.0.1:$port" HERALD_DATABASE_URL="$url" HERALD_LOG=warn \
    HERALD_CLIENT__RATE_LIMIT_PER_SEC=0 exec "$TARGET/release/herald" serve >"$dir/out.log" 2>"$dir/err.log") &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening" "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
  key="$(grep -oE 'hk_[A-Za-z0-9_-]+' "$dir/out.log" | head -1)"
  [ -n "$key" ] || { echo "no key from herald serve ($backend)"; cat "$dir/err.log"; exit 1; }
  api="http://127.0.0.1:$port/api/v1"
  post() { curl -sf -H "X-API-Key: $key" -H 'content-type: application/json' -d "$2" "$api$1"; }
  for i in $(seq 1 20); do
    post /game-worlds "{\"worldId\":\"world_$i\",\"name\":\"World $i\",\"tags\":[\"asia\"],\"displayOrder\":$i}" >/dev/null
  done
  curl -sf -o /dev/null -X PUT -H "X-API-Key: $key" -H 'content-type: application/json' \
    -d '{"enabled":true,"messages":{"en":"Back at 10:00 UTC","ko":"10시에 돌아옵니다","ja":"10時に戻ります"}}' \
    "$api/game-worlds/world_3/maintenance"
  post /client-versions '{"channel":"PC","version":"1.0.0","status":"online","updateUrl":"https://example.com/get"}' >/dev/null
  post /client-versions '{"channel":"PC","version":"1.1.0","status":"recommended_update"}' >/dev/null
  client_key="$(post /client-keys '{"name":"bench"}' | grep -oE 'hc_[A-Za-z0-9_-]+' | head -1)"
  [ -n "$client_key" ] || { echo "no client key ($backend)"; exit 1; }
  for scenario in client-bootstrap client-bootstrap-revalidate; do
    printf '{"backend":"%s","scenario":"%s","result":' "$backend" "$scenario"
    "$TARGET/release/herald-bench" --addr "127.0.0.1:$port" --key "$client_key" --scenario "$scenario" \
      --connections "$CONNS" --seconds "$SECS" | tr -d '\n'
    echo "}"
  done
  kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  rm -rf "$dir"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)" >&2
trap cleanup EXIT
for backend in $BACKENDS; do
  case "$backend" in
    sqlite) bench_backend sqlite "" ;;
    postgres) start_throwaway_pg; bench_backend postgres "$PG_URL" ;;
  esac
done
