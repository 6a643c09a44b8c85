#!/usr/bin/env bash
# socket.io benchmark for docs/BENCHMARKS.md: a release build of Herald holds BENCH_SOCKETS
# player sockets (default 10,000, all on one node); herald-bench reports the server's memory
# per socket and the fan-out latency of BENCH_ROUNDS maintenance toggles (each event reaches
# every socket), from the event's occurredAt to its arrival. Prints one JSON line per backend.
#
#   scripts/bench-sockets.sh
#   BENCH_SOCKETS=2000 BENCH_BACKENDS=sqlite scripts/bench-sockets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# The server under test: this checkout's release build, or BENCH_HERALD (another build, to
# compare two versions on the same machine in one sitting).
HERALD_BIN="${BENCH_HERALD:-$ROOT/target/release/herald}"
SOCKETS="${BENCH_SOCKETS:-10000}"
ROUNDS="${BENCH_ROUNDS:-20}"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"

cargo build --release -q -p herald -p herald-bench
. scripts/pg.sh
# Benchmarks run PostgreSQL durable (its defaults); BENCH_PG_DURABLE=0 for fsync off.
export PG_DURABLE="${BENCH_PG_DURABLE:-1}"

SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  stop_throwaway_pg
}

field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

bench_backend() {
  local backend="$1" url="$2" dir port key base token world
  dir="$(mktemp -d /tmp/herald-bench.XXXXXX)"
  port="$(free_port)"
  (cd "$dir" && HERALD_LISTEN="127.0.0.1:$port" HERALD_DATABASE_URL="$url" HERALD_LOG=warn HERALD_HTTP__RATE_LIMIT_PER_SEC="${HERALD_HTTP__RATE_LIMIT_PER_SEC:-0}" \
    exec "$HERALD_BIN" serve >"$dir/out.log" 2>"$dir/err.log") &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening" "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
  key="$(grep -oE 'hk_[A-Za-z0-9_-]+' "$dir/out.log" | head -1)"
  [ -n "$key" ] || { echo "no key from herald serve ($backend)"; cat "$dir/err.log"; exit 1; }
  base="http://127.0.0.1:$port"
  curl -sf -H "X-API-Key: $key" -H 'content-type: application/json' -d '{"id":"bench","username":"bench"}' \
    "$base/api/v1/users" >/dev/null
  token="$(curl -sf -X POST -H "X-API-Key: $key" "$base/api/v1/users/bench/session-token" | field "['token']")"
  world="$(curl -sf -H "X-API-Key: $key" -H 'content-type: application/json' \
    -d '{"worldId":"bench-world","name":"Bench"}' "$base/api/v1/game-worlds" | field "['id']")"
  printf '{"backend":"%s","result":' "$backend"
  "$ROOT/target/release/herald-bench" --addr "127.0.0.1:$port" --key "$key" --scenario sockets \
    --sockets "$SOCKETS" --rounds "$ROUNDS" --token "$token" --world "$world" --pid "$SERVER_PID" | tr -d '\n'
  echo "}"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  rm -rf "$dir"
}

trap cleanup EXIT
for backend in $BACKENDS; do
  case "$backend" in
    sqlite) bench_backend sqlite "" ;;
    postgres)
      start_throwaway_pg
      bench_backend postgres "$PG_URL"
      stop_throwaway_pg
      ;;
  esac
done
