"""Filter a training set before training: the library behind `guard filter-dataset`.

A job reads top to bottom:

1. **plan** — load the policy (default `dataset`) and the opt-out lists, find the shards, check that every
   required model loads, and pin the job's identity in `OUT/.work/job.json`;
2. **score** — the engine (local worker processes, or Ray Data) runs the stages on every shard not yet
   scored; each finished shard's records are checkpointed atomically (`--resume` starts here again and
   skips what is checkpointed);
3. **finish** — the near-duplicate pass over all recorded hashes (first in key order is kept), then each
   sample's decision from its evidence, the filtered shards in the input's layout (`OUT/shards/`,
   `OUT/review/`), `OUT/samples.parquet` and, last, `OUT/summary.json`, each written atomically.

Finishing depends only on the checkpoints, so a job killed at any moment and resumed writes byte for byte
what an uninterrupted job writes (summary.json's timings aside), whichever engine ran which part.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard import __version__
from guard.dataset import origin
from guard.dataset.captions import caption_check_name
from guard.dataset.decisions import Duplicate, SampleDecision, decide_record
from guard.dataset.dedup import HashedSample, near_duplicates
from guard.dataset.engines import make_engine
from guard.dataset.optout import OptOutList
from guard.dataset.readers import DEFAULT_CHUNK_SIZE, DEFAULT_FOLDER_SHARD_SIZE, discover
from guard.dataset.samples import Shard, score_column
from guard.dataset.stages import FilterContext
from guard.dataset.summary import Tally, build_summary
from guard.dataset.workdir import WorkDir, digest
from guard.dataset.writers import SamplesWriter, shard_outputs, write_shard
from guard.errors import GuardError
from guard.files import write_atomic
from policies import Policy, load_policy

DEFAULT_POLICY = "dataset"


@dataclass
class Progress:
    """Where a running job stands (what the CLI's progress bar shows)."""

    shards_done: int
    shards_total: int
    samples: int
    dropped: int
    """Samples dropped so far by their own evidence (near-duplicates are found once all are scored)."""
    review: int
    errors: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.samples / self.elapsed if self.elapsed > 0 else 0.0


def filter_dataset(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    policy: Policy | str | os.PathLike | None = None,
    opt_out: Sequence[str | os.PathLike] = (),
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    folder_shard_size: int = DEFAULT_FOLDER_SHARD_SIZE,
    image_column: str | None = None,
    caption_column: str | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> dict[str, Any]:
    """Filter `inputs` into the folder `output` and return the summary (also written as summary.json).

    Bad input (a missing input, no shards, an unreadable policy or opt-out list, a required model missing,
    an output folder holding another job) raises one of `guard.errors.user_errors()` before anything is
    written; an engine that fails before a shard is scored (Ray unreachable) leaves no job behind, so the
    same command can simply run again; a sample that cannot be read becomes an `error` row and never stops
    the job.
    """
    started = time.perf_counter()
    try:
        import pyarrow  # noqa: F401  (every table the filter reads and writes)
    except ImportError:
        raise GuardError("guard filter-dataset needs pyarrow: pip install 'image-guard[dataset]'.") from None
    policy = policy if isinstance(policy, Policy) else load_policy(policy or DEFAULT_POLICY)
    origin.check_rules(policy.dataset.ai_origin)
    opt_outs = OptOutList.load(opt_out)
    shards = discover(
        inputs, folder_shard_size=folder_shard_size, image_column=image_column, caption_column=caption_column
    )
    context = FilterContext.for_policy(policy, opt_outs)
    detectors, labels = _check_detectors(context)
    score_columns = [score_column(detector, label) for detector, label in labels]
    runner = make_engine(engine, workers=workers, address=address)
    out = Path(output).expanduser()
    work = WorkDir(out)
    fresh = work.begin(_identity(shards, policy, opt_outs, chunk_size), resume=resume, overwrite=overwrite)

    pending = [shard for shard in shards if not work.has_scored(shard.index)]
    state = Progress(len(shards) - len(pending), len(shards), 0, 0, 0, 0, 0.0)
    scoring_started = time.perf_counter()
    first: list[float] = []  # seconds to the first scored chunk, and its samples

    def on_chunk(records: list[dict[str, Any]]) -> None:
        if records and not first:
            first.extend((time.perf_counter() - scoring_started, len(records)))
        for record in records:
            decided = decide_record(record, policy).decision
            state.samples += 1
            state.dropped += decided == "drop"
            state.review += decided == "review"
            state.errors += decided == "error"
        state.elapsed = time.perf_counter() - scoring_started
        if progress is not None:
            progress(state)

    def on_shard(shard: Shard, records: list[dict[str, Any]]) -> None:
        work.write_scored(shard.index, records)
        state.shards_done += 1
        if progress is not None:
            progress(state)

    try:
        runner.run(pending, context, chunk_size=chunk_size, on_chunk=on_chunk, on_shard=on_shard)
    except BaseException:
        if fresh:  # an engine that could not start (Ray unreachable), an interrupt before any shard was done
            work.abandon()
        raise
    scoring_seconds = time.perf_counter() - scoring_started
    finishing_started = time.perf_counter()
    tally = _finish(out, work, shards, policy, labels)
    finished = time.perf_counter()
    summary = build_summary(
        tally,
        policy,
        score_columns,
        shards={"total": len(shards), "scored": len(pending), "resumed": len(shards) - len(pending)},
        throughput={
            "engine": runner.name,
            "workers": runner.workers,
            "samples_scored": state.samples,
            "scoring_seconds": round(scoring_seconds, 3),
            "samples_per_second": round(state.samples / scoring_seconds, 3) if state.samples else None,
            "engine_startup_seconds": round(getattr(runner, "startup_seconds", 0.0), 3),
            **_steady_rate(first, state.samples, scoring_seconds),
            "finishing_seconds": round(finished - finishing_started, 3),
            "wall_seconds": round(finished - started, 3),
        },
        detectors=detectors,
        caption_check=caption_check_name(policy),
        outputs={
            "shards": str(out / "shards"),
            "review": str(out / "review"),
            "samples": str(out / "samples.parquet"),
        },
    )
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False).encode("utf-8"))
    return summary


