"""The Asset Rubrics' integrity rubric: is the active manifest well-formed, valid (hashes match), trusted?

Each level fails when the active manifest's validation reports one of its codes (`globals.yml` of the Asset
Rubrics: `$well_formed_error_codes`, `$valid_error_codes`, `$trust_error_codes`; the tables are tested against
that file). The rubric looks at the active manifest only; ingredient failures are in `c2pa.failures`.
"""

from __future__ import annotations

from typing import Any

MISSING = "MISSING_VALIDATION_RESULTS"

WELL_FORMED_ERROR_CODES = (
    "assertion.action.malformed",
    "assertion.bmffHash.malformed",
    "assertion.boxesHash.malformed",
    "assertion.collectionHash.malformed",
    "assertion.dataHash.malformed",
    "assertion.external-reference.malformed",
    "assertion.external-reference.labelMismatch",
    "assertion.external-reference.created",
    "assertion.ingredient.malformed",
    "assertion.alternativeContentRepresentation.malformed",
    "assertion.alternativeContentRepresentation.missing",
    "assertion.multiAssetHash.malformed",
    "assertion.cbor.invalid",
    "assertion.json.invalid",
    "claim.cbor.invalid",
    "claim.hardBindings.missing",
    "claim.malformed",
    "claim.missing",
    "claim.multiple",
    "hashedURI.missing",
    "ingredient.manifest.missing",
    "assertion.boxesHash.unknownBox",
    "assertion.multipleHardBindings",
    "manifest.compressed.invalid",
    "manifest.html.multipleManifests",
    "manifest.inaccessible",
    "manifest.multipleParents",
    "manifest.structuredText.emptyReference",
    "manifest.structuredText.malformedReference",
    "manifest.structuredText.multipleReferences",
    "manifest.structuredText.noManifest",
    "manifest.structuredText.noResolutionPath",
    "manifest.timestamp.invalid",
    "manifest.timestamp.wrongParents",
    "manifest.update.invalid",
    "manifest.update.wrongParents",
    MISSING,
)
VALID_ERROR_CODES = (
    "assertion.action.ingredientMismatch",
    "assertion.action.redactionMismatch",
    "assertion.bmffHash.mismatch",
    "assertion.boxesHash.mismatch",
    "assertion.collectionHash.mismatch",
    "assertion.dataHash.mismatch",
    "assertion.external-reference.hashMismatch",
    "assertion.alternativeContentRepresentation.hashMismatch",
    "assertion.multiAssetHash.mismatch",
    "assertion.hashedURI.mismatch",
    "assertion.hardBinding.redacted",
    "hashedURI.mismatch",
    "ingredient.manifest.mismatch",
    "ingredient.claimSignature.missing",
    "ingredient.claimSignature.mismatch",
    "claimSignature.missing",
    MISSING,
)
TRUST_ERROR_CODES = (
    "claimSignature.mismatch",
    "claimSignature.outsideValidity",
    "signingCredential.invalid",
    "signingCredential.ocsp.revoked",
    "signingCredential.untrusted",
    MISSING,
)
LEVELS = {"well_formed": WELL_FORMED_ERROR_CODES, "valid": VALID_ERROR_CODES, "trusted": TRUST_ERROR_CODES}


def integrity_rubric(active_failure_codes: list[str] | None) -> dict[str, Any]:
    """`{"well_formed": bool, "valid": bool, "trusted": bool, "failed_by": {level: [codes]}}`; None codes
    (no validation results) fail every level with `MISSING_VALIDATION_RESULTS`, as the rubric says."""
    codes = [MISSING] if active_failure_codes is None else list(active_failure_codes)
    failed_by = {level: sorted({c for c in codes if c in listed}) for level, listed in LEVELS.items()}
    return {**{level: not found for level, found in failed_by.items()}, "failed_by": failed_by}
