"""The Ray Data engine: the local worker's stage code, as an actor pool on a Ray cluster.

    shards ──flat_map(read chunks)──► FilterStage actors (decode, checks, NSFW models) ──► driver

* One dataset row is one chunk (the same chunks the local engine cuts, so every model sees the same
  batches); it travels as a pickled payload, since a chunk's samples are heterogeneous records.
* Reading is I/O (a small CPU reservation, so the actor pool never starves it). `FilterStage` runs
  `ChunkProcessor` — decode, hashes, watermarks, credentials, metadata, opt-outs, captions and the NSFW
  models, loaded once per actor — in a pool of `workers` actors sized with Ray Data's
  `compute=ActorPoolStrategy(size=...)` (Ray 2.51 deprecated `concurrency=`). One stage rather than a CPU
  stage and a model stage: split in two, each image was decoded and shipped twice and twice the processes
  shared the cores, which cost about 30 % more CPU per sample on a CPU-only machine (bench/dataset.py). With
  GPU actors, splitting the model stage off would pay; it is not done here.
* `preserve_order` keeps chunks in job order, so the driver knows a shard is complete when its last
  chunk arrives, and writes its checkpoint then, as the local engine does.

`address` is passed to `ray.init` (`auto`, `ray://host:10001`, ...); without one a local Ray is started for
the job and shut down after it. If Ray is already initialised in this process, that instance is used. The
inputs must be readable at the same paths on every node (a shared file system). Over Ray Client (`ray://`)
Ray Data cannot be driven from the client (its executor needs a core worker), so a `PipelineDriver` actor
on the cluster runs the pipeline and this process pulls each chunk's records from it and writes the outputs
where the command runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from guard.dataset.engines import OnChunk, OnShard
from guard.dataset.readers import iter_chunks
from guard.dataset.samples import Shard
from guard.errors import GuardError, user_errors

if TYPE_CHECKING:  # reading tasks import this module: they need the readers, not the detectors
    from guard.dataset.stages import FilterContext

READ_CPUS = 0.1
"""CPU reserved per reading task: reading a shard is I/O, and the actor pools hold the rest."""


def _read_chunks(row: dict[str, Any], chunk_size: int) -> Iterator[dict[str, Any]]:
    shard = Shard.from_dict(json.loads(row["shard"]))
    for chunk in iter_chunks(shard, chunk_size):
        yield {"shard": shard.index, "payload": pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)}


class FilterStage:
    """Ray actor: a chunk's decode, checks and model scores (the local worker's `ChunkProcessor`), set up once."""

    def __init__(self, context: bytes) -> None:
        from guard.dataset.stages import ChunkProcessor

        self.processor = ChunkProcessor(pickle.loads(context))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        payloads = []
        for payload in batch["payload"]:
            chunk = pickle.loads(payload)
            records = self.processor(chunk) if chunk.samples else []
            payloads.append(pickle.dumps((chunk.shard, chunk.last, records), protocol=pickle.HIGHEST_PROTOCOL))
        return {"shard": batch["shard"], "payload": payloads}


class RayEngine:
    """Ray Data on a local Ray or a cluster (`address`); `workers` actors per stage (default: Ray's CPUs)."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self.requested = workers
        self.workers = workers or 0
        self.address = address
        self.startup_seconds = 0.0
        """Time spent starting or joining Ray (a cluster that is already up costs little)."""

    def run(
        self,
        shards: Sequence[Shard],
        context: FilterContext,
        *,
        chunk_size: int,
        on_chunk: OnChunk,
        on_shard: OnShard,
    ) -> None:
        try:
            import ray
            import ray.data
        except ImportError:
            raise GuardError("--engine ray needs Ray Data: pip install 'image-guard[dataset]'.") from None
        started = False
        began = time.perf_counter()
        if not ray.is_initialized():
            try:
                with warnings.catch_warnings():  # Ray Client warns, then raises what is said below
                    warnings.filterwarnings("ignore", category=UserWarning, module=r"ray\.util\.client")
                    ray.init(
                        address=self.address,
                        include_dashboard=False,
                        logging_level="ERROR",
                        log_to_driver=False,
                        configure_logging=True,
                    )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise GuardError(_init_error(self.address, exc)) from None
            started = True
        self.startup_seconds = time.perf_counter() - began
        try:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))
            self.workers = max(1, self.requested or int(cpus))
            if shards:
                with _quiet_data_context():
                    self._run(ray, shards, context, chunk_size, cpus, on_chunk, on_shard)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, shards, context, chunk_size, cpus, on_chunk: OnChunk, on_shard: OnShard) -> None:
        packed = pickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL)
        specs = [json.dumps(shard.to_dict()) for shard in shards]
        driver = None
        if ray.util.client.ray.is_connected():
            # Ray Client (ray://): Ray Data cannot drive a job from a client, so an actor on the cluster drives
            # the pipeline and hands each chunk's records back on request; this process writes the outputs.
            driver = ray.remote(num_cpus=0)(PipelineDriver).remote(specs, packed, chunk_size, cpus, self.workers)
            payloads: Iterator[bytes] = _pulled(ray, driver)
        else:
            payloads = _pipeline(specs, packed, chunk_size, cpus, self.workers)
        by_index = {shard.index: shard for shard in shards}
        gathered: dict[int, list[dict[str, Any]]] = {}
        try:
            for payload in payloads:
                shard_index, last, records = pickle.loads(payload)
                gathered.setdefault(shard_index, []).extend(records)
                on_chunk(records)
                if last:
                    on_shard(by_index[shard_index], gathered.pop(shard_index))
        except ray.exceptions.RayError as exc:
            raise _job_error(exc) from None
        finally:
            if driver is not None:
                ray.kill(driver)


