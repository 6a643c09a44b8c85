#!/usr/bin/env bash
# Sourced by scripts/test.sh: installs what the interop tests (crates/herald/tests/it/interop.rs)
# run besides Herald, and tells them where it is:
#
# - HERALD_TEST_PYTHON: a Python venv (target/interop-venv) with the Standard Webhooks
#   reference library, pinned in tests/interop/python/requirements.txt;
# - HERALD_TEST_NODE_DIR: tests/interop/node with its node_modules (`npm ci` from the
#   committed package-lock.json), where the seeds' Express receiver lives.
#
# Each step is skipped when what it would install is already there and up to date, so a warm
# run costs a few hundred milliseconds. If an install fails the variables stay unset and the
# interop tests fail saying so; the rest of the suite still runs.

interop_venv_ok() {
  local venv="$1" req="$2"
  [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/.herald-requirements" &&
    "$venv/bin/python" -c 'import standardwebhooks.webhooks' 2>/dev/null
}

# python3 -m venv, installing Debian's python3-venv (ensurepip) first if it is missing and we
# are root, as scripts/pg.sh does for PostgreSQL.
interop_make_venv() {
  local venv="$1"
  if python3 -m venv --clear "$venv" >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "python3 -m venv failed (no ensurepip?); installing Debian's python3-venv" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv --clear "$venv" >/dev/null 2>&1 && return 0
    /usr/bin/python3 -m venv --clear "$venv" && return 0
  fi
  echo "cannot create a Python venv: install python3 with venv (Debian: python3-venv)" >&2
  return 1
}

install_interop_python() {
  local venv="$PWD/target/interop-venv" req="$PWD/tests/interop/python/requirements.txt"
  if ! interop_venv_ok "$venv" "$req"; then
    echo "interop: creating $venv ($(grep -v '^#' "$req" | xargs))" >&2
    command -v python3 >/dev/null || { echo "python3 not found" >&2; return 1; }
    interop_make_venv "$venv" || return 1
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" || return 1
    cp "$req" "$venv/.herald-requirements"
  fi
  export HERALD_TEST_PYTHON="$venv/bin/python"
}

install_interop_node() {
  local dir="$PWD/tests/interop/node"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "interop: node/npm not found; installing Debian's nodejs and npm" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    fi
    command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm not found" >&2; return 1; }
  fi
  # npm ci reinstalls from scratch every time: run it only when the lock file changed.
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.herald-package-lock.json"; then
    echo "interop: npm ci in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    cp "$dir/package-lock.json" "$dir/node_modules/.herald-package-lock.json"
  fi
  export HERALD_TEST_NODE_DIR="$dir"
}

install_interop_deps() {
  install_interop_python || echo "interop: the Python venv could not be set up; the interop tests will fail" >&2
  install_interop_node || echo "interop: the Node receiver could not be set up; the interop tests will fail" >&2
}
