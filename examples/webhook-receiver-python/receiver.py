#!/usr/bin/env python3
"""A complete Herald webhook receiver on Python's standard library: no pip install.

For every POST it verifies the Standard Webhooks signature Herald sends (headers webhook-id,
webhook-timestamp, webhook-signature) over the raw body, refuses a timestamp more than 5
minutes away from this machine's clock (a captured request replayed later), and acknowledges
each event once: Herald delivers at least once, so a retry or a replay of an event already
handled is answered 200 again but not handled twice.

  verified, new event        200 {"received":true}                one line on stdout
  verified, already handled  200 {"received":true,"duplicate":true}
  anything else              401 {"error":"<why>"}  (405 for other methods, 411 without
                                                     Content-Length, 413 above MAX_BODY_BYTES)

Usage: WEBHOOK_SECRET=whsec_... [PORT=3000] [HOST=127.0.0.1] python3 receiver.py

Standard output, one JSON object a line: first {"listening":<port>} (useful with PORT=0, any
free port), then {"event":<the envelope Herald sent>} for each verified new event. Rejections,
repeats and the access log go to standard error. See README.md.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_REMEMBERED_IDS = 100_000

TOLERANCE_SECS = 5 * 60  # how far webhook-timestamp may be from this machine's clock


def standard_key(secret):
    """The HMAC key of a secret, as Herald signs: the base64 after `whsec_`, or the UTF-8 bytes
    of a secret without that prefix (one you chose when registering the endpoint)."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    return secret.encode("utf-8")


def verify_standard(key, headers, raw_body, now_secs):
    """Why the request is not a genuine Herald delivery, or None when it is one."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 15):
        return "webhook-timestamp is not unix seconds"
    if abs(now_secs - int(timestamp)) > TOLERANCE_SECS:
        return "webhook-timestamp is more than 5 minutes away"
    signed = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + raw_body, hashlib.sha256).digest()
    expected = b"v1," + base64.b64encode(signed)
    # One signature per secret during a secret rotation, space-separated: one match is enough.
    for candidate in signatures.split(" "):
        # compare_digest on bytes: constant time, and simply False for another length.
        if hmac.compare_digest(candidate.encode("utf-8"), expected):
            return None
    return "no signature matches"


class Handled:
    """The webhook-ids handled so far (the event's id: the same on every retry and replay). In
    memory for the example, so a restart forgets them; a real receiver records the id in its
    database, in the same transaction as what the event changes."""

    def __init__(self):
        self.ids = OrderedDict()
        self.lock = threading.Lock()

    def first_time(self, msg_id):
        with self.lock:
            if msg_id in self.ids:
                return False
            self.ids[msg_id] = None
            if len(self.ids) > MAX_REMEMBERED_IDS:
                self.ids.popitem(last=False)
            return True


OUTPUT = threading.Lock()


def handle(event):
    """What this receiver does with an event: here, print it as one line. Requests are handled
    on several threads, and print() writes a line and its newline separately, so two events at
    once could share a line: one write, under a lock."""
    line = json.dumps({"event": event}, separators=(",", ":")) + "\n"
    with OUTPUT:
        sys.stdout.write(line)
        sys.stdout.flush()


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Herald reuses its connections
    key = b""
    handled = Handled()

    def answer(self, status, body):
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse_unread(self, status, message):
        # The body was not read: the connection cannot carry another request.
        self.close_connection = True
        self.answer(status, {"error": message})

    def do_POST(self):
        try:
            length = int(self.headers.get("content-length", ""))
        except ValueError:
            return self.refuse_unread(411, "send a Content-Length")
        if length < 0 or length > MAX_BODY_BYTES:
            return self.refuse_unread(413, f"body over {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(length)
        problem = verify_standard(self.key, self.headers, body, int(time.time()))
        if problem:
            print(f"refused {self.headers.get('webhook-id', '(no webhook-id)')}: {problem}", file=sys.stderr)
            return self.answer(401, {"error": problem})
        try:
            event = json.loads(body)
        except ValueError as e:
            return self.answer(400, {"error": f"the body is not JSON: {e}"})
        msg_id = self.headers["webhook-id"]
        if not self.handled.first_time(msg_id):
            print(f"repeat of {msg_id}: already handled", file=sys.stderr)
            return self.answer(200, {"received": True, "duplicate": True})
        handle(event)
        self.answer(200, {"received": True})

    def do_GET(self):
        self.refuse_unread(405, "send webhooks with POST")

    do_PUT = do_PATCH = do_DELETE = do_GET


def main():
    secret = os.environ.get("WEBHOOK_SECRET", "")
    try:
        key = standard_key(secret) if secret else b""
    except binascii.Error:
        key = b""
    if not key:
        sys.exit("set WEBHOOK_SECRET to the endpoint's secret (whsec_... or the secret you registered)")
    Receiver.key = key
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "3000"))), Receiver)
    print(json.dumps({"listening": server.server_address[1]}, separators=(",", ":")), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
