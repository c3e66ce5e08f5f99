"""Limits that keep one worker healthy under hostile or heavy traffic.

- `RequestLimits` (ASGI middleware, outermost): a request target longer than `MAX_URL_LENGTH` gets 414; a body
  declared larger than the upload limit gets 413 without being kept (it is read and dropped, so the client
  sees the answer), and a body without a declared length is kept only up to the limit (then 413); every
  request must finish within the timeout (else 503 with `Retry-After`).
- `CpuPool`: CPU work (decoding, scoring, verifying, signing) runs on a fixed pool of threads, never on the
  event loop; at most `max_inflight` requests are admitted to it at once (running or queued) and the next
  one is answered 429 with `Retry-After`. A request that times out keeps its slot until its thread finishes,
  so timeouts cannot pile more work onto a saturated worker.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from guard.serve.problems import PROBLEM_MIME, Problem, problem_document
from guard.settings import SERVE_MAX_UPLOAD_BYTES

T = TypeVar("T")
RETRY_AFTER_SECONDS = 1
DRAIN_BYTES = 64 * 1024 * 1024
"""A body over the limit is read and dropped, up to this much, before the 413 is sent: closing a connection
with unread data in it can reset it and lose the answer. Beyond that the 413 goes out and the connection
closes."""


def _problem_bytes(status: int, kind: str, detail: str, path: str) -> bytes:
    return json.dumps(problem_document(status, kind, detail, path)).encode("utf-8")


class RequestLimits:
    """URL length, body size and request time limits for every HTTP request (see the module docstring)."""

    def __init__(self, app, *, max_body: int, timeout: float, max_url: int, on_timeout: Callable[[], None]) -> None:
        self.app = app
        self.max_body = max_body
        self.timeout = timeout
        self.max_url = max_url
        self.on_timeout = on_timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        target = len(scope.get("raw_path") or path.encode()) + len(scope.get("query_string") or b"")
        if target > self.max_url:
            detail = f"The request URL is longer than {self.max_url} bytes; send the query in a POST body."
            await _send_problem(send, 414, "uri-too-long", detail, path)
            return
        started = False
        too_large = False

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with asyncio.timeout(self.timeout):
                declared = _content_length(scope)
                if declared is not None and declared > self.max_body:
                    too_large = True
                    finished = declared - self.max_body <= DRAIN_BYTES and await _drain(receive, DRAIN_BYTES)
                    await _send_problem(send, 413, "body-too-large", self._too_large(), path, close=not finished)
                    return
                body, ended = await self._read_body(receive)
                if body is None:
                    too_large = True
                    finished = ended or await _drain(receive, DRAIN_BYTES)
                    await _send_problem(send, 413, "body-too-large", self._too_large(), path, close=not finished)
                    return
                if not ended:  # the client went away: nobody to answer
                    return
                await self.app(scope, _replay(body, receive), tracking_send)
        except TimeoutError:
            if too_large:  # still sending what we would not read: answer that, and close
                await _send_problem(send, 413, "body-too-large", self._too_large(), path, close=True)
                return
            self.on_timeout()
            if not started:
                detail = f"The request took longer than {self.timeout:g} seconds; try again later."
                await _send_problem(
                    send, 503, "timeout", detail, path, headers=[(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
                )

    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_body} bytes (the limit is {SERVE_MAX_UPLOAD_BYTES})."

    async def _read_body(self, receive) -> tuple[bytes | None, bool]:
        """(the whole body, or None when it is over the limit; whether the client finished sending it — False
        when it went away, or when more of an over-limit body is still coming)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body:
                return None, not more
            chunks.append(chunk)
            if not more:
                return b"".join(chunks), True


async def _drain(receive, budget: int) -> bool:
    """Read and drop the rest of a body (at most `budget` bytes); True when it ended within that."""
    while budget >= 0:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return budget >= 0
    return False


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive):
    """A `receive` that hands the app the body already read, then waits on the real one (for disconnects)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_problem(send, status: int, kind: str, detail: str, path: str, *, close=False, headers=()) -> None:
    body = _problem_bytes(status, kind, detail, path)
    response_headers = [
        (b"content-type", PROBLEM_MIME.encode()),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    if close:  # the client may still be sending a body we will not read
        response_headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


class CpuPool:
    """A fixed pool of threads for CPU work, with admission control (see the module docstring)."""

    def __init__(
        self,
        threads: int,
        max_inflight: int,
        on_reject: Callable[[], None] | None = None,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.threads = threads
        self.on_reject = on_reject
        self.on_change = on_change
        self.max_inflight = max_inflight
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="guard-serve")
        self._inflight = 0
        self._lock = threading.Lock()

    @property
    def inflight(self) -> int:
        return self._inflight

    def try_acquire(self) -> bool:
        """Take a slot if one is free (the caller must `release` it)."""
        with self._lock:
            if self._inflight >= self.max_inflight:
                return False
            self._inflight += 1
            self._changed()
            return True

    def release(self) -> None:
        with self._lock:
            self._inflight -= 1
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self._inflight)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on a pool thread; 429 when `max_inflight` requests already hold a slot."""
        if not self.try_acquire():
            if self.on_reject is not None:
                self.on_reject()
            raise Problem(
                429,
                "overloaded",
                f"This worker is busy with {self.max_inflight} requests; retry after {RETRY_AFTER_SECONDS} s.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        try:
            future = self.executor.submit(functools.partial(fn, *args, **kwargs))
        except BaseException:
            self.release()
            raise
        future.add_done_callback(lambda _: self.release())  # also when the awaiting request timed out
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
