"""Find the shards of a dataset and stream their samples: WebDataset tars, image folders, Parquet files.

Layouts, as the tools that make training sets write them:

* **WebDataset** (img2dataset's `--output_format webdataset`): `00000.tar` holding `000000000.jpg`, its
  `.txt` caption and `.json` metadata (`url`, `key`, `status`, `width`, `height`, optionally the download's
  response headers), members of one sample next to each other; a sibling `00000.parquet` with one row per
  sample. A sample's key is its member path up to the first dot of the file name, as WebDataset reads it.
* **Folder**: image files with sidecar `.txt` captions (and optional `.json` metadata) of the same stem; the
  key is the path relative to the folder without suffix. Files are cut into shards of `folder_shard_size`.
* **Parquet** (img2dataset's `--output_format parquet`, Hugging Face exports): image bytes (a binary column
  or a `{bytes, path}` struct) or image paths (relative to the Parquet file), a caption column, optional
  `key` and `url` columns; each file is a shard, read in record batches.

Reading never stops at a bad sample: a missing image member, an unreadable file, invalid JSON metadata or a
truncated tar becomes a sample with an `error`, and the reader goes on (a truncated tar ends there).
"""

from __future__ import annotations

import json
import posixpath
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from guard.dataset.optout import HEADER_FIELDS
from guard.dataset.samples import Chunk, Sample, Shard
from guard.errors import GuardError
from guard.images import IMAGE_SUFFIXES

IMAGE_EXTENSIONS = frozenset(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)
"""Member extensions that hold a sample's image (lower case, without the dot)."""

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
MAX_MEMBER_BYTES = 256 * 1024 * 1024
"""A member larger than this is not read into memory: the sample becomes an error."""
DEFAULT_FOLDER_SHARD_SIZE = 1000
DEFAULT_CHUNK_SIZE = 16

IMAGE_COLUMNS = ("jpg", "jpeg", "png", "webp", "image", "image_bytes", "img", "bytes")
PATH_COLUMNS = ("path", "image_path", "file", "filepath", "file_name", "filename")
CAPTION_COLUMNS = ("caption", "txt", "text", "TEXT", "prompt", "alt")
KEY_COLUMNS = ("key", "__key__", "id")
URL_COLUMNS = ("url", "URL", "image_url")
PARQUET_BATCH_ROWS = 64


def discover(
    inputs: Sequence[str | Path],
    *,
    folder_shard_size: int = DEFAULT_FOLDER_SHARD_SIZE,
    image_column: str | None = None,
    caption_column: str | None = None,
) -> list[Shard]:
    """Every shard of every input, in a stable order; GuardError (one sentence) when an input has none.

    An input is a folder (of tars, of Parquet files, or of images, tried in that order) or a single `.tar`
    or `.parquet` file. With several inputs, each one's output goes under its own name.
    """
    if not inputs:
        raise GuardError("give at least one input: a folder of shards or images, a .tar or a .parquet file.")
    found: list[tuple[str, list[dict[str, Any]]]] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if not path.exists():
            raise GuardError(f"{raw}: no such file or folder.")
        found.append((path.name, _shards_of(path, folder_shard_size, image_column, caption_column)))
    names = [name for name, _ in found]
    if len(inputs) > 1 and len(set(names)) < len(names):
        raise GuardError(f"two inputs have the same name ({', '.join(names)}); their outputs would collide.")
    shards: list[Shard] = []
    for name, specs in found:
        for spec in specs:
            output = spec.pop("output")
            if len(inputs) > 1:
                output = posixpath.join(name, output) if output else name
            shards.append(Shard(index=len(shards), output=output, **spec))
    return shards


