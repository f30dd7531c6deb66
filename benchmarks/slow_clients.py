"""Slow clients against the portal's edge (issue 26): how long an honest request waits, and what a
held connection costs.

A small ASGI application (the edge's cost, not the portal's pages) is served in a subprocess with
``RLIMIT_NOFILE`` lowered to 1,024 (systemd's default), once under uvicorn's own protocol and loop
and once under duban's (``web.edge.EdgeProtocol``, ``web.accept.EdgeLoop``, the production
deadlines: 15 s for headers, 30 s for a body). 1,100 clients from 22 loopback addresses (50 each:
under the per-client cap) send a byte every half second — half of them never finish their
headers, half trickle a body — and then one honest GET is timed. Then 2,000 stalled connections
are held and the server's resident memory per connection is read from ``/proc``.

    .venv/bin/python benchmarks/slow_clients.py [--clients 1100] [--nofile 1024]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress

SERVER = r"""
import logging, resource, sys, structlog, uvicorn
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))  # (quiet)
nofile = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False) and message["type"] == "http.request"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

options = dict(host="127.0.0.1", port=int(sys.argv[1]), log_level="critical", timeout_keep_alive=5)
if sys.argv[3] == "edge":
    from orchestrator.web.edge import EdgeLimits, edge_protocol
    options.update(http=edge_protocol(EdgeLimits()), loop="orchestrator.web.accept:EdgeLoop")
else:
    options.update(http="h11", loop="asyncio")
uvicorn.run(app, **options)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(kind: str, nofile: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    # (stderr dropped: uvicorn's own loop fills it with the EMFILE storm's tracebacks)
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(nofile), kind], stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return process, port
        time.sleep(0.05)
    raise SystemExit(f"the {kind} server did not start")


def honest(port: int, timeout: float) -> float | None:
    """Seconds until a plain GET is answered (None: not within ``timeout``)."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(max(0.1, timeout - (time.monotonic() - started)))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = sock.recv(100)
    except OSError:
        return None
    return time.monotonic() - started if answer.startswith(b"HTTP/1.1 200") else None


def slow_clients(port: int, count: int, per_address: int = 50) -> tuple[list[socket.socket], threading.Event]:
    """``count`` connections, half stalling in their headers, half trickling a body."""
    sockets = []
    for n in range(count):
        sock = socket.socket()
        sock.bind((f"127.0.1.{2 + n // per_address}", 0))
        sock.settimeout(10)
        with suppress(OSError):
            sock.connect(("127.0.0.1", port))
            head = (
                "GET / HTTP/1.1\r\nHost: x\r\n"
                if n % 2
                else "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
            )
            sock.sendall(head.encode())
        sock.setblocking(False)
        sockets.append(sock)
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.5):
            for sock in sockets:
                with suppress(OSError):
                    sock.send(b"x")

    threading.Thread(target=drip, daemon=True).start()
    return sockets, stop


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1100)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--held", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    print(f"{args.clients} slow clients (22+ addresses), RLIMIT_NOFILE {args.nofile}; one honest GET:")
    for kind in ("uvicorn", "edge"):
        process, port = start(kind, args.nofile)
        try:
            quiet = honest(port, 5)
            sockets, stop = slow_clients(port, args.clients)
            time.sleep(1.0)
            waited = honest(port, 30)
            stop.set()
            for sock in sockets:
                sock.close()
        finally:
            process.terminate()
            process.wait(timeout=20)
        said = "no answer in 30 s" if waited is None else f"{waited:.2f} s"
        print(f"  {kind:8} quiet {quiet or 0:.3f} s · under attack {said}")
    process, port = start("edge", args.held + 512)
    try:
        before = rss_kib(process.pid)
        sockets, stop = slow_clients(port, args.held)
        time.sleep(2.0)
        after = rss_kib(process.pid)
        stop.set()
        for sock in sockets:
            sock.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
    per = (after - before) / args.held
    print(
        f"{args.held} held connections (edge): RSS {before / 1024:.1f} → {after / 1024:.1f} MiB, {per:.1f} KiB each"
    )
    print(f"  so 8,192 descriptors (deploy/duban-web.service) ≈ {per * 8192 / 1024:.0f} MiB of connections")


if __name__ == "__main__":
    main()
