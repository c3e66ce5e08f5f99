"""The detector protocol: a named scorer that turns a batch of RGB images into label scores (0..1).

Detectors only score; policies decide. A detector loads its model on first use, and a detector that cannot
load (weights missing, offline, misconfigured) is *unavailable* with one sentence saying why and how to fix
it — it is reported as such, never skipped silently and never faked.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from detectors.errors import DetectorUnavailable


@dataclass
class Detection:
    """One detector's result for one image: label scores, plus optional details (boxes, face count, ...)."""

    scores: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Detector(Protocol):
    """What the scanner needs from a detector."""

    name: str

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label `score` reports, each with a score in 0..1."""

    @property
    def unavailable_reason(self) -> str | None:
        """None when the detector can run; otherwise why not and how to fix it, in one sentence."""

    def available(self) -> bool:
        """Load the model if needed; True when the detector can score."""

    def score(self, images: Sequence[Image.Image]) -> list[dict[str, float]]:
        """Label scores for each RGB image of the batch, in order."""

    def analyze(self, images: Sequence[Image.Image]) -> list[Detection]:
        """Label scores and details for each RGB image of the batch, in order."""


class LazyDetector:
    """Base class: loads the model once, on first use, and turns a load failure into the unavailable state.

    Subclasses set `name`, implement `_load()` (raise `DetectorUnavailable` with the reason) and
    `_analyze(images)`, and list their labels in `labels`.
    """

    name = "detector"

    def __init__(self) -> None:
        self._loaded = False
        self._reason: str | None = None
        self._load_lock = threading.Lock()

    @property
    def labels(self) -> tuple[str, ...]:
        raise NotImplementedError

    def load(self) -> None:
        """Load the model now (otherwise it loads on first use). Never raises for a missing model."""
        if self._loaded:
            return
        with self._load_lock:  # a server may score from several threads: load once
            if self._loaded:
                return
            try:
                self._load()
            except DetectorUnavailable as exc:
                self._reason = str(exc)
            self._loaded = True

    @property
    def unavailable_reason(self) -> str | None:
        self.load()
        return self._reason

    def available(self) -> bool:
        return self.unavailable_reason is None

    def score(self, images: Sequence[Image.Image]) -> list[dict[str, float]]:
        return [detection.scores for detection in self.analyze(images)]

    def analyze(self, images: Sequence[Image.Image]) -> list[Detection]:
        if not self.available():
            raise DetectorUnavailable(f"{self.name} is unavailable: {self._reason}")
        if not images:
            return []
        return self._analyze(list(images))

    def _load(self) -> None:
        raise NotImplementedError

    def _analyze(self, images: list[Image.Image]) -> list[Detection]:
        raise NotImplementedError
