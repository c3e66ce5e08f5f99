"""Safe image loading: any supported file, bytes or PIL image in, an 8-bit RGB PIL image out.

Every command reads images through `load_image`, so every command refuses the same bad inputs with the
same one-line `ImageError`: empty files, non-images, truncated data, decompression bombs and formats
we do not decode (PDF, EPS, ... are never handed to a decoder).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from guard.errors import ImageError, ImageTooLargeError, UnsupportedImageError
from guard.settings import MAX_PIXELS, env_int

DEFAULT_MAX_PIXELS = 64_000_000
"""Default decompression-bomb cap: 64 megapixels (override with GUARD_MAX_PIXELS or max_pixels=)."""

DECODED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "DIB", "GIF", "AVIF", "HEIF")
"""Pillow format names we decode. Anything else is refused as unsupported before any decoding."""

IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".webp",
        ".tif",
        ".tiff",
        ".bmp",
        ".dib",
        ".gif",
        ".avif",
        ".heic",
        ".heif",
    }
)
"""File suffixes picked up when a folder is walked."""

WRITE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".avif": "AVIF",
    ".heic": "HEIF",
    ".heif": "HEIF",
}
"""Output suffix -> Pillow format, for every format the project writes; each writer picks its subset."""

ENCODE_OPTIONS: dict[str, dict[str, Any]] = {
    "JPEG": {"quality": 95},
    "WEBP": {"quality": 95, "method": 4},
    "AVIF": {"quality": 90},
    "HEIF": {"quality": 90},
    "TIFF": {"compression": "tiff_deflate"},
    "PNG": {"compress_level": 6},
}
"""Pillow save options per format: lossy formats at high quality, lossless ones compressed."""

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image

_heif_registered = False
_heif_lock = threading.Lock()


def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF (and AVIF on Pillow builds without it) through pillow-heif, once.

    Thread-safe: a second thread waits until the plugins are registered, so it never sees a half-filled
    `Image.OPEN` (which would make a good WebP or HEIC look like "not an image").
    """
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if _heif_registered:
            return
        Image.init()  # load every Pillow plugin so that `formats=` can name MPO, AVIF, ...
        try:
            import pillow_heif
        except ImportError:
            pillow_heif = None
        if pillow_heif is not None:
            pillow_heif.register_heif_opener()
            from PIL import features

            if not features.check("avif") and hasattr(pillow_heif, "register_avif_opener"):
                pillow_heif.register_avif_opener()
        _heif_registered = True


def max_pixels_setting() -> int:
    """The pixel cap in force: GUARD_MAX_PIXELS if set, else the default."""
    return env_int(MAX_PIXELS, DEFAULT_MAX_PIXELS)


def describe(source: ImageSource) -> str:
    """A short name for a source, used at the start of error messages."""
    if isinstance(source, Image.Image):
        return "image"
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    return str(source)


def load_image(source: ImageSource, *, max_pixels: int | None = None, name: str | None = None) -> Image.Image:
    """Decode `source` into an 8-bit RGB image with EXIF orientation applied.

    Alpha is flattened onto white; palette, CMYK, 16-bit, float and grayscale images are converted.
    Animated files give their first frame. Raises `ImageError` (one sentence) for anything unsafe or
    unreadable. `name` (e.g. the path of bytes the caller already read with `read_file`) is what error messages call
    the source.
    """
    cap = max_pixels_setting() if max_pixels is None else max_pixels
    name = name or describe(source)
    if isinstance(source, Image.Image):
        _check_pixels(name, source.size, cap)
        oriented = ImageOps.exif_transpose(source)  # a new image: the caller's is never modified
        return oriented if oriented.mode == "RGB" else to_rgb(oriented)
    data = _read_bytes(source, name)
    image = _open(data, name)
    try:
        _check_pixels(name, image.size, cap)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
            raise ImageError(f"{name}: the {image.format} data is truncated or corrupt ({exc}).") from None
        # A broken EXIF block must not make an otherwise good image unreadable.
        with contextlib.suppress(Exception):
            ImageOps.exif_transpose(image, in_place=True)
    except BaseException:
        image.close()
        raise
    if image.mode == "RGB":
        return image  # decoded by us and not shared: handed over without a copy
    try:
        return to_rgb(image)
    finally:
        image.close()


