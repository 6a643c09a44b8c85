#!/usr/bin/env bash
# Fuzzes a live Herald with schemathesis (PyPI) against its own /openapi.json: generated
# requests for every documented operation, checked for 5xx answers and for answers that do
# not match the description. docs/TESTING.md records the last result.
#
#   scripts/schemathesis.sh                      # 25 examples per operation
#   ST_MAX_EXAMPLES=100 scripts/schemathesis.sh
#
# Runs a debug build on SQLite in a temp dir with rate limiting off (the fuzzer is fast),
# installs schemathesis once into target/schemathesis-venv, exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-25}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET/schemathesis-venv"
ST_VERSION="4.32.5"

if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version | grep -q "$ST_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
cargo build -q -p herald

dir="$(mktemp -d /tmp/herald-st.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
(cd "$dir" && HERALD_LISTEN="127.0.0.1:$port" HERALD_LOG=warn HERALD_HTTP__RATE_LIMIT_PER_SEC=0 \
  exec "$TARGET/debug/herald" serve >"$dir/out.log" 2>"$dir/err.log") &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do grep -q "listening" "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
key="$(grep -oE 'hk_[A-Za-z0-9_-]+' "$dir/out.log" | head -1)"
[ -n "$key" ] || { echo "no key from herald serve"; cat "$dir/err.log"; exit 1; }

"$VENV/bin/st" run "http://127.0.0.1:$port/openapi.json" \
  --header "X-API-Key: $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --request-timeout 10 \
  --no-color "$@"
status=$?
if grep -q "panicked" "$dir/err.log"; then
  echo "herald panicked during the run:"; grep -A5 "panicked" "$dir/err.log"; exit 1
fi
exit $status
