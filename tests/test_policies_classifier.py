"""The policy's side of the prompt classifier: thresholds, `together_with`, unavailability, reasons, validation.

No model here: the classifier's output is handed to `decide_prompt` as `ClassifierScores`, as the guard does.
"""

from __future__ import annotations

import pytest

from policies import ClassifierScores, PolicyError, decide_prompt, load_policy

POLICY = """
name: scored
version: 3
prompt_classifier:
  when_unavailable: {fallback}
categories:
  kids:
    action: allow
    prompt:
      terms: [child]
  sexual:
    action: block
    prompt:
      terms: [nude]
    classifier:
      - {{label: sexual, min_score: 0.6}}
  minors:
    action: block
    classifier:
      - {{label: sexual, min_score: 0.2, together_with: [kids]}}
  violence:
    action: review
    classifier:
      - {{label: gore, min_score: 0.7}}
"""


@pytest.fixture(params=["review", "rules_only"])
def policy(request, tmp_path):
    path = tmp_path / f"{request.param}.yaml"
    path.write_text(POLICY.format(fallback=request.param))
    return load_policy(path)


def _scores(**scores):
    return ClassifierScores(
        scores={"sexual": 0.0, "gore": 0.0, **scores},
        evidence={"sexual": {"span": [2, 8], "nearest": [{"id": "corpus:0123456789ab", "similarity": 0.8}]}},
        model="encoder+head@test",
    )


def test_a_score_at_the_threshold_fires_with_score_threshold_span_and_nearest(policy):
    decision = decide_prompt(policy, "a quiet harbour", _scores(sexual=0.6))
    assert decision.decision == "block"
    assert decision.categories == {"sexual": "block"}
    (reason,) = decision.reasons
    assert reason["rule"] == "classifier:sexual"
    assert (reason["category"], reason["label"], reason["score"], reason["threshold"]) == ("sexual", "sexual", 0.6, 0.6)
    assert reason["span"] == [2, 8] and reason["evidence"] == "quiet "
    assert reason["nearest"] == [{"id": "corpus:0123456789ab", "similarity": 0.8}]
    out = decision.to_dict()
    assert out["classifier"] == {"status": "ok", "scores": {"sexual": 0.6, "gore": 0.0}, "model": "encoder+head@test"}


def test_below_every_threshold_is_allowed_and_records_the_scores(policy):
    decision = decide_prompt(policy, "a quiet harbour", _scores(sexual=0.59, gore=0.69))
    assert decision.decision == "allow" and decision.reasons == []
    assert decision.to_dict()["classifier"]["scores"] == {"sexual": 0.59, "gore": 0.69}


def test_each_category_has_its_own_threshold_and_action(policy):
    decision = decide_prompt(policy, "a quiet harbour", _scores(gore=0.75))
    assert decision.decision == "review"
    assert decision.categories == {"violence": "review"}
    assert decision.reasons[0]["rule"] == "classifier:violence"
    assert "span" not in decision.reasons[0]  # no evidence span for this label: the score is the evidence
    assert decision.reasons[0]["evidence"] == "gore score 0.75"


def test_together_with_needs_the_other_category_to_match(policy):
    assert decide_prompt(policy, "a quiet harbour", _scores(sexual=0.3)).decision == "allow"
    decision = decide_prompt(policy, "a child at the harbour", _scores(sexual=0.3))
    assert decision.categories == {"minors": "block"}
    (reason,) = decision.reasons
    assert reason["rule"] == "classifier:minors" and reason["together_with"] == ["kids"]


def test_a_category_the_rules_already_stopped_gets_no_second_reason(policy):
    decision = decide_prompt(policy, "a nude statue", _scores(sexual=0.9, gore=0.8))
    assert [r["rule"] for r in decision.reasons] == ["term:nude", "classifier:violence"]
    assert decision.categories == {"sexual": "block", "violence": "review"}
    assert decision.to_dict()["classifier"]["scores"]["sexual"] == 0.9, "the score is still recorded"


def test_no_classifier_output_means_rules_only_and_no_classifier_field(policy):
    decision = decide_prompt(policy, "a nude statue")
    assert decision.decision == "block"
    assert "classifier" not in decision.to_dict()


def test_unavailable_classifier_does_what_the_policy_says(policy):
    unavailable = ClassifierScores(unavailable="the encoder package is not installed")
    decision = decide_prompt(policy, "a quiet harbour", unavailable)
    record = decision.to_dict()["classifier"]
    assert record["status"] == "unavailable"
    assert record["reason"] == "the encoder package is not installed"
    assert record["when_unavailable"] == policy.prompt_classifier.when_unavailable
    if policy.prompt_classifier.when_unavailable == "review":
        assert decision.decision == "review"
        (reason,) = decision.reasons
        assert reason["rule"] == "classifier:unavailable" and reason["category"] == "classifier_unavailable"
        assert "not installed" in reason["evidence"]
    else:
        assert decision.decision == "allow" and decision.reasons == []
        assert any("decided by the rules only" in note for note in decision.notes)
    # the rules still run either way
    assert decide_prompt(policy, "a nude statue", unavailable).decision == "block"


def test_bundled_policies_set_their_own_thresholds_and_fallback():
    default, strict, dataset = (load_policy(n) for n in ("default", "strict", "dataset"))
    assert default.prompt_classifier.when_unavailable == "rules_only"
    assert strict.prompt_classifier.when_unavailable == "review"
    assert dataset.prompt_classifier.when_unavailable == "review"
    for name in ("sexual", "gore", "self_harm", "hate", "minors"):
        assert default.categories[name].classifier, name
    for other in (strict, dataset):
        assert other.categories["sexual"].classifier[0].min_score < default.categories["sexual"].classifier[0].min_score
    (minors,) = default.categories["minors"].classifier
    assert minors.label == "sexual" and minors.together_with == ["mentions_minors"]
    assert minors.min_score < default.categories["sexual"].classifier[0].min_score


@pytest.mark.parametrize(
    ("snippet", "field"),
    [
        ("    classifier: [{label: sexual, min_score: 1.5}]\n", "categories.words.classifier.0.min_score"),
        ("    classifier: [{label: sexual, min_score: 0.5, together_with: [nope]}]\n", "together_with"),
        ("    classifier: [{label: sexual, min_score: 0.5, color: red}]\n", "categories.words.classifier.0.color"),
    ],
)
def test_malformed_classifier_thresholds_are_refused_naming_the_field(tmp_path, snippet, field):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nversion: 1\ncategories:\n  words:\n    action: block\n" + snippet)
    with pytest.raises(PolicyError, match=field.replace(".", r"\.")):
        load_policy(path)


def test_a_threshold_on_an_allow_category_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nversion: 1\ncategories:\n  words:\n    action: allow\n"
        "    classifier: [{label: sexual, min_score: 0.5}]\n"
    )
    with pytest.raises(PolicyError, match="no effect"):
        load_policy(path)


def test_unknown_fallback_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nversion: 1\nprompt_classifier: {when_unavailable: shrug}\ncategories:\n  w:\n    action: block\n"
    )
    with pytest.raises(PolicyError, match=r"prompt_classifier\.when_unavailable"):
        load_policy(path)


def test_excused_spans_are_the_exception_phrases_that_made_a_match_innocent():
    from policies import excused_spans

    default = load_policy("default")
    text = "a tube of nude lipstick next to a nude statue"
    assert [text[a:b] for a, b in excused_spans(default, text)] == ["nude lipstick"]
    assert excused_spans(default, "a nude statue") == []
    assert excused_spans(default, "Scunthorpe at night") == []
