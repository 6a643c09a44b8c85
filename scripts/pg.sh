#!/usr/bin/env bash
# Shared by scripts/test.sh and scripts/bench.sh: starts a throwaway PostgreSQL cluster.
# `start_throwaway_pg` sets PG_URL (a superuser URL on a free loopback port) and stops the
# cluster and removes its data when the calling script exits. PG_DURABLE=1: with PostgreSQL's
# durable defaults (benchmarks); otherwise fsync and synchronous_commit are off (tests).

find_pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return; fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then dirname "$(command -v initdb)"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_throwaway_pg() {
  PG_BIN="${PG_BIN:-$(find_pg_bin)}"
  if [ -z "$PG_BIN" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "PostgreSQL server not found; installing Debian's postgresql package" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
      PG_BIN="$(find_pg_bin)"
    fi
    if [ -z "$PG_BIN" ]; then
      echo "PostgreSQL server binaries (initdb, pg_ctl) not found; install PostgreSQL 15+" >&2
      return 1
    fi
  fi
  PG_DIR="$(mktemp -d /tmp/herald-pg.XXXXXX)"
  PG_PORT="$(free_port)"
  # initdb refuses to run as root: run the cluster as the postgres user when we are root.
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_DIR"
    AS_PG=(runuser -u postgres --)
  else
    AS_PG=()
  fi
  trap stop_throwaway_pg EXIT
  "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  # Durability settings are off for the test suite: this cluster lives for one run. Benchmarks
  # set PG_DURABLE=1 and get PostgreSQL's defaults (fsync, synchronous_commit and
  # full_page_writes on), as a production server runs.
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${PG_DURABLE:-0}" = 1 ] && durability=""
  "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -o \
    "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=400 $durability" \
    start >/dev/null
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT ($([ "${PG_DURABLE:-0}" = 1 ] && echo durable: fsync and synchronous_commit on || echo not durable: fsync off))" >&2
}

stop_throwaway_pg() {
  [ -n "${PG_DIR:-}" ] || return 0
  "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
