"""Soft-binding look-ups over the manifest store: what the C2PA Soft Binding Resolution API answers.

Algorithms (the names our manifests write in their `c2pa.soft-binding` assertion, and our fingerprint):

- `com.image-guard.watermark.<scheme>` (e.g. `...watermark.guard`): the watermark payload. Exact match,
  similarity 100.
- `com.image-guard.fingerprint.phash+colorhash`: both 64-bit perceptual hashes of `guard.provenance.
  credentials.fingerprint`, phash first, 16 bytes big-endian. Records within the store's default distance
  (summed Hamming distance of the two hashes) match; similarity is `100 * (1 - distance / 128)`.

The API carries a value as base64 (standard or URL-safe, padding optional); the hex form our soft-binding
assertions write (and our resolver client sends) is accepted too. The two cannot be confused: for a value of
n bytes hex has 2n characters and base64 about 4n/3.
"""

from __future__ import annotations

import base64
import binascii
import string
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from guard.images import load_image
from guard.provenance.credentials.fingerprint import KINDS, fingerprints
from guard.provenance.credentials.manifest import SOFT_BINDING_ALG_PREFIX, soft_binding_alg
from guard.provenance.credentials.store import DEFAULT_MAX_DISTANCE, ManifestStore, manifests
from guard.provenance.watermarks import DEFAULT_SCHEME, SCHEMES, get_scheme, shared_work

FINGERPRINT_ALG = "com.image-guard.fingerprint." + "+".join(KINDS)
FINGERPRINT_BYTES = 8 * len(KINDS)
MAX_RESULTS = 100
"""Most matches one query returns, whatever `maxResults` asks for."""
SCHEMES_CACHE_SECONDS = 60.0
"""How long the list of schemes the store holds is reused (asking is a scan of the manifests table)."""


class BindingValueError(ValueError):
    """A query that names an unsupported algorithm or carries a value it cannot be."""


@dataclass(frozen=True)
class Match:
    manifest_id: str
    similarity: int

    def to_dict(self) -> dict[str, Any]:
        return {"manifestId": self.manifest_id, "similarityScore": self.similarity}


def decode_value(value: str, nbytes: int) -> bytes:
    """The `nbytes` bytes a query value stands for: hex of exactly 2n digits, else base64 of n bytes."""
    text = value.strip()
    if len(text) == 2 * nbytes and all(c in string.hexdigits for c in text):
        return bytes.fromhex(text)
    padded = text + "=" * (-len(text) % 4)
    try:  # URL-safe base64 read as standard base64
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if raw is not None and len(raw) == nbytes:
        return raw
    raise BindingValueError(
        f"The value must be {nbytes} bytes, as base64 (or as {2 * nbytes} hex digits); got {len(text)} characters."
    )


class SoftBindingIndex:
    """Answers soft-binding queries from one manifest store."""

    def __init__(self, store: ManifestStore, max_distance: int = DEFAULT_MAX_DISTANCE) -> None:
        self.store = store
        self.max_distance = max_distance
        self._schemes: tuple[float, list[str]] | None = None
        self._lock = threading.Lock()

    def watermark_schemes(self) -> list[str]:
        """Schemes whose payloads the store can resolve: the one protect embeds and any the store holds."""
        with self._lock:
            cached = self._schemes
        if cached is not None and time.monotonic() - cached[0] < SCHEMES_CACHE_SECONDS:
            return cached[1]
        with self.store.engine.connect() as conn:
            held = {row[0] for row in conn.execute(sa.select(manifests.c.scheme).distinct())}
        schemes = sorted(({DEFAULT_SCHEME} | held) & set(SCHEMES))
        with self._lock:
            self._schemes = (time.monotonic(), schemes)
        return schemes

    def supported(self) -> dict[str, list[dict[str, str]]]:
        return {
            "watermarks": [{"alg": soft_binding_alg(scheme)} for scheme in self.watermark_schemes()],
            "fingerprints": [{"alg": FINGERPRINT_ALG}],
        }

    def by_binding(self, alg: str, value: str, max_results: int = 10) -> list[Match]:
        """Manifests registered under this algorithm and value (BindingValueError for a bad query); at most
        `max_results` of them, and never more than MAX_RESULTS."""
        alg, max_results = alg.strip(), min(max_results, MAX_RESULTS)
        if alg == FINGERPRINT_ALG:
            raw = decode_value(value, FINGERPRINT_BYTES)
            query = {kind: int.from_bytes(raw[8 * i : 8 * i + 8], "big") for i, kind in enumerate(KINDS)}
            return self._by_fingerprint(query, max_results)
        scheme = self._scheme_of(alg)
        return self._by_payload(scheme, decode_value(value, get_scheme(scheme).payload_bytes))

    def by_content(
        self,
        data: bytes,
        alg: str | None = None,
        *,
        hint_alg: str | None = None,
        hint_value: str | None = None,
        max_results: int = 10,
    ) -> list[Match]:
        """Manifests found for an image: by reading its watermark (`alg` a watermark algorithm), by its
        fingerprint (`alg` the fingerprint algorithm), or both when `alg` is None; a hint adds a by-binding
        look-up. `load_image` refuses a bad image with an ImageError."""
        if alg is not None and alg.strip() != FINGERPRINT_ALG:
            schemes = [self._scheme_of(alg)]
        elif alg is None:
            schemes = self.watermark_schemes()
        else:
            schemes = []
        found: list[Match] = []
        if hint_alg and hint_value:
            found += self.by_binding(hint_alg, hint_value, max_results)
        image = load_image(data)
        with shared_work():
            for scheme in schemes:
                result = get_scheme(scheme).decode(image)
                if result.payload is None or result.detected is False:
                    continue
                found += self._by_payload(scheme, bytes(result.payload))
        if alg is None or alg.strip() == FINGERPRINT_ALG:
            found += self._by_fingerprint(fingerprints(image), max_results)
        return _best(found, max_results)

    def manifest(self, manifest_id: str) -> bytes | None:
        record = self.store.get(manifest_id)
        return record.manifest_store if record is not None else None

    def _scheme_of(self, alg: str) -> str:
        scheme = alg.strip().removeprefix(SOFT_BINDING_ALG_PREFIX)
        if not alg.strip().startswith(SOFT_BINDING_ALG_PREFIX) or scheme not in self.watermark_schemes():
            supported = [soft_binding_alg(s) for s in self.watermark_schemes()] + [FINGERPRINT_ALG]
            raise BindingValueError(f"Unsupported algorithm {alg!r}; this service supports {', '.join(supported)}.")
        return scheme

    def _by_payload(self, scheme: str, payload: bytes) -> list[Match]:
        record = self.store.find_by_payload(payload)
        if record is None or record.scheme != scheme:
            return []
        return [Match(record.manifest_id, 100)]

    def _by_fingerprint(self, query: dict[str, int], max_results: int) -> list[Match]:
        matches = self.store.find_by_fingerprint(query, max_distance=self.max_distance)
        bits = 64 * len(KINDS)
        return [Match(record.manifest_id, round(100 * (1 - distance / bits))) for record, distance in matches][
            :max_results
        ]


def _best(found: list[Match], max_results: int) -> list[Match]:
    """One match per manifest (its best score), best first."""
    best: dict[str, int] = {}
    for match in found:
        best[match.manifest_id] = max(best.get(match.manifest_id, -1), match.similarity)
    ranked = sorted(best.items(), key=lambda item: -item[1])
    return [Match(manifest_id, score) for manifest_id, score in ranked[: min(max_results, MAX_RESULTS)]]
