"""A small HTTP/1.1 keep-alive load generator for what wrk cannot do: a fixed request rate, and one-at-a-time timing.

* ``open_loop``: requests are *scheduled* at a constant rate, whatever the server does, and each latency is
  measured from its scheduled time (so a stall delays every request queued behind it: no coordinated omission).
  Connections are reused; a new one is opened only when all are busy.
* ``sequential``: one connection, one request at a time; the time of each request (for the scaling workload).

Responses must carry ``Content-Length`` (uvicorn's do). Runs with uvloop when available, like the servers.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    return head + body


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.need: int | None = None
        self.status = 0
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCP transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[: end + 2])
            self.status = int(head[9:12])
            m = _CONTENT_LENGTH.search(head)
            if m is None:
                self._fail(RuntimeError("response without Content-Length"))
                return
            self.need = end + 4 + int(m[1])
        if len(self.buf) >= self.need:
            del self.buf[: self.need]
            self.need = None
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(self.status)

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionError("connection closed"))

    async def send(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def _connect(host: str, port: int) -> _Conn:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(_Conn, host, port)
    return conn


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    elapsed_s: float = 0.0
    connections: int = 0

    def pct(self, p: float) -> float:
        if not self.seconds:
            return float("nan")
        s = sorted(self.seconds)
        return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


async def _open_loop(
    host: str, port: int, data: bytes, rate: float, duration_s: float, warmup_s: float, max_conns: int
) -> Latencies:
    loop = asyncio.get_running_loop()
    idle: list[_Conn] = [await _connect(host, port) for _ in range(min(8, max_conns))]
    opened = len(idle)
    slots = asyncio.Semaphore(max_conns)
    out = Latencies()
    tasks: set[asyncio.Task[None]] = set()
    start = loop.time() + 0.02
    measure_from = start + warmup_s
    total = int(rate * (warmup_s + duration_s))

    async def one(scheduled: float) -> None:
        nonlocal opened
        async with slots:
            status = 0
            for attempt in (1, 2):  # a kept-alive connection the server has just closed is retried once, as
                conn = None  # browsers and HTTP clients do; the latency still counts from the scheduled time
                while idle and conn is None:
                    candidate = idle.pop()
                    conn = None if candidate.closed else candidate
                try:
                    if conn is None:
                        conn = await _connect(host, port)
                        opened += 1
                    status = await conn.send(data)
                    break
                except Exception as exc:  # counted and reported, never lost in an unretrieved task
                    if attempt == 2 or conn is None or not conn.closed:
                        if scheduled >= measure_from:
                            out.errors += 1
                            kind = type(exc).__name__
                            out.error_kinds[kind] = out.error_kinds.get(kind, 0) + 1
                        return
            if scheduled >= measure_from:
                out.sent += 1
                if status != 200:
                    out.errors += 1
                    out.error_kinds[f"HTTP {status}"] = out.error_kinds.get(f"HTTP {status}", 0) + 1
                else:
                    out.seconds.append(loop.time() - scheduled)
            if conn is not None and not conn.closed:
                idle.append(conn)

    i = 0
    while i < total:
        now = loop.time()
        while i < total and start + i / rate <= now:
            t = loop.create_task(one(start + i / rate))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    out.elapsed_s = duration_s
    out.connections = opened
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    return out


async def _sequential(host: str, port: int, data: bytes, count: int, max_s: float, warmup: int) -> Latencies:
    conn = await _connect(host, port)
    out = Latencies(connections=1)
    deadline = time.perf_counter() + max_s
    for i in range(warmup + count):
        t0 = time.perf_counter()
        status = await conn.send(data)
        dt = time.perf_counter() - t0
        if i < warmup:
            continue
        out.sent += 1
        if status != 200:
            out.errors += 1
            out.error_kinds[f"HTTP {status}"] = out.error_kinds.get(f"HTTP {status}", 0) + 1
        out.seconds.append(dt)
        if time.perf_counter() > deadline and len(out.seconds) >= 3:
            break
    if conn.transport is not None:
        conn.transport.close()
    return out


def _run(coro: Coroutine[Any, Any, Latencies]) -> Latencies:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def open_loop(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    rate: float,
    duration_s: float,
    warmup_s: float = 1.0,
    max_conns: int = 256,
) -> Latencies:
    """Latencies of requests sent at ``rate`` per second for ``duration_s`` (after ``warmup_s`` not counted)."""
    return _run(_open_loop(host, port, request_bytes(host, port, path, body), rate, duration_s, warmup_s, max_conns))


def sequential(host: str, port: int, path: str, body: bytes, *, count: int, max_s: float, warmup: int = 2) -> Latencies:
    """Times of ``count`` requests made one after the other on one keep-alive connection (stops after ``max_s``)."""
    return _run(_sequential(host, port, request_bytes(host, port, path, body), count, max_s, warmup))
