#!/usr/bin/env python3
"""Soak: the example server under a mixed load for a while.

Valid, junk, expired and revoked tokens from several threads, and churn through the
management API (issue, use, revoke, rotate) beside them. Reports requests per second,
p99 latency, 5xx answers, requests wrongly accepted (a revoked or rotated-away token
answered 200 after its revocation returned), and the server's RSS after warm-up and at
the end. Fails unless there are no 5xx, no wrongly accepted requests, and the RSS stays
within 10% of its post-warm-up value.

usage: soak.py SERVER_BINARY [SECONDS]
"""

import http.client
import json
import random
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

from example_server import example_server


class Client:
    """One keep-alive connection."""

    def __init__(self, addr):
        host, port = addr.split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=10)

    def call(self, method, path, token=None, body=None):
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
            payload = response.read()
        except (http.client.HTTPException, OSError):
            self.connection.close()
            raise
        return response.status, (json.loads(payload) if payload else None)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.server_errors = 0
        self.wrongly_accepted = 0
        self.unexpected = []

    def record(self, seconds, status):
        with self.lock:
            self.latencies.append(seconds)
            if status >= 500:
                self.server_errors += 1

    def wrong(self, what):
        with self.lock:
            self.wrongly_accepted += 1
            self.unexpected.append(what)


def main():
    binary = sys.argv[1]
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
    with tempfile.TemporaryDirectory() as directory:
        with example_server(binary, directory) as (addr, admin, server):
            status = soak(addr, admin, server.pid, duration)
    sys.exit(status)


def soak(addr, admin, pid, duration):
    setup = Client(addr)
    valid = [setup.call("POST", "/tokens", admin, {"name": f"valid {n}", "scopes": ["read"]})[1]["token"] for n in range(50)]
    soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    expired = [setup.call("POST", "/tokens", admin, {"name": f"expiring {n}", "expires_at": soon})[1]["token"] for n in range(10)]
    revoked = []
    for n in range(10):
        created = setup.call("POST", "/tokens", admin, {"name": f"revoked {n}"})[1]
        setup.call("DELETE", f"/tokens/{created['id']}", admin)
        revoked.append(created["token"])
    time.sleep(2.5)  # the expiring tokens have expired
    revoked_lock = threading.Lock()
    stats = Stats()
    stop = threading.Event()

    def load(seed):
        rng = random.Random(seed)
        client = Client(addr)
        while not stop.is_set():
            kind = rng.random()
            if kind < 0.7:
                token, expect = rng.choice(valid), 200
            elif kind < 0.8:
                token, expect = "sk_live_" + "".join(rng.choice("abcdefXYZ019") for _ in range(38)), 401
            elif kind < 0.9:
                token, expect = rng.choice(expired), 401
            else:
                with revoked_lock:
                    token = rng.choice(revoked)
                expect = 401
            started = time.perf_counter()
            status, _ = client.call("GET", "/me", token)
            stats.record(time.perf_counter() - started, status)
            if expect == 401 and status == 200:
                stats.wrong(f"{token[:12]}… answered 200")

    def churn():
        client = Client(addr)
        n = 0
        while not stop.is_set():
            n += 1
            status, created = client.call("POST", "/tokens", admin, {"name": f"churn {n}", "scopes": ["read"]})
            if status != 201:
                stats.record(0.0, status)
                continue
            token = created["token"]
            client.call("GET", "/me", token)
            if n % 3 == 0:
                status, rotated = client.call("POST", f"/tokens/{created['id']}/rotate", admin)
                gone = token
                if status == 201:
                    client.call("DELETE", f"/tokens/{rotated['id']}", admin)
            else:
                client.call("DELETE", f"/tokens/{created['id']}", admin)
                gone = token
            # Revocation (or rotation) returned: the old token never works again.
            status, _ = client.call("GET", "/me", gone)
            if status == 200:
                stats.wrong(f"churn {n}: answered 200 after its revocation returned")
            with revoked_lock:
                revoked.append(gone)
            time.sleep(0.02)

    threads = [threading.Thread(target=load, args=(seed,)) for seed in range(6)]
    threads.append(threading.Thread(target=churn))
    start = time.time()
    for thread in threads:
        thread.start()
    # Warm-up: caches fill and the allocator settles (a quarter of the run, 10 s to 2 min).
    time.sleep(min(120.0, max(10.0, duration / 4)))
    rss_warm = rss_kib(pid)
    warm_count = len(stats.latencies)
    warm_time = time.time()
    time.sleep(max(0.0, duration - (time.time() - start)))
    stop.set()
    for thread in threads:
        thread.join()
    rss_end = rss_kib(pid)
    elapsed = time.time() - warm_time
    latencies = sorted(stats.latencies[warm_count:]) or [0.0]
    p99 = latencies[int(len(latencies) * 0.99) - 1 if len(latencies) > 1 else 0]
    rps = len(latencies) / elapsed if elapsed > 0 else 0.0
    growth = (rss_end - rss_warm) / rss_warm if rss_warm else 0.0
    print(f"soak: {time.time() - start:.0f} s, {rps:.0f} requests/s after warm-up, p99 {p99 * 1000:.2f} ms")
    print(f"5xx answers: {stats.server_errors}; wrongly accepted: {stats.wrongly_accepted}")
    print(f"RSS after warm-up {rss_warm} KiB, at the end {rss_end} KiB ({growth:+.1%})")
    for what in stats.unexpected[:10]:
        print(f"  {what}")
    ok = stats.server_errors == 0 and stats.wrongly_accepted == 0 and abs(growth) <= 0.10
    print("result: " + ("pass" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    main()
