#!/usr/bin/env python3
"""Open-loop load on `graft serve`: POSTs one image to /v1/predict at Poisson arrivals, RATE a
second for SECONDS, whether or not earlier requests were answered. wrk's closed loop sends a
client's next request only on its answer, so clients come back together, right after a batch;
independent users arrive whenever they like. Latency counts from each request's scheduled time
(no coordinated omission). Prints one JSON line.

    python3 bench/open_loop.py URL IMAGE RATE SECONDS [SEED]

URL is the server's root (http://127.0.0.1:PORT). Connections are kept alive and reused; a new
one opens when every open one is busy. Standard library only.
"""
import asyncio
import json
import random
import statistics
import sys
import time
from urllib.parse import urlparse


async def post(host, port, body, pool):
    """One request over an idle pooled connection (or a new one); its status code."""
    reader, writer = pool.pop() if pool else await asyncio.open_connection(host, port)
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n")
    writer.write(head.encode() + body)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    pool.append((reader, writer))
    return status


async def main():
    url, image, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    rng = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    u = urlparse(url)
    body = open(image, "rb").read()
    pool, results = [], []

    async def one(scheduled):
        try:
            status = await post(u.hostname, u.port, body, pool)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            status = None
        results.append((status, (time.perf_counter() - scheduled) * 1000))

    start = time.perf_counter()
    at, tasks = start, []
    while True:
        at += rng.expovariate(rate)
        if at >= start + seconds:
            break
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    ok = sorted(ms for status, ms in results if status == 200)
    q = statistics.quantiles(ok, n=100) if len(ok) > 1 else [float("nan")] * 99
    print(json.dumps({
        "rate": rate, "seconds": seconds, "sent": len(results), "ok": len(ok),
        "errors": len(results) - len(ok), "achieved_per_s": round(len(ok) / elapsed, 1),
        "p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2), "p99_ms": round(q[98], 2),
        "connections": len(pool),
    }))


if __name__ == "__main__":
    asyncio.run(main())
