"""The `dataset` policy: both NSFW models' thresholds and how they combine, and its dataset-filter section."""

from __future__ import annotations

import pytest
import yaml

from policies import PolicyError, decide_image, load_policy


def _write(tmp_path, data) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_either_model_over_its_threshold_drops_the_sample():
    policy = load_policy("dataset")
    clean = {"nudenet": {"explicit_nudity": 0.0, "suggestive": 0.0}, "open_nsfw": {"nsfw": 0.01}}
    assert decide_image(policy, clean).decision == "allow"
    only_open_nsfw = {**clean, "open_nsfw": {"nsfw": 0.85}}
    decision = decide_image(policy, only_open_nsfw)
    assert decision.decision == "block"
    assert {(r["category"], r["detector"]) for r in decision.reasons} >= {("sexual", "open_nsfw")}
    only_nudenet = {**clean, "nudenet": {"explicit_nudity": 0.4, "suggestive": 0.0}}
    assert decide_image(policy, only_nudenet).categories["sexual"] == "block"
    assert decide_image(policy, {**clean, "open_nsfw": {"nsfw": 0.6}}).decision == "review"


def test_image_match_all_needs_both_models(tmp_path):
    ref = _write(
        tmp_path,
        {
            "extends": "dataset",
            "categories": {"sexual": {"image_match": "all"}},
        },
    )
    policy = load_policy(ref)
    one = {"nudenet": {"explicit_nudity": 0.9, "suggestive": 0.0}, "open_nsfw": {"nsfw": 0.1}}
    assert "sexual" not in decide_image(policy, one).categories
    both = {"nudenet": {"explicit_nudity": 0.9, "suggestive": 0.0}, "open_nsfw": {"nsfw": 0.9}}
    decision = decide_image(policy, both)
    assert decision.categories["sexual"] == "block"
    assert sorted(r["detector"] for r in decision.reasons if r["category"] == "sexual") == ["nudenet", "open_nsfw"]
    missing = {"nudenet": {"explicit_nudity": 0.9, "suggestive": 0.0}}
    assert "sexual" not in decide_image(policy, missing, {"open_nsfw": "not installed"}).categories


def test_dataset_section_defaults_and_settings():
    rules = load_policy("dataset").dataset
    assert rules.images.detectors == ["nudenet", "open_nsfw"]
    assert rules.opt_out.constrained == "not_allowed"
    assert set(rules.opt_out.training_mining_entries) == {
        "ai_training",
        "ai_generative_training",
        "data_mining",
        "ai_inference",
    }
    assert rules.ai_origin.action == "drop" and "sd-v1" in rules.ai_origin.watermarks
    assert rules.near_duplicates.max_distance == 4
    assert load_policy("default").dataset.images.detectors is None  # every detector the policy lists


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"images": {"detectors": ["nudenet", "nope"]}}, "dataset.images.detectors.1: detector 'nope'"),
        ({"images": {"detectors": ["open_nsfw"]}}, "required detector 'nudenet' is missing"),
        ({"ai_origin": {"action": "delete"}}, "dataset.ai_origin.action"),
        ({"near_duplicates": {"max_distance": 40}}, "dataset.near_duplicates.max_distance"),
        ({"opt_out": {"constrained": "maybe"}}, "dataset.opt_out.constrained"),
        ({"sweep": [0.5, 2]}, "dataset.sweep"),
        ({"typo": 1}, "dataset.typo: unknown field"),
    ],
)
def test_bad_dataset_settings_are_one_line_errors(tmp_path, section, message):
    with pytest.raises(PolicyError) as caught:
        load_policy(_write(tmp_path, {"extends": "dataset", "dataset": section}))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
