#!/usr/bin/env bash
# Chat benchmarks for docs/BENCHMARKS.md, against a release build of Herald on SQLite and on a
# throwaway PostgreSQL, driven by crates/herald-bench. Per backend it creates 1,000 channels
# through the GameTalk API, then runs
#
#   chat-send-one      messages sent through the API to one busy channel
#   chat-send-spread   messages spread over the 1,000 channels
#   chat-history       history reads (latest 50 messages) of the busy channel
#
# Each message is persisted with its chat.message.created event before the answer (201). The
# messages are the game server's own (no sender), so the per-player send limit does not apply.
# Prints one JSON line per (backend, scenario).
#
#   scripts/bench-chat.sh
#   BENCH_SECONDS=30 BENCH_CONNECTIONS=64 BENCH_BACKENDS=sqlite scripts/bench-chat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# The server under test: this checkout's release build, or BENCH_HERALD (another build, to
# compare two versions on the same machine in one sitting).
HERALD_BIN="${BENCH_HERALD:-$ROOT/target/release/herald}"
SECS="${BENCH_SECONDS:-10}"
CONNS="${BENCH_CONNECTIONS:-32}"
CHANNELS="${BENCH_CHANNELS:-1000}"
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

# A JSON field of standard input.
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

bench_backend() {
  local backend="$1" url="$2" dir port key base project app_key secret
  dir="$(mktemp -d /tmp/herald-bench.XXXXXX)"
  port="$(free_port)"
  (cd "$dir" && HERALD_LISTEN="127.0.0.1:$port" HERALD_DATABASE_URL="$url" HERALD_LOG=warn HERALD_HTTP__RATE_LIMIT_PER_SEC="${HERALD_HTTP__RATE_LIMIT_PER_SEC:-0}" \
    exec "$HERALD_BIN" serve >"$dir/out.log" 2>"$dir/err.log") &
  SERVER_PID=$!
  for _ in $(seq 1 100); do grep -q "listening" "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
  key="$(grep -oE 'hk_[A-Za-z0-9_-]+' "$dir/out.log" | head -1)"
  [ -n "$key" ] || { echo "no key from herald serve ($backend)"; cat "$dir/err.log"; exit 1; }
  base="http://127.0.0.1:$port"
  project="$(curl -sf -H "X-API-Key: $key" "$base/api/v1/projects" | field "['items'][0]['id']")"
  curl -sf -H "X-API-Key: $key" "$base/api/v1/projects/$project" >"$dir/project.json"
  app_key="$(field "['appKey']" <"$dir/project.json")"
  secret="$(field "['secretKey']" <"$dir/project.json")"
  : >"$dir/channels.txt"
  for i in $(seq 1 "$CHANNELS"); do
    curl -sf -H "X-Secret-Key: $secret" -H 'content-type: application/json' -d "{\"name\":\"room $i\"}" \
      "$base/game-talk/v1.1/appkeys/$app_key/channels" | field "['result']['id']" >>"$dir/channels.txt"
  done
  for scenario in chat-send-one chat-send-spread chat-history; do
    printf '{"backend":"%s","scenario":"%s","result":' "$backend" "$scenario"
    "$ROOT/target/release/herald-bench" --addr "127.0.0.1:$port" --key "$key" --scenario "$scenario" \
      --channels-file "$dir/channels.txt" --connections "$CONNS" --seconds "$SECS" | tr -d '\n'
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
