#!/usr/bin/env bash
# Herald's fault suite (scripts/chaos.py): kill -9 mid-run on SQLite, PostgreSQL and two
# PostgreSQL nodes, a misbehaving receiver, a full disk; counts acknowledged, delivered, lost
# (must be 0) and duplicated events. Builds the release binary and starts a throwaway
# PostgreSQL; any CHAOS_* setting passes through (docs/TESTING.md).
#
#   scripts/chaos.sh                                   # every scenario, 20 s of publishing each
#   CHAOS_SECONDS=4 CHAOS_SCENARIOS=kill9-sqlite scripts/chaos.sh
#   CHAOS_HERALD=target/debug/herald scripts/chaos.sh  # a binary already built
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CHAOS_HERALD:-}" ]; then
    cargo build --release -q -p herald
    export CHAOS_HERALD="${CARGO_TARGET_DIR:-target}/release/herald"
fi
. scripts/pg.sh
start_throwaway_pg
PG_URL="$PG_URL" PG_BIN="$PG_BIN" python3 scripts/chaos.py
