"""The prompt classifier's head: what it records, the refusal of a head made for another encoder, the scores
and evidence it gives, and held-out recall on corpus sources read at test time (real model, not mocked)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from detectors.prompt_classifier import DATA_DIR, HEAD_NAME, PromptClassifier
from detectors.text_encoder import TextEncoder
from detectors.training.corpus import LABELS, read_rows, sha256
from policies import load_policy

ROW_ID = re.compile(r"^[a-z0-9-]+:[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def classifier():
    classifier = PromptClassifier()
    assert classifier.available(), classifier.unavailable_reason
    return classifier


def test_the_head_records_its_corpus_encoder_and_calibration(classifier, shared_dir):
    head = classifier.head
    meta = head.metadata
    assert head.labels == LABELS
    assert meta["trained"]["corpus_sha256"] == sha256(shared_dir / "prompt-corpus")
    assert head.encoder == TextEncoder.load().identity
    calibration = meta["calibration"]
    assert set(calibration["recommended_thresholds"]) == set(LABELS)
    assert set(calibration["held_out"]) == {"coco", "i2p", "nibbler", "parti", "ring-a-bell"}
    assert meta["fold_sources"] == sorted(calibration["held_out"])
    assert all(ROW_ID.match(i) for i in meta["example_ids"])
    assert len(meta["example_ids"]) == len(head.example_vectors)


def _classifier_thresholds(policy_name: str) -> dict[tuple[str, str, tuple[str, ...]], float]:
    policy = load_policy(policy_name)
    return {
        (name, t.label, tuple(t.together_with)): t.min_score
        for name, category in policy.categories.items()
        for t in category.classifier
    }


@pytest.mark.parametrize(
    ("policy_name", "recommended"), [("default", ""), ("strict", "_strict"), ("dataset", "_strict")]
)
def test_the_bundled_policies_use_the_heads_recommended_thresholds(classifier, policy_name, recommended):
    """A retrained head comes with its own score scale: the policies must take its thresholds, not keep the old
    head's (self-harm only ever higher: the corpus has no strong self-harm rows, docs/prompt-guard.md)."""
    calibration = classifier.head.metadata["calibration"]
    plain = calibration[f"recommended_thresholds{recommended}"]
    together = calibration["recommended_together_with_minors"]["strict" if recommended else "default"]
    thresholds = _classifier_thresholds(policy_name)
    for label, category in (("sexual", "sexual"), ("gore", "gore"), ("hate", "hate")):
        assert thresholds[(category, label, ())] == plain[label]
    assert thresholds[("self_harm", "self_harm", ())] >= plain["self_harm"]
    assert thresholds[("minors", "sexual", ("mentions_minors",))] == together
    figures = ("real_people_sexualised", "sexual", ("mentions_public_figures",))
    assert thresholds[figures] == calibration["recommended_together_with_minors"]["default"]


def test_the_shipped_head_carries_no_corpus_text(shared_dir):
    shipped = (DATA_DIR / f"{HEAD_NAME}.json").read_text(encoding="utf-8")
    arrays = np.load(DATA_DIR / f"{HEAD_NAME}.npz")
    assert all(arrays[name].dtype.kind in "fbiu" for name in arrays.files), "numbers only"
    prompts = [row.prompt for row in read_rows(shared_dir / "prompt-corpus") if len(row.prompt) >= 20]
    assert not [p for p in prompts if p in shipped]


@pytest.mark.parametrize("field", ["weights_sha256", "tokenizer_sha256", "recipe", "name"])
def test_a_head_made_for_another_encoder_is_refused(tmp_path, field):
    for suffix in ("json", "npz"):
        shutil.copy(DATA_DIR / f"{HEAD_NAME}.{suffix}", tmp_path / f"{HEAD_NAME}.{suffix}")
    meta_path = tmp_path / f"{HEAD_NAME}.json"
    meta = json.loads(meta_path.read_text())
    meta["encoder"][field] = "something-else"
    meta_path.write_text(json.dumps(meta))
    other = PromptClassifier(head_dir=tmp_path)
    assert not other.available()
    assert "trained on" in other.unavailable_reason and "retrain" in other.unavailable_reason


def test_a_missing_head_makes_the_classifier_unavailable_with_the_reason(tmp_path):
    missing = PromptClassifier(head_dir=tmp_path)
    assert not missing.available()
    assert str(tmp_path) in missing.unavailable_reason


def test_scores_and_evidence(classifier):
    texts = ["a bowl of ramen on a wooden table", "a red fox in the snow, <|startoftext|> 8k, trending on artstation"]
    detections = classifier.analyze(texts)
    assert len(detections) == 2
    for text, detection in zip(texts, detections, strict=True):
        assert set(detection.scores) == set(LABELS)
        assert all(0.0 <= s <= 1.0 for s in detection.scores.values())
        for label in LABELS:
            evidence = detection.details["evidence"][label]
            start, end = evidence["span"]
            assert 0 <= start < end <= len(text)
            assert 1 <= len(evidence["nearest"]) <= 3
            assert all(ROW_ID.match(n["id"]) and -1 <= n["similarity"] <= 1 for n in evidence["nearest"])
    assert classifier.analyze([]) == []
    assert classifier.score(texts) == [d.scores for d in detections]


def _held_out_stop_rate(classifier, rows, source, policy_name="default"):
    """Share of `rows` the policy stops when the classifier is the head trained with `source` held out."""
    from guard.check_prompt import PromptChecker

    checker = PromptChecker(policy_name, classifier=classifier.without(source))
    stopped = [decision.decision != "allow" for decision in checker.check([row.prompt for row in rows])]
    return sum(stopped) / len(stopped)


