"""What platforms and people do to images: the attacks the watermark benchmark and tests apply.

Each attack takes and returns an 8-bit RGB PIL image. `ATTACKS` maps the benchmark's column names to them,
in table order. Crops keep the top-left corner, so every scheme loses the same part of the picture;
"+rescale" crops are resized back to the original size afterwards.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

Attack = Callable[[Image.Image], Image.Image]


def reencode(image: Image.Image, fmt: str, quality: int) -> Image.Image:
    """Encode as JPEG or WebP at `quality` and decode again."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def resize(image: Image.Image, factor: float) -> Image.Image:
    """Scale both sides by `factor` (Lanczos, as most platforms resize)."""
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def crop(image: Image.Image, keep: float, rescale: bool = False) -> Image.Image:
    """Keep the top-left `keep` fraction of each side, optionally resized back to the original size."""
    cropped = image.crop((0, 0, round(image.width * keep), round(image.height * keep)))
    return cropped.resize(image.size, Image.Resampling.LANCZOS) if rescale else cropped


def brightness(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(factor)


def contrast(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(factor)


def gamma(image: Image.Image, value: float) -> Image.Image:
    table = (255.0 * (np.arange(256) / 255.0) ** value + 0.5).astype(np.uint8)
    return Image.fromarray(table[np.asarray(image)])


def noise(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    """Add Gaussian noise of standard deviation `sigma` (grey levels) to every channel."""
    pixels = np.asarray(image).astype(np.float32)
    pixels += np.random.default_rng(seed).normal(0.0, sigma, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def blur(image: Image.Image, sigma: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(sigma))


def rotate(image: Image.Image, degrees: float) -> Image.Image:
    """Rotate about the centre, same canvas, corners filled black."""
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC)


def social(image: Image.Image) -> Image.Image:
    """What a social network does on upload: downscale to 70%, then JPEG quality 70."""
    return reencode(resize(image, 0.7), "JPEG", 70)


ATTACKS: dict[str, Attack] = {
    "none": lambda im: im,
    "jpeg90": lambda im: reencode(im, "JPEG", 90),
    "jpeg75": lambda im: reencode(im, "JPEG", 75),
    "jpeg50": lambda im: reencode(im, "JPEG", 50),
    "jpeg30": lambda im: reencode(im, "JPEG", 30),
    "webp80": lambda im: reencode(im, "WEBP", 80),
    "resize0.5": lambda im: resize(im, 0.5),
    "resize0.33": lambda im: resize(im, 1 / 3),
    "resize1.5": lambda im: resize(im, 1.5),
    "crop80": lambda im: crop(im, 0.8),
    "crop60": lambda im: crop(im, 0.6),
    "crop80+rescale": lambda im: crop(im, 0.8, rescale=True),
    "crop60+rescale": lambda im: crop(im, 0.6, rescale=True),
    "bright+30": lambda im: brightness(im, 1.3),
    "bright-30": lambda im: brightness(im, 0.7),
    "contrast+30": lambda im: contrast(im, 1.3),
    "contrast-30": lambda im: contrast(im, 0.7),
    "gamma0.8": lambda im: gamma(im, 0.8),
    "noise5": lambda im: noise(im, 5.0),
    "noise10": lambda im: noise(im, 10.0),
    "blur1": lambda im: blur(im, 1.0),
    "rotate2": lambda im: rotate(im, 2.0),
    "social": social,
}
"""Column name -> attack, in the benchmark table's order."""

PAYLOAD_TARGETS = (
    "none",
    "jpeg90",
    "jpeg75",
    "jpeg50",
    "webp80",
    "resize0.5",
    "resize1.5",
    "crop80",
    "bright+30",
    "bright-30",
    "contrast+30",
    "contrast-30",
    "noise5",
    "blur1",
    "social",
)
"""Columns where our scheme must recover the exact payload in >= 95% of images (a benchmark target)."""
