"""Reading the labelled prompt corpus (`../shared/prompt-corpus/corpus.jsonl`): rows, sources, stable ids.

The corpus is never copied: rows are read at training or test time and referred to by id, a short hash of
the prompt (`<source>:<12 hex>`), so a reviewer can look a row up without the text being shipped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

CATEGORY_MAP: dict[str, str] = {"sexual": "sexual", "violence": "gore", "self-harm": "self_harm", "hate": "hate"}
"""The corpus's harm labels -> the classifier's labels (named after the default policy's categories)."""
LABELS: tuple[str, ...] = ("sexual", "gore", "self_harm", "hate")

SOURCES: dict[str, str] = {
    "google-research-datasets/adversarial-nibbler:": "nibbler",
    "rohitgandikota/erasing:data/unsafe-prompts4703.csv": "i2p",
    "chiayi-hsu/Ring-A-Bell:": "ring-a-bell",
    "google-research/parti:": "parti",
    "rohitgandikota/erasing:data/coco_30k.csv": "coco",
}
"""Prefix of the corpus's `source` field -> short source name (the unit held out in calibration)."""


@dataclass(frozen=True)
class Row:
    """One labelled prompt."""

    prompt: str
    unsafe: bool
    labels: tuple[str, ...]
    strong: bool
    source: str

    @property
    def id(self) -> str:
        """`<source>:<first 12 hex of sha256(prompt)>`: names the row without repeating its text."""
        return f"{self.source}:{hashlib.sha256(self.prompt.encode('utf-8')).hexdigest()[:12]}"


def source_name(source: str) -> str:
    """The short name of a corpus `source` field (ValueError for a source this code does not know)."""
    for prefix, name in SOURCES.items():
        if source.startswith(prefix):
            return name
    raise ValueError(f"unknown corpus source {source!r}; add it to detectors.training.corpus.SOURCES")


def corpus_file(folder: Path) -> Path:
    """`corpus.jsonl` in the corpus folder."""
    return Path(folder) / "corpus.jsonl"


def sha256(folder: Path) -> str:
    """The SHA-256 of `corpus.jsonl` (recorded in the head's metadata)."""
    return hashlib.sha256(corpus_file(folder).read_bytes()).hexdigest()


def read_rows(folder: Path) -> list[Row]:
    """Every row of the corpus, in file order."""
    rows = []
    with corpus_file(folder).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            unsafe = record["label"] == "unsafe"
            rows.append(
                Row(
                    prompt=record["prompt"],
                    unsafe=unsafe,
                    labels=tuple(CATEGORY_MAP[c] for c in record.get("categories") or ()) if unsafe else (),
                    strong=record.get("strength", "strong") == "strong",
                    source=source_name(record["source"]),
                )
            )
    return rows
