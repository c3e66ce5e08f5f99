"""The synthetic-image classifier, when its weights are configured: a probabilistic hint, never proof.

The classifier is the detectors registry's `synthetic` detector (UnivFD probe, `GUARD_SYNTHETIC_WEIGHTS`),
imported only when verification uses it. Missing module, missing weights or a failed load all give
`{"status": "not run", "reason": ...}`.
"""

from __future__ import annotations

import importlib
from typing import Any

from PIL import Image

from detectors.errors import DetectorError

SYNTHETIC_THRESHOLD = 0.5
"""Score at or above which the classifier's answer counts as a (weak) AI-generated hint."""
NOT_RUN = "not run (no weights configured)"


def load_synthetic_detector() -> Any | None:
    """The `synthetic` detector from the detectors registry, or None when the package does not provide one."""
    try:
        registry = importlib.import_module("detectors.registry")
        return registry.build_detector("synthetic")
    except (ImportError, AttributeError, DetectorError):
        return None


def classify(image: Image.Image, detector: Any | None) -> dict[str, Any]:
    """The classifier's result for one image, or why it did not run."""
    if detector is None:
        return {"status": "not run", "reason": NOT_RUN}
    try:
        reason = detector.unavailable_reason if hasattr(detector, "unavailable_reason") else None
    except Exception as exc:  # a detector that fails to load is reported, not fatal
        reason = str(exc)
    if reason:
        return {"status": "not run", "reason": f"{NOT_RUN}: {reason}"}
    try:
        scores = detector.score([image])[0]
    except Exception as exc:
        return {"status": "not run", "reason": f"the classifier failed: {exc}"}
    score = scores.get("synthetic", max(scores.values()) if scores else None)
    return {
        "status": "ran",
        "detector": getattr(detector, "name", "synthetic"),
        "scores": {k: round(float(v), 6) for k, v in scores.items()},
        "score": round(float(score), 6) if score is not None else None,
        "threshold": SYNTHETIC_THRESHOLD,
        "synthetic": score is not None and score >= SYNTHETIC_THRESHOLD,
    }
