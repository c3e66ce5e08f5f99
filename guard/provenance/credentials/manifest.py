"""The manifest definition (plain JSON for c2pa-python's Builder) that says how an image was made.

Assertions written:
- `c2pa.actions.v2`: `c2pa.created` with the IPTC digital source type (`trainedAlgorithmicMedia`,
  `compositeWithTrainedAlgorithmicMedia`) for a generated image, or `c2pa.opened` of the parent ingredient
  for an existing one; then `c2pa.watermarked.bound` (the watermark is this manifest's soft binding);
- `c2pa.soft-binding`: the watermark algorithm and its payload (C2PA spec, soft binding assertion);
- `com.image-guard.generation`: model id/version and settings, the prompt's SHA-256 (the prompt itself
  only when asked);
- `com.image-guard.policy`: policy name, version and decision (with categories and reasons);
- `c2pa.training-mining`: AI training / mining permissions (`notAllowed` by default for generated images).
"""

from __future__ import annotations

import hashlib
from typing import Any

from guard import __version__
from guard.errors import GuardError
from guard.provenance.credentials.source_types import DigitalSourceType

EDIT = "edit"
"""An existing image this system did not generate: no digital source type is claimed."""
SOURCE_TYPES: tuple[str, ...] = (
    DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA,
    DigitalSourceType.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    EDIT,
)
"""What `protect` may claim: made by a model, composited with one (image-to-image), or an edit."""

TRAINING_MINING_USES = ("allowed", "notAllowed", "constrained")
TRAINING_MINING_ENTRIES = ("c2pa.ai_generative_training", "c2pa.ai_inference", "c2pa.ai_training", "c2pa.data_mining")

CLAIM_GENERATOR = {"name": "image-guard", "version": __version__}
SOFT_BINDING_ALG_PREFIX = "com.image-guard.watermark."
PARENT_LABEL = "parent"
GENERATION_LABEL = "com.image-guard.generation"
POLICY_LABEL = "com.image-guard.policy"


def digital_source_type(source_type: str) -> str | None:
    """The IPTC URI for a source type name, or None for `edit`."""
    if source_type not in SOURCE_TYPES:
        raise GuardError(f"Unknown source type {source_type!r}; use one of {', '.join(SOURCE_TYPES)}.")
    return None if source_type == EDIT else DigitalSourceType(source_type).uri


def soft_binding_alg(scheme: str) -> str:
    """The soft-binding algorithm name for one of our watermark schemes (not on the C2PA list: namespaced)."""
    return SOFT_BINDING_ALG_PREFIX + scheme


def build_manifest(
    *,
    title: str,
    source_type: str,
    watermark_scheme: str | None,
    payload: bytes | None,
    generator: dict[str, Any] | None = None,
    prompt: str | None = None,
    include_prompt: bool = False,
    policy_decision: dict[str, Any] | None = None,
    training_mining: str | None = "notAllowed",
    has_parent: bool = False,
    input_ingredient: bool = False,
) -> dict[str, Any]:
    """A manifest definition for c2pa-python's Builder.

    `has_parent`: the caller adds a `parentOf` ingredient labelled `PARENT_LABEL` (the image we protect
    already existed, with its own manifest or as a photo), so the first action is `c2pa.opened` of it and
    no digital source type is claimed here. `input_ingredient`: the caller adds an
    `inputTo` ingredient (an image-to-image init image). `training_mining=None` writes no such assertion.
    `watermark_scheme=None`: the image carries no watermark (too small for one), so the manifest claims no
    soft binding.
    """
    dst = digital_source_type(source_type)
    generator = dict(generator or {})
    agent = _software_agent(generator)
    actions: list[dict[str, Any]] = []
    if has_parent:
        # The parent's own manifest carries how it was made; this claim adds only the watermark.
        actions.append({"action": "c2pa.opened", "parameters": {"ingredientIds": [PARENT_LABEL]}})
    else:
        if dst is None:
            raise GuardError("An image without a parent cannot be protected as an edit: give its source file.")
        actions.append({"action": "c2pa.created", "digitalSourceType": dst, **agent})
    assertions: list[dict[str, Any]] = [{"label": "c2pa.actions.v2", "data": {"actions": actions}}]
    if watermark_scheme is not None:
        actions.append(
            {
                "action": "c2pa.watermarked.bound",
                "softwareAgent": dict(CLAIM_GENERATOR),
                "parameters": {"description": f"invisible watermark {watermark_scheme}, payload {payload.hex()}"},
            }
        )
        assertions.append(
            {
                "label": "c2pa.soft-binding",
                "data": {
                    "alg": soft_binding_alg(watermark_scheme),
                    "name": "invisible watermark carrying the manifest's store key",
                    "blocks": [{"scope": {}, "value": payload.hex()}],
                },
            }
        )
    generation = _generation(generator, prompt, include_prompt, input_ingredient)
    if generation:
        assertions.append({"label": GENERATION_LABEL, "data": generation})
    if policy_decision is not None:
        assertions.append({"label": POLICY_LABEL, "data": _policy(policy_decision)})
    if training_mining is not None:
        assertions.append(training_mining_assertion(training_mining))
    return {
        "claim_generator_info": [dict(CLAIM_GENERATOR)],
        "title": title,
        "assertions": assertions,
    }


def training_mining_assertion(use: str) -> dict[str, Any]:
    """`c2pa.training-mining` with the same permission for every entry."""
    if use not in TRAINING_MINING_USES:
        raise GuardError(f"Unknown training/mining permission {use!r}; use one of {', '.join(TRAINING_MINING_USES)}.")
    return {
        "label": "c2pa.training-mining",
        "data": {"entries": {entry: {"use": use} for entry in TRAINING_MINING_ENTRIES}},
    }


def prompt_sha256(prompt: str) -> str:
    """SHA-256 of the prompt as UTF-8, hex: proves which prompt without revealing it."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def _software_agent(generator: dict[str, Any]) -> dict[str, Any]:
    model = generator.get("model")
    if not model:
        return {}
    agent = {"name": str(model)}
    if generator.get("model_version"):
        agent["version"] = str(generator["model_version"])
    return {"softwareAgent": agent}


def _generation(
    generator: dict[str, Any], prompt: str | None, include_prompt: bool, input_ingredient: bool
) -> dict[str, Any]:
    data: dict[str, Any] = {str(k): v for k, v in generator.items() if v is not None}
    if prompt is not None:
        data["prompt_sha256"] = prompt_sha256(prompt)
        if include_prompt:
            data["prompt"] = prompt
    if input_ingredient:
        data["init_image"] = "ingredient (inputTo)"
    return data


def _policy(decision: dict[str, Any]) -> dict[str, Any]:
    policy = decision.get("policy") or {}
    data: dict[str, Any] = {
        "name": policy.get("name"),
        "version": policy.get("version"),
        "decision": decision.get("decision"),
    }
    if decision.get("categories"):
        data["categories"] = decision["categories"]
    if decision.get("reasons"):
        data["reasons"] = [
            {k: r.get(k) for k in ("rule", "category") if r.get(k) is not None} for r in decision["reasons"]
        ]
    return data
