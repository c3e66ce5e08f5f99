"""The named detectors policies refer to, and `build_detectors` that makes them from a policy's settings.

A policy's `detectors:` section maps a name from `DETECTORS` to its settings; every setting except
`required` is passed to the detector's constructor. Detector modules are imported only when built, so a
policy that needs only NudeNet never imports torch.
"""

from __future__ import annotations

import importlib
import inspect
import json
import threading
from collections.abc import Mapping
from typing import Any

from detectors.base import Detector
from detectors.errors import DetectorError

DETECTORS: dict[str, str] = {
    "nudenet": "detectors.nudenet:NudeNetDetector",
    "open_nsfw": "detectors.open_nsfw:OpenNsfwDetector",
    "clip_concepts": "detectors.concepts:ClipConceptDetector",
    "synthetic": "detectors.synthetic:SyntheticImageDetector",
}
"""Detector name (as written in policies) -> "module:class"."""

POLICY_ONLY_KEYS = frozenset({"required"})
"""Settings that belong to the policy, not to the detector."""

_BUILT: dict[tuple[str, str], Detector] = {}
_LOCK = threading.Lock()


def detector_class(name: str) -> type:
    """The class registered under `name`; DetectorError naming the known detectors otherwise."""
    if name not in DETECTORS:
        raise DetectorError(f"unknown detector {name!r}; known detectors: {', '.join(sorted(DETECTORS))}.")
    module, attr = DETECTORS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build_detector(name: str, settings: Mapping[str, Any] | None = None) -> Detector:
    """A new detector `name` configured with `settings` (the policy's entry; `required` is ignored)."""
    cls = detector_class(name)
    options = {k: v for k, v in (settings or {}).items() if k not in POLICY_ONLY_KEYS}
    parameters = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(options) - set(parameters) - {"self"})
    if unknown:
        known = sorted(p for p in parameters if p != "self")
        raise DetectorError(f"detectors.{name}: unknown setting(s) {unknown}; known: {known}.")
    return cls(**options)


def build_detectors(configs: Mapping[str, Mapping[str, Any]], *, reuse: bool = True) -> dict[str, Detector]:
    """Detector name -> detector, for a policy's `detector_configs()`.

    With `reuse` (the default) a detector built before with the same name and settings is returned again,
    so its loaded model is shared by every later scan in the process. Models still load lazily, on first use.
    """
    built: dict[str, Detector] = {}
    for name, settings in configs.items():
        options = {k: v for k, v in (settings or {}).items() if k not in POLICY_ONLY_KEYS}
        if not reuse:
            built[name] = build_detector(name, options)
            continue
        key = (name, json.dumps(options, sort_keys=True, default=str))
        with _LOCK:
            if key not in _BUILT:
                _BUILT[key] = build_detector(name, options)
            built[name] = _BUILT[key]
    return built
