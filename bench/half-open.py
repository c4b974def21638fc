#!/usr/bin/env python3
"""Half-open WebSocket upgrades against one hub: N connections each send the
first lines of an upgrade request and never finish it (the slow-loris way of
holding a server's sockets). Prints, every 5 s, how many the server still
holds open and the server's RSS, then closes them all.

usage: bench/half-open.py HOST:PORT PID [N=5000] [SECONDS=40]
(the client raises its own open-file limit; loopback only.)"""
import asyncio
import resource
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def hold(host, port, gone):
    try:
        r, w = await asyncio.open_connection(host, port)
    except OSError:
        gone.append(1)
        return
    w.write(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
    await w.drain()
    try:
        await r.read()  # returns once the server closes
    except OSError:
        pass
    gone.append(1)
    w.close()


async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    pid = int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    before = rss_kib(pid)
    gone = []
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(hold(host, int(port), gone)))
        if i % 500 == 499:
            await asyncio.sleep(0.05)
    start = time.monotonic()
    peak = before
    while time.monotonic() - start < seconds:
        await asyncio.sleep(5)
        now = rss_kib(pid)
        peak = max(peak, now)
        print(f"t={time.monotonic() - start:.0f}s held={n - len(gone)} rss_kib={now}", flush=True)
    print(f"half_open={n} rss_before_kib={before} rss_peak_kib={peak} still_held_at_end={n - len(gone)}")
    for t in tasks:
        t.cancel()


asyncio.run(main())
