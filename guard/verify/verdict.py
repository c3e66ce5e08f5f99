"""The verdict: origin, strength, integrity and the reasons, from the evidence gathered.

Each piece of evidence makes a claim about origin with a strength; the verdict takes the strongest claim
(on a tie the AI claim wins: it is the claim a reader most needs to see). Absence of evidence never gives an
origin: with nothing found the origin is `unknown` and the strength `none` — never "authentic" or
"human-made". The rules are listed in docs/verifier.md ("Verdict rules"); the tables here are those rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from guard.provenance.credentials.source_types import DigitalSourceType as DST
from guard.verify.c2pa_evidence import C2paEvidence
from guard.verify.explain import source_type_label
from guard.verify.producers import INCEPTION_ACTIONS
from guard.verify.recovery import STRONG_FINGERPRINT_DISTANCE, Recovery
from guard.verify.signals import CAPTURE_SIGNALS, history_signals
from guard.verify.watermark_evidence import WatermarkReading

ORIGINS = ("ai-generated", "ai-edited", "captured (claimed)", "unknown")
STRENGTHS = ("strong", "moderate", "weak", "none")
INTEGRITY = ("intact", "tampered", "no credentials", "unverified")

GENERATOR_MARKS: dict[str, tuple[str, str]] = {
    "sd-v1": ("Stable Diffusion v1 (reference scripts)", "moderate"),
    "sd-v2": ("Stable Diffusion v2 (reference scripts)", "moderate"),
    "sdxl": ("Stable Diffusion XL (generative-models, diffusers)", "moderate"),
    "rivaGan": ("rivaGan (a learned watermark some generation services use)", "weak"),
}
"""Watermark scheme -> (who embeds it, strength of its AI claim). Public schemes: anyone can embed or copy them."""
OWN_SCHEMES = frozenset({"guard", "dwtDctSvd"})
"""Our schemes: their payload is a key into a manifest store, not a claim by itself (protect also marks edits)."""

NO_EVIDENCE = (
    "nothing found says how the image was made (AI or capture); this is not evidence that it is authentic or "
    "human-made: credentials, watermarks and metadata are easily removed"
)
_RANK = {"strong": 3, "moderate": 2, "weak": 1, "none": 0}
_ORIGIN_PRIORITY = {"ai-generated": 3, "ai-edited": 2, "captured (claimed)": 1}


@dataclass(frozen=True)
class Claim:
    """One piece of evidence about origin."""

    origin: str
    strength: str
    source: str
    reason: str


@dataclass
class Verdict:
    origin: str = "unknown"
    strength: str = "none"
    integrity: str = "no credentials"
    reasons: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "strength": self.strength,
            "integrity": self.integrity,
            "reasons": self.reasons,
            "evidence": [
                {"origin": c.origin, "strength": c.strength, "source": c.source, "reason": c.reason}
                for c in self.claims
            ],
        }


def origin_of_manifest(evidence: C2paEvidence) -> tuple[str | None, str]:
    """The origin a manifest claims (None: no AI or capture claim), and why: the rubric signals first, then
    the producers' own signed source-type fields (`producers.VENDOR_SOURCE_TYPES`)."""
    line = history_signals(evidence.signals, evidence.manifest_id, parents_only=True)
    everything = evidence.history()
    tool = evidence.ai_tool
    by = f"; made with {tool_words(tool)}" if tool else ""
    vendor = tool if tool and tool["source_type_field"] not in (None, "digitalSourceType") else None
    vendor_full = (
        vendor is not None
        and vendor["action"] in INCEPTION_ACTIONS
        and DST.from_uri(vendor["source_type"]) == DST.TRAINED_ALGORITHMIC_MEDIA
    )
    if "fullyGenAIMedia" in line["inception"]:
        return "ai-generated", f"fullyGenAIMedia: created by a generative AI model (trainedAlgorithmicMedia){by}"
    if vendor_full:
        return "ai-generated", f"{_vendor_words(vendor)}: created by a generative AI model{by}"
    genai = [s for s in ("partlyGenAICreation", "fullyGenAIMedia") if s in everything["inception"]]
    genai += [s for s in ("perceptibleGenAI",) if s in everything["transformation"]]
    if genai:
        return "ai-edited", f"{', '.join(genai)}: generative AI was used in making or editing it{by}"
    if vendor is not None:
        return "ai-edited", f"{_vendor_words(vendor)}: generative AI was used in making or editing it{by}"
    captured = [s for s in line["inception"] if s in CAPTURE_SIGNALS]
    if captured:
        return "captured (claimed)", f"{', '.join(captured)}: the manifest claims a camera or sensor capture"
    signals = ", ".join(everything["inception"] + everything["transformation"]) or "none"
    dst = evidence.digital_source_type
    said = f"digital source type {source_type_label(dst)}" if dst else "no digital source type"
    return None, f"the manifest makes no generative-AI or capture claim ({said}; signals: {signals})"


