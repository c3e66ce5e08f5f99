"""Benchmark: the known-watermark decoders (Stable Diffusion v1/v2, SDXL) against invisible-watermark's, in one run.

1. Speed: our vectorised dwtDct decoder against invisible-watermark 0.2.0's `WatermarkDecoder.decode(bgr,
   "dwtDct")` on the same images (real photos scikit-image and matplotlib ship plus ../shared/fixtures/formats/,
   centre-cropped square at 512 and 1024, marked with Stable Diffusion v1's message). Each image is decoded
   `--repeats` times by each, interleaved; the table gives the median over images of each image's median
   time, and the ratio. Every decode's bits are compared: they must be identical.
2. Detection: each scheme's mark, embedded as Stable Diffusion's scripts (uint8) and diffusers' SDXL
   watermarker (float pixels) embed it, is decoded after a few of bench/attacks.py's attacks: share of
   images detected and mean bit accuracy.
3. False positives: every scheme on `--fp` unwatermarked images (random crops, flips, rotations, re-encodes
   and resizes of the photos, flat colours, gradients, noise, stripes, text-like images, and block patterns
   repeating every 1-48 blocks, where a bit's share of votes depends on its index): detections, the
   largest rank sum seen against the threshold, the smallest p-value, and how uniform the bits
   read are (share of ones).
4. rivaGan (`--riva-images` photos at 512², slow): decode time and bits against invisible-watermark's
   decoder, detection with the payload given, and the median logit margins of clean and marked photos.

    .venv/bin/python bench/known_watermarks.py            # full run (2,000 clean images)
    .venv/bin/python bench/known_watermarks.py --quick    # a few photos, 300 clean images
    .venv/bin/python bench/known_watermarks.py --sections speed,fp
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.attacks import ATTACKS
from bench.common import SYNTHETIC_KINDS, sample_photos, synthetic_image
from guard.provenance.watermarks import get_scheme
from guard.provenance.watermarks.dwtdct import bgr_array, decode_bits
from guard.provenance.watermarks.known_marks import FALSE_POSITIVE_RATE, threshold_bits

SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "retina",
    "hubble_deep_field",
    "camera",
    "moon",
    "brick",
    "grass",
    "gravel",
)
FIXTURE_PHOTOS = ("P1000827.jpg", "TUSCANY.TIF", "earth_apollo17.jpg", "mars.webp", "prerelease.jpg")
KNOWN = ("sd-v1", "sd-v2", "sdxl")
ATTACK_COLUMNS = (
    "none",
    "jpeg90",
    "jpeg75",
    "jpeg50",
    "webp80",
    "resize0.5",
    "resize1.5",
    "crop80",
    "crop80+rescale",
    "bright+30",
    "contrast-30",
    "noise5",
    "blur1",
    "social",
)


def photos() -> list[tuple[str, Image.Image]]:
    return sample_photos(SKIMAGE_PHOTOS, FIXTURE_PHOTOS)


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    value = call()
    return (time.perf_counter() - start) * 1000, value


def speed(images: list[Image.Image], sizes: tuple[int, ...], repeats: int) -> None:
    from imwatermark import WatermarkDecoder

    scheme = get_scheme("sd-v1")
    print("\n## dwtDct decoding: ours vs invisible-watermark (136-bit message, ms per image, median over images)\n")
    print(
        "| size | images | invisible-watermark decode | ours: bits | speed-up | ours: sd-v1 scheme (bits + test) "
        "| speed-up | identical bits |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for side in sizes:
        reference, ours, full, identical = [], [], [], 0
        for image in images:
            marked = scheme.embed(ImageOps.fit(image, (side, side)))
            pixels = bgr_array(marked)
            times: dict[str, list[float]] = {"ref": [], "ours": [], "full": []}
            for _ in range(repeats):
                ms, expected = timed(lambda pixels=pixels: WatermarkDecoder("bits", 136).decode(pixels, "dwtDct"))
                times["ref"].append(ms)
                ms, got = timed(lambda pixels=pixels: decode_bits(pixels, 136))
                times["ours"].append(ms)
                times["full"].append(timed(lambda marked=marked: scheme.decode(marked))[0])
            identical += bool(np.array_equal(np.asarray(expected, dtype=bool), got))
            reference.append(statistics.median(times["ref"]))
            ours.append(statistics.median(times["ours"]))
            full.append(statistics.median(times["full"]))
        ref, mine, whole = statistics.median(reference), statistics.median(ours), statistics.median(full)
        print(
            f"| {side}² | {len(images)} | {ref:.1f} | {mine:.2f} | {ref / mine:.1f}× | {whole:.2f} | "
            f"{ref / whole:.1f}× | {identical}/{len(images)} |"
        )


def detection(images: list[Image.Image], side: int) -> None:
    print(
        f"\n## Detection of marks embedded by invisible-watermark ({len(images)} photos at {side}²): share "
        "detected (rank-sum test) / share a k-of-n bit count at the same 1e-6 would detect / mean bit accuracy\n"
    )
    print("| scheme | threshold | " + " | ".join(ATTACK_COLUMNS) + " |")
    print("|---|---|" + "---:|" * len(ATTACK_COLUMNS))
    for name in KNOWN:
        scheme = get_scheme(name)
        tries = 2 if scheme.float_pixels else 1
        k = threshold_bits(scheme.bits, FALSE_POSITIVE_RATE / tries)
        marked = [scheme.embed(ImageOps.fit(image, (side, side))) for image in images]
        cells, threshold = [], ""
        for attack in ATTACK_COLUMNS:
            results = [scheme.decode(ATTACKS[attack](image)) for image in marked]
            readings = [r for r in results if "matching_bits" in r.details]
            rate = np.mean([r.detected for r in results])
            counted = np.mean([r.details["matching_bits"] >= k for r in readings]) if readings else 0.0
            accuracy = np.mean([r.details["matching_bits"] / r.details["bits"] for r in readings]) if readings else 0.5
            cells.append(f"{rate:.2f} / {counted:.2f} / {accuracy:.2f}")
            if readings and not threshold:
                least = readings[0].details["rank_sum_threshold"]
                threshold = f"rank sum ≥ {least} (k-of-n: {k} of {len(scheme.bits)})"
        print(f"| {name} | {threshold} | " + " | ".join(cells) + " |")


def clean_images(sources: list[Image.Image], count: int, seed: int = 7):
    """`count` unwatermarked images: transformed photos and made-up ones, in a fixed pseudo-random order."""
    rng = np.random.default_rng(seed)
    kinds = ("photo", "photo", "photo", "photo", *SYNTHETIC_KINDS)
    for index in range(count):
        kind = kinds[index % len(kinds)]
        if kind == "photo":
            image = sources[int(rng.integers(len(sources)))]
            w = int(rng.integers(min(256, image.width), image.width + 1))
            h = int(rng.integers(min(256, image.height), image.height + 1))
            left, top = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
            image = image.crop((left, top, left + w, top + h))
            step = int(rng.integers(6))
            if step == 1:
                image = ImageOps.mirror(image)
            elif step == 2:
                image = image.rotate(90, expand=True)
            elif step == 3:
                image = ATTACKS["jpeg75"](image)
            elif step == 4:
                image = image.resize((max(256, int(w * 1.3)), max(256, int(h * 1.3))))
            elif step == 5:
                image = ImageOps.flip(image)
            yield kind, image
            continue
        yield kind, synthetic_image(kind, rng)


def false_positives(sources: list[Image.Image], count: int) -> None:
    schemes = {name: get_scheme(name) for name in KNOWN}
    detections = dict.fromkeys(KNOWN, 0)
    largest: dict[str, tuple[int, int]] = {}
    smallest_p = dict.fromkeys(KNOWN, 1.0)
    ones_rates: dict[str, list[float]] = {name: [] for name in KNOWN}
    kinds: dict[str, int] = {}
    start = time.perf_counter()
    for kind, image in clean_images(sources, count):
        kinds[kind] = kinds.get(kind, 0) + 1
        for name, scheme in schemes.items():
            result = scheme.decode(image)
            detections[name] += result.detected
            if "rank_sum" not in result.details:
                continue
            statistic = result.details["rank_sum"]
            if statistic > largest.get(name, (-1, 0))[0]:
                largest[name] = (statistic, result.details["rank_sum_threshold"])
            smallest_p[name] = min(smallest_p[name], result.details["p_value"])
            ones_rates[name].append(result.details["ones_rate"])
    elapsed = time.perf_counter() - start
    mix = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    print(f"\n## False positives on {count} unwatermarked images ({mix}; {elapsed:.0f} s)\n")
    print(
        "| scheme | detections | largest rank sum seen / threshold | smallest p-value | bits read: median "
        "share of ones | images reading ≥ 90% zeros |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in KNOWN:
        rates = np.array(ones_rates[name])
        statistic, threshold = largest.get(name, (0, 0))
        print(
            f"| {name} | {detections[name]} | {statistic} / {threshold} | {smallest_p[name]:.2g} | "
            f"{np.median(rates):.2f} | {np.mean(rates <= 0.1):.0%} |"
        )


def rivagan(images: list[Image.Image], side: int) -> None:
    """rivaGan: our ONNX reading against invisible-watermark's decoder, and why the logits cannot decide."""
    from imwatermark import WatermarkDecoder

    WatermarkDecoder.loadModel()
    scheme = get_scheme("rivaGan")
    rng = np.random.default_rng(3)
    theirs, ours, identical, clean_margins, marked_margins, found = [], [], 0, [], [], 0
    for image in images:
        image = ImageOps.fit(image, (side, side))
        payload = rng.bytes(4)
        marked = scheme.embed(image, payload)
        ms, expected = timed(lambda marked=marked: WatermarkDecoder("bits", 32).decode(bgr_array(marked), "rivaGan"))
        theirs.append(ms)
        ms, result = timed(lambda marked=marked: scheme.decode(marked))
        ours.append(ms)
        identical += result.details["bits_read"] == np.packbits(expected).tobytes().hex()
        marked_margins.append(result.details["median_margin"])
        clean_margins.append(scheme.decode(image).details["median_margin"])
        found += scheme.decode_expecting(marked, payload).detected
    n = len(images)
    print(f"\n## rivaGan ({n} photos at {side}², one random 32-bit payload each)\n")
    print(
        "| invisible-watermark decode ms | ours ms | identical bits | detected with --expect | median margin: "
        "largest on a clean photo | smallest on a marked photo |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {statistics.median(theirs):.0f} | {statistics.median(ours):.0f} | {identical}/{n} | {found}/{n} | "
        f"{max(clean_margins):.2f} | {min(marked_margins):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few photos, 512 only, 300 clean images")
    parser.add_argument("--fp", type=int, default=None, help="number of unwatermarked images (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed decodes per image and decoder")
    parser.add_argument("--riva-images", type=int, default=None, help="photos for the rivaGan section (default 8)")
    parser.add_argument(
        "--sections", default="speed,detection,fp,rivagan", help="comma-separated: speed, detection, fp, rivagan"
    )
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    named = photos()
    images = [image for _, image in named]
    if args.quick:
        images = images[:4]
    print(f"photos: {', '.join(name for name, _ in named[: len(images)])}")
    if "speed" in sections:
        speed(images, (512,) if args.quick else (512, 1024), args.repeats)
    if "detection" in sections:
        detection(images, 512)
    if "fp" in sections:
        false_positives([image for _, image in named], args.fp or (300 if args.quick else 2000))
    if "rivagan" in sections:
        rivagan(images[: args.riva_images or (2 if args.quick else 8)], 512)


if __name__ == "__main__":
    main()
