"""Engines run the filter's stages over shards: `local` (worker processes on this machine) or `ray` (Ray Data).

An engine gets the shards still to score, the worker context and two callbacks: `on_chunk(records)` after
every chunk (progress) and `on_shard(shard, records)` once all of a shard's records are in, in chunk
order (the job then writes the shard's checkpoint). Both engines cut shards into the same chunks and run
the same stage code on them, so they produce the same records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from guard.dataset.samples import Shard
from guard.errors import GuardError

if TYPE_CHECKING:  # the stages import every detector; Ray's reading tasks import this package without them
    from guard.dataset.stages import FilterContext

OnChunk = Callable[[list[dict[str, Any]]], None]
OnShard = Callable[[Shard, list[dict[str, Any]]], None]
ENGINES = ("local", "ray")


class Engine(Protocol):
    name: str
    workers: int

    def run(
        self,
        shards: Sequence[Shard],
        context: FilterContext,
        *,
        chunk_size: int,
        on_chunk: OnChunk,
        on_shard: OnShard,
    ) -> None: ...


def make_engine(name: str, *, workers: int | None = None, address: str | None = None) -> Engine:
    """The engine called `name`, with `workers` worker processes (default: one per CPU core, or Ray's CPUs)."""
    if name == "local":
        if address is not None:
            raise GuardError("--address is for --engine ray; the local engine runs on this machine.")
        from guard.dataset.engines.local import LocalEngine

        return LocalEngine(workers=workers)
    if name == "ray":
        from guard.dataset.engines.ray import RayEngine

        return RayEngine(workers=workers, address=address)
    raise GuardError(f"unknown engine {name!r}; use one of {', '.join(ENGINES)}.")
