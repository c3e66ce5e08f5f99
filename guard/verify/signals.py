"""C2PA Asset Rubrics provenance signals, computed per manifest from c2pa's crJSON.

The vocabulary and criteria are the Asset Rubrics 1.0 "local" signals rubric (C2PA conformance program,
`signal-*-local.yml`): an inception signal is a `c2pa.created` / `c2pa.opened` action with a given digital
source type (or an ingredient without a manifest); a transformation signal comes from the other actions. The
tables below are the rubric's variables; tests check them against the rubric files.

Two deliberate generalisations, so that older manifests are not silent: actions are read from `c2pa.actions`
(v1) as well as `c2pa.actions.v2`, and an ingredient of any version (`c2pa.ingredient`, `.v2`, `.v3`) without
a manifest gives `mediaUnknownProvenance`. Digital source type URIs are compared after trimming whitespace.
"""

from __future__ import annotations

from typing import Any

from guard.provenance.credentials.source_types import DigitalSourceType as DST

INCEPTION_SIGNALS: dict[str, tuple[str, ...]] = {
    "blankCanvas": (DST.EMPTY.uri,),
    "capturedMedia": (DST.DIGITAL_CAPTURE.uri, DST.COMPUTATIONAL_CAPTURE.uri),
    "capturedMediaStitched": (DST.COMPOSITE_CAPTURE.uri,),
    "compositionMayContainGenAI": (DST.COMPOSITE.uri,),
    "fullyGenAIMedia": (DST.TRAINED_ALGORITHMIC_MEDIA.uri,),
    "nonGenAIDigitalCreation": (DST.DIGITAL_CREATION.uri,),
    "partlyGenAICreation": (DST.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA.uri,),
    "screenCaptureMayContainGenAI": (DST.SCREEN_CAPTURE.uri,),
}
"""Inception signal -> the digital source types of a `c2pa.created`/`c2pa.opened` action that raise it."""

UNKNOWN_PROVENANCE = "mediaUnknownProvenance"
INCEPTION_ACTIONS = ("c2pa.created", "c2pa.opened")
NON_EDITORIAL_ACTIONS = (
    "c2pa.converted",
    "c2pa.published",
    "c2pa.repackaged",
    "c2pa.transcoded",
    "c2pa.resized.proportional",
    "c2pa.enhanced",
    "c2pa.edited.metadata",
    "c2pa.watermarked",
    "c2pa.watermarked.bound",
    "c2pa.watermarked.unbound",
    "c2pa.redacted",
)
GENAI_DST = (
    DST.TRAINED_ALGORITHMIC_MEDIA.uri,
    DST.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA.uri,
    DST.COMPOSITE_SYNTHETIC.uri,
    DST.TRAINED_ALGORITHMIC_DATA.uri,
)
POSSIBLY_GENAI_DST = (DST.DIGITAL_ART.uri, DST.COMPOSITE.uri)

INCEPTION = (*INCEPTION_SIGNALS, UNKNOWN_PROVENANCE)
TRANSFORMATION = (
    "perceptibleGenAI",
    "perceptibleNonGenAI",
    "perceptiblePossiblyGenAI",
    "nonEditorial",
    "ambiguousActions",
)
CAPTURE_SIGNALS = frozenset({"capturedMedia", "capturedMediaStitched"})

_ACTION_LABELS = ("c2pa.actions.v2", "c2pa.actions")
_INGREDIENT_LABELS = ("c2pa.ingredient.v3", "c2pa.ingredient.v2", "c2pa.ingredient")


def base_label(label: str) -> str:
    """An assertion label without its instance suffix (`c2pa.ingredient__1` -> `c2pa.ingredient`)."""
    return label.split("__", 1)[0]


