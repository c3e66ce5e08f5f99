"""The verification report: every piece of evidence and the verdict, as one JSON-friendly object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from guard.verify.c2pa_evidence import C2paEvidence
from guard.verify.recovery import Recovery
from guard.verify.verdict import Verdict
from guard.verify.watermark_evidence import WatermarkReading

SCHEMA_VERSION = 1


@dataclass
class VerifyReport:
    """What `verify_file` found for one image."""

    path: str
    c2pa: C2paEvidence
    watermarks: list[WatermarkReading]
    recovered: Recovery | None
    metadata: dict[str, Any]
    synthetic: dict[str, Any]
    verdict: Verdict
    trust: dict[str, Any]
    resolver: dict[str, Any] | None = None
    image: Image.Image | None = field(default=None, repr=False)
    """The decoded image (for thumbnails); not part of the JSON."""

    @property
    def signals(self) -> dict[str, Any]:
        """Rubric signals of the embedded manifest, or else of the recovered one."""
        evidence = self.c2pa if self.c2pa.signals else (self.recovered.evidence if self.recovered else None)
        if evidence is None or not evidence.signals:
            return {"source": None, "inception": [], "transformation": [], "manifests": []}
        history = evidence.history()
        return {
            "source": "embedded" if evidence is self.c2pa else "recovered",
            "inception": history["inception"],
            "transformation": history["transformation"],
            "manifests": evidence.signals,
        }

    @property
    def flagged(self) -> bool:
        """Exit code 1 material: AI involvement found, or credentials that fail validation."""
        return self.verdict.origin in ("ai-generated", "ai-edited") or self.verdict.integrity == "tampered"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "schema_version": SCHEMA_VERSION,
            "c2pa": self.c2pa.to_dict(),
            "watermarks": [w.to_dict() for w in self.watermarks],
            "recovered": self.recovered.to_dict() if self.recovered else None,
            "metadata": self.metadata,
            "synthetic": self.synthetic,
            "signals": self.signals,
            "verdict": self.verdict.to_dict(),
            "trust": self.trust,
            "resolver": self.resolver,
        }