def tool_words(tool: dict[str, Any]) -> str:
    """`Seedance (model seedance, version seedance_2.0) via Adobe Firefly (partner models)`."""
    details = [
        f"model {tool['model']}" if tool.get("model") else "",
        f"version {tool['version']}" if tool.get("version") else "",
    ]
    inner = ", ".join(d for d in details if d)
    words = str(tool["name"]) + (f" ({inner})" if inner else "")
    return words + (f" via {tool['producer']}" if tool.get("producer") and tool["producer"] != tool["name"] else "")


def _vendor_words(tool: dict[str, Any]) -> str:
    return (
        f"{tool['source_type_field']} on {tool['action']} says {source_type_label(tool['source_type'])} "
        f"(the producer's own signed field)"
    )


def decide(
    c2pa: C2paEvidence,
    recovery: Recovery | None,
    watermarks: list[WatermarkReading],
    hints: list[dict[str, Any]],
    synthetic: dict[str, Any],
) -> Verdict:
    """The verdict from every piece of evidence (the rules are the module docstring's and docs/verifier.md's)."""
    verdict = Verdict()
    verdict.integrity = _integrity(c2pa, verdict)
    if c2pa.state is not None:
        origin, why = origin_of_manifest(c2pa)
        strength = {"Trusted": "strong", "Valid": "moderate"}.get(c2pa.state, "weak")
        signer = _signer_words(c2pa)
        if origin:
            verdict.claims.append(
                Claim(origin, strength, "c2pa", f"Content Credentials ({c2pa.state}, {signer}): {why}")
            )
        else:
            verdict.reasons.append(f"Content Credentials ({c2pa.state}, {signer}): {why}")
    if recovery is not None:
        if c2pa.state in ("Valid", "Trusted"):
            verdict.reasons.append(
                f"the image's watermark names manifest {recovery.manifest_id}, not the file's own "
                f"{c2pa.manifest_id}: these credentials were put on an image protected before, replacing its own"
            )
        _recovered(recovery, watermarks, verdict)
    for reading in watermarks:
        _watermark(reading, verdict)
    for hint in hints:
        verdict.claims.append(
            Claim(
                hint["origin"],
                "weak",
                "metadata",
                f"metadata {hint['source']}: {hint['detail']} (unsigned, easily forged)",
            )
        )
    if synthetic.get("status") == "ran":
        if synthetic.get("synthetic"):
            verdict.claims.append(
                Claim(
                    "ai-generated", "weak", "classifier", f"the synthetic-image classifier scores {synthetic['score']}"
                )
            )
        else:
            verdict.reasons.append(
                f"the synthetic-image classifier scores {synthetic.get('score')} (below {synthetic.get('threshold')}); "
                "classifiers miss many generators, so this clears nothing"
            )
    _conclude(verdict)
    return verdict


