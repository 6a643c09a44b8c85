#!/usr/bin/env python3
"""Herald's fault suite: real processes, real crashes, counted deliveries.

Each scenario publishes events one per request (as game servers do) at a steady rate to a
counting webhook receiver, breaks something, and then checks the at-least-once promise:

    acknowledged  events Herald answered 201 to
    delivered     distinct acknowledged events the receiver got
    lost          acknowledged but never delivered: must be 0
    duplicated    deliveries beyond the first of an event: allowed only within the
                  documented bound (events in flight on a node when it died)

Scenarios (CHAOS_SCENARIOS picks, by name):

    kill9-sqlite      kill -9 Herald mid-run, restart it on the same SQLite file
    kill9-postgres    the same on PostgreSQL
    kill9-two-nodes   two nodes on one PostgreSQL, kill -9 one of them mid-run
    receiver-faults   the receiver refuses connections, then answers 500, then 429 and 503
                      with Retry-After, then recovers; then answers 410 (the endpoint is
                      disabled once, with one event)
    disk-full         SQLite on a small tmpfs filled up mid-run, then space returns (skipped
                      where tmpfs cannot be mounted: needs root)

Afterwards each checks the database: SQLite's integrity_check, and every acknowledged event
present in the outbox. Prints one JSON line per scenario and exits 1 if any failed.

    scripts/chaos.sh                          # full: 20 s of publishing per scenario
    CHAOS_SECONDS=4 scripts/chaos.sh          # the short form scripts/test.sh runs
Environment: CHAOS_HERALD (the binary; default: target/release/herald, built by chaos.sh), PG_URL and
PG_BIN (PostgreSQL scenarios; chaos.sh starts a throwaway cluster), CHAOS_RATE (events/s, 100).
"""

import http.server
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

# Absolute, because each node runs with its data directory as working directory: a relative
# path (CI's default target/debug/herald) would be looked up from there and not be found.
HERALD = os.path.abspath(os.environ.get("CHAOS_HERALD", "target/release/herald"))
SECONDS = float(os.environ.get("CHAOS_SECONDS", "20"))
RATE = float(os.environ.get("CHAOS_RATE", "100"))
PG_URL, PG_BIN = os.environ.get("PG_URL"), os.environ.get("PG_BIN")
# Short leases and retries, so a dead node's deliveries and a failing receiver's are taken up
# again within the run.
HERALD_ENV = {
    "HERALD_WEBHOOKS__LEASE_SECS": "3",
    "HERALD_WEBHOOKS__RETRY_SCHEDULE_SECS": "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]",
    "HERALD_WEBHOOKS__RETRY_JITTER": "0",
    "HERALD_WEBHOOKS__RETRY_AFTER_CAP_SECS": "2",
    "HERALD_HTTP__RATE_LIMIT_PER_SEC": "0",
    "HERALD_LOG": os.environ.get("CHAOS_LOG", "warn"),
}
MAX_IN_FLIGHT = 256  # Herald's default webhooks.max_in_flight: the duplicate bound per kill


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A webhook sink that counts what arrives by `webhook-id` (one per event and endpoint)
    and can be told to misbehave: `mode` is ok, 500, 429, 503, 410, or refuse (no listener)."""

    def __init__(self):
        self.port = free_port()
        self.mode = "ok"
        self.received = []  # event ids, in arrival order, repeats included
        self.lock = threading.Lock()
        self.server = None
        self.listen()

    def listen(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                mode = receiver.mode
                if mode == "ok":
                    event = json.loads(body)
                    with receiver.lock:
                        receiver.received.append(event.get("id") or self.headers.get("webhook-id"))
                    self.send_response(200)
                else:
                    self.send_response(int(mode))
                    if mode in ("429", "503"):
                        self.send_header("Retry-After", "1")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set_mode(self, mode):
        if mode == "refuse":
            if self.server:
                self.server.shutdown()
                self.server.server_close()
                self.server = None
        elif self.server is None:
            self.listen()
        self.mode = mode if mode != "refuse" else "ok"

    def counts(self):
        with self.lock:
            return list(self.received)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"


class Node:
    def __init__(self, env, data_dir):
        self.port = free_port()
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        self.env = dict(inherited, **HERALD_ENV, **env, HERALD_LISTEN=f"127.0.0.1:{self.port}")
        self.data_dir = data_dir
        self.proc = None
        self.out = ""

    def start(self):
        self.proc = subprocess.Popen([HERALD, "serve"], cwd=self.data_dir, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 60
        for line in self.proc.stdout:
            self.out += line
            if "Herald listening on" in line:
                threading.Thread(target=self._drain, daemon=True).start()
                return self
            if time.time() > deadline:
                break
        raise RuntimeError(f"herald did not start:\n{self.out[-3000:]}")

    def _drain(self):
        for line in self.proc.stdout:
            self.out += line

    def key(self):
        found = re.search(r"^\s*(hk_\S+)\s*$", self.out, re.M)
        return found.group(1) if found else None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"


def call(base, key, method, path, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"X-API-Key": key, "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Publisher:
    """Publishes `chaos.tick` events one per request at RATE per second, round-robin over the
    nodes, on a few threads; remembers what Herald acknowledged and what else it answered."""

    def __init__(self, nodes, key):
        self.nodes, self.key = nodes, key
        self.acked, self.answers, self.examples, self.messages = [], {}, {}, {}
        self.lock = threading.Lock()
        self.stop_at = 0

    def run(self, seconds):
        self.stop_at = time.time() + seconds
        threads = [threading.Thread(target=self._worker, args=(i, 8)) for i in range(8)]
        for t in threads:
            t.start()
        return threads

    def _worker(self, index, workers):
        interval = workers / RATE
        n, next_at = index, time.time()
        while time.time() < self.stop_at:
            node = self.nodes[n % len(self.nodes)]
            try:
                status, body = call(node.base, self.key, "POST", "/api/v1/events",
                                    {"type": "chaos.tick", "data": {"n": n}}, timeout=5)
            except Exception:  # noqa: BLE001 - a dead node refuses; that is the point
                status, body = "refused", None
            with self.lock:
                self.answers[str(status)] = self.answers.get(str(status), 0) + 1
                if status not in (201, "refused") and str(status) not in self.examples:
                    self.examples[str(status)] = body
                if status not in (201, "refused"):
                    message = ((body or {}).get("error") or {}).get("message") if isinstance(body, dict) else None
                    self.messages.setdefault(str(status), set()).add(message)
                if status == 201:
                    self.acked.append(body["id"])
            n += workers
            next_at += interval
            time.sleep(max(0.0, next_at - time.time()))


def setup(node, receiver):
    key = node.key()
    assert key, f"no admin key printed:\n{node.out}"
    status, _ = call(node.base, key, "POST", "/api/v1/event-types", {"name": "chaos.tick"})
    assert status == 201, status
    status, hook = call(node.base, key, "POST", "/api/v1/webhooks", {"url": receiver.url, "events": ["chaos.*"]})
    assert status == 201, hook
    return key, hook["id"]


def settle(receiver, acked, timeout=60):
    """Waits until every acknowledged event arrived, or the timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if set(acked) <= set(receiver.counts()):
            break
        time.sleep(0.25)
    got = receiver.counts()
    lost = len(set(acked) - set(got))
    return {"acknowledged": len(acked), "delivered": len(set(acked) & set(got)), "lost": lost,
            "duplicated": len(got) - len(set(got)), "received_unacknowledged": len(set(got) - set(acked))}