def _steady_rate(first: list[float], samples: int, seconds: float) -> dict[str, float | None]:
    """Seconds to the first scored chunk (the engine's start-up, the workers' model loading, one chunk), and
    samples/s from then on: the rate a longer job approaches, whatever each engine's start-up costs."""
    if not first:
        return {"first_result_seconds": None, "steady_samples_per_second": None}
    at, done = first
    rest = seconds - at
    steady = round((samples - done) / rest, 3) if samples > done and rest > 0 else None
    return {"first_result_seconds": round(at, 3), "steady_samples_per_second": steady}


def _check_detectors(context: FilterContext) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """Each detector's status (a required one that cannot load is an error now, not a job full of reviews)
    and the (detector, label) pairs it scores."""
    from detectors import build_detector

    statuses: dict[str, dict[str, Any]] = {}
    labels: list[tuple[str, str]] = []
    for name, settings in context.detectors.items():
        detector = build_detector(name, settings)
        reason = detector.unavailable_reason
        if reason is not None and settings.get("required"):
            raise GuardError(f"the required detector {name} is unavailable: {reason}")
        statuses[name] = {"status": "ok"} if reason is None else {"status": "unavailable", "reason": reason}
        providers = getattr(detector, "providers", None)
        if providers:
            statuses[name]["providers"] = list(providers)
        labels += [(name, label) for label in detector.labels]
    return statuses, labels


def _identity(shards: list[Shard], policy: Policy, opt_outs: OptOutList, chunk_size: int) -> dict[str, Any]:
    """What the checkpoints depend on; `--resume` refuses a job whose identity changed."""
    files = []
    for shard in shards:
        paths = [Path(shard.root) / m for m in shard.members] if shard.layout == "folder" else [Path(shard.path)]
        if shard.sidecar:
            paths.append(Path(shard.sidecar))
        files.append([shard.id, shard.layout, [(str(p), *_stat(p)) for p in paths]])
    return {
        "version": __version__,
        "inputs": digest(files),
        "policy": digest([policy.model_dump(mode="json")]),
        "opt_out": opt_outs.digest,
        "chunk_size": chunk_size,
    }