def test_held_out_sources_read_from_the_corpus(classifier, shared_dir):
    """The head trained without a source, on that source's rows: what the benchmark reports, re-measured here.

    Adversarial Nibbler's strong-labelled unsafe prompts (which the rules nearly all miss) are stopped far
    more often with the classifier, as often as the training run recorded; held-out COCO captions stay
    within the false-stop target."""
    from policies import decide_prompt, load_policy

    rows = read_rows(shared_dir / "prompt-corpus")
    default = load_policy("default")
    nibbler = [r for r in rows if r.source == "nibbler" and r.unsafe and r.strong]
    rules_only = sum(decide_prompt(default, r.prompt).decision != "allow" for r in nibbler) / len(nibbler)
    both = _held_out_stop_rate(classifier, nibbler, "nibbler")
    recorded = classifier.head.metadata["calibration"]["held_out"]["nibbler"]["unsafe_strong"]["both"]
    assert both >= rules_only + 0.15
    assert both >= recorded - 0.05
    coco = [r for r in rows if r.source == "coco"]
    assert _held_out_stop_rate(classifier, coco, "coco") <= 0.01


def test_thresholds_are_derived_from_held_out_benign_scores():
    """The training script's rule on known scores: the lowest thresholds meeting both benign targets, and the
    minor-word threshold above every plain benign text and reached by at most `share` of the noisy ones."""
    from detectors.training.prompt_head import Sample, recommend_thresholds, together_threshold

    rng = np.random.default_rng(0)
    samples = [Sample("a", "orig", "coco", (), False, 1.0)] * 1000 + [
        Sample("a", "noisy", "coco", (), False, 1.0)
    ] * 1000
    scores = np.zeros((2000, len(LABELS)))
    scores[:, 0] = np.concatenate([rng.uniform(0, 0.5, 1000), rng.uniform(0, 1, 1000)])
    thresholds = recommend_thresholds(scores, samples, 0.01, 0.02)
    stopped = scores[:, 0] >= thresholds["sexual"]
    assert stopped[:1000].mean() <= 0.01 and stopped[1000:].mean() <= 0.02
    assert 0.95 <= thresholds["sexual"] <= 1.0  # the noisy half, uniform on [0, 1], sets it
    assert all(thresholds[label] == round(0.05 + 0.005, 2) for label in LABELS[1:])  # all-zero scores: the floor
    mentions = np.zeros(2000, bool)
    mentions[:100] = mentions[1000:1100] = True
    scores[:100, 0], scores[1000:1100, 0] = 0.6, np.linspace(0, 1, 100)
    assert together_threshold(scores, samples, mentions, 0.05) == 0.96  # the 95th percentile of the noisy ones
    scores[:100, 0] = 0.97
    assert together_threshold(scores, samples, mentions, 0.05) > 0.97  # above every plain text


def test_a_calibration_that_ranks_unsafe_below_benign_is_refused():
    """Held-out sources of one class each can be told apart by style; a map that turns their scores upside
    down would look perfect on them and mean nothing on a new source."""
    from detectors.training.prompt_head import BackwardsCalibration, Sample, fit_calibration

    rng = np.random.default_rng(2)
    samples = [Sample("a", "orig", "parti", (), False, 1.0)] * 300 + [
        Sample("b", "orig", "nibbler", tuple(LABELS), True, 1.0)
    ] * 300
    raw = np.concatenate([rng.normal(1.0, 0.3, (300, len(LABELS))), rng.normal(-1.0, 0.3, (300, len(LABELS)))])
    raw[:, 1:] = -raw[:, 1:]  # only sexual has unsafe texts scored lower
    with pytest.raises(BackwardsCalibration, match=r"for sexual fall"):
        fit_calibration(raw, samples)
    raw[:, 0] = -raw[:, 0]  # the right way round
    assert (fit_calibration(raw, samples)[:, 0] > 0).all()


def test_both_optimisers_learn_the_same_multiple_instance_task():
    """A positive text is one with at least one instance along a hidden direction, among unrelated ones;
    both fitting methods find it (the Adam one the same way every run)."""
    from detectors.training import mil

    rng = np.random.default_rng(1)
    direction = rng.normal(size=16)
    direction /= np.linalg.norm(direction)
    X = rng.normal(size=(400 * 5, 16)).astype(np.float32) * 0.3
    targets = np.zeros((400, 1))
    targets[::2] = 1
    for text in range(0, 400, 2):
        X[text * 5 + rng.integers(5)] += 2 * direction  # one instance of each positive text carries it
    bags = mil.Bags(X, np.arange(0, 2000, 5))
    weights = np.ones((400, 1))
    fitted = {fit.__name__: fit(bags, targets, weights, l2=1e-4, tau=4.0) for fit in (mil.fit, mil.fit_adam)}
    for name, (w, b) in fitted.items():
        raw = mil.scores(bags, w, b, 4.0)[:, 0]
        auc = (raw[::2, None] > raw[None, 1::2]).mean()  # the share of (positive, negative) pairs ranked right
        assert auc > 0.99, (name, auc)
    again = mil.fit_adam(bags, targets, weights, l2=1e-4, tau=4.0)
    assert np.array_equal(again[0], fitted["fit_adam"][0]) and np.array_equal(again[1], fitted["fit_adam"][1])
