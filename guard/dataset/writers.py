"""Write what the filter decided: shards in the input's layout, `samples.parquet`, `summary.json`.

Every file is written to a temporary name beside its target and renamed only once complete (fsynced), so
a kill leaves either the finished file or nothing under the target's name. Output bytes depend only on the
input and the decisions: tar members keep their headers (name, mode, owner, modification time) and order,
Parquet rows keep their order and schema, and samples.parquet is written in job order (input, shard,
position in shard) — a resumed job writes exactly what an uninterrupted one would.

Layouts out: a WebDataset shard becomes `OUT/shards/<id>.tar` (the kept samples' members) and, when the
input has one, `<id>.parquet` (the sidecar's rows of those samples); a folder shard copies the kept
images with their `.txt`/`.json` sidecars to the same relative paths under `OUT/shards/`; a Parquet
shard becomes `OUT/shards/<id>.parquet` with the kept rows. Samples sent to review go the same way under
`OUT/review/`.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from guard.dataset.readers import PARQUET_BATCH_ROWS, tar_groups
from guard.dataset.samples import Shard
from guard.files import atomic_path

_MODE: int | None = None


def _publish(path: Path) -> None:
    """Give a finished temporary file the permissions a new file gets here (mkstemp makes it private)."""
    global _MODE
    if _MODE is None:
        umask = os.umask(0)
        os.umask(umask)
        _MODE = 0o666 & ~umask
    os.chmod(path, _MODE)


def shard_outputs(shard: Shard, folder: Path, seqs: set[int]) -> list[Path]:
    """The files `write_shard` writes for these samples of the shard under `folder`."""
    if shard.layout == "webdataset":
        base = folder / shard.output
        outputs = [base.with_name(base.name + ".tar")]
        if shard.sidecar:
            outputs.append(base.with_name(base.name + ".parquet"))
        return outputs
    if shard.layout == "parquet":
        base = folder / shard.output
        return [base.with_name(base.name + ".parquet")]
    return [folder / shard.output / shard.members[seq] for seq in sorted(seqs)]


def write_shard(shard: Shard, targets: dict[Path, dict[int, str]]) -> None:
    """Write the shard's samples, in its layout, under each target folder: `targets` maps a folder to the
    samples it gets (position in the shard -> key). The input is read once for all the folders."""
    if shard.layout == "webdataset":
        _write_tars(shard, targets)
    elif shard.layout == "parquet":
        _write_parquets(shard, targets)
    else:
        for folder, chosen in targets.items():
            _write_files(shard, folder, set(chosen))


def _write_tars(shard: Shard, targets: dict[Path, dict[int, str]]) -> None:
    with ExitStack() as stack:
        outs = []
        for folder, chosen in targets.items():
            tmp = stack.enter_context(atomic_path(shard_outputs(shard, folder, set(chosen))[0]))
            outs.append((chosen, tmp, stack.enter_context(tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT))))
        for seq, (_, members, broken) in enumerate(tar_groups(shard.path)):
            if broken:
                continue
            for chosen, _, out in outs:
                if seq in chosen:
                    for member, data in members:
                        out.addfile(_copy_info(member), _bytes(data))
        for _, tmp, out in outs:
            out.close()  # complete before atomic_path renames it
            _publish(tmp)
    if shard.sidecar:
        _write_sidecars(Path(shard.sidecar), {shard_outputs(shard, f, set(c))[1]: c for f, c in targets.items()})


def _copy_info(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """The member's header without what belongs to the input archive (offsets, PAX extras)."""
    info = tarfile.TarInfo(member.name)
    info.size, info.mtime, info.mode, info.type = member.size, member.mtime, member.mode, member.type
    info.uid, info.gid, info.uname, info.gname = member.uid, member.gid, member.uname, member.gname
    return info


def _bytes(data: bytes | None):
    import io

    return io.BytesIO(data or b"")


