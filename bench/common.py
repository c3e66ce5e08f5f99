"""What several benchmarks share: the shared fixtures, real sample photos, and a median timer."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

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


SYNTHETIC_KINDS = ("flat", "gradient", "noise", "stripes", "text", "pattern")
"""The kinds of made-up unwatermarked pictures the false-positive runs add to the photos."""


def photo_variant(photo: Image.Image, rng: np.random.Generator, size: int, min_side: int = 16) -> Image.Image:
    """A `size`-pixel square variant of a real photo: a random crop (half to all of each side), sometimes
    mirrored or turned, with colour and brightness moved a little."""
    from PIL import ImageEnhance

    width, height = photo.size
    scale = rng.uniform(0.5, 1.0)
    crop_w, crop_h = max(min_side, int(width * scale)), max(min_side, int(height * scale))
    left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
    image = photo.crop((left, top, left + crop_w, top + crop_h)).resize((size, size), Image.BICUBIC)
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.3:
        image = image.rotate(float(rng.choice([90, 180, 270])))
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))
    return ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))


def synthetic_image(kind: str, rng: np.random.Generator) -> Image.Image:
    """One made-up picture of `kind` (see `SYNTHETIC_KINDS`), 256-1024 px a side: the cases where watermark
    decoders read structure that is not a mark (flat colours and gradients read as all zeros, noise and
    periodic pictures correlate with anything by chance, text has sharp repeated shapes)."""
    side = int(rng.choice([256, 384, 512, 640, 768, 1024]))
    if kind == "flat":
        size = (side, int(side * rng.uniform(0.5, 2)))
        return Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    if kind == "gradient":
        y, x = np.mgrid[0:side, 0:side] / side
        angle = rng.uniform(0, np.pi)
        ramp = np.cos(angle) * x + np.sin(angle) * y
        colours = rng.integers(0, 256, (2, 3))
        pixels = colours[0] + (colours[1] - colours[0]) * (ramp / max(ramp.max(), 1e-6))[:, :, None]
    elif kind == "noise":
        pixels = rng.normal(rng.uniform(40, 220), rng.uniform(2, 80), (side, side, 3)).astype(np.float32)
        if rng.random() < 0.5:  # coloured (low-passed) noise too
            pixels = np.asarray(
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(
                    ImageFilter.GaussianBlur(float(rng.uniform(0.5, 4)))
                ),
                dtype=float,
            )
    elif kind == "stripes":  # sine stripes or grids at any angle, periods 3-200 px
        period = float(rng.uniform(3, 200))
        y, x = np.mgrid[0:side, 0:side]
        angle = rng.uniform(0, np.pi)
        wave = np.sin(2 * np.pi * (np.cos(angle) * x + np.sin(angle) * y) / period)
        if rng.random() < 0.5:
            wave = wave * np.sin(2 * np.pi * (np.cos(angle + np.pi / 2) * x + np.sin(angle + np.pi / 2) * y) / period)
        colours = rng.integers(0, 256, (2, 3))
        pixels = colours[0] + (colours[1] - colours[0]) * (0.5 + 0.5 * wave)[:, :, None]
    elif kind == "text":
        image = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(180, 256, 3)))
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default()
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz      ABCDEFGHIJ0123456789.,"))
        ink = tuple(int(v) for v in rng.integers(0, 80, 3))
        for line in range(0, side, int(rng.integers(10, 24))):
            draw.text((4, line), "".join(rng.choice(letters, side // 6)), fill=ink, font=font)
        return image
    elif kind == "pattern":
        return repeating_pattern(rng)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def repeating_pattern(rng: np.random.Generator) -> Image.Image:
    """A picture made of 8x8-pixel blocks (dwtDct's grid) that repeats every few blocks across, down or both —
    tiles, mosaics, textiles, UI backgrounds: the case where a dwtDct bit's share of votes depends on its
    index. Sides are multiples of 64 px; each block position of the period draws its colour (from 2-4) with its
    own probabilities, plus optional noise and blur."""
    w, h = (64 * int(v) for v in rng.integers(4, 17, 2))
    period = int(rng.choice([1, 2, 3, 4, 6, 8, 12, 16, 17, 24, 32, 48]))
    colours = rng.integers(0, 256, (int(rng.integers(2, 5)), 3))
    probabilities = rng.dirichlet(np.ones(len(colours)), period)  # per phase
    across, down = rng.random() < 0.7, rng.random() < 0.5
    columns, rows = np.arange(w // 8) % period, np.arange(h // 8) % period
    phase = (columns[None, :] if across else 0) + (rows[:, None] if down else 0) + np.zeros((h // 8, w // 8), int)
    cumulative = np.cumsum(probabilities, axis=1)[phase % period]
    choice = (rng.random((h // 8, w // 8, 1)) > cumulative).sum(axis=2)
    pixels = np.repeat(np.repeat(colours[np.minimum(choice, len(colours) - 1)], 8, axis=0), 8, axis=1).astype(float)
    if rng.random() < 0.5:
        pixels += rng.normal(0, rng.uniform(1, 10), pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2)))) if rng.random() < 0.3 else image
