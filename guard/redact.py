"""Blur for delivery: what the policy's `blur` action does to an image before it leaves the guard.

The image is reduced to a coarse grid (its longer side to `BLUR_GRID` pixels, each grid cell the average of
its pixels), scaled back up, then Gaussian-blurred with a radius of half a cell. Nothing smaller than about a
sixteenth of the image survives: faces, bodies, text and logos become soft colour fields, while the overall
colours stay, so a viewer sees that an image was withheld in part rather than a broken file. A plain
Gaussian blur is not enough: strong edges and large shapes stay recognisable, and it can partly be undone.
"""

from __future__ import annotations

from PIL import Image, ImageFilter

BLUR_GRID = 16
"""Pixels on the longer side of the coarse grid every blurred image passes through."""


def blur(image: Image.Image) -> Image.Image:
    """A same-size RGB copy of `image` in which nothing finer than 1/`BLUR_GRID` of its side is left."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    scale = BLUR_GRID / max(width, height)
    grid = rgb.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX)
    smooth = grid.resize((width, height), Image.Resampling.BILINEAR)
    return smooth.filter(ImageFilter.GaussianBlur(radius=max(width, height) / BLUR_GRID / 2))
