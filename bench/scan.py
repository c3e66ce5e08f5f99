"""Benchmark: images per second for NSFW scoring, `guard.scan` against NudeNet's own `NudeDetector().detect()` loop.

Builds a few hundred JPEGs at 512×512 and 1024×1024 from real photos (scikit-image and matplotlib samples,
the shared fixtures), varied by random crops, flips, rotations and colour shifts, then times, in the
same run, alternating rounds:

* nudenet: `NudeDetector().detect(path)` for each file (NudeNet's default onnxruntime session);
* guard: `guard.scan.scan_paths` with the NudeNet detector — the whole library path: decode through
  `load_image` (the next batch while the current one is scored), batched inference in one reused
  session, vectorised postprocessing, the policy decision for each image.

and the same two on images already decoded, to separate NSFW scoring from JPEG decoding:

* nudenet: `NudeDetector().detect(bgr_array)` for each image;
* guard: `NudeNetDetector.analyze(batch)`.

Every image's detections are compared (same classes, boxes equal, scores within 1e-3). The table gives the
median images/s over the rounds and the ratio to NudeNet. Run: `python bench/scan.py [--n 120] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from common import photo_variant
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "formats"


def source_photos() -> list[Image.Image]:
    """Real photos to cut the benchmark images from."""
    from matplotlib import cbook
    from skimage import data

    from guard.images import load_image

    photos = [Image.fromarray(getattr(data, n)()) for n in ("astronaut", "chelsea", "coffee", "rocket", "camera")]
    photos += [Image.fromarray(getattr(data, n)()).convert("RGB") for n in ("coins", "moon", "page")]
    photos.append(load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    for path in sorted(FIXTURES.glob("*.jpg")) + sorted(FIXTURES.glob("*.png")):
        try:
            photos.append(load_image(path))
        except Exception:  # a fixture that is meant to be unreadable
            continue
    return [p.convert("RGB") for p in photos]


def make_images(folder: Path, size: int, count: int, seed: int) -> list[Path]:
    """`count` varied size×size JPEGs cut from the source photos."""
    rng = np.random.default_rng(seed)
    photos = source_photos()
    paths = []
    for index in range(count):
        image = photo_variant(photos[index % len(photos)], rng, size)
        path = folder / f"{size}_{index:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def run_nudenet(detector, paths: list[Path]) -> tuple[float, list[list[dict]]]:
    start = time.perf_counter()
    results = [detector.detect(str(path)) for path in paths]
    return time.perf_counter() - start, results


def run_nudenet_decoded(detector, arrays: list[np.ndarray]) -> tuple[float, list[list[dict]]]:
    start = time.perf_counter()
    results = [detector.detect(array) for array in arrays]
    return time.perf_counter() - start, results


def run_detector_decoded(detector, images: list[Image.Image], batch_size: int) -> tuple[float, list[list[dict]]]:
    start = time.perf_counter()
    results = []
    for first in range(0, len(images), batch_size):
        results += [d.details["detections"] for d in detector.analyze(images[first : first + batch_size])]
    return time.perf_counter() - start, results


def run_guard(policy, detectors, paths: list[Path], batch_size: int) -> tuple[float, list[list[dict]]]:
    from guard.scan import scan_paths

    start = time.perf_counter()
    results = [
        r.assessment.details["nudenet"]["detections"]
        for r in scan_paths([], policy, detectors, batch_size=batch_size, files=paths)
    ]
    return time.perf_counter() - start, results


def compare(theirs: list[list[dict]], ours: list[list[dict]], tolerance: float = 1e-3) -> tuple[int, float]:
    """(images whose detections differ, largest score difference among matching detections)."""
    mismatched, worst = 0, 0.0
    for a, b in zip(theirs, ours, strict=True):
        same = len(a) == len(b) and all(
            x["class"] == y["class"] and x["box"] == y["box"] and abs(x["score"] - y["score"]) <= tolerance
            for x, y in zip(a, b, strict=True)
        )
        mismatched += not same
        if len(a) == len(b):
            worst = max([worst, *(abs(x["score"] - y["score"]) for x, y in zip(a, b, strict=True))])
    return mismatched, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120, help="images per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (the median is reported)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="guard's onnxruntime threads (default: its own)")
    args = parser.parse_args()

    from nudenet import NudeDetector

    from detectors.nudenet import NudeNetDetector
    from guard.images import load_image
    from policies import load_policy

    policy = load_policy("default")
    reference = NudeDetector()
    ours = {"nudenet": NudeNetDetector(threads=args.threads, batch_size=args.batch_size)}
    ours["nudenet"].load()
    print(f"{os.cpu_count()} CPU cores; {args.n} images per size; median of {args.rounds} alternating rounds")
    header = f"{'size':>9} {'method':<46} {'images/s':>9} {'ms/image':>9} {'vs nudenet':>11}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            paths = make_images(Path(tmp), size, args.n, seed=size)
            run_nudenet(reference, paths[:4])  # warm both sessions
            run_guard(policy, ours, paths[:4], args.batch_size)
            images = [load_image(path) for path in paths]
            arrays = [np.ascontiguousarray(np.asarray(image)[:, :, ::-1]) for image in images]  # NudeNet wants BGR
            runs = {
                "nudenet": partial(run_nudenet, reference, paths),
                "guard": partial(run_guard, policy, ours, paths, args.batch_size),
                "nudenet_decoded": partial(run_nudenet_decoded, reference, arrays),
                "detector_decoded": partial(run_detector_decoded, ours["nudenet"], images, args.batch_size),
            }
            times: dict[str, list[float]] = {name: [] for name in runs}
            outputs: dict[str, list[list[dict]]] = {}
            for _ in range(args.rounds):
                for name, run in runs.items():
                    seconds, outputs[name] = run()
                    times[name].append(seconds)
            for base_name, method, label in (
                ("nudenet", "nudenet", "files: NudeNet NudeDetector().detect(path) loop"),
                ("nudenet", "guard", f"files: guard scan_paths (batch {args.batch_size})"),
                ("nudenet_decoded", "nudenet_decoded", "decoded: NudeNet detect(ndarray) loop"),
                ("nudenet_decoded", "detector_decoded", f"decoded: guard NudeNetDetector.analyze ({args.batch_size})"),
            ):
                base = statistics.median(times[base_name]) / len(paths)
                per_image = statistics.median(times[method]) / len(paths)
                rows.append(
                    f"{size:>9} {label:<46} {1 / per_image:>9.1f} {per_image * 1e3:>9.1f} {base / per_image:>10.2f}x"
                )
            for theirs, mine in (("nudenet", "guard"), ("nudenet_decoded", "detector_decoded")):
                mismatched, worst = compare(outputs[theirs], outputs[mine])
                rows.append(
                    f"{'':>9} {mine}: {len(paths) - mismatched}/{len(paths)} images with identical detections "
                    f"(largest score difference {worst:.1e}); {sum(bool(d) for d in outputs[mine])} with any"
                )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
