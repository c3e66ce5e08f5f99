"""Score images with every detector a policy names and decide on each: the library behind `guard scan`.

`assess_images` scores a batch already in memory (the guarded generation calls it on fresh outputs);
`scan_paths` walks files and folders, reads images in batches (the next batch is decoded while the current
one is scored) and reports an unreadable file as an error for that file, then goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from detectors.base import Detection, Detector
from guard.errors import ImageError
from guard.images import ImageSource, iter_image_files, load_image
from policies import Decision, Policy, decide_image, load_policy

DEFAULT_BATCH_SIZE = 16


@dataclass
class Assessment:
    """Scores from every detector and the policy's decision for one image."""

    decision: Decision
    scores: dict[str, dict[str, float]]
    detectors: dict[str, dict[str, str]]
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    def to_dict(self) -> dict[str, Any]:
        """`decision`, `scores`, `reasons`, `categories`, `detectors`, `policy`; `notes` and `details` when any."""
        decided = self.decision.to_dict()
        out: dict[str, Any] = {
            "decision": decided["decision"],
            "scores": {name: dict(labels) for name, labels in self.scores.items()},
            "reasons": decided["reasons"],
            "categories": decided["categories"],
            "detectors": {name: dict(status) for name, status in self.detectors.items()},
            "policy": decided["policy"],
        }
        if decided.get("notes"):
            out["notes"] = decided["notes"]
        if self.details:
            out["details"] = self.details
        return out


@dataclass
class ScanResult:
    """One file of a scan: its assessment, or the reason it could not be read."""

    path: Path
    assessment: Assessment | None = None
    error: str | None = None

    @property
    def decision(self) -> str | None:
        return self.assessment.decision.decision if self.assessment else None

    def to_dict(self) -> dict[str, Any]:
        if self.assessment is None:
            return {"path": str(self.path), "error": self.error}
        return {"path": str(self.path), **self.assessment.to_dict()}


def _policy(policy: Policy | str | os.PathLike | None) -> Policy:
    return policy if isinstance(policy, Policy) else load_policy(policy)


def detectors_for(policy: Policy | str | os.PathLike | None) -> dict[str, Detector]:
    """The detectors a policy names, built from its settings (shared with earlier scans in this process)."""
    from detectors import build_detectors

    return build_detectors(_policy(policy).detector_configs())


def assess_images(
    images: Sequence[ImageSource],
    policy: Policy | str | os.PathLike | None = None,
    detectors: Mapping[str, Detector] | None = None,
) -> list[Assessment]:
    """Score a batch of images with every detector and decide on each with `policy` (a Policy, name or path).

    `detectors` (name -> detector) replaces the ones the policy names, e.g. to reuse loaded models or to
    test with a stub. Images may be PIL images or anything `load_image` reads. A detector that is
    unavailable or fails on the batch is reported in `detectors` and the policy decides what that means
    (a required one sends the image to review).
    """
    policy = _policy(policy)
    if detectors is None:
        detectors = detectors_for(policy)
    rgb = [image if _is_rgb(image) else load_image(image) for image in images]
    if not rgb:
        return []
    results: dict[str, list[Detection]] = {}
    status: dict[str, dict[str, str]] = {}
    for name, detector in detectors.items():
        reason = detector.unavailable_reason
        if reason is not None:
            status[name] = {"status": "unavailable", "reason": reason}
            continue
        try:
            results[name] = analyze_with(detector, rgb)
            if len(results[name]) != len(rgb):
                raise RuntimeError(f"{len(results.pop(name))} results for {len(rgb)} images")
        except Exception as exc:  # a model failing at run time: report it and let the policy fail closed
            status[name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
            continue
        status[name] = {"status": "ok"}
    unavailable = {name: s["reason"] for name, s in status.items() if s["status"] != "ok"}
    assessments = []
    for index in range(len(rgb)):
        scores = {name: results[name][index].scores for name in results}
        details = {name: results[name][index].details for name in results if results[name][index].details}
        assessments.append(
            Assessment(
                decision=decide_image(policy, scores, unavailable),
                scores=scores,
                detectors=status,
                details=details,
            )
        )
    return assessments


def analyze_with(detector: Detector, images: list[Image.Image]) -> list[Detection]:
    """Scores and details; a detector with only `score` (no details) is accepted too."""
    analyze = getattr(detector, "analyze", None)
    if analyze is not None:
        return analyze(images)
    return [Detection(scores=dict(scores)) for scores in detector.score(images)]


_ORIENTATION = 0x0112


def _is_rgb(image: ImageSource) -> bool:
    """An upright RGB image in memory, used as is (anything else goes through `load_image`)."""
    return isinstance(image, Image.Image) and image.mode == "RGB" and image.getexif().get(_ORIENTATION, 1) == 1


def _read(path: Path) -> Image.Image | str:
    try:
        return load_image(path)
    except ImageError as exc:
        return str(exc)


def _register_decoders() -> None:
    """Decode one tiny image before reading in threads.

    `guard.images` registers Pillow's plugins and pillow-heif on first use, and two threads reading at once
    can see a half-registered decoder ("not an image" for a good WebP); one read up front avoids that.
    """
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    load_image(buffer.getvalue())


def scan_paths(
    paths: Iterable[str | os.PathLike],
    policy: Policy | str | os.PathLike | None = None,
    detectors: Mapping[str, Detector] | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    recursive: bool = True,
    files: Sequence[Path] | None = None,
) -> Iterator[ScanResult]:
    """Scan files and folders (image files inside folders, recursively) and yield one result per file, in order.

    `files` skips the walk when the caller already listed them (e.g. to size a progress bar).
    """
    policy = _policy(policy)
    if detectors is None:
        detectors = detectors_for(policy)
    listed = list(files) if files is not None else list(iter_image_files(paths, recursive=recursive))
    batches = [listed[i : i + max(1, batch_size)] for i in range(0, len(listed), max(1, batch_size))]
    if not batches:
        return
    _register_decoders()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="guard-scan-read") as pool:
        pending = [pool.submit(_read, path) for path in batches[0]]
        for number, batch in enumerate(batches):
            loaded = [future.result() for future in pending]
            if number + 1 < len(batches):
                pending = [pool.submit(_read, path) for path in batches[number + 1]]
            images = [item for item in loaded if isinstance(item, Image.Image)]
            assessed = iter(assess_images(images, policy, detectors))
            for path, item in zip(batch, loaded, strict=True):
                if isinstance(item, str):
                    yield ScanResult(path=path, error=item)
                else:
                    yield ScanResult(path=path, assessment=next(assessed))
