#!/usr/bin/env bash
# Runs Herald's whole test suite: every storage and API test on SQLite and on PostgreSQL.
#
# It starts a throwaway PostgreSQL cluster of its own (initdb + pg_ctl on a free loopback
# port, data in a temp dir, removed on exit), so nothing has to be set up by hand. Extra
# arguments go to `cargo test` (e.g. `scripts/test.sh users` to run matching tests).
#
# After the tests, scripts/check-log-secrets.sh greps the logs the servers wrote during the
# run for every secret the tests handled (keys, tokens, webhook secrets, passwords).
#
# Last, scripts/check-readme.py runs README.md's commands as printed (see that script), and
# scripts/chaos.py the short form of the fault suite.
#
# The interop tests also run the seeds' Node.js receiver and the Standard Webhooks Python
# library against real deliveries: scripts/interop.sh installs them (once; quick afterwards).
#
# First of all, scripts/check-links.py checks that every relative link and anchor in README.md,
# docs/ and examples/ resolves: a broken link fails the run in a second, before any build.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 scripts/check-links.py

. scripts/interop.sh
install_interop_deps

. scripts/pg.sh
start_throwaway_pg

export HERALD_TEST_PG_URL="$PG_URL"
# The servers' logs (debug level) and every secret the tests handled, checked against each
# other once the tests pass: no secret may reach a log.
export HERALD_TEST_LOG_DIR="$PWD/target/suite-logs"
rm -rf "$HERALD_TEST_LOG_DIR"
cargo test --workspace "$@"
if [ $# -eq 0 ]; then
    scripts/check-log-secrets.sh "$HERALD_TEST_LOG_DIR"
    # The README's commands, as printed, on a fresh copy of the repository (its PostgreSQL
    # examples on this run's cluster). It builds the release binary the README runs.
    if ! command -v curl >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "curl not found; installing Debian's curl for the README check" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
    fi
    PG_URL="$PG_URL" PG_BIN="$PG_BIN" python3 scripts/check-readme.py
    # The fault suite's short form (docs/TESTING.md): kill -9, receiver faults, a full disk,
    # a few seconds each, on the debug binary the tests built. Zero lost events, or it fails.
    CHAOS_HERALD="${CARGO_TARGET_DIR:-target}/debug/herald" CHAOS_SECONDS="${CHAOS_SECONDS:-4}" \
        PG_URL="$PG_URL" PG_BIN="$PG_BIN" python3 scripts/chaos.py
fi
