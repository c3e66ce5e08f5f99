"""Recovery: bring back the manifest of an image whose Content Credentials were stripped ("durable Content
Credentials"), then validate it against the image in hand.

Paths, tried in order until one succeeds:
1. a watermark payload that names a record of the local manifest store;
2. the image's perceptual fingerprint near a record of the local store;
3. a C2PA soft binding resolution service (by the watermark payload, then by content).

The recovered manifest store is validated against this file. A stripped, re-encoded or resized copy will not
match the manifest's hard binding (`assertion.dataHash.mismatch`): that is expected and said plainly — the
signature shows the manifest is genuine and who made the original, not that this copy is unmodified.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import c2pa
from PIL import Image

from guard.provenance.credentials.manifest import soft_binding_alg
from guard.provenance.credentials.store import DEFAULT_MAX_DISTANCE, ManifestStore
from guard.verify.c2pa_evidence import C2paEvidence, gather
from guard.verify.conformance import ConformingProducts
from guard.verify.explain import HARD_BINDING_CODES, TRUST_ONLY_CODES
from guard.verify.resolver import ResolverError, SoftBindingResolver
from guard.verify.watermark_evidence import WatermarkReading

STRONG_FINGERPRINT_DISTANCE = 10
"""Summed phash+colorhash distance (of 128 bits) up to which a fingerprint match counts as strong evidence:
JPEG re-encoding and resizing move it by 0-12, unrelated pictures by 40 or more. When the record's own watermark
is not detected, the report says so (a heavily processed copy, or the picture before it was marked)."""


@dataclass
class Recovery:
    """A manifest found for this image, and what its validation against the image says."""

    via: str
    """`watermark`, `fingerprint` or `resolver`."""
    source: str
    """`local store` or the resolver's URL."""
    evidence: C2paEvidence
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest_id(self) -> str | None:
        return self.evidence.manifest_id or self.details.get("record_manifest_id")

    @property
    def signature_state(self) -> str | None:
        """The manifest's own state, leaving aside whether it binds to this copy: `Trusted`, `Valid`,
        `Invalid`, or None when c2pa could not read it against this file."""
        if self.evidence.reading.store is None:
            return None
        codes = set(self.evidence.failure_codes) - HARD_BINDING_CODES
        if codes - TRUST_ONLY_CODES:
            return "Invalid"
        return "Valid" if "signingCredential.untrusted" in codes else "Trusted"

    @property
    def binding_matches(self) -> bool:
        return self.evidence.reading.store is not None and not (set(self.evidence.failure_codes) & HARD_BINDING_CODES)

    def explanation(self) -> str:
        if self.evidence.reading.store is None:
            return f"the recovered manifest could not be validated against this file ({self.evidence.reading.error})"
        state = self.signature_state
        if state == "Invalid":
            return "the recovered manifest fails validation on its own: it cannot be relied on"
        who = "a trusted signer" if state == "Trusted" else "a signer not on your trust list"
        if self.binding_matches:
            return f"the recovered manifest is intact, signed by {who}, and matches this file's content exactly"
        return (
            f"the recovered manifest is intact and signed by {who}, but its hard binding does not match this file: "
            "this is not the signed file itself (a re-encoded, resized or edited copy of it, or a look-alike), so the "
            "manifest says where the signed original came from, not that this file is unmodified"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_id": self.manifest_id,
            "via": self.via,
            "source": self.source,
            **self.details,
            "signature_state": self.signature_state,
            "binding_matches_this_file": self.binding_matches,
            "explanation": self.explanation(),
            "manifest": self.evidence.to_dict(),
        }


def recover_local(
    store: ManifestStore,
    watermarks: list[WatermarkReading],
    image: Image.Image,
    data: bytes,
    *,
    mime: str | None,
    context: c2pa.Context,
    products: ConformingProducts | None,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    embedded_id: str | None = None,
) -> Recovery | None:
    """Look the watermark payloads up in the store, then the fingerprint; validate what is found.

    `embedded_id`: the file carries intact credentials with this manifest id; then only the watermark is looked
    up, and a record naming a *different* manifest is returned (credentials swapped on a protected image)."""
    for reading in watermarks:
        if reading.payload is None or reading.detected is False:
            continue
        record = store.find_by_payload(reading.payload)
        if record is None or record.scheme != reading.scheme:
            continue
        reading.resolved = True
        if embedded_id is not None and record.manifest_id == embedded_id:
            return None
        evidence = gather(data, mime=mime, context=context, products=products, manifest_store=record.manifest_store)
        return Recovery(
            "watermark",
            "local store",
            evidence,
            {"scheme": reading.scheme, "payload": reading.payload.hex(), "record_manifest_id": record.manifest_id},
        )
    if embedded_id is not None:
        return None
    matches = store.find_by_fingerprint(image, max_distance=max_distance)
    if not matches:
        return None
    record, distance = matches[0]
    evidence = gather(data, mime=mime, context=context, products=products, manifest_store=record.manifest_store)
    return Recovery(
        "fingerprint",
        "local store",
        evidence,
        {
            "distance": distance,
            "max_distance": max_distance,
            "candidates": len(matches),
            "scheme": record.scheme,
            "record_manifest_id": record.manifest_id,
        },
    )


def recover_remote(
    resolver: SoftBindingResolver,
    watermarks: list[WatermarkReading],
    data: bytes,
    *,
    mime: str | None,
    context: c2pa.Context,
    products: ConformingProducts | None,
) -> tuple[Recovery | None, str | None]:
    """Ask a resolution service by each watermark payload, then by the image itself; (recovery, error)."""
    try:
        for reading in watermarks:
            if reading.payload is None or reading.detected is False:
                continue
            # the resolution API carries binding values base64-encoded
            value = base64.b64encode(reading.payload).decode("ascii")
            matches = resolver.by_binding(soft_binding_alg(reading.scheme), value)
            if matches:
                reading.resolved = True  # the service knows this payload: the mark is real
                return _fetch(resolver, matches[0], data, mime, context, products, {"scheme": reading.scheme}), None
        matches = resolver.by_content(data, mime or "application/octet-stream")
        if matches:
            return _fetch(resolver, matches[0], data, mime, context, products, {"by": "content"}), None
    except ResolverError as exc:
        return None, str(exc)
    return None, None


def _fetch(resolver, match, data, mime, context, products, details) -> Recovery:
    store_bytes = resolver.manifest(match)
    evidence = gather(data, mime=mime, context=context, products=products, manifest_store=store_bytes)
    return Recovery(
        "resolver",
        resolver.base_url,
        evidence,
        {**details, **match.to_dict(), "record_manifest_id": match.manifest_id},
    )
