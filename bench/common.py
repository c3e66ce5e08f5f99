"""What several benchmarks share: the shared fixtures, real sample photos, and a median timer."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from guard.images import load_image

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ROOT.parent / "shared" / "fixtures" / "formats"
PHOTO = FORMATS / "P1000827.jpg"
"""A real camera photo (with EXIF), the single image of the protect and verify benchmarks."""


def median_ms(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of `fn()` in milliseconds over `runs` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def sample_photos(skimage_names: Iterable[str], fixture_names: Iterable[str]) -> list[tuple[str, Image.Image]]:
    """(name, RGB image) for scikit-image sample photos, matplotlib's Grace Hopper and shared fixture files
    (those present), each at its own size."""
    import matplotlib.cbook
    from skimage import data, io

    found = []
    for name in skimage_names:
        if name == "motorcycle_left":  # one half of a stereo pair, shipped as a file without its own loader
            pixels = io.imread(Path(data.data_dir) / "motorcycle_left.png")
        else:
            pixels = getattr(data, name)()
        found.append((name, load_image(Image.fromarray(np.asarray(pixels)))))
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        found.append(("grace_hopper", load_image(handle.read())))
    found.extend((name, load_image(FORMATS / name)) for name in fixture_names if (FORMATS / name).exists())
    return found
