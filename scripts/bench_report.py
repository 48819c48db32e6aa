"""Summarises the criterion results of `cargo bench` against the targets in BENCHMARKS.md.

Usage: python3 scripts/bench_report.py [target/criterion]
Reads each benchmark's mean from criterion's estimates.json; prints overheads and ratios.
"""

import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def mean(group: str, function: str) -> float | None:
    path = root / group / function / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["mean"]["point_estimate"]


def line(label: str, value: float | None, unit: str = "ns") -> None:
    print(f"  {label:<48} {'—' if value is None else f'{value:10.1f} {unit}'}")


print("1. Per-request overhead through an axum Router (1,000,000 tokens cached)")
base = mean("request_overhead", "no_auth")
overheads = {}
for name in ["tower_bearer_cache_hit", "tower_http_static_bearer", "jsonwebtoken_hs256"]:
    total = mean("request_overhead", name)
    overheads[name] = None if total is None or base is None else total - base
    line(f"{name} (total)", total)
line("no_auth (total)", base)
for name, value in overheads.items():
    line(f"{name} overhead", value)
ours, static, jwt = (overheads[k] for k in ["tower_bearer_cache_hit", "tower_http_static_bearer", "jsonwebtoken_hs256"])
if None not in (ours, static, jwt):
    print(f"  tower-bearer / tower-http overhead: {ours / static:.2f}x (target <= 1.00x)")
    print(f"  HS256 / tower-bearer overhead:      {jwt / ours:.1f}x (target >= 10x)")

print("1b. Session access tokens (a JWT from POST /auth/login), cached, in the same run")
base = mean("session_overhead", "no_auth")
session = {}
for name in ["opaque_cache_hit", "session_jwt_cache_hit", "session_jwt_fresh_hs256"]:
    total = mean("session_overhead", name)
    session[name] = None if total is None or base is None else total - base
    line(f"{name} overhead", session[name])
opaque, cached_jwt, fresh = (session[k] for k in ["opaque_cache_hit", "session_jwt_cache_hit", "session_jwt_fresh_hs256"])
if None not in (opaque, cached_jwt, fresh):
    print(f"  cached JWT / cached opaque overhead: {cached_jwt / opaque:.2f}x (target <= 1.20x)")
    print(f"  fresh HS256 / cached JWT overhead:   {fresh / cached_jwt:.1f}x (target >= 10x)")

print("1c. Activity log on vs off, cached hit through Router::layer, in the same run")
base = mean("activity_overhead", "no_auth")
off = mean("activity_overhead", "log_off")
on = mean("activity_overhead", "log_on")
line("log off (total)", off)
line("log on (total)", on)
if None not in (base, off, on):
    added = on - off
    print(f"  added by the log: {added:.1f} ns = {100 * added / (off - base):.1f}% of the off overhead,"
          f" {100 * added / off:.1f}% of the request (target <= 10% and <= 50 ns)")

print("2. Registry::verify cache hit versus the floor (SHA-256 + one DashMap get)")
floor = mean("verify_hit", "floor_sha256_plus_dashmap_get")
hit = mean("verify_hit", "tower_bearer_check")
line("floor", floor)
line("check", hit)
line("verify (async)", mean("verify_hit", "tower_bearer_verify_async"))
if floor and hit:
    print(f"  check / floor: {hit / floor:.2f}x (target <= 2.00x)")
for part in ["parse_authorization_header", "shape_and_checksum", "crc32", "sha256", "decode_shape_checksum_sha256", "clock_read"]:
    line(f"part: {part}", mean("verify_parts", part))

print("3. Cache miss against SQLite (percentiles: see the cache_miss bench output)")
line("mean miss (criterion)", mean("cache_miss", "sqlite_verify_miss"))

print("5. Junk rejection speed (query counts: see the junk_flood bench output)")
for name in ["bad_checksum", "wrong_shape", "negative_cache_hit"]:
    line(name, mean("junk_rejection", name))
