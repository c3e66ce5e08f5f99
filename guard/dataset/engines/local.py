"""The local streaming engine: chunks decoded and scored in worker processes, memory bounded by design.

The main process reads shards in order (I/O only) and hands chunks to a pool of worker processes; at most
`2 * workers + 1` chunks are in flight, so memory holds a few chunks' bytes whatever the dataset's size.
Each worker builds the stages once (models loaded once per worker, single-threaded: one worker per core
beats one process with many threads for models this size) and runs decode, inspect and score on a whole
chunk, decoding each image once. Results come back in submission order, so a shard's records are
complete, and in order, as soon as its last chunk returns.

Workers start with `spawn`, never `fork`: a forked onnxruntime or OpenCV thread pool can deadlock.
A worker exits by itself when the job's process dies. `workers=0` runs everything in this process (no
pool), for debugging.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from guard.dataset.engines import OnChunk, OnShard
from guard.dataset.readers import iter_chunks
from guard.dataset.samples import Chunk, Shard
from guard.dataset.stages import ChunkProcessor, FilterContext
from guard.errors import GuardError

_processor: ChunkProcessor | Exception | None = None


def _start_worker(context: FilterContext) -> None:
    global _processor
    _watch_parent(os.getppid())
    try:
        _processor = ChunkProcessor(context)
    except Exception as exc:  # raised again with the first chunk, so the job reports it instead of a dead pool
        _processor = exc


def _watch_parent(parent: int) -> None:
    """Exit when the job's process dies (a SIGKILL leaves no chance to stop its workers), so no orphaned
    worker goes on holding models and memory."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="guard-parent-watch", daemon=True).start()


def _process(chunk: Chunk) -> list[dict[str, Any]]:
    if isinstance(_processor, Exception):
        raise _processor
    assert _processor is not None, "worker not initialised"
    return _processor(chunk)


class LocalEngine:
    """Worker processes on this machine (default: one per CPU core)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = (os.cpu_count() or 1) if workers is None else max(0, int(workers))

    def run(
        self,
        shards: Sequence[Shard],
        context: FilterContext,
        *,
        chunk_size: int,
        on_chunk: OnChunk,
        on_shard: OnShard,
    ) -> None:
        if not shards:
            return
        if self.workers == 0:
            processor = ChunkProcessor(context)
            for shard in shards:
                records: list[dict[str, Any]] = []
                for chunk in iter_chunks(shard, chunk_size):
                    done = processor(chunk) if chunk.samples else []
                    records += done
                    on_chunk(done)
                on_shard(shard, records)
            return
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(context,),
        )
        in_flight: deque[tuple[Shard, bool, Future]] = deque()
        gathered: dict[int, list[dict[str, Any]]] = {}
        limit = 2 * self.workers + 1

        def collect() -> None:
            shard, last, future = in_flight.popleft()
            try:
                records = future.result()
            except BrokenProcessPool:
                raise GuardError(
                    f"a worker process died while scoring shard {shard.id} (killed, or out of memory); the shards "
                    "finished so far are kept: run the same command again with --resume."
                ) from None
            gathered.setdefault(shard.index, []).extend(records)
            on_chunk(records)
            if last:
                on_shard(shard, gathered.pop(shard.index))

        try:
            for shard in shards:
                for chunk in iter_chunks(shard, chunk_size):
                    future: Future = Future()
                    if chunk.samples:
                        future = pool.submit(_process, chunk)
                    else:
                        future.set_result([])
                    in_flight.append((shard, chunk.last, future))
                    while len(in_flight) >= limit:
                        collect()
            while in_flight:
                collect()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
