"""Detectors: every image scorer (NSFW: NudeNet, open_nsfw; concepts, faces, synthetic). They score; policies decide.

```python
from detectors import build_detectors
detectors = build_detectors(policy.detector_configs())   # name -> Detector, models load on first use
detectors["nudenet"].score([image])                      # [{"explicit_nudity": 0.0, "suggestive": 0.0, "face": 0.72}]
```
"""

from detectors.base import Detection, Detector, LazyDetector
from detectors.errors import DetectorError, DetectorUnavailable
from detectors.registry import DETECTORS, build_detector, build_detectors

__all__ = [
    "DETECTORS",
    "Detection",
    "Detector",
    "DetectorError",
    "DetectorUnavailable",
    "LazyDetector",
    "build_detector",
    "build_detectors",
]
