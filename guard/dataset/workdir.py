"""The job's working folder, `OUT/.work/`: the job's identity and one checkpoint per scored shard.

A shard's checkpoint (`scored/<index>.parquet`, the records of all its samples) is written atomically once
the whole shard is scored, and never changed: it is the unit of resumption. `job.json` pins what the
checkpoints were made from — the inputs' shards (paths, sizes, modification times), the policy, the
opt-out lists, the chunk size (the models' batches) and the version — so `--resume` never mixes records
made under different settings. `written/<index>.json` records which outputs of a shard were written from
which decisions, so a resumed job rewrites only what changed. Once the job is complete the checkpoints are
kept: samples.parquet can be rebuilt from them, and a resumed job that finds everything done only rewrites
what is missing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from guard.errors import GuardError
from guard.files import atomic_path, write_atomic

JSON_FIELDS = (
    "caption_reasons",
    "caption_categories",
    "opt_out",
    "ai_origin",
    "scores",
    "unavailable",
)
"""Record fields with nested values: stored as JSON text in checkpoints (floats round-trip exactly)."""
INT_FIELDS = ("shard", "seq", "width", "height")
FLOAT_FIELDS = ("caption_score",)
TEXT_FIELDS = (
    "key",
    "member",
    "url",
    "caption",
    "error",
    "phash",
    "colorhash",
    "caption_score_category",
)


def _schema():
    import pyarrow as pa

    fields = [pa.field(name, pa.string()) for name in TEXT_FIELDS]
    fields += [pa.field(name, pa.int64()) for name in INT_FIELDS]
    fields += [pa.field(name, pa.float64()) for name in FLOAT_FIELDS]
    fields += [pa.field(name, pa.string()) for name in JSON_FIELDS]
    return pa.schema(fields)


class WorkDir:
    """`OUT/.work`: job identity, checkpoints of scored shards, and markers of written outputs."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.root = output / ".work"

    @property
    def job_file(self) -> Path:
        return self.root / "job.json"

    def begin(self, identity: dict[str, Any], *, resume: bool, overwrite: bool) -> bool:
        """Start (or, with `resume`, continue) the job; GuardError when OUT holds another job's work. True
        when this call started a new job (False: it continues one)."""
        if self.output.exists() and not self.output.is_dir():
            raise GuardError(f"{self.output}: is a file; -o needs a folder.")
        existing = self._read_identity()
        if existing is not None and not overwrite:
            if not resume:
                raise GuardError(
                    f"{self.output} already holds a filter job; pass --resume to continue it, --overwrite to "
                    "start again, or choose another output folder."
                )
            changed = sorted(k for k in {*existing, *identity} if existing.get(k) != identity.get(k))
            if changed:
                raise GuardError(
                    f"{self.output} holds a job made with other settings ({', '.join(changed)} changed); "
                    "run with --overwrite to start again, or choose another output folder."
                )
            return False
        if overwrite and self.output.is_dir():
            for name in (".work", "shards", "review", "samples.parquet", "summary.json"):
                target = self.output / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        elif self.output.is_dir() and any(not p.name.startswith(".") for p in self.output.iterdir()):
            raise GuardError(f"{self.output} is not empty; choose an empty or new output folder (or --overwrite).")
        write_atomic(self.job_file, json.dumps(identity, indent=2, sort_keys=True).encode("utf-8"))
        return True

    def abandon(self) -> None:
        """Forget a job that scored nothing (its engine never started, say), so the same command runs again
        without --resume; a job with a scored shard is kept for --resume."""
        scored = self.root / "scored"
        if not (scored.is_dir() and any(scored.iterdir())):
            shutil.rmtree(self.root, ignore_errors=True)

    def _read_identity(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.job_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise GuardError(f"{self.job_file}: cannot be read ({exc}); use --overwrite to start again.") from None

    # --- scored shards ---

    def scored_path(self, index: int) -> Path:
        return self.root / "scored" / f"{index:06d}.parquet"

    def has_scored(self, index: int) -> bool:
        return self.scored_path(index).is_file()

    def write_scored(self, index: int, records: list[dict[str, Any]]) -> None:
        """The shard's checkpoint, atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _schema()
        columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        for record in records:
            for name in schema.names:
                value = record.get(name)
                columns[name].append(json.dumps(value, sort_keys=True) if name in JSON_FIELDS else value)
        table = pa.table(columns, schema=schema)
        with atomic_path(self.scored_path(index)) as tmp:
            pq.write_table(table, tmp, compression="zstd")

    def read_scored(self, index: int, fields: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The shard's records (only `fields`, when given)."""
        import pyarrow.parquet as pq

        wanted = list(fields) if fields is not None else None
        rows = pq.read_table(self.scored_path(index), columns=wanted).to_pylist()
        for row in rows:
            for name in JSON_FIELDS:
                if name in row and row[name] is not None:
                    row[name] = json.loads(row[name])
        return rows

    # --- written outputs ---

    def written_path(self, index: int) -> Path:
        return self.root / "written" / f"{index:06d}.json"

    def is_written(self, index: int, digest: str, outputs: list[Path]) -> bool:
        try:
            marker = json.loads(self.written_path(index).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return marker.get("digest") == digest and all(path.exists() for path in outputs)

    def mark_written(self, index: int, digest: str) -> None:
        write_atomic(self.written_path(index), json.dumps({"digest": digest}).encode("utf-8"))


def digest(values: Iterable[Any]) -> str:
    """SHA-256 over JSON values, for identities and markers."""
    hasher = hashlib.sha256()
    for value in values:
        hasher.update(json.dumps(value, sort_keys=True, default=str).encode("utf-8") + b"\n")
    return hasher.hexdigest()
