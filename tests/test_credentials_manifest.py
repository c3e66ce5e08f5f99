"""Manifest definitions: the assertions we promise, and one-line errors for unknown options."""

from __future__ import annotations

import pytest

from guard.errors import GuardError
from guard.provenance.credentials.manifest import build_manifest, prompt_sha256
from guard.provenance.credentials.source_types import DigitalSourceType

PAYLOAD = bytes.fromhex("00112233aabb")


def _labels(definition):
    return [a["label"] for a in definition["assertions"]]


def _build(**options):
    defaults = dict(title="x.png", source_type="trainedAlgorithmicMedia", watermark_scheme="guard", payload=PAYLOAD)
    return build_manifest(**{**defaults, **options})


def test_generated_image_defaults():
    definition = _build()
    assert definition["claim_generator_info"][0]["name"] == "image-guard"
    assert _labels(definition) == ["c2pa.actions.v2", "c2pa.soft-binding", "c2pa.training-mining"]
    created, marked = definition["assertions"][0]["data"]["actions"]
    assert created == {"action": "c2pa.created", "digitalSourceType": DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA.uri}
    assert marked["action"] == "c2pa.watermarked.bound"
    assert "00112233aabb" in marked["parameters"]["description"]


def test_training_mining_is_configurable_or_absent():
    allowed = _build(training_mining="allowed")["assertions"][-1]["data"]["entries"]
    assert {entry["use"] for entry in allowed.values()} == {"allowed"}
    assert "c2pa.training-mining" not in _labels(_build(training_mining=None))
    with pytest.raises(GuardError, match="notAllowed"):
        _build(training_mining="maybe")


def test_unknown_source_type_and_parentless_edit_are_refused():
    with pytest.raises(GuardError, match="Unknown source type"):
        _build(source_type="photo")
    with pytest.raises(GuardError, match="without a parent"):
        _build(source_type="edit")


def test_parent_claims_only_opening_and_watermarking():
    actions = _build(source_type="edit", has_parent=True)["assertions"][0]["data"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.watermarked.bound"]
    assert actions[0]["parameters"] == {"ingredientIds": ["parent"]}
    assert all("digitalSourceType" not in a for a in actions)


def test_policy_reasons_keep_rules_not_matched_text():
    decision = {
        "decision": "block",
        "categories": {"gore": 1.0},
        "reasons": [{"rule": "gore.words", "category": "gore", "evidence": "some words", "span": [0, 4]}],
        "policy": {"name": "strict", "version": "2"},
    }
    policy = next(a for a in _build(policy_decision=decision)["assertions"] if a["label"] == "com.image-guard.policy")
    assert policy["data"] == {
        "name": "strict",
        "version": "2",
        "decision": "block",
        "categories": {"gore": 1.0},
        "reasons": [{"rule": "gore.words", "category": "gore"}],
    }


def test_prompt_hash_is_sha256_of_utf8():
    assert prompt_sha256("café") == "850f7dc43910ff890f8879c0ed26fe697c93a067ad93a7d50f466a7028a9bf4e"