def read_file(path: str | os.PathLike) -> bytes:
    """A file's bytes, or an `ImageError` in one sentence (missing, a folder, unreadable, empty). For callers
    that need the encoded bytes too (credentials, metadata): read once, then `load_image(data, name=path)`."""
    return _read_bytes(path, str(path))


def _read_bytes(source: ImageSource, name: str) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        path = Path(source)
        if path.is_dir():
            raise ImageError(f"{name}: is a folder, not an image file.")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file.") from None
        except OSError as exc:
            raise ImageError(f"{name}: cannot be read ({exc.strerror or exc}).") from None
    if not data:
        raise ImageError(f"{name}: the file is empty.")
    return data


def _open(data: bytes, name: str) -> Image.Image:
    _register_heif()
    with warnings.catch_warnings():
        # We enforce our own pixel cap below; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=[f for f in DECODED_FORMATS if f in Image.OPEN])
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(f"{name}: refused as a decompression bomb ({exc}).") from None
        except UnidentifiedImageError:
            fmt = _sniff_format(data)
            if fmt:
                raise UnsupportedImageError(
                    f"{name}: {fmt} files are not supported; convert it to PNG or JPEG."
                ) from None
            raise UnsupportedImageError(f"{name}: not an image (unrecognised or corrupt data).") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{name}: not a readable image ({exc}).") from None


_SIGNATURES = (
    (b"%PDF", "PDF"),
    (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"8BPS", "Photoshop PSD"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"II*\x00", "TIFF variant"),
    (b"MM\x00*", "TIFF variant"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"qoif", "QOI"),
)


def _sniff_format(data: bytes) -> str | None:
    """Name a known non-supported format from its magic bytes (no decoder is run)."""
    head = data[:16]
    for magic, fmt in _SIGNATURES:
        if head.startswith(magic):
            return fmt
    if head[4:8] == b"ftyp":
        return f"ISO media ({head[8:12].decode('latin-1').strip()})"
    return None


def _check_pixels(name: str, size: tuple[int, int], cap: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: the image has no pixels ({width}×{height}).")
    if width * height > cap:
        raise ImageTooLargeError(
            f"{name}: {width}×{height} is {width * height / 1e6:.1f} megapixels, over the "
            f"{cap / 1e6:g} MP limit (a decompression-bomb guard; raise it with {MAX_PIXELS})."
        )


def rgb_pixels(image: Image.Image) -> np.ndarray:
    """`image`'s pixels as a read-only (H, W, 3) uint8 array. An RGB image is read as it is: `convert("RGB")`
    would first copy it (7-8 ms for a 1024x1024 image, several times the read). Other modes are converted
    as Pillow converts them (alpha dropped; `to_rgb` composites it onto white instead)."""
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited onto white."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image)), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode == "P":
        return image.convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth single-channel array to 0..255."""
    values = array.astype(np.float64)
    if array.dtype.kind in "ui" and values.size and values.max() > 255:
        top = 65535.0 if values.max() <= 65535 else float(values.max())
    elif array.dtype.kind == "f":
        top = 1.0 if values.size and values.max() <= 1.0 else float(values.max() or 1.0)
    else:
        top = 255.0
    return np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)


def iter_image_files(
    paths: Iterable[str | os.PathLike], *, recursive: bool = True, suffixes: Iterable[str] = IMAGE_SUFFIXES
) -> Iterator[Path]:
    """Files named directly, and image files (by suffix, `suffixes`) inside named folders, in a stable order.

    A file named directly is always yielded, whatever its suffix, so that the caller reports it if it
    is not an image rather than silently skipping what the user asked for.
    """
    wanted = frozenset(suffixes)
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.glob("*")
            for child in sorted(walker):
                if child.is_file() and child.suffix.lower() in wanted:
                    yield child
        else:
            yield path


def list_image_files(
    paths: Iterable[str | os.PathLike], *, recursive: bool = True, suffixes: Iterable[str] = IMAGE_SUFFIXES
) -> list[Path]:
    """`iter_image_files` as a list; ImageError when it is empty (only folders without images were named)."""
    files = list(iter_image_files(paths, recursive=recursive, suffixes=suffixes))
    if not files:
        raise ImageError(f"no image files found in {', '.join(str(p) for p in paths)}.")
    return files