def fresh_pg_database():
    if not PG_URL or not PG_BIN:
        return None
    name = f"chaos_{uuid.uuid4().hex[:10]}"
    subprocess.run([os.path.join(PG_BIN, "psql"), PG_URL, "-qc", f"CREATE DATABASE {name}"], check=True)
    return PG_URL.rsplit("/", 1)[0] + "/" + name


def pg_missing(url, acked):
    ids = ",".join(f"'{i}'" for i in acked) or "''"
    out = subprocess.run([os.path.join(PG_BIN, "psql"), url, "-qAtc",
                          f"SELECT count(*) FROM events WHERE id IN ({ids})"], check=True,
                         capture_output=True, text=True).stdout.strip()
    return len(acked) - int(out)


def sqlite_check(path, acked):
    db = sqlite3.connect(path)
    ok = db.execute("PRAGMA integrity_check").fetchone()[0]
    present = {row[0] for row in db.execute("SELECT id FROM events WHERE type = 'chaos.tick'")}
    db.close()
    return ok, len(set(acked) - present)


def kill9(backend, nodes_count):
    receiver = Receiver()
    work = tempfile.mkdtemp(prefix="herald-chaos-")
    env = {}
    if backend == "postgres":
        url = fresh_pg_database()
        if not url:
            return {"skipped": "PG_URL/PG_BIN not set"}
        env["HERALD_DATABASE_URL"] = url
    nodes = [Node(env, work).start()]
    key, _ = setup(nodes[0], receiver)
    for _ in range(1, nodes_count):
        nodes.append(Node(env, work).start())
    publisher = Publisher(nodes, key)
    threads = publisher.run(SECONDS)
    time.sleep(SECONDS / 2)
    victim = nodes[-1]
    victim.kill9()
    time.sleep(1)
    victim.start()
    for t in threads:
        t.join()
    result = settle(receiver, publisher.acked)
    for node in nodes:
        node.stop()
    if backend == "postgres":
        result["missing_from_outbox"] = pg_missing(env["HERALD_DATABASE_URL"], publisher.acked)
    else:
        result["integrity"], result["missing_from_outbox"] = sqlite_check(
            os.path.join(work, "herald-data", "herald.db"), publisher.acked)
    result["answers"] = publisher.answers
    result["ok"] = (result["lost"] == 0 and result["missing_from_outbox"] == 0 and result["acknowledged"] > 0
                    and result["duplicated"] <= MAX_IN_FLIGHT and result.get("integrity", "ok") == "ok")
    return result