def _integrity(c2pa: C2paEvidence, verdict: Verdict) -> str:
    if not c2pa.present:
        return "no credentials"
    if c2pa.state is None:
        verdict.reasons.append(f"Content Credentials present but not verified: {c2pa.reading.error}")
        return "unverified"
    if c2pa.state == "Invalid":
        broken = "; ".join(
            f"{f['code']} ({f['explanation']}, {f['where']})"
            for f in c2pa.failures
            if f["code"] != "signingCredential.untrusted"
        )
        verdict.reasons.append(f"the Content Credentials fail validation: {broken}")
        return "tampered"
    if c2pa.state == "Valid":
        verdict.reasons.append(
            "the Content Credentials are intact, but the signer is not on the C2PA trust list nor under any other "
            "trust anchor in force: anyone can make a certificate with this name"
        )
    elif c2pa.trusted_by:
        by = c2pa.trusted_by
        when = f", {by['date']}" if by.get("date") else ""
        origin = f" ({by['origin']}{when})" if by.get("origin") else ""
        verdict.reasons.append(f"the signer is trusted through {by['list']}{origin}")
    return "intact"


def _signer_words(c2pa: C2paEvidence) -> str:
    signer = c2pa.signer or {}
    who = signer.get("common_name") or "unknown signer"
    org = signer.get("organization")
    return f"signed by {who}" + (f" ({org})" if org and org != who else "")


def _recovered(recovery: Recovery, watermarks: list[WatermarkReading], verdict: Verdict) -> None:
    how = {
        "watermark": f"its watermark payload ({recovery.details.get('scheme')}) names it in the local manifest store",
        "fingerprint": f"its perceptual fingerprint is {recovery.details.get('distance')} bits from a record "
        "in the local manifest store",
        "resolver": f"the resolution service {recovery.source} returned it",
    }[recovery.via]
    state = recovery.signature_state
    verdict.reasons.append(f"manifest {recovery.manifest_id} recovered: {how}; {recovery.explanation()}")
    if state is None or state == "Invalid":
        return
    origin, why = origin_of_manifest(recovery.evidence)
    if origin is None:
        verdict.reasons.append(f"recovered manifest: {why}")
        return
    if recovery.via == "watermark":
        strength = "strong"
    elif recovery.via == "fingerprint":
        strength = "strong" if recovery.details.get("distance", 999) <= STRONG_FINGERPRINT_DISTANCE else "moderate"
        missing = [w for w in watermarks if w.scheme == recovery.details.get("scheme") and w.detected is False]
        if missing and not missing[0].error:
            verdict.reasons.append(
                f"the fingerprint matches, but the record's {missing[0].scheme} watermark was not detected: this is "
                "a heavily processed copy, or the same picture before it was marked (the signed claim is about "
                "this picture either way)"
            )
    else:
        strength = "strong" if state == "Trusted" else "moderate"
    verdict.claims.append(Claim(origin, strength, f"recovered ({recovery.via})", f"recovered manifest: {why}"))


def _watermark(reading: WatermarkReading, verdict: Verdict) -> None:
    if not reading.found:
        return
    if reading.scheme in GENERATOR_MARKS:
        who, strength = GENERATOR_MARKS[reading.scheme]
        verdict.claims.append(
            Claim("ai-generated", strength, f"watermark {reading.scheme}", f"the {who} watermark is present")
        )
    elif reading.bound:
        verdict.reasons.append(
            f"the {reading.scheme} watermark carries the payload the Content Credentials declare as their soft "
            "binding: watermark and credentials belong together"
        )
    elif reading.scheme in OWN_SCHEMES and not reading.resolved:
        verdict.reasons.append(
            f"an image-guard watermark ({reading.scheme}, payload {reading.payload.hex() if reading.payload else '?'}) "
            "is present but no manifest store consulted here knows it: another installation protected it"
        )


def _conclude(verdict: Verdict) -> None:
    if not verdict.claims:
        verdict.reasons.append(NO_EVIDENCE)
        return
    best = max(verdict.claims, key=lambda c: (_RANK[c.strength], _ORIGIN_PRIORITY.get(c.origin, 0)))
    verdict.origin, verdict.strength = best.origin, best.strength
    ordered = sorted(verdict.claims, key=lambda c: -_RANK[c.strength])
    verdict.reasons[:0] = [f"{c.reason} [{c.strength}]" for c in ordered]
    others = sorted({c.origin for c in verdict.claims if c.origin != best.origin})
    if others:
        verdict.reasons.append(f"conflicting evidence also points to: {', '.join(others)} (weaker or equal)")