def manifest_actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every action of a crJSON manifest, from its actions assertions (v2 first)."""
    assertions = manifest.get("assertions") or {}
    found: list[dict[str, Any]] = []
    for wanted in _ACTION_LABELS:
        for label, data in assertions.items():
            if base_label(label) == wanted and isinstance(data, dict):
                found.extend(a for a in data.get("actions") or [] if isinstance(a, dict))
    return found


def ingredient_assertions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    assertions = manifest.get("assertions") or {}
    return [
        data for label, data in assertions.items() if base_label(label) in _INGREDIENT_LABELS and isinstance(data, dict)
    ]


def ingredient_manifest_label(ingredient: dict[str, Any]) -> str | None:
    """The label of the manifest an ingredient assertion points to (v3 `activeManifest`, v1/v2 `c2pa_manifest`)."""
    ref = ingredient.get("activeManifest") or ingredient.get("c2pa_manifest")
    url = ref.get("url") if isinstance(ref, dict) else None
    if not url:
        return None
    return url.split("/c2pa/", 1)[-1].split("/", 1)[0] if "/c2pa/" in url else None


def _dst(action: dict[str, Any]) -> str | None:
    value = action.get("digitalSourceType")
    return value.strip() if isinstance(value, str) else None


def local_signals(manifest: dict[str, Any]) -> dict[str, list[str]]:
    """`{"inception": [...], "transformation": [...]}` for one crJSON manifest (the rubric's local evaluation)."""
    actions = manifest_actions(manifest)
    inception_dsts = {_dst(a) for a in actions if a.get("action") in INCEPTION_ACTIONS}
    inception = [name for name, dsts in INCEPTION_SIGNALS.items() if inception_dsts & set(dsts)]
    if any(ingredient_manifest_label(i) is None for i in ingredient_assertions(manifest)):
        inception.append(UNKNOWN_PROVENANCE)

    perceptible = [
        a
        for a in actions
        if a.get("action") is not None
        and a.get("action") not in INCEPTION_ACTIONS
        and a.get("action") not in NON_EDITORIAL_ACTIONS
    ]
    transformation = []
    if any(_dst(a) in GENAI_DST for a in perceptible):
        transformation.append("perceptibleGenAI")
    if any(_dst(a) is not None and _dst(a) not in GENAI_DST for a in perceptible):
        transformation.append("perceptibleNonGenAI")
    if any(_dst(a) in POSSIBLY_GENAI_DST for a in perceptible):
        transformation.append("perceptiblePossiblyGenAI")
    if any(a.get("action") in NON_EDITORIAL_ACTIONS for a in actions):
        transformation.append("nonEditorial")
    if _ambiguous(manifest, actions):
        transformation.append("ambiguousActions")
    return {"inception": inception, "transformation": transformation}


def _ambiguous(manifest: dict[str, Any], actions: list[dict[str, Any]]) -> bool:
    v2 = (manifest.get("assertions") or {}).get("c2pa.actions.v2") or {}
    gathered = (manifest.get("claim.v2") or {}).get("gathered_assertions") or []
    return (
        not actions
        or v2.get("allActionsIncluded") is not True
        or any(a.get("action") is not None and not str(a["action"]).startswith("c2pa.") for a in actions)
        or any(a.get("action") == "c2pa.unknown" for a in actions)
        or any("c2pa.actions" in str(ref.get("url", "")) for ref in gathered if isinstance(ref, dict))
    )


def manifest_signals(crjson: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One entry per manifest of the store, active first: `manifest_id`, `asserted_by`, `inception`,
    `transformation`, `ingredients` (manifest ids) — the shape of the rubric evaluator's DAG output."""
    if not crjson:
        return []
    entries = []
    for manifest in crjson.get("manifests") or []:
        subject = ((manifest.get("signature") or {}).get("certificateInfo") or {}).get("subject") or {}
        asserted_by = ", ".join(v for v in (subject.get("O"), subject.get("CN")) if v) or None
        signals = local_signals(manifest)
        entries.append(
            {
                "manifest_id": manifest.get("label"),
                "asserted_by": asserted_by,
                **signals,
                "ingredients": [
                    label for label in map(ingredient_manifest_label, ingredient_assertions(manifest)) if label
                ],
                "parents": [
                    label
                    for i in ingredient_assertions(manifest)
                    if i.get("relationship") == "parentOf" and (label := ingredient_manifest_label(i))
                ],
            }
        )
    return entries


def history_signals(
    entries: list[dict[str, Any]], active: str | None, *, parents_only: bool = False
) -> dict[str, list[str]]:
    """The signals of the active manifest and of every manifest it reaches through its ingredients (only
    through `parentOf` ingredients with `parents_only`: the line the asset itself descends along)."""
    by_id = {e["manifest_id"]: e for e in entries}
    seen: set[str] = set()
    stack = [active] if active in by_id else []
    inception: list[str] = []
    transformation: list[str] = []
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        entry = by_id[current]
        inception += [s for s in entry["inception"] if s not in inception]
        transformation += [s for s in entry["transformation"] if s not in transformation]
        stack.extend(i for i in entry["parents" if parents_only else "ingredients"] if i in by_id)
    return {"inception": inception, "transformation": transformation}
