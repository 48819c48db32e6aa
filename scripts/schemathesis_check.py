#!/usr/bin/env python3
"""Runs schemathesis against the example server's management API and login.

Starts `target/debug/examples/server` on 127.0.0.1 with a fresh SQLite database, reads
its bootstrap admin token, and gives schemathesis an admin token of its own that the
fuzzer is unlikely to revoke or demote (the fuzzer tries small ids first, so this one
comes after a few hundred filler tokens), with sessions opened by that token and by the
first fillers (so that listing a small id's sessions yields session ids that the
document's links carry to `DELETE /sessions/{id}`), and a key that the hooks
(`schemathesis_hooks.py`) put into every other login. Checks: no
server errors, no status code the document does not list, no response body that does not
match its schema. Exits with schemathesis' status.

usage: schemathesis_check.py SERVER_BINARY SCHEMATHESIS [MAX_EXAMPLES]
"""

import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.request

from example_server import example_server


def call(addr, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{addr}{path}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


# A P-256 public key whose private half nobody kept: the secret scanning routes check
# every generated report against it (and refuse it, 401), instead of asking the real
# providers for their keys (no network here; an unreachable key document is a 503).
SCANNING_KEYS = json.dumps({
    "public_keys": [{
        "key_identifier": "schemathesis",
        "key": "-----BEGIN PUBLIC KEY-----\n"
               "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAESCMcfAFYpA7aUGecdoeydSms4EGM\n"
               "bNUz5ybtq4S9G3St3ez4+qtqSa9RHfb5N+TTmT/UEWdNf2ylB6swkZwdKA==\n"
               "-----END PUBLIC KEY-----\n",
        "is_current": True,
    }]
}).encode()


class KeyDocument(http.server.BaseHTTPRequestHandler):
    """Serves SCANNING_KEYS at every path."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(SCANNING_KEYS)))
        self.end_headers()
        self.wfile.write(SCANNING_KEYS)

    def log_message(self, *args):
        pass


def main():
    server_binary, schemathesis = sys.argv[1], sys.argv[2]
    max_examples = sys.argv[3] if len(sys.argv) > 3 else "100"
    keys = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KeyDocument)
    threading.Thread(target=keys.serve_forever, daemon=True).start()
    keys_url = f"http://127.0.0.1:{keys.server_address[1]}/keys"
    # Endpoints the fuzzer registers may name any public host: nothing is delivered.
    scanning = ["--github-keys-url", keys_url, "--gitlab-keys-url", keys_url,
                "--no-webhook-delivery"]
    with tempfile.TemporaryDirectory() as directory:
        with example_server(server_binary, directory, scanning) as (addr, admin, _):
            fillers = [
                call(addr, "POST", "/tokens", admin, {"name": f"filler {n}"})["token"]
                for n in range(300)
            ]
            # Sessions of the first fillers, whose small ids the fuzzer tries: a listing
            # of their sessions links to revoking one with an id that exists.
            for filler in fillers[:60]:
                call(addr, "POST", "/auth/login", admin, {"api_key": filler})
            fuzz_admin = call(
                addr, "POST", "/tokens", admin, {"name": "schemathesis", "scopes": ["admin"]}
            )["token"]
            # The key the hooks put into every other login (a generated one is never valid).
            login_key = call(
                addr, "POST", "/tokens", admin, {"name": "logins", "scopes": ["read"]}
            )["token"]
            # Sessions of the fuzzer's key, so that the session routes meet real ones.
            for n in range(20):
                call(addr, "POST", "/auth/login", admin,
                     {"api_key": fuzz_admin, "session_id": f"seed-{n}"})
            result = subprocess.run(
                [
                    schemathesis,
                    "run",
                    f"http://{addr}/openapi.json",
                    "--header",
                    f"Authorization: Bearer {fuzz_admin}",
                    "--checks",
                    "not_a_server_error,status_code_conformance,response_schema_conformance",
                    "--max-examples",
                    max_examples,
                    "--request-timeout",
                    "10",
                    "--seed",
                    "1",
                ],
                check=False,
                env={
                    **os.environ,
                    "SCHEMATHESIS_HOOKS": os.path.join(os.path.dirname(__file__), "schemathesis_hooks.py"),
                    "TOWER_BEARER_LOGIN_KEY": login_key,
                },
            )
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()
