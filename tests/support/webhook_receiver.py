"""A Standard Webhooks receiver for the tests, on 127.0.0.1: every request is verified
with the `standardwebhooks` package (the reference library receivers use), answered with
the statuses given on the command line in turn (then 204; 401 when the signature does
not verify), and printed as one JSON line: {"id", "verified", "status", "body"}.

The first line printed is {"port": N}. Each line read from stdin is the secret to verify
with from then on (`whsec_…`); until the first, requests are answered 503. Ends when
stdin closes.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

statuses = [int(status) for status in sys.argv[1:]]
secret = None
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with lock:
            if secret is None:
                verified, status = False, 503
            else:
                try:
                    Webhook(secret).verify(body, dict(self.headers.items()))
                    verified = True
                except WebhookVerificationError:
                    verified = False
                status = (statuses.pop(0) if statuses else 204) if verified else 401
            line = {
                "id": self.headers.get("webhook-id"),
                "verified": verified,
                "status": status,
                "body": body.decode("utf-8", "replace"),
            }
            print(json.dumps(line), flush=True)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"port": server.server_address[1]}), flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
for line in sys.stdin:
    with lock:
        secret = line.strip()
server.shutdown()
