"""The units the dataset filter moves around: a shard (unit of work and of resumption), a sample, a chunk."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Shard:
    """One shard of the input: a tar, a Parquet file, or a run of image files of a folder.

    `id` names the shard inside the output layout (`00000`, `part/00003`, `images-00002`); `index` is its
    position in the whole job, which fixes the output order. For a folder, `members` lists its image files
    (relative to `root`); for the other layouts `path` is the file.
    """

    index: int
    id: str
    layout: str
    root: str
    path: str
    members: tuple[str, ...] = ()
    sidecar: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    """Parquet layout: the column holding each of `image`, `path`, `caption`, `key`, `url` (None: absent)."""
    output: str = ""
    """Where the filtered shard goes, relative to OUT/shards (and OUT/review)."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "members": list(self.members)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shard:
        return cls(**{**data, "members": tuple(data.get("members") or ())})


@dataclass
class Sample:
    """One training sample as read: its image bytes, caption and metadata (an error when it cannot be read)."""

    shard: int
    seq: int
    """Position of the sample in its shard (0, 1, ...)."""
    key: str
    member: str
    """The image's member or file name (for messages and output), or "" when there is none."""
    image: bytes | None
    caption: str = ""
    url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """The sample's .json metadata (img2dataset: url, key, status, width, height, ...; response headers)."""
    error: str | None = None


@dataclass
class Chunk:
    """A run of consecutive samples of one shard: what one worker call processes (models see it as a batch).

    Both engines cut shards into the same chunks, so every model sees the same batches whichever engine runs.
    """

    shard: int
    number: int
    samples: list[Sample]
    last: bool = False
    """True for the shard's final chunk (an empty shard has one empty, final chunk)."""


def score_column(detector: str, label: str) -> str:
    """The samples.parquet column of one detector label's score: `nudenet_explicit_nudity`, `open_nsfw_nsfw`."""
    return f"{detector}_{label}"
