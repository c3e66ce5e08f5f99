"""Record NudeNet's raw outputs on benign photos into nudenet_benign_raw.json next to this file (run by hand).

Only the candidate columns (class score >= 0.2) are kept: the others never reach NMS, so the recording
reproduces NudeNet's detections exactly while staying small. `python tests/data/record_nudenet_raw.py`
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detectors.nudenet import CANDIDATE_THRESHOLD, NudeNetDetector

OUT = Path(__file__).parent / "nudenet_benign_raw.json"
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "formats"


def benign_photos() -> dict[str, np.ndarray]:
    """Name -> RGB array: scikit-image's sample photos and two small fixture photos."""
    from skimage import data

    from guard.images import load_image

    photos = {name: getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")}
    for name in ("test_xmp.webp", "test_lossless.webp"):
        if (FIXTURES / name).is_file():
            photos[name] = np.asarray(load_image(FIXTURES / name))
    return photos


def main() -> None:
    photos = benign_photos()
    raw = NudeNetDetector(batch_size=1).raw_outputs(list(photos.values()))
    records = []
    for (name, rgb), output in zip(photos.items(), raw, strict=True):
        columns = np.flatnonzero(output[4:].max(axis=0) >= np.float32(CANDIDATE_THRESHOLD))
        records.append(
            {
                "name": name,
                "width": int(rgb.shape[1]),
                "height": int(rgb.shape[0]),
                "shape": list(output.shape),
                "candidates": {str(int(c)): [float(v) for v in output[:, c]] for c in columns},
            }
        )
    OUT.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {OUT} ({len(records)} photos)")


if __name__ == "__main__":
    main()
