"""A real grpcio server on loopback for the interceptor tests: ``test.Echo`` in all four call
shapes, bytes in and out (no codegen), counting the calls that reached it; and a client that
calls it through the fault interceptors, sync or asyncio."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from gameday.injector.grpc_points import aio_fault_interceptors, faulted_channel
from gameday.injector.points import PointRules

SERVICE = "test.Echo"
#: Each shape's method: its full name, as a channel calls it.
SAY = f"/{SERVICE}/Say"  # unary-unary: the request back
REPEAT = f"/{SERVICE}/Repeat"  # unary-stream: the request three times
COLLECT = f"/{SERVICE}/Collect"  # stream-unary: the requests joined
CHAT = f"/{SERVICE}/Chat"  # stream-stream: each request back


class EchoServer:
    """The running server and the calls each method received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        #: What was left of each ``Say`` call's deadline when it arrived (None: no deadline).
        self.remaining: list[float | None] = []
        handlers = {
            "Say": grpc.unary_unary_rpc_method_handler(self._say),
            "Repeat": grpc.unary_stream_rpc_method_handler(self._repeat),
            "Collect": grpc.stream_unary_rpc_method_handler(self._collect),
            "Chat": grpc.stream_stream_rpc_method_handler(self._chat),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"
        self.server.start()

    def calls(self, method: str | None = None) -> int:
        """Calls received by ``method`` (its short name, ``Say``), or by all."""
        with self._lock:
            return self._calls[method] if method else sum(self._calls.values())

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self.remaining.clear()

    def stop(self) -> None:
        self.server.stop(grace=None).wait(10)

    def _seen(self, method: str) -> None:
        with self._lock:
            self._calls[method] += 1

    def _say(self, request: bytes, context: Any) -> bytes:
        self._seen("Say")
        with self._lock:
            self.remaining.append(context.time_remaining())
        return request

    def _repeat(self, request: bytes, context: Any) -> Iterator[bytes]:
        self._seen("Repeat")
        for _ in range(3):
            yield request

    def _collect(self, requests: Iterator[bytes], context: Any) -> bytes:
        self._seen("Collect")
        return b"".join(requests)

    def _chat(self, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        self._seen("Chat")
        yield from requests


SLOW = 30.0  # the bound no faulted call may reach: far above any delay on two busy cores
MODES = ("sync", "aio")


@dataclass(frozen=True)
class Shape:
    """One call shape: the method, and what the server answers for the test's requests."""

    name: str
    method: str
    answer: Any


SHAPES = [Shape("Say", SAY, b"hi"), Shape("Repeat", REPEAT, [b"hi"] * 3),
          Shape("Collect", COLLECT, b"ab"), Shape("Chat", CHAT, [b"a", b"b"])]
SHAPE_IDS = [shape.name for shape in SHAPES]


class Client:
    """Calls through fault interceptors, on a sync channel or on a ``grpc.aio`` one (on a
    loop of its own, so that one test body covers both)."""

    def __init__(self, mode: str, target: str, rules: PointRules | None, prefix: str) -> None:
        self.mode = mode
        if mode == "sync":
            self.channel = faulted_channel(grpc.insecure_channel(target), rules, prefix=prefix)
            return
        self.loop = asyncio.new_event_loop()

        async def connect() -> Any:
            return grpc.aio.insecure_channel(
                target, interceptors=aio_fault_interceptors(rules, prefix=prefix))

        self.channel = self.loop.run_until_complete(connect())

    def call(self, shape: Shape, timeout: float = SLOW) -> Any:
        if self.mode == "sync":
            return _sync_call(self.channel, shape, timeout)
        return self.loop.run_until_complete(_aio_call(self.channel, shape, timeout))

    def status(self, shape: Shape, timeout: float = SLOW) -> grpc.RpcError:
        """The error a call of ``shape`` ends with (it must end with one)."""
        with pytest.raises(grpc.RpcError) as raised:
            self.call(shape, timeout)
        if self.mode == "aio":
            assert type(raised.value) is grpc.aio.AioRpcError
        else:
            assert isinstance(raised.value, grpc.Call)
        return raised.value

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        if self.mode == "sync":
            self.channel.close()
            return
        self.loop.run_until_complete(self.channel.close())
        self.loop.close()


def _sync_call(channel: grpc.Channel, shape: Shape, timeout: float) -> Any:
    if shape.method == SAY:
        return channel.unary_unary(SAY)(b"hi", timeout=timeout)
    if shape.method == REPEAT:
        return list(channel.unary_stream(REPEAT)(b"hi", timeout=timeout))
    if shape.method == COLLECT:
        return channel.stream_unary(COLLECT)(iter([b"a", b"b"]), timeout=timeout)
    return list(channel.stream_stream(CHAT)(iter([b"a", b"b"]), timeout=timeout))


async def _requests() -> AsyncIterator[bytes]:
    for request in (b"a", b"b"):
        yield request


async def _aio_call(channel: Any, shape: Shape, timeout: float) -> Any:
    if shape.method == SAY:
        return await channel.unary_unary(SAY)(b"hi", timeout=timeout)
    if shape.method == REPEAT:
        return [r async for r in channel.unary_stream(REPEAT)(b"hi", timeout=timeout)]
    if shape.method == COLLECT:
        return await channel.stream_unary(COLLECT)(_requests(), timeout=timeout)
    return [r async for r in channel.stream_stream(CHAT)(_requests(), timeout=timeout)]
