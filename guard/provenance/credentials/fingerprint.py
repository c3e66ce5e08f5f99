"""Perceptual fingerprints of an image: 64-bit hashes that survive re-encoding and metadata stripping.

- `phash`: the DCT perceptual hash (Zauner 2010, as in pHash/imagehash): luma shrunk to 32x32, 2-D DCT,
  the 8x8 lowest frequencies compared with their median. Survives JPEG re-encoding, resizing, mild edits.
- `colorhash`: a colour-robust hash: the same DCT hash computed on the luma after histogram
  equalisation, so colour grading, white balance, brightness/contrast changes and conversion to
  grayscale move it little, while it still separates different pictures.

Both are unsigned 64-bit ints; compare them with `hamming`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.fft import dctn

HASH_BITS = 64
KINDS = ("phash", "colorhash")


def fingerprints(image: Image.Image) -> dict[str, int]:
    """`{"phash": int, "colorhash": int}` for an image (any mode; alpha is ignored)."""
    luma = _luma32(image)
    return {"phash": _dct_hash(luma), "colorhash": _dct_hash(_equalise(luma))}


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return ((a ^ b) & ((1 << HASH_BITS) - 1)).bit_count()


def _luma32(image: Image.Image) -> np.ndarray:
    # Box-filter down to 32x32 after an intermediate reduce, so JPEG block noise averages out.
    gray = image.convert("L")
    if min(gray.size) > 256:
        gray = gray.reduce(max(1, min(gray.size) // 256))
    return np.asarray(gray.resize((32, 32), Image.Resampling.BOX), dtype=np.float64)


def _equalise(luma: np.ndarray) -> np.ndarray:
    """Rank-based histogram equalisation: each value replaced by its rank (ties share the mean rank)."""
    flat = luma.ravel()
    order = flat.argsort(kind="stable")
    ranks = np.empty_like(flat)
    ranks[order] = np.arange(flat.size, dtype=np.float64)
    # Equal values must get equal ranks, or flat areas would turn into noise.
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse].reshape(luma.shape)


def _dct_hash(pixels: np.ndarray) -> int:
    low = dctn(pixels, type=2, norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value
