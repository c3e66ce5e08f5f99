"""AI origin: the evidence that a sample is itself AI-generated — watermarks, C2PA source types, metadata.

Training on generated images feeds a model its predecessors' artefacts, so the filter looks for:

* invisible watermarks (`decode_all`): ours, and the marks Stable Diffusion 1/2 and SDXL's reference code
  embed, each detector calibrated to a stated false-positive rate;
* a C2PA manifest whose actions carry a generative digital source type (signed; the validation state is
  recorded with the evidence);
* unsigned metadata (`guard.verify.metadata`): generation tools' text chunks (PNG `parameters`, ComfyUI
  graphs, EXIF UserComment with generation settings), an XMP digital source type, and — only when the
  policy asks — an AI product named as EXIF Software or XMP CreatorTool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from guard.dataset.optout import Evidence
from guard.errors import GuardError
from guard.provenance.credentials.source_types import DigitalSourceType, short_name
from policies.schema import DatasetAiOrigin

GENERATOR_SOURCES = ("text:", "exif:UserComment")
"""Metadata hint sources that are generation tools' own records (kind `generator_chunks`)."""
SOURCE_TYPE_HINT = "xmp:DigitalSourceType"


def check_rules(rules: DatasetAiOrigin) -> None:
    """GuardError when the policy names a watermark scheme or source type that does not exist."""
    from guard.provenance.watermarks import SCHEMES

    unknown = [name for name in rules.watermarks if name not in SCHEMES]
    if unknown:
        known = ", ".join(sorted(SCHEMES))
        raise GuardError(f"dataset.ai_origin.watermarks: unknown scheme(s) {', '.join(unknown)}; known: {known}.")
    bad = [name for name in rules.c2pa_source_types if DigitalSourceType.from_uri(name) is None]
    if bad:
        raise GuardError(f"dataset.ai_origin.c2pa_source_types: unknown digital source type(s) {', '.join(bad)}.")


def watermark_evidence(image: Image.Image, schemes: Sequence[str]) -> list[Evidence]:
    """A detected mark of each scheme, with its payload and confidence."""
    if not schemes:
        return []
    from guard.provenance.watermarks import decode_all

    found = []
    for result in decode_all(image, tuple(schemes)):
        if result.detected:
            payload = result.payload.hex() if result.payload is not None else "none"
            detail = f"payload {payload}, confidence {result.confidence:.6f}"
            found.append(Evidence(f"watermark:{result.scheme}", detail))
    return found


def c2pa_evidence(source_types: Sequence[str], state: str | None, rules: DatasetAiOrigin) -> list[Evidence]:
    """The manifest's digital source types that the policy counts as AI origin."""
    wanted = set(rules.c2pa_source_types)
    where = f" (manifest {state})" if state else ""
    return [
        Evidence("c2pa:digitalSourceType", f"{short_name(uri)}{where}")
        for uri in dict.fromkeys(source_types)
        if short_name(uri) in wanted
    ]


def metadata_evidence(metadata: dict[str, Any], rules: DatasetAiOrigin) -> list[Evidence]:
    """The metadata hints of kinds the policy counts (`generator_chunks`, `digital_source_type`, `software_name`)."""
    kinds = set(rules.metadata)
    wanted_types = set(rules.c2pa_source_types)
    found = []
    for hint in metadata.get("hints", []):
        if hint.get("origin") != "ai-generated" and hint.get("source") != SOURCE_TYPE_HINT:
            continue
        source = str(hint.get("source", ""))
        if source.startswith(GENERATOR_SOURCES):
            kind = "generator_chunks"
        elif source == SOURCE_TYPE_HINT:
            if short_name(metadata.get("xmp", {}).get("digital_source_type")) not in wanted_types:
                continue
            kind = "digital_source_type"
        else:
            kind = "software_name"
        if kind in kinds:
            found.append(Evidence(f"metadata:{source}", str(hint.get("detail", ""))[:300]))
    return found
