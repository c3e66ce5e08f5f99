"""Watermark evidence: every known scheme's reading of the image, through the watermark interface.

The schemes tried are `KNOWN_SCHEMES` (ours first, then Stable Diffusion / SDXL / rivaGan) plus the scheme
`guard protect` embeds, so an image this installation protected is always read. A scheme that cannot run
(its codec missing, the image too small) is reported with its reason instead of stopping the verification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class WatermarkReading:
    """One scheme's reading. `detected` is None when the scheme cannot tell presence on its own (any image
    yields some bits); then only a store look-up of the payload decides (`resolved`)."""

    scheme: str
    detected: bool | None
    payload: bytes | None
    confidence: float | None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    resolved: bool = False
    """The payload named a record in the manifest store."""
    bound: bool = False
    """The payload is the one the file's own Content Credentials declare in their soft-binding assertion."""

    @property
    def found(self) -> bool:
        """A mark is present: the decoder says so, or its payload resolved in the store or the manifest."""
        return bool(self.detected) or self.resolved or self.bound

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "scheme": self.scheme,
            "detected": self.found,
            "payload": self.payload.hex() if self.payload is not None and self.found else None,
            "confidence": round(float(self.confidence), 6) if self.confidence is not None else None,
        }
        if self.detected is None:
            document["decided_by"] = "manifest store look-up (the scheme cannot detect presence by itself)"
            document["bits_read"] = self.payload.hex() if self.payload is not None else None
        if self.resolved:
            document["resolved_in_store"] = True
        if self.bound:
            document["matches_soft_binding"] = True
        if self.error:
            document["error"] = self.error
        document.update({k: v for k, v in self.details.items() if k not in document})
        return document


def schemes_to_try(*, with_default: bool = True) -> tuple[str, ...]:
    """`KNOWN_SCHEMES`, and first the scheme `guard protect` embeds when it is not among them and
    `with_default` (its payload is only worth reading when a store or resolver can look it up)."""
    from guard.provenance import watermarks

    names = list(watermarks.KNOWN_SCHEMES)
    if with_default and watermarks.DEFAULT_SCHEME not in names:
        names.insert(0, watermarks.DEFAULT_SCHEME)
    return tuple(names)


def read_watermarks(image: Image.Image, schemes: tuple[str, ...] | None = None) -> list[WatermarkReading]:
    """Each scheme's reading of `image` (RGB); `schemes` None: `schemes_to_try()`."""
    from guard.provenance.watermarks import get_scheme, shared_work

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    readings = []
    with shared_work():  # the dwtDct-based decoders read the same block votes once
        for name in schemes if schemes is not None else schemes_to_try():
            try:
                result = get_scheme(name).decode(rgb)
            except Exception as exc:  # a codec failing on this image (too small, missing model) must not stop the rest
                readings.append(WatermarkReading(name, False, None, None, error=str(exc) or type(exc).__name__))
                continue
            payload = getattr(result, "payload", None)
            readings.append(
                WatermarkReading(
                    scheme=getattr(result, "scheme", name),
                    detected=getattr(result, "detected", None),
                    payload=bytes(payload) if payload is not None else None,
                    confidence=getattr(result, "confidence", None),
                    details=dict(getattr(result, "details", None) or {}),
                )
            )
    return readings


def bind_to_manifest(readings: list[WatermarkReading], soft_bindings: list[dict[str, str]]) -> None:
    """Mark the readings whose payload the manifest's soft binding declares (`com.image-guard.watermark.<scheme>`)."""
    from guard.provenance.credentials.manifest import soft_binding_alg

    declared = {(b.get("alg"), (b.get("value") or "").lower()) for b in soft_bindings}
    for reading in readings:
        if reading.payload is not None and reading.detected is not False:
            reading.bound = (soft_binding_alg(reading.scheme), reading.payload.hex()) in declared
