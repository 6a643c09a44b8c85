"""Verifies captured Herald deliveries with the Standard Webhooks reference library.

Run by crates/herald/tests/it/interop.rs. Reads JSON from stdin:
  {"cases": [{"name": str, "secret": "whsec_...", "body_b64": str, "headers": {name: value}}]}
and writes JSON to stdout, one result per case, in order:
  {"results": [{"name": str, "verified": bool, "error": str | null, "error_type": str | null,
                "payload": any}]}
where `payload` is what Webhook.verify returned (the parsed body) when it verified, and
`error_type` the exception's class name when it did not (WebhookVerificationError for a
signature or header that does not check out; anything else is a broken case, such as a secret
that is not `whsec_` + base64).
"""

import base64
import json
import sys

from standardwebhooks.webhooks import Webhook


def check(case):
    body = base64.b64decode(case["body_b64"])
    result = {"name": case["name"], "verified": False, "error": None, "error_type": None, "payload": None}
    try:
        result["payload"] = Webhook(case["secret"]).verify(body, case["headers"])
        result["verified"] = True
    except Exception as e:  # noqa: BLE001 - every failure is reported, with its type
        result["error"] = str(e)
        result["error_type"] = type(e).__name__
    return result


def main():
    cases = json.load(sys.stdin)["cases"]
    json.dump({"results": [check(c) for c in cases]}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