def _pipeline(specs: list[str], packed: bytes, chunk_size: int, cpus: float, workers: int) -> Iterator[bytes]:
    """Each chunk's pickled (shard index, last chunk?, records), in job order, from a Ray Data pipeline run by
    this process (the job's driver, or the actor that drives it on the cluster for a Ray Client)."""
    import ray.data
    from ray.data import ActorPoolStrategy, DataContext

    data_context = DataContext.get_current()
    data_context.execution_options.preserve_order = True
    data_context.enable_progress_bars = False
    data_context.print_on_execution_start = False
    # One block per chunk: the actor pool takes work a block at a time, and a reading task's output would
    # otherwise stay one block per shard (a shard's chunks on one actor, the other idle at the tail).
    data_context.target_max_block_size = 1
    # One actor per worker; the reading tasks' small reservation stays free.
    actor_cpus = max(0.05, min(1.0, (cpus - READ_CPUS * min(len(specs), 2)) / workers))
    dataset = (
        ray.data.from_items([{"shard": spec} for spec in specs], override_num_blocks=len(specs))
        .flat_map(_read_chunks, fn_kwargs={"chunk_size": chunk_size}, num_cpus=READ_CPUS)
        .map_batches(
            FilterStage,
            fn_constructor_kwargs={"context": packed},
            batch_size=1,
            compute=ActorPoolStrategy(size=workers),
            num_cpus=actor_cpus,
            udf_modifying_row_count=False,
        )
    )
    for row in dataset.iter_rows():
        yield row["payload"]


class PipelineDriver:
    """Ray actor that drives `_pipeline` on the cluster for a Ray Client, `take` by `take`."""

    BATCH = 4

    def __init__(self, specs: list[str], packed: bytes, chunk_size: int, cpus: float, workers: int) -> None:
        self.rows = _pipeline(specs, packed, chunk_size, cpus, workers)

    def take(self) -> list[bytes]:
        """The next few chunks' payloads (fewer at the end; none when the job is done)."""
        with _quiet_data_context():
            return [payload for _, payload in zip(range(self.BATCH), self.rows, strict=False)]


@contextlib.contextmanager
def _quiet_data_context() -> Iterator[None]:
    """Ray Data's own noise, not ours: it copies its DataContext per execution and warns about its own
    deprecated fields, and its console handler prints INFO and WARNING lines (progress bars disabled,
    execution finished in N s) among the command's output. Only its errors are shown; its log file in the
    Ray session keeps everything."""
    import ray.data  # noqa: F401  (configures Ray Data's loggers, so their handlers exist below)

    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(max(handler.level, logging.ERROR))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\.context")
        yield


def _pulled(ray: Any, driver: Any) -> Iterator[bytes]:
    while batch := ray.get(driver.take.remote()):
        yield from batch


def _init_error(address: str | None, exc: Exception) -> str:
    """One sentence for a Ray that would not start or answer; for Ray Client, what token auth needs."""
    message = f"cannot start or reach Ray at {address or 'a local instance'}: {str(exc).strip().rstrip('.')}."
    if (address or "").startswith("ray://") and "RAY_AUTH_MODE" not in os.environ:
        message += (
            " If the cluster uses token authentication (the default for `ray start` in recent Ray), set"
            " RAY_AUTH_MODE=token here too, with its token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token)."
        )
    return message


def _job_error(exc: Exception) -> Exception:
    """A stage's own user error as it is; anything else Ray reports (a lost node, an actor killed) as one
    sentence that says the finished shards are kept."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, user_errors()):
        return cause
    first = next((line.strip() for line in str(cause or exc).splitlines() if line.strip()), type(exc).__name__)
    return GuardError(
        f"the Ray job failed ({first}); the shards finished so far are kept: run the same command again with --resume."
    )
