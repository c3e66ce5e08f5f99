"""Plain words for what C2PA validation reports: status codes, digital source types, relationships.

The status codes are c2pa-rs's (C2PA specification, "Validation" chapter). An unknown code is shown with
c2pa's own explanation, so a new code never disappears from the report.
"""

from __future__ import annotations

from guard.provenance.credentials.source_types import DigitalSourceType as DST
from guard.provenance.credentials.source_types import short_name

FAILURE_EXPLANATIONS: dict[str, str] = {
    "claimSignature.mismatch": "the signature does not match the claim: the manifest was altered after signing",
    "claimSignature.missing": "the claim's signature is missing",
    "claimSignature.outsideValidity": "the signing certificate was not valid (expired or not yet valid) when it signed",
    "signingCredential.untrusted": (
        "the signer's certificate is not on the C2PA trust list nor under another trust anchor in force"
    ),
    "signingCredential.invalid": "the signer's certificate is malformed or not allowed to sign Content Credentials",
    "signingCredential.expired": "the certificate has expired and no trusted timestamp shows it signed in time",
    "signingCredential.revoked": "the signer's certificate was revoked",
    "signingCredential.ocsp.revoked": "the signer's certificate was revoked (OCSP)",
    "signingCredential.ocsp.unknown": "the certificate authority does not know the signer's certificate (OCSP)",
    "assertion.dataHash.mismatch": "the pixels or bytes changed after signing (hard binding does not match)",
    "assertion.boxesHash.mismatch": "parts of the file changed after signing (box hash does not match)",
    "assertion.bmffHash.mismatch": "the media data changed after signing (BMFF hash does not match)",
    "assertion.collectionHash.mismatch": "a file of the signed collection changed after signing",
    "assertion.multiAssetHash.mismatch": "a part of the signed multi-part asset changed after signing",
    "assertion.hashedURI.mismatch": "an assertion was changed after signing (its hash does not match the claim)",
    "hashedURI.mismatch": "a referenced part of the manifest was changed after signing",
    "assertion.missing": "an assertion the claim lists is missing from the manifest",
    "assertion.notRedacted": "an assertion the claim says was redacted is still present",
    "assertion.selfRedacted": "the manifest redacts one of its own assertions, which is not allowed",
    "assertion.action.ingredientMismatch": "an action names an ingredient the manifest does not have",
    "assertion.action.malformed": "an action assertion is malformed",
    "assertion.dataHash.malformed": "the hard binding (data hash) is malformed",
    "assertion.cbor.invalid": "an assertion cannot be decoded (invalid CBOR)",
    "assertion.json.invalid": "an assertion cannot be decoded (invalid JSON)",
    "claim.missing": "the manifest has no claim",
    "claim.multiple": "the manifest has more than one claim",
    "claim.malformed": "the claim is malformed",
    "claim.hardBindings.missing": "the claim has no hard binding: nothing ties it to the file's content",
    "claim.cbor.invalid": "the claim cannot be decoded (invalid CBOR)",
    "ingredient.hashedURI.mismatch": "an ingredient's manifest was changed after it was used",
    "ingredient.manifest.mismatch": "an ingredient's manifest does not match the one recorded when it was used",
    "ingredient.manifest.missing": "an ingredient's manifest is missing from the manifest store",
    "ingredient.claimSignature.mismatch": "an ingredient's own signature does not match its claim",
    "ingredient.claimSignature.missing": "an ingredient's signature is missing",
    "manifest.inaccessible": "the manifest could not be reached",
    "manifest.multipleParents": "the manifest claims more than one parent ingredient",
    "manifest.timestamp.invalid": "the manifest's timestamp is invalid",
    "timeStamp.mismatch": "the timestamp does not match the signature",
    "timeStamp.outsideValidity": "the timestamp authority's certificate was not valid at the time",
    "timeStamp.untrusted": "the timestamp authority is not on the configured TSA trust list",
    "timeStamp.malformed": "the timestamp is malformed",
    "algorithm.unsupported": "the manifest uses a cryptographic algorithm C2PA does not allow",
    "general.error": "the validator hit an error while checking the manifest",
    "cawg.x509.credential.untrusted": "the CAWG identity credential's certificate is not trusted",
    "cawg.identity.signature.mismatch": "the CAWG identity assertion's signature does not match",
}
"""c2pa-rs failure code -> what it means for the reader of the report."""

TRUST_ONLY_CODES = frozenset({"signingCredential.untrusted", "cawg.x509.credential.untrusted", "timeStamp.untrusted"})
"""Failures that say only that a certificate is not anchored in the configured trust: the manifest can still be
intact (c2pa's `Valid` state)."""

HARD_BINDING_CODES = frozenset(
    {
        "assertion.dataHash.mismatch",
        "assertion.boxesHash.mismatch",
        "assertion.bmffHash.mismatch",
        "assertion.collectionHash.mismatch",
        "assertion.multiAssetHash.mismatch",
    }
)
"""Failures that say the file's content is not the content that was signed (expected for a recovered manifest
checked against a re-encoded copy)."""

SOURCE_TYPE_LABELS: dict[DST, str] = {
    DST.TRAINED_ALGORITHMIC_MEDIA: "AI-generated (trained algorithmic media)",
    DST.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA: "AI-composited (composite with trained algorithmic media)",
    DST.ALGORITHMICALLY_ENHANCED: "algorithmically enhanced",
    DST.COMPOSITE_SYNTHETIC: "composite of synthetic elements",
    DST.ALGORITHMIC_MEDIA: "pure algorithmic media (made by an algorithm, not a trained model)",
    DST.DIGITAL_CAPTURE: "captured by a camera or sensor",
    DST.COMPUTATIONAL_CAPTURE: "captured with computational photography",
    DST.COMPOSITE_CAPTURE: "composite of captures (e.g. a panorama)",
    DST.NEGATIVE_FILM: "scanned from a film negative",
    DST.POSITIVE_FILM: "scanned from film",
    DST.PRINT: "scanned from a print",
    DST.HUMAN_EDITS: "edited by a person",
    DST.DIGITAL_ART: "digital art made by a person",
    DST.DIGITAL_CREATION: "digital creation without generative AI",
    DST.COMPOSITE: "a composite of elements",
    DST.SCREEN_CAPTURE: "a screen capture",
    DST.VIRTUAL_RECORDING: "a recording of a virtual event",
    DST.DATA_DRIVEN_MEDIA: "data-driven media",
    DST.MINOR_HUMAN_EDITS: "minor human edits",
    DST.SOFTWARE_IMAGE: "made with software",
    DST.TRAINED_ALGORITHMIC_DATA: "data produced by a trained model",
    DST.EMPTY: "a blank canvas",
}
"""Each digital source type in plain words."""


def source_type_label(uri: str | None) -> str | None:
    """Plain words for a source type URI; its short name when the type is not one we know."""
    known = DST.from_uri(uri)
    return SOURCE_TYPE_LABELS[known] if known in SOURCE_TYPE_LABELS else short_name(uri)


def explain_failure(code: str, c2pa_explanation: str | None = None) -> str:
    """Plain words for a failure code; c2pa's own words for a code we do not know."""
    if code in FAILURE_EXPLANATIONS:
        return FAILURE_EXPLANATIONS[code]
    return c2pa_explanation or f"validation failure {code}"