def _stat(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


def _finish(out: Path, work: WorkDir, shards: list[Shard], policy: Policy, labels: list[tuple[str, str]]) -> Tally:
    """Near-duplicates, decisions, filtered shards, samples.parquet; the counts for the summary."""
    score_columns = [score_column(detector, label) for detector, label in labels]
    duplicates = _duplicates(work, shards, policy)
    ids = {shard.index: shard.id for shard in shards}
    tally = Tally()
    writer = SamplesWriter(out / "samples.parquet", score_columns)
    try:
        for shard in shards:
            rows = []
            for record in work.read_scored(shard.index):
                found = duplicates.get((shard.index, record["seq"]))
                duplicate = None
                if found is not None:
                    (other_shard, _), distance, other_key = found
                    duplicate = Duplicate(key=other_key, shard=ids[other_shard], distance=distance)
                row = _row(record, shard, decide_record(record, policy, duplicate), duplicate, labels)
                tally.add(row, score_columns)
                rows.append(row)
            writer.write(rows)
            _write_outputs(out, work, shard, rows)
    except BaseException as exc:
        writer.abort(exc)
        raise
    writer.close()
    return tally


def _duplicates(work: WorkDir, shards: list[Shard], policy: Policy) -> dict[tuple, tuple]:
    """(shard index, seq) -> (representative's (shard, seq), distance, its key) for every near-duplicate."""
    rules = policy.dataset.near_duplicates
    if not rules.enabled:
        return {}
    samples = []
    keys: dict[tuple[int, int], str] = {}
    for shard in shards:
        for record in work.read_scored(shard.index, fields=["key", "seq", rules.hash]):
            value = record[rules.hash]
            if value is None:
                continue
            ident = (shard.index, record["seq"])
            keys[ident] = record["key"]
            samples.append(HashedSample(order=(record["key"], *ident), ident=ident, value=int(value, 16)))
    found = near_duplicates(samples, rules.max_distance)
    return {ident: (rep, distance, keys[rep]) for ident, (rep, distance) in found.items()}


def _row(
    record: dict[str, Any],
    shard: Shard,
    decided: SampleDecision,
    duplicate: Duplicate | None,
    labels: list[tuple[str, str]],
) -> dict[str, Any]:
    scores = record.get("scores") or {}
    row: dict[str, Any] = {
        "key": record["key"],
        "shard": shard.id,
        "seq": record["seq"],
        "member": record.get("member"),
        "url": record.get("url"),
        "caption": record.get("caption"),
        "decision": decided.decision,
        "reasons": decided.reasons,
        "tags": decided.tags,
        "error": record.get("error"),
        "width": record.get("width"),
        "height": record.get("height"),
        "caption_score": record.get("caption_score"),
        "caption_score_category": record.get("caption_score_category"),
        "opt_out": record.get("opt_out") or [],
        "ai_origin": record.get("ai_origin") or [],
        "phash": record.get("phash"),
        "colorhash": record.get("colorhash"),
        "duplicate_of": duplicate.key if duplicate else None,
        "duplicate_of_shard": duplicate.shard if duplicate else None,
        "duplicate_distance": duplicate.distance if duplicate else None,
        "detector_errors": [{"detector": d, "reason": r} for d, r in sorted((record.get("unavailable") or {}).items())],
    }
    for detector, label in labels:
        row[score_column(detector, label)] = scores.get(detector, {}).get(label)
    return row


def _write_outputs(out: Path, work: WorkDir, shard: Shard, rows: list[dict[str, Any]]) -> None:
    """The shard's kept samples under OUT/shards and those for review under OUT/review (once per decisions)."""
    kept = {row["seq"]: row["key"] for row in rows if row["decision"] == "keep"}
    review = {row["seq"]: row["key"] for row in rows if row["decision"] == "review"}
    marker = digest([sorted(kept.items()), sorted(review.items())])
    planned = shard_outputs(shard, out / "shards", set(kept))
    if review:
        planned += shard_outputs(shard, out / "review", set(review))
    if work.is_written(shard.index, marker, planned):
        return
    write_shard(shard, {out / "shards": kept, **({out / "review": review} if review else {})})
    work.mark_written(shard.index, marker)
