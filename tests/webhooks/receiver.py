"""A webhook receiver for the tests: verifies every request's Standard Webhooks signature
with the independent `standardwebhooks` package from PyPI, answers by a schedule, and
records each request as one JSON line.

Usage: receiver.py <port> <secret>[,<secret>…] <record file> <schedule>

The schedule is a list of `status:seconds[:retry-after]` phases counted from the first
request, then the last status for ever; e.g. `503:6,429:3:1,200`. `drop` as a status closes
the connection without an answer. A request to `/gone` is always answered 410.

With `RECEIVER_CERT` and `RECEIVER_KEY` (PEM files) in the environment it listens with TLS
(`https://`).
"""
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

port, secrets, record, schedule = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3], sys.argv[4]
phases = []
for part in schedule.split(","):
    bits = part.split(":")
    phases.append((bits[0], float(bits[1]) if len(bits) > 1 else None, bits[2] if len(bits) > 2 else None))
started = None
lock = threading.Lock()


def phase_now():
    global started
    with lock:
        if started is None:
            started = time.monotonic()
        elapsed = time.monotonic() - started
    for status, seconds, retry_after in phases:
        if seconds is None or elapsed < seconds:
            return status, retry_after
        elapsed -= seconds
    return phases[-1][0], phases[-1][2]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = False
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
                break
            except Exception:
                pass
        if self.path.startswith("/gone"):
            status, retry_after = "410", None
        else:
            status, retry_after = phase_now()
        line = {
            "id": headers.get("webhook-id"), "path": self.path, "verified": verified,
            "answered": status, "at": time.time(), "body": json.loads(body or b"null"),
            "signatures": len(headers.get("webhook-signature", "").split()),
        }
        with lock:
            with open(record, "a") as f:
                f.write(json.dumps(line) + "\n")
        if status == "drop":
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(int(status))
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
if os.environ.get("RECEIVER_CERT"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["RECEIVER_CERT"], os.environ["RECEIVER_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