def _write_sidecars(source: Path, targets: dict[Path, dict[int, str]]) -> None:
    """The sibling Parquet's rows for each target's keys (all its rows' columns, in order)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    keys = pc.cast(table["key"], pa.string()) if "key" in table.column_names else None
    for target, chosen in targets.items():
        if keys is None:
            rows = table.slice(0, 0)
        else:
            wanted = pa.array(sorted(chosen.values()), type=pa.string())
            rows = table.filter(pc.is_in(keys, value_set=wanted))
        with atomic_path(target) as tmp:
            pq.write_table(rows, tmp)
            _publish(tmp)


def _write_parquets(shard: Shard, targets: dict[Path, dict[int, str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(shard.path)
    with ExitStack() as stack:
        outs = []
        for folder, chosen in targets.items():
            tmp = stack.enter_context(atomic_path(shard_outputs(shard, folder, set(chosen))[0]))
            outs.append((chosen, tmp, pq.ParquetWriter(tmp, source.schema_arrow)))
            stack.callback(outs[-1][2].close)
        start = 0
        for batch in source.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            table = pa.Table.from_batches([batch])
            for chosen_seqs, _, writer in outs:
                picked = [i for i in range(batch.num_rows) if start + i in chosen_seqs]
                if picked:
                    writer.write_table(table.take(picked))
            start += batch.num_rows
        for _, tmp, writer in outs:
            writer.close()
            _publish(tmp)


def _write_files(shard: Shard, folder: Path, seqs: set[int]) -> None:
    root = Path(shard.root)
    for seq in sorted(seqs):
        relative = Path(shard.members[seq])
        source = root / relative
        for path in (source, source.with_suffix(".txt"), source.with_suffix(".json")):
            if path.is_file():
                with atomic_path(folder / shard.output / relative.with_suffix(path.suffix)) as tmp:
                    shutil.copyfile(path, tmp)
                    _publish(tmp)


# --- samples.parquet ------------------------------------------------------------------------------------


def samples_schema(score_columns: Iterable[str]):
    """The columns of samples.parquet (`score_columns`: one float column per detector label, in order)."""
    import pyarrow as pa

    reason = pa.struct(
        [("category", pa.string()), ("action", pa.string()), ("rule", pa.string()), ("evidence", pa.string())]
    )
    evidence = pa.struct([("source", pa.string()), ("detail", pa.string())])
    return pa.schema(
        [
            ("key", pa.string()),
            ("shard", pa.string()),
            ("seq", pa.int32()),
            ("member", pa.string()),
            ("url", pa.string()),
            ("caption", pa.string()),
            ("decision", pa.string()),
            ("reasons", pa.list_(reason)),
            ("tags", pa.list_(pa.string())),
            ("error", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            *[(name, pa.float64()) for name in score_columns],
            ("caption_score", pa.float64()),
            ("caption_score_category", pa.string()),
            ("opt_out", pa.list_(evidence)),
            ("ai_origin", pa.list_(evidence)),
            ("phash", pa.string()),
            ("colorhash", pa.string()),
            ("duplicate_of", pa.string()),
            ("duplicate_of_shard", pa.string()),
            ("duplicate_distance", pa.int32()),
            ("detector_errors", pa.list_(pa.struct([("detector", pa.string()), ("reason", pa.string())]))),
        ]
    )


class SamplesWriter:
    """samples.parquet, one row group per shard, renamed into place on `close`."""

    def __init__(self, target: Path, score_columns: list[str]) -> None:
        import pyarrow.parquet as pq

        self.schema = samples_schema(score_columns)
        self._atomic = atomic_path(target)
        self._tmp = tmp = self._atomic.__enter__()
        self._writer = pq.ParquetWriter(tmp, self.schema, compression="zstd")

    def write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        if rows:
            self._writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def close(self) -> None:
        self._writer.close()
        _publish(self._tmp)
        self._atomic.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._writer.close()
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)
