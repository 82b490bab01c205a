#!/usr/bin/env python3
"""Verify Standard Webhooks signatures, independently of the Go sender.

Reads JSON on stdin:
  {"secret": "whsec_<base64>" or a plain string,
   "deliveries": [{"id": "...", "timestamp": "...", "signature": "v1,<b64> ...",
                   "body_b64": "<base64 of the raw body>"}],
   "tolerance": seconds (optional; 0 or absent: the timestamp is not checked)}
Prints "verified N" and exits 0 when every delivery carries a matching v1
signature; else names the first that does not and exits 1.
"""
import base64
import hashlib
import hmac
import json
import sys
import time


def key_of(secret):
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    return secret.encode()


def main():
    req = json.load(sys.stdin)
    key = key_of(req["secret"])
    tolerance = req.get("tolerance") or 0
    n = 0
    for d in req["deliveries"]:
        body = base64.b64decode(d["body_b64"])
        signed = d["id"].encode() + b"." + d["timestamp"].encode() + b"." + body
        want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        sigs = [s.split(",", 1)[1] for s in d["signature"].split() if s.startswith("v1,")]
        if not any(hmac.compare_digest(want, s) for s in sigs):
            print("signature mismatch for webhook-id %s" % d["id"])
            return 1
        if tolerance and abs(time.time() - int(d["timestamp"])) > tolerance:
            print("timestamp %s of webhook-id %s outside the tolerance" % (d["timestamp"], d["id"]))
            return 1
        n += 1
    print("verified %d" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
