#!/usr/bin/env python3
"""A minimal airlock webhook receiver: verifies X-Airlock-Signature, drops repeats, logs events.

    examples/webhook_receiver.py --secret-file secret --out events.jsonl [--port 0]

Prints "listening on http://127.0.0.1:PORT/" once ready. Each verified CloudEvent is appended to
--out as one JSON line; a request whose signature does not verify gets 401 and is not logged; an
event id seen before gets 200 and is not logged again (airlock delivers at least once: a retry
after a lost answer carries the same id). Only the Python standard library is used.
"""
import argparse
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    secret = open(args.secret_file, "rb").read().rstrip(b"\r\n")
    seen = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            given = self.headers.get("X-Airlock-Signature", "")
            if not hmac.compare_digest(expected, given):
                self.send_response(401)
                self.end_headers()
                return
            event = json.loads(body)
            if event["id"] not in seen:
                seen.add(event["id"])
                with open(args.out, "a") as out:
                    out.write(json.dumps(event, sort_keys=True) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
