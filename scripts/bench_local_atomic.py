#!/usr/bin/env python3
"""Benchmark the local Atomic's webhook trigger.

Starts the emulator on a free loopback port (dbt_atomic_local.stack), then sends
signed webhook requests from a few threads, each over its own keep-alive
connection, until --requests have been sent or --duration seconds have passed,
and prints requests/second and latency percentiles. Traffic stays on 127.0.0.1.

    .venv/bin/python scripts/bench_local_atomic.py --requests 20000 --threads 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter

from dbt_atomic_local import stack
from dbt_atomic_local.atomic import presets
from dbt_atomic_local.atomic.config import parse_config
from dbt_atomic_local.atomic.signing import sign_headers

# Fresh per run: the connector token and the signing secret are secrets.
TOKEN = secrets.token_urlsafe(24)
SECRET = secrets.token_urlsafe(24)


def bench_config(users_per_request: int) -> dict:
    return {
        "triggers": {
            TOKEN: {
                "name": "bench",
                "mode": "live",
                "signing": presets.tutorial_signing(SECRET),
                "mapping": {"user_id": "targetUserId", "variables": {"balance": "balance"}},
            }
        },
        "request_log": {"limit": 10000},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000, help="total requests (at most 1,000,000)")
    parser.add_argument("--duration", type=float, default=30, help="stop after this many seconds (at most 300)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (at most 64)")
    parser.add_argument("--users", type=int, default=1, help="users per request (a JSON array)")
    args = parser.parse_args(argv)
    total = max(1, min(args.requests, 1_000_000))
    duration = max(0.1, min(args.duration, 300))
    threads = max(1, min(args.threads, 64))

    config = bench_config(args.users)
    signing = parse_config(config).triggers[TOKEN].signing
    assert signing is not None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
        config_path = handle.name

    server = stack.start("atomic", extra_args=["--config", config_path])
    try:
        lock = threading.Lock()
        sent = 0
        latencies: list[float] = []
        statuses: Counter[int | str] = Counter()
        deadline = time.monotonic() + duration
        path = f"/bench/connector/{TOKEN}"

        def worker(number: int) -> None:
            nonlocal sent
            conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
            mine: list[float] = []
            seen: Counter[int | str] = Counter()
            i = 0
            while time.monotonic() < deadline:
                with lock:
                    if sent >= total:
                        break
                    sent += 1
                i += 1
                rows = [{"targetUserId": f"user-{number}-{i}-{k}", "balance": 12.5} for k in range(args.users)]
                body = json.dumps(rows if args.users > 1 else rows[0]).encode()
                headers = {"Content-Type": "application/json", "User-Agent": "bench"}
                headers.update(sign_headers(signing, body))
                start = time.perf_counter()
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    seen[response.status] += 1
                except (OSError, http.client.HTTPException) as exc:
                    seen[type(exc).__name__] += 1
                    conn.close()
                    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
                mine.append(time.perf_counter() - start)
            conn.close()
            with lock:
                latencies.extend(mine)
                statuses.update(seen)

        workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        began = time.perf_counter()
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        elapsed = time.perf_counter() - began
    finally:
        server.stop()
        os.unlink(config_path)

    if not latencies:
        print("no request was sent", file=sys.stderr)
        return 1
    latencies.sort()
    ms = [x * 1000 for x in latencies]

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p / 100 * len(ms)))]

    print(f"requests: {len(ms)} in {elapsed:.2f}s from {threads} threads, {args.users} user(s) per request")
    print(f"throughput: {len(ms) / elapsed:.0f} requests/s")
    print(
        f"latency ms: p50 {pct(50):.2f}  p90 {pct(90):.2f}  p99 {pct(99):.2f}  "
        f"max {ms[-1]:.2f}  mean {statistics.fmean(ms):.2f}"
    )
    print(f"statuses: {dict(statuses)}")
    return 0 if set(statuses) == {200} else 1


if __name__ == "__main__":
    raise SystemExit(main())
