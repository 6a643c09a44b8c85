#!/usr/bin/env python3
"""Runs README.md's shell commands as printed, in order, on a fresh copy of the repository.

A newcomer's first command once failed while every test passed, because nothing ran it. This
script follows the README instead of a copy of it: it reads every ```sh block, and runs each
command literally (only the README's own placeholders are filled in: `hk_...` with the key the
first start printed, `<project-id>`, `<key-id>`, and each `postgres://...@db.internal/NAME`
with a fresh database NAME on the test cluster). Called by scripts/test.sh, so CI runs it.

- A command ending in `serve` starts a server; the check waits for "Herald listening on",
  reads the admin key and project id a first start prints, runs the hint the banner prints
  (`... keys create ...`) as printed, and stops the previous server first.
- A command with a trailing `# NNN` comment (curl examples) must answer HTTP status NNN.
- Every other command must exit 0.
- After a server starts on a database filled by `migrate-data`, the source's key must work
  there and list the player the README created (the README promises both).

Environment: PG_URL (a superuser URL of a throwaway cluster, from scripts/pg.sh) and PG_BIN
(its binaries, for psql); without them the PostgreSQL commands fail. HERALD_README_KEEP=1
keeps the copy (in target/readme-check). `./scripts/test.sh` itself is skipped (this script runs inside it).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = {"./scripts/test.sh"}
# The first `cargo run --release` compiles everything: allow for a slow machine.
FIRST_START_TIMEOUT = 40 * 60
START_TIMEOUT = 5 * 60
COMMAND_TIMEOUT = 30 * 60
PG_PLACEHOLDER = re.compile(r"postgres://herald:secret@db\.internal/(\w+)")


def fail(message, output=""):
    print(f"README check FAILED: {message}", file=sys.stderr)
    if output:
        print(output[-6000:], file=sys.stderr)
    sys.exit(1)


def commands(readme):
    """Yields (line number, command, expected status or None) for each command of each sh block."""
    in_block = False
    pending, start = [], 0
    for number, line in enumerate(readme.splitlines(), 1):
        if line.strip().startswith("```"):
            in_block = line.strip() == "```sh" if not in_block else False
            continue
        if not in_block:
            continue
        if not pending:
            if not line.strip() or line.strip().startswith("#"):
                continue
            start = number
        pending.append(line)
        if line.rstrip().endswith("\\"):
            continue
        command = "\n".join(pending)
        pending = []
        # A trailing comment (two spaces, then `#`) that starts with a status code.
        status = re.search(r"\s{2,}#\s*(\d{3})\b[^\n]*$", command)
        yield start, command, int(status.group(1)) if status else None


class Server:
    def __init__(self, command, cwd, env, timeout):
        self.command = command
        self.out = []
        self.proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.time() + timeout
        while "Herald listening on" not in self.output():
            if self.proc.poll() is not None:
                self.reader.join(5)
                fail(f"`{command}` exited ({self.proc.returncode}) before listening", self.output())
            if time.time() > deadline:
                self.stop()
                fail(f"`{command}` did not listen within {timeout} s", self.output())
            time.sleep(0.2)

    def _read(self):
        for line in self.proc.stdout:
            self.out.append(line)

    def output(self):
        return "".join(self.out)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.reader.join(5)


def copy_repo(dest):
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, files):
        source = os.path.join(REPO, name)
        if not os.path.isfile(source):
            continue  # deleted in the work tree
        target = os.path.join(dest, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)


def main():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    steps = list(commands(readme))
    if not any(c.rstrip().endswith(" serve") for _, c, _ in steps):
        fail("README.md has no command that starts the server (`... serve`)")

    # A fresh copy each run, always at the same path: cargo keys its build on the package's
    # path, so the same path lets a second run reuse the first one's release build.
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    tmp = os.path.join(target_dir, "readme-check")
    shutil.rmtree(tmp, ignore_errors=True)
    work = os.path.join(tmp, "herald")
    copy_repo(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "CARGO_")) and k != "CARGO"}
    env["CARGO_TARGET_DIR"] = target_dir
    env["CARGO_INSTALL_ROOT"] = os.path.join(tmp, "install")
    env["PATH"] = os.path.join(tmp, "install", "bin") + os.pathsep + env.get("PATH", "")
    # curl as printed; its answer's status is added by its config file.
    env["CURL_HOME"] = os.path.join(tmp, "curl")
    os.makedirs(env["CURL_HOME"])
    with open(os.path.join(env["CURL_HOME"], ".curlrc"), "w") as rc:
        rc.write('silent\nshow-error\nmax-time = 30\nwrite-out = "\\n%{http_code}\\n"\n')

    pg_url, pg_bin = os.environ.get("PG_URL"), os.environ.get("PG_BIN")
    databases = {}  # README database name -> real URL

    def pg_database(match):
        name = match.group(1)
        if name not in databases:
            if not pg_url or not pg_bin:
                fail("the README uses PostgreSQL: run this from scripts/test.sh (PG_URL and PG_BIN unset)")
            real = f"readme_{name}_{uuid.uuid4().hex[:8]}"
            subprocess.run([os.path.join(pg_bin, "psql"), pg_url, "-qc", f"CREATE DATABASE {real}"], check=True)
            databases[name] = pg_url.rsplit("/", 1)[0] + "/" + real
        return databases[name]

    state = {"keys": {}, "project": None, "key_id": None, "server": None, "db": None}
    first_start = True

    def database_of(command):
        url = re.search(r"HERALD_DATABASE_URL=(\S+)", command)
        return url.group(1) if url else "sqlite"

    def run(command, expect_status, line, run_env=None):
        shown = command.splitlines()[0][:100]  # as printed: no key in the log
        if "hk_..." in command:
            key = state["keys"].get(state["db"])
            if not key:
                fail(f"README.md:{line}: `hk_...` but no key was printed for the running server")
            command = command.replace("hk_...", key)
        for placeholder, value in (("<project-id>", state["project"]), ("<key-id>", state["key_id"])):
            if placeholder in command:
                if not value:
                    fail(f"README.md:{line}: {placeholder} is not known at this point")
                command = command.replace(placeholder, value)
        started = time.time()
        try:
            done = subprocess.run(["bash", "-c", command], cwd=work, env=run_env or env, capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail(f"README.md:{line}: `{command}` did not finish within {COMMAND_TIMEOUT} s")
        output = done.stdout + done.stderr
        if done.returncode != 0:
            fail(f"README.md:{line}: `{command}` exited {done.returncode}", output)
        if expect_status is not None:
            got = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
            if got != str(expect_status):
                fail(f"README.md:{line}: `{command}` answered {got or 'nothing'}, the README says {expect_status}", output)
        created = re.search(r"created key (\S+) ", done.stderr)
        if created:
            state["key_id"] = created.group(1)
        if "keys list" in command and state["key_id"] is None:
            ids = [l.split()[0] for l in done.stdout.splitlines()[1:] if l.strip()]
            state["key_id"] = ids[0] if ids else None
        print(f"  ok  README.md:{line}: {shown}"
              f"{f' -> {expect_status}' if expect_status else ''} ({time.time() - started:.0f} s)")
        return done

    migrated_from = {}  # destination database -> source database
    try:
        for line, printed, status in steps:
            if printed.strip() in SKIP:
                print(f"  --  README.md:{line}: {printed} (this check runs inside it)")
                continue
            command = PG_PLACEHOLDER.sub(pg_database, printed)
            if command.rstrip().endswith(" serve"):
                if state["server"]:
                    state["server"].stop()
                started = time.time()
                server = Server(command, work, env, FIRST_START_TIMEOUT if first_start else START_TIMEOUT)
                first_start = False
                state["server"], state["db"] = server, database_of(command)
                out = server.output()
                key = next((l.strip() for l in out.splitlines() if l.strip().startswith("hk_")), None)
                project = re.search(r"project `default` \((\S+)\)", out)
                if key:
                    state["keys"][state["db"]] = key
                    state["project"] = project.group(1) if project else state["project"]
                print(f"  ok  README.md:{line}: {printed[:100]} (listening after {time.time() - started:.0f} s"
                      f"{', printed the admin key' if key else ''})")
                if state["db"] in migrated_from:
                    source = migrated_from[state["db"]]
                    if key:
                        fail(f"README.md:{line}: a migrated database bootstrapped again (printed a new key)", out)
                    state["keys"][state["db"]] = state["keys"].get(source)
                    check_migrated(state["keys"][state["db"]], line)
                elif not key and state["db"] not in state["keys"]:
                    fail(f"README.md:{line}: the first start on this database printed no admin key", out)
                hint = re.search(r"(?:More keys[^:]*|Need an admin key\? Run): (.+)$", out, re.M)
                if not hint:
                    fail(f"README.md:{line}: the banner has no `keys create` hint", out)
                hint_env = dict(env)
                if state["db"] != "sqlite":
                    # The banner says: with this server's database_url.
                    hint_env["HERALD_DATABASE_URL"] = state["db"]
                run(hint.group(1).strip(), None, f"{line} (the banner's hint)", hint_env)
                continue
            done_from = re.search(r"migrate-data --from (\S+) --to (\S+)", command)
            if done_from:
                if state["server"]:
                    state["server"].stop()
                    state["server"] = None
                source = "sqlite" if done_from.group(1).startswith("sqlite") else done_from.group(1)
                migrated_from[done_from.group(2)] = source
            run(command, status, line)
    finally:
        if state["server"]:
            state["server"].stop()
        if os.environ.get("HERALD_README_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"README check passed: {len(steps)} commands, as printed")


def check_migrated(key, line):
    request = urllib.request.Request("http://127.0.0.1:8080/api/v1/users?limit=100", headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read().decode()
    except Exception as e:  # noqa: BLE001 - any failure is the check's failure
        fail(f"README.md:{line}: the source's key does not work on the migrated database: {e}")
    if '"player123"' not in body:
        fail(f"README.md:{line}: the migrated database lacks the README's player", body)
    print(f"  ok  README.md:{line}: the SQLite instance's key and player are there after migrate-data")


if __name__ == "__main__":
    main()