def receiver_faults():
    receiver = Receiver()
    work = tempfile.mkdtemp(prefix="herald-chaos-")
    node = Node({}, work).start()
    key, hook = setup(node, receiver)
    publisher = Publisher([node], key)
    threads = publisher.run(SECONDS)
    phases = ["refuse", "500", "429", "503", "ok"]
    for mode in phases:
        receiver.set_mode(mode)
        time.sleep(SECONDS / len(phases))
    for t in threads:
        t.join()
    result = settle(receiver, publisher.acked, timeout=90)
    # 410: the endpoint is disabled, once, with one event, however many deliveries were in flight.
    receiver.set_mode("410")
    for n in range(20):
        call(node.base, key, "POST", "/api/v1/events", {"type": "chaos.tick", "data": {"n": -n}})
    deadline = time.time() + 30
    active = True
    while time.time() < deadline and active:
        _, got = call(node.base, key, "GET", f"/api/v1/webhooks/{hook}")
        active = got.get("active", True)
        time.sleep(0.25)
    time.sleep(2)
    _, events = call(node.base, key, "GET", "/api/v1/events?type=webhook.endpoint_disabled")
    node.stop()
    result["disabled_after_410"] = not active
    result["endpoint_disabled_events"] = len(events.get("items", []))
    result["ok"] = (result["lost"] == 0 and result["acknowledged"] > 0 and not active
                    and result["endpoint_disabled_events"] == 1)
    return result


def disk_full():
    if os.geteuid() != 0:
        return {"skipped": "mounting a tmpfs needs root"}
    mount = tempfile.mkdtemp(prefix="herald-chaos-disk-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mount], capture_output=True).returncode:
        return {"skipped": "cannot mount a tmpfs here"}
    try:
        receiver = Receiver()
        node = Node({}, mount).start()
        key, _ = setup(node, receiver)
        publisher = Publisher([node], key)
        # Publishing stops when this scenario says so (below), not after a fixed time.
        threads = publisher.run(3600)
        time.sleep(SECONDS / 4)
        # Fill the disk, hold it full until a write is refused, then give the space back.
        # How long that takes varies: SQLite keeps writing into its WAL file's existing pages
        # for a while, and only a write that needs new space fails. A fixed second of "full"
        # was sometimes over before any write needed space (nothing refused, readiness fine).
        filler = os.path.join(mount, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        full_until = time.time() + max(SECONDS / 4, 30)
        time.sleep(SECONDS / 4)
        # Readiness says "unavailable" from a refused write until a write succeeds again, and
        # a small write can still fit while the disk is full: so poll it, as a balancer does.
        ready = {}
        while time.time() < full_until:
            if "503" in publisher.answers:
                _, ready = call(node.base, key, "GET", "/readyz")
                if ready.get("status") != "ready":
                    break
            time.sleep(0.1)
        os.remove(filler)
        time.sleep(SECONDS / 2)
        publisher.stop_at = 0
        for t in threads:
            t.join()
        result = settle(receiver, publisher.acked)
        node.stop()
        if os.environ.get("CHAOS_KEEP_LOG"):
            with open(os.environ["CHAOS_KEEP_LOG"], "w") as log:
                log.write(node.out)
        result["integrity"], result["missing_from_outbox"] = sqlite_check(
            os.path.join(mount, "herald-data", "herald.db"), publisher.acked)
        result["answers"] = publisher.answers
        result["answer_examples"] = publisher.examples
        result["messages_503"] = sorted(str(m) for m in publisher.messages.get("503", ()))
        result["ready_while_full"] = ready
        # While the disk is full a write is refused with 503 (retry later), nothing else, and
        # every such answer says why (out of storage), also for the requests whose write was
        # batched with the one that met the full disk; readiness says so too. A write
        # answered 201 must be on disk (lost stays 0).
        result["ok"] = (result["lost"] == 0 and result["missing_from_outbox"] == 0 and result["integrity"] == "ok"
                        and set(publisher.answers) <= {"201", "503"} and "503" in publisher.answers
                        and all("out of storage" in m for m in result["messages_503"])
                        and ready.get("status") != "ready")
        return result
    finally:
        subprocess.run(["umount", "-l", mount], capture_output=True)


SCENARIOS = {
    "kill9-sqlite": lambda: kill9("sqlite", 1),
    "kill9-postgres": lambda: kill9("postgres", 1),
    "kill9-two-nodes": lambda: kill9("postgres", 2),
    "receiver-faults": receiver_faults,
    "disk-full": disk_full,
}


def main():
    wanted = os.environ.get("CHAOS_SCENARIOS", " ".join(SCENARIOS)).split()
    failed = False
    for name in wanted:
        started = time.time()
        try:
            result = SCENARIOS[name]()
        except Exception as e:  # noqa: BLE001 - a scenario that breaks is a failed scenario
            result = {"ok": False, "error": repr(e)}
        result = {"scenario": name, "seconds": round(time.time() - started, 1),
                  "publish_rate": RATE, "shape": "1 event per request, 8 connections", **result}
        print(json.dumps(result), flush=True)
        failed |= result.get("ok") is False
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
