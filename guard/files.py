"""Atomic file output: a temporary file in the target folder, fsynced, then renamed over the target."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from guard.errors import GuardError

T = TypeVar("T")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target` in one rename.

    If the block raises (or the process dies), `target` is untouched and the temporary file is removed
    (or, after a kill, left as a hidden `.tmp` file that never has the target's name).
    A target that cannot be written (its folder is a file or read-only, the target is a folder, the disk is
    full) raises GuardError naming it.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except FileExistsError as exc:
        raise GuardError(f"Cannot write {target}: {exc.filename} is a file, not a folder.") from None
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as exc:
            if exc.filename not in (tmp, tmp_path):
                raise
            raise _cannot_write(target, exc) from None
        try:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, target)
        except OSError as exc:
            raise _cannot_write(target, exc) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _cannot_write(target: Path, exc: OSError) -> GuardError:
    return GuardError(f"Cannot write {target}: {exc.strerror or exc}.")


def write_atomic(target: str | Path, data: bytes) -> Path:
    """Write `data` to `target` atomically and return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


@dataclass
class FileResult(Generic[T]):
    """One file of a batch: what the library made of it, or the one-line reason it could not."""

    path: Path
    value: T | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """`{"path", ...the value's fields}` or `{"path", "error"}` (the JSON Lines record of a batch command)."""
        if self.value is None:
            return {"path": str(self.path), "error": self.error}
        return {"path": str(self.path), **self.value.to_dict()}
