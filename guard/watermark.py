"""Watermark image files: embed a scheme's mark into a new file, and read every scheme's mark from many files."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from guard.errors import GuardError
from guard.files import write_atomic
from guard.images import ENCODE_OPTIONS, WRITE_FORMATS, load_image
from guard.provenance import watermarks
from guard.provenance.watermarks import WatermarkResult, shared_work

MARKED_FORMATS = {suffix: fmt for suffix, fmt in WRITE_FORMATS.items() if fmt not in ("AVIF", "HEIF")}
"""Output suffix -> Pillow format. Lossless formats keep the mark exactly; lossy ones are written at high quality."""


@dataclass(frozen=True)
class Embedded:
    """What `embed_file` wrote."""

    output: Path
    scheme: str
    payload: bytes
    readable: bool
    """The scheme's decoder finds the payload in the file as written (a lossy format can erase a fragile mark)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "payload": self.payload.hex(),
            "scheme": self.scheme,
            "readable": self.readable,
        }


def parse_payload(text: str) -> bytes:
    """A payload given as hex ("0a1b2c", "0x0a1b2c", spaces allowed)."""
    cleaned = text.strip().lower().removeprefix("0x").replace(" ", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise GuardError(f"The payload {text!r} is not hexadecimal (for example 0a1b2c3d4e5f).") from None


def choose_payload(scheme: Any, payload: bytes | None) -> bytes:
    """The given payload checked against the scheme, the scheme's fixed message, or random bytes."""
    fixed = getattr(scheme, "fixed_payload", None)
    if payload is None:
        return fixed if fixed is not None else os.urandom(scheme.payload_bytes)
    if fixed is not None and payload != fixed:
        raise GuardError(f"The {scheme.name} watermark always carries {fixed.hex()}; leave the payload out.")
    if len(payload) != scheme.payload_bytes:
        raise GuardError(
            f"A {scheme.name} payload is {scheme.payload_bytes} bytes ({2 * scheme.payload_bytes} hex digits); "
            f"{len(payload)} given."
        )
    return payload


def output_format(path: Path) -> str:
    fmt = MARKED_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise GuardError(
            f"Cannot tell the image format of {path.name!r}: end the output name in one of "
            f"{', '.join(sorted(MARKED_FORMATS))}."
        )
    return fmt


def embed_file(
    source: str | os.PathLike, output: str | os.PathLike, *, scheme: str | None = None, payload: bytes | None = None
) -> Embedded:
    """Mark the image at `source` with `scheme` (default: the project's) and write it to `output` atomically.

    The input is never overwritten; the format follows the output's suffix. The encoded file is decoded again
    before it is written, and `readable` says whether the scheme still finds the payload in it.
    """
    source, output = Path(source), Path(output)
    if output.resolve() == source.resolve() or (output.exists() and source.exists() and output.samefile(source)):
        raise GuardError(f"The output {output} is the input; write the marked copy to another file.")
    fmt = output_format(output)
    codec = watermarks.get_scheme(scheme or watermarks.DEFAULT_SCHEME)
    payload = choose_payload(codec, payload)
    image = load_image(source)
    marked = codec.embed(image, payload)
    buffer = io.BytesIO()
    marked.convert("RGB").save(buffer, fmt, **ENCODE_OPTIONS.get(fmt, {}))
    data = buffer.getvalue()
    written = load_image(data)
    check = codec.decode_expecting(written, payload) if hasattr(codec, "decode_expecting") else codec.decode(written)
    write_atomic(output, data)
    readable = bool(check.detected) and check.payload == payload
    return Embedded(output=output, scheme=codec.name, payload=payload, readable=readable)


def resolve_schemes(schemes: Sequence[str] | None = None, *, expect: bytes | None = None) -> list[Any]:
    """The named schemes (default: the ones the verifier tries), checked before any file is read."""
    codecs = [watermarks.get_scheme(name) for name in (tuple(schemes) if schemes else watermarks.KNOWN_SCHEMES)]
    if expect is not None and not any(hasattr(codec, "decode_expecting") for codec in codecs):
        raise GuardError(
            "--expect applies to schemes with an arbitrary payload and no detection of their own: add --scheme rivaGan."
        )
    return codecs


def _read(image: Image.Image, codecs: list[Any], expect: bytes | None) -> list[WatermarkResult]:
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    with shared_work():  # the SD and SDXL decoders read the same dwtDct block votes
        return [
            codec.decode_expecting(rgb, expect)
            if expect is not None and hasattr(codec, "decode_expecting")
            else codec.decode(rgb)
            for codec in codecs
        ]


def decode_record(path: str | os.PathLike, results: list[WatermarkResult]) -> dict[str, Any]:
    """One file's JSON record: the headline result (the first scheme that found a mark, else the first tried)
    as `detected`, `payload`, `confidence`, `scheme`, and every scheme's result under `watermarks`."""
    headline = next((r for r in results if r.detected), results[0] if results else None)
    return {
        "path": str(path),
        "detected": bool(headline and headline.detected),
        "payload": headline.payload.hex() if headline and headline.detected and headline.payload is not None else None,
        "confidence": round(float(headline.confidence), 6) if headline else 0.0,
        "scheme": headline.scheme if headline else None,
        "watermarks": [r.to_dict() for r in results],
    }


def decode_files(
    paths: Iterable[str | os.PathLike], schemes: Sequence[str] | None = None, *, expect: bytes | None = None
) -> Iterable[dict[str, Any]]:
    """One record per file, in order; a file that cannot be read (or that a scheme refuses) gives
    `{"path", "error"}` and the others go on. Unknown scheme names fail before any file is read."""
    codecs = resolve_schemes(schemes, expect=expect)
    for path in paths:
        try:
            yield decode_record(path, _read(load_image(path), codecs, expect))
        except GuardError as exc:
            yield {"path": str(path), "error": str(exc)}
