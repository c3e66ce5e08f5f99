"""Invisible watermarks: one interface for our scheme and the known schemes the verifier reads.

A scheme has a `name`, a `payload_bytes` size, `decode(image) -> WatermarkResult` and, where we can embed
it, `embed(image, payload) -> image` (a scheme with a size floor says so as `min_side`, the shortest side
`embed` accepts, so callers can refuse before spending time). Schemes are registered by name and imported
on first use, so reading a prompt never loads a watermark codec.

`WatermarkResult.detected` is a calibrated call: each decoder documents the false-positive rate per image
its threshold gives. `payload` is what the decoder read (None when nothing was detected and the bits are
meaningless).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from PIL import Image

from guard.errors import GuardError


@dataclass(frozen=True)
class WatermarkResult:
    """What one scheme found in one image."""

    scheme: str
    detected: bool
    payload: bytes | None
    confidence: float
    details: dict[str, Any] = field(default_factory=dict)
    """Scheme-specific evidence (matching bits, correlation, the message read, the threshold ...)."""

    def to_dict(self) -> dict[str, Any]:
        """The fields every reading has (`scheme`, `detected`, `payload` as hex or null, `confidence`), then details."""
        return {
            "scheme": self.scheme,
            "detected": self.detected,
            "payload": self.payload.hex() if self.payload is not None else None,
            "confidence": round(float(self.confidence), 6),
            **self.details,
        }


class WatermarkScheme(Protocol):
    """A watermark decoder, and an encoder where `embed` is implemented."""

    name: str
    payload_bytes: int

    def decode(self, image: Image.Image) -> WatermarkResult: ...

    def embed(self, image: Image.Image, payload: bytes) -> Image.Image: ...


SCHEMES: dict[str, str] = {
    "guard": "guard.provenance.watermarks.ours:TiledSpreadSpectrum",
    "sd-v1": "guard.provenance.watermarks.known_marks:stable_diffusion_v1",
    "sd-v2": "guard.provenance.watermarks.known_marks:stable_diffusion_v2",
    "sdxl": "guard.provenance.watermarks.known_marks:sdxl",
    "rivaGan": "guard.provenance.watermarks.known_marks:RivaGan",
}
"""Scheme name -> "module:factory" (a class or function taking no arguments): ours ("guard") and the marks
other generators embed (Stable Diffusion v1/v2, SDXL, rivaGan)."""

DEFAULT_SCHEME = "guard"
"""The scheme `guard protect` embeds: ours (guard.provenance.watermarks.ours)."""

KNOWN_SCHEMES: tuple[str, ...] = ("guard", "sd-v1", "sd-v2", "sdxl")
"""Schemes the verifier tries on every image, in order (ours first). rivaGan is registered but not tried on
every image: it cannot tell a mark from none without the payload, and takes seconds per image."""

_instances: dict[str, WatermarkScheme] = {}
_shared: ContextVar[dict[Hashable, Any] | None] = ContextVar("watermark_shared_work", default=None)
T = TypeVar("T")


def get_scheme(name: str = DEFAULT_SCHEME) -> WatermarkScheme:
    """The scheme registered under `name` (one shared instance per process)."""
    if name not in SCHEMES:
        raise GuardError(f"Unknown watermark scheme {name!r}; known: {', '.join(sorted(SCHEMES)) or 'none'}.")
    if name not in _instances:
        module, attr = SCHEMES[name].split(":")
        _instances[name] = getattr(importlib.import_module(module), attr)()
    return _instances[name]


@contextmanager
def shared_work() -> Iterator[None]:
    """A scope in which decoders reading the same image share work through `shared` (see `decode_all`)."""
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def shared(key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`, done once per key inside a `shared_work()` scope (outside one: every time).

    Decoders of related schemes share work this way (Stable Diffusion's and SDXL's marks are all read from the
    same dwtDct block votes). Keys name the image by `id`, which is safe because the image outlives the scope.
    """
    memo = _shared.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def decode_all(image: Image.Image, schemes: tuple[str, ...] | None = None) -> list[WatermarkResult]:
    """Every known scheme's reading of `image` (RGB), in `KNOWN_SCHEMES` order."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    with shared_work():
        return [get_scheme(name).decode(rgb) for name in (schemes if schemes is not None else KNOWN_SCHEMES)]