def _shards_of(path: Path, folder_shard_size: int, image_column: str | None, caption_column: str | None) -> list[dict]:
    if path.is_file():
        if path.name.endswith(TAR_SUFFIXES):
            return [_tar_spec(path, path.parent)]
        if path.suffix == ".parquet":
            return [_parquet_spec(path, path.parent, image_column, caption_column)]
        raise GuardError(f"{path}: not a dataset shard (expected a folder, a .tar or a .parquet file).")
    files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
    tars = [p for p in files if p.name.endswith(TAR_SUFFIXES)]
    if tars:
        return [_tar_spec(p, path) for p in tars]
    parquets = [p for p in files if p.suffix == ".parquet"]
    if parquets:
        return [_parquet_spec(p, path, image_column, caption_column) for p in parquets]
    images = [p.relative_to(path).as_posix() for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise GuardError(f"{path}: no shards found (no .tar, .parquet or image files in it).")
    size = max(1, folder_shard_size)
    return [
        {
            "id": f"images-{number:05d}",
            "layout": "folder",
            "root": str(path.resolve()),
            "path": str(path.resolve()),
            "members": tuple(images[start : start + size]),
            "output": "",
        }
        for number, start in enumerate(range(0, len(images), size))
    ]


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _stem(path: Path, suffixes: tuple[str, ...]) -> str:
    name = path.name
    for suffix in suffixes:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _tar_spec(path: Path, root: Path) -> dict[str, Any]:
    relative = path.relative_to(root).as_posix()
    stem = _stem(path, TAR_SUFFIXES)
    sidecar = path.with_name(stem + ".parquet")
    output = posixpath.join(posixpath.dirname(relative), stem) if "/" in relative else stem
    return {
        "id": output,
        "layout": "webdataset",
        "root": str(root.resolve()),
        "path": str(path.resolve()),
        "sidecar": str(sidecar.resolve()) if sidecar.is_file() else None,
        "output": output,
    }


def _parquet_spec(path: Path, root: Path, image_column: str | None, caption_column: str | None) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise GuardError(f"{path}: not a readable Parquet file ({exc}).") from None
    names = schema.names

    def pick(explicit: str | None, candidates: tuple[str, ...], what: str) -> str | None:
        if explicit is not None:
            if explicit not in names:
                raise GuardError(f"{path}: has no column {explicit!r} for the {what} (columns: {', '.join(names)}).")
            return explicit
        return next((c for c in candidates if c in names), None)

    image = pick(image_column, IMAGE_COLUMNS, "image")
    if image is not None and image_column is None and not _holds_bytes(schema.field(image).type):
        image = None
    columns = {
        "image": image,
        "path": None if image else next((c for c in PATH_COLUMNS if c in names), None),
        "caption": pick(caption_column, CAPTION_COLUMNS, "caption"),
        "key": next((c for c in KEY_COLUMNS if c in names), None),
        "url": next((c for c in URL_COLUMNS if c in names), None),
        "headers": next((c for c in HEADER_FIELDS if c in names), None),
    }
    if columns["image"] is None and columns["path"] is None:
        raise GuardError(
            f"{path}: no image column found (looked for bytes in {', '.join(IMAGE_COLUMNS)} or paths in "
            f"{', '.join(PATH_COLUMNS)}); name it with --image-column."
        )
    relative = path.relative_to(root).as_posix()
    output = relative[: -len(".parquet")]
    return {
        "id": output,
        "layout": "parquet",
        "root": str(root.resolve()),
        "path": str(path.resolve()),
        "columns": columns,
        "output": output,
    }


def _holds_bytes(arrow_type: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return True
    return pa.types.is_struct(arrow_type) and arrow_type.get_field_index("bytes") >= 0


# --- reading ----------------------------------------------------------------------------------------------


def iter_chunks(shard: Shard, size: int = DEFAULT_CHUNK_SIZE) -> Iterator[Chunk]:
    """The shard's samples in runs of `size`; the last chunk says so (an empty shard gives one empty chunk)."""
    size = max(1, size)
    pending: list[Sample] = []
    number = 0
    for sample in iter_samples(shard):
        if len(pending) == size:
            yield Chunk(shard=shard.index, number=number, samples=pending)
            pending, number = [], number + 1
        pending.append(sample)
    yield Chunk(shard=shard.index, number=number, samples=pending, last=True)


def iter_samples(shard: Shard) -> Iterator[Sample]:
    """Every sample of the shard, in the shard's order, each with its bytes or its `error`."""
    readers = {"webdataset": _tar_samples, "folder": _folder_samples, "parquet": _parquet_samples}
    yield from readers[shard.layout](shard)


def split_member(name: str) -> tuple[str, str]:
    """(key, extension) of a tar member as WebDataset splits it: the extension starts at the file name's first dot."""
    directory, base = posixpath.split(name)
    stem, _, extension = base.partition(".")
    return (posixpath.join(directory, stem) if directory else stem), extension.lower()


def tar_groups(path: str | Path) -> Iterator[tuple[str, list[tuple[tarfile.TarInfo, bytes | None]], str | None]]:
    """(key, [(member, bytes or None when over the reading limit)], error) for each sample of a tar, in order.

    Members of a sample are consecutive (WebDataset's convention). A truncated or corrupt tar ends with one
    group carrying the `error` (the members read so far, possibly none). The readers and the writers both
    walk a tar through this, so a sample's position is the same for both.
    """
    key: str | None = None
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                member_key, _ = split_member(member.name)
                if key is not None and member_key != key:
                    yield key, members, None
                    members = []
                key = member_key
                handle = archive.extractfile(member) if member.size <= MAX_MEMBER_BYTES else None
                members.append((member, handle.read() if handle is not None else None))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        yield key or "", members, f"the tar is truncated or corrupt from here on ({exc})"
        return
    if key is not None:
        yield key, members, None


def _tar_samples(shard: Shard) -> Iterator[Sample]:
    for seq, (key, members, broken) in enumerate(tar_groups(shard.path)):
        yield _tar_sample(shard, seq, key, members, broken)


def _tar_sample(
    shard: Shard, seq: int, key: str, members: list[tuple[tarfile.TarInfo, bytes | None]], broken: str | None
) -> Sample:
    sample = Sample(shard=shard.index, seq=seq, key=key, member="", image=None)
    limit = MAX_MEMBER_BYTES >> 20
    errors = [f"member {m.name} is over the {limit} MiB reading limit" for m, data in members if data is None]
    by_extension = {split_member(m.name)[1]: (m.name, data) for m, data in members}
    image_ext = next((ext for ext in by_extension if ext in IMAGE_EXTENSIONS), None)
    caption = by_extension.get("txt", ("", None))[1]
    if caption is not None:
        sample.caption = caption.decode("utf-8", "replace")
    meta = by_extension.get("json", ("", None))[1]
    if meta is not None:
        try:
            parsed = json.loads(meta.decode("utf-8", "replace")) if meta.strip() else {}
        except ValueError as exc:
            errors.append(f"its .json metadata is not valid JSON ({exc})")
            parsed = {}
        sample.meta = parsed if isinstance(parsed, dict) else {}
        url = sample.meta.get("url")
        sample.url = url if isinstance(url, str) and url else None
    if broken:
        errors.append(broken)
    if image_ext is None and members:
        errors.append(f"no image member (members: {', '.join(sorted(by_extension))})")
    elif image_ext is not None:
        sample.member = by_extension[image_ext][0]
    if errors:
        where = f"{Path(shard.path).name}: {key}" if key else Path(shard.path).name
        sample.error = f"{where}: {'; '.join(errors)}"
    else:
        sample.image = by_extension[image_ext][1]
    return sample


def _folder_samples(shard: Shard) -> Iterator[Sample]:
    root = Path(shard.root)
    for seq, relative in enumerate(shard.members):
        path = root / relative
        key = posixpath.splitext(relative)[0]
        sample = Sample(shard=shard.index, seq=seq, key=key, member=relative, image=None)
        try:
            size = path.stat().st_size
            if size > MAX_MEMBER_BYTES:
                raise OSError(f"{size} bytes, over the reading limit")
            sample.image = path.read_bytes()
            caption = path.with_suffix(".txt")
            if caption.is_file():
                sample.caption = caption.read_bytes().decode("utf-8", "replace")
            meta = path.with_suffix(".json")
            if meta.is_file():
                parsed = json.loads(meta.read_bytes().decode("utf-8", "replace") or "{}")
                sample.meta = parsed if isinstance(parsed, dict) else {}
                url = sample.meta.get("url")
                sample.url = url if isinstance(url, str) and url else None
        except ValueError as exc:
            sample.image, sample.error = None, f"{relative}: its .json metadata is not valid JSON ({exc})"
        except OSError as exc:
            sample.image, sample.error = None, f"{relative}: cannot be read ({getattr(exc, 'strerror', None) or exc})"
        yield sample


def _parquet_samples(shard: Shard) -> Iterator[Sample]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = shard.columns
    wanted = sorted({c for c in columns.values() if c})
    folder = Path(shard.path).parent
    seq = 0
    try:
        parquet = pq.ParquetFile(shard.path)
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
            for row in batch.to_pylist():
                yield _parquet_sample(shard, seq, row, columns, folder)
                seq += 1
    except (OSError, pa.ArrowException) as exc:
        yield Sample(
            shard=shard.index,
            seq=seq,
            key="",
            member="",
            image=None,
            error=f"{Path(shard.path).name}: the Parquet file is truncated or corrupt ({exc}); the rest is not read",
        )


def _parquet_sample(
    shard: Shard, seq: int, row: dict[str, Any], columns: dict[str, str | None], folder: Path
) -> Sample:
    key_column = columns.get("key")
    key = str(row[key_column]) if key_column and row.get(key_column) is not None else f"{seq:09d}"
    sample = Sample(shard=shard.index, seq=seq, key=key, member="", image=None)
    caption_column = columns.get("caption")
    if caption_column and row.get(caption_column) is not None:
        sample.caption = str(row[caption_column])
    url_column = columns.get("url")
    if url_column and isinstance(row.get(url_column), str) and row[url_column]:
        sample.url = row[url_column]
        sample.meta["url"] = sample.url
    headers_column = columns.get("headers")
    if headers_column and row.get(headers_column) is not None:
        headers = row[headers_column]
        if isinstance(headers, str):
            try:
                headers = json.loads(headers)
            except ValueError:
                headers = None
        if headers is not None:
            sample.meta["headers"] = headers
    image_column, path_column = columns.get("image"), columns.get("path")
    if image_column:
        value = row.get(image_column)
        if isinstance(value, dict):
            value = value.get("bytes")
        if not value:
            sample.error = f"{key}: the {image_column!r} column is empty"
        else:
            sample.image, sample.member = bytes(value), image_column
        return sample
    relative = row.get(path_column) if path_column else None
    if not relative:
        sample.error = f"{key}: the {path_column!r} column is empty"
        return sample
    sample.member = str(relative)
    try:
        sample.image = (folder / str(relative)).read_bytes()
    except OSError as exc:
        sample.error = f"{key}: {relative} cannot be read ({exc.strerror or exc})"
    return sample
