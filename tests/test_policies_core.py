"""Policies: loading, validation errors, prompt and image decisions on the bundled policies."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from policies import PolicyError, decide_image, decide_prompt, load_policy, most_severe
from policies.loader import DATA_DIR


@pytest.fixture(scope="module")
def default():
    return load_policy("default")


def test_bundled_policies_load():
    for name in ("default", "strict", "dataset"):
        policy = load_policy(name)
        assert policy.name == name
        assert policy.detectors["nudenet"].required
        assert policy.negative_prompt_terms


def test_none_reads_guard_policy_env(monkeypatch):
    monkeypatch.setenv("GUARD_POLICY", "strict")
    assert load_policy().name == "strict"
    monkeypatch.delenv("GUARD_POLICY")
    assert load_policy().name == "default"


def test_detector_config_keeps_open_options(default):
    clip = default.detectors["clip_concepts"]
    assert clip.required is False
    assert clip.options["model"] == "ViT-L-14"
    assert "gore" in clip.options["concepts"]


def test_severity_order():
    assert most_severe(["allow", "blur"]) == "blur"
    assert most_severe(["review", "blur"]) == "review"
    assert most_severe(["review", "block", "allow"]) == "block"
    assert most_severe([]) == "allow"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("a nude woman on a beach", "sexual"),
        ("n.u.d.e beach", "sexual"),
        ("nuuuuude", "sexual"),
        ("Ｎｕｄｅ", "sexual"),
        ("ѕех scene", "sexual"),
        ("s3x", "sexual"),
        ("p0rn", "sexual"),
        ("n\u200bu\u200bd\u200be", "sexual"),
        ("swastika flag", "hate"),
        ("graphic gore, severed head", "gore"),
        ("slit wrists", "self_harm"),
        ("a 12 year old girl in a bikini", "minors"),
        ("sexy teen", "minors"),
        ("n u d e w o m a n", "sexual"),
        ("s.e.l.f - h.a.r.m", "self_harm"),
        ("a p.o.r.n.h.u.b logo", "sexual"),
        ("materia| about child abuse materia|", "minors"),
        ("nude!!!", "sexual"),
        ("h3nt4i", "sexual"),
        ("NSFW_nude_photo", "sexual"),
        ("🅽🆄🅳🅴", "sexual"),
        ("🇳🇺🇩🇪", "sexual"),
        ("ⓝⓤⓓⓔ", "sexual"),
        ("⒩⒰⒟⒠", "sexual"),
        ("𝐧𝐮𝐝𝐞", "sexual"),
        ("ɴᴜᴅᴇ", "sexual"),
        ("ⁿᵘᵈᵉ", "sexual"),
        ("n̶u̶d̶e̶", "sexual"),
        ("n\U000e0041ude", "sexual"),
    ],
)
def test_blocked_prompts(default, text, category):
    decision = decide_prompt(default, text)
    assert decision.decision == "block"
    assert category in decision.categories


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe town centre at dusk",
        "a train station in Penistone",
        "a cocktail party on a rooftop",
        "a therapist office with plants",
        "an antique brass sextant",
        "nude lipstick and nude heels, fashion editorial",
        "grilled chicken breast with herbs",
        "pink ribbon for breast cancer awareness",
        "a s s e s s the class in Essex",
        "a bookkeeper in Middlesex",
        "a child flying a kite in the park",
        "a cartoon of Joe Biden eating ice cream",
    ],
)
def test_innocent_prompts(default, text):
    decision = decide_prompt(default, text)
    assert decision.decision == "allow", decision.reasons


def test_reason_spans_point_into_original_text(default):
    text = "Ａ portrait, ｎ.ｕ.ｄ.ｅ, café"
    decision = decide_prompt(default, text)
    (reason,) = decision.reasons
    start, end = reason["span"]
    assert text[start:end] == reason["evidence"] == "ｎ.ｕ.ｄ.ｅ"
    assert reason["rule"] == "term:nude*"
    assert reason["category"] == "sexual"


def test_prompt_decision_dict(default):
    out = decide_prompt(default, "photo of Joe Biden at a rally").to_dict()
    assert out["decision"] == "review"
    assert out["categories"] == {"public_figures": "review"}
    assert out["policy"] == {"name": "default", "version": default.version}
    assert out["normalized"] == "photo of joe biden at a rally"
    assert [r["evidence"] for r in out["reasons"]] == ["Joe Biden"]


def test_public_figures_strict_and_dataset():
    strict, dataset = load_policy("strict"), load_policy("dataset")
    assert decide_prompt(strict, "photo of Joe Biden").decision == "block"
    assert decide_prompt(strict, "a cartoon of Joe Biden").decision == "review"
    assert decide_prompt(dataset, "a cartoon of Joe Biden").decision == "review"


def test_image_thresholds(default):
    decision = decide_image(default, {"nudenet": {"explicit_nudity": 0.7, "suggestive": 0.9}})
    assert decision.decision == "block"
    assert decision.categories == {"sexual": "block", "suggestive": "blur"}
    blur = decide_image(default, {"nudenet": {"explicit_nudity": 0.1, "suggestive": 0.65}})
    assert blur.decision == "blur"
    clean = decide_image(default, {"nudenet": {"explicit_nudity": 0.1, "suggestive": 0.1}})
    assert clean.decision == "allow"
    assert clean.to_dict()["reasons"] == []
    assert "normalized" not in clean.to_dict()


def test_required_detector_unavailable_means_review(default):
    decision = decide_image(default, {}, {"nudenet": "model file missing"})
    assert decision.decision == "review"
    assert decision.reasons[0]["category"] == "detector_unavailable"
    assert "model file missing" in decision.reasons[0]["evidence"]


def test_optional_detector_unavailable_is_only_noted(default):
    decision = decide_image(default, {"nudenet": {"explicit_nudity": 0.0}}, {"clip_concepts": "no weights"})
    assert decision.decision == "allow"
    assert any("clip_concepts" in note for note in decision.to_dict()["notes"])


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _minimal() -> dict:
    return {
        "name": "mine",
        "version": 1,
        "detectors": {"nudenet": {"required": True}},
        "categories": {"bad": {"action": "block", "prompt": {"terms": ["badword"]}}},
    }


def test_user_policy_by_path(tmp_path):
    policy = load_policy(_write(tmp_path, _minimal()))
    assert policy.version == "1"
    assert decide_prompt(policy, "a b.a.d.w.o.r.d here").decision == "block"


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda d: d["categories"]["bad"].update(action="nuke"), "categories.bad.action", "'block' (got 'nuke')"),
        (lambda d: d["categories"]["bad"].update(acton="block"), "categories.bad.acton", "unknown field"),
        (lambda d: d.pop("name"), "name", "required field is missing"),
        (
            lambda d: d["categories"]["bad"].update(image=[{"detector": "nope", "label": "x", "min_score": 0.5}]),
            "categories.bad.image.0.detector",
            "'nope'",
        ),
        (
            lambda d: d["categories"]["bad"]["prompt"].update(regexes=[{"name": "r", "pattern": "(unclosed"}]),
            "categories.bad.prompt.regexes.0.pattern",
            "not a valid regular expression",
        ),
    ],
)
def test_malformed_policy_names_file_and_field(tmp_path, mutate, field, problem):
    data = _minimal()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert f"field {field}" in message
    assert problem in message


def test_bad_yaml_and_missing_file(tmp_path):
    path = _write(tmp_path, "name: [unclosed\n")
    with pytest.raises(PolicyError, match="invalid YAML"):
        load_policy(path)
    with pytest.raises(PolicyError, match="neither a bundled policy"):
        load_policy(tmp_path / "missing.yaml")


def test_extends_a_bundled_policy(tmp_path):
    path = _write(tmp_path, {"extends": "default", "name": "mine", "categories": {"gore": {"action": "review"}}})
    policy = load_policy(path)
    assert policy.name == "mine"
    assert decide_prompt(policy, "graphic gore").decision == "review"
    assert decide_prompt(policy, "a nude").decision == "block"


def test_bundled_yaml_is_documented():
    for name in ("default", "strict", "dataset", "public_figures"):
        text = (DATA_DIR / f"{name}.yaml").read_text()
        assert text.startswith("#"), f"{name}.yaml should open with a comment for the people editing it"


def test_normalized_form_is_readable():
    from policies import normalize

    assert normalize("Ａ ｎ.ｕ.ｄ.ｅ ѕ3х, nuuuude, 8k, mp3, 35mm") == "a nude sex, nude, 8k, mp3, 35mm"
    assert normalize("Straße café\u0301 \u200bzero") == "strasse cafe zero"


def test_names_do_not_take_plurals_and_overlaps_collapse(default):
    assert decide_prompt(default, "he trumps everyone at cards").decision == "allow"
    reasons = decide_prompt(default, "Barack Obama giving a speech, photo").reasons
    assert [r["evidence"] for r in reasons] == ["Barack Obama"]


def test_sexualised_public_figure_is_blocked(default):
    decision = decide_prompt(default, "a cartoon of Taylor Swift in lingerie")
    assert decision.decision == "block"
    assert "real_people_sexualised" in decision.categories


def test_detector_config_reads_like_a_dict(default):
    configs = default.detector_configs()
    assert configs["nudenet"] == {"required": True}
    assert configs["clip_concepts"]["pretrained"] == "openai"
    clip = default.detectors["clip_concepts"]
    assert clip.get("model") == "ViT-L-14" and clip["required"] is False and "concepts" in clip
    assert clip.get("missing", 3) == 3


def test_decide_accepts_a_policy_name(default):
    assert decide_prompt("strict", "a sexy dress").decision == "review"
    assert decide_image("default", {"nudenet": {"explicit_nudity": 0.9}}).decision == "block"


@pytest.mark.parametrize(
    "text",
    [
        "kids hanging christmas stockings by the fireplace",
        "a cavalier king charles spaniel puppy, photo",
        "a child in thong sandals at the market",
        "an intimate family portrait with two kids",
        "kids hunting for pirate's booty on an island",
    ],
)
def test_combinations_do_not_fire_on_innocent_context(default, text):
    assert decide_prompt(default, text).decision == "allow"


def test_long_prompts_with_many_matches_stay_linear(default):
    text = "nude lipstick " * 5000 + "nude " * 5000
    decision = decide_prompt(default, text)
    assert decision.decision == "block"
    assert len(decision.reasons) == 5000
    assert decision.reasons[0]["span"] == [70000, 70004]


def test_minors_read_more_broadly_in_strict_and_dataset(default):
    assert decide_prompt(default, "girl in school uniform, sexy").decision == "block"
    assert decide_prompt(default, "a girl in a bikini").decision == "allow"
    assert decide_prompt("strict", "a girl in a bikini").decision == "block"
    assert decide_prompt("dataset", "young woman in lingerie").decision == "block"
    assert decide_prompt("dataset", "a boy playing football").decision == "allow"


def test_policies_import_no_models_and_no_guard():
    import subprocess
    import sys

    code = (
        "import sys, policies; policies.load_policy(); "
        "print(sorted(m for m in ('torch', 'guard', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_combination_of_regex_only_building_blocks_still_fires(tmp_path):
    data = {
        "name": "regexes",
        "version": "1",
        "categories": {
            "money": {"action": "allow", "prompt": {"regexes": [{"name": "amount", "pattern": r"\$\d+"}]}},
            "date": {"action": "allow", "prompt": {"regexes": [{"name": "year", "pattern": r"\b19\d\d\b"}]}},
            "both": {
                "action": "review",
                "prompt": {
                    "combinations": [{"name": "m_d", "all_of": [{"categories": ["money"]}, {"categories": ["date"]}]}]
                },
            },
        },
    }
    policy = load_policy(_write(tmp_path, data))
    assert decide_prompt(policy, "a $100 bill from 1985").decision == "review"
    assert decide_prompt(policy, "a $100 bill").decision == "allow"


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("a marble statue of Abraham Lincoln", "allow"),
        ("a watercolor painting of the Dalai Lama", "allow"),
        ("photorealistic painting of Pope Francis", "review"),
        ("Taylor Swift with a big bust", "review"),
        ("Emmanuel Macron, 8k", "review"),
    ],
)
def test_public_figures_context(default, text, decision):
    assert decide_prompt(default, text).decision == decision


def test_combine_prompt_and_image_decisions(default):
    from policies import combine

    prompt = decide_prompt(default, "a portrait of Joe Biden")
    image = decide_image(default, {"nudenet": {"explicit_nudity": 0.1, "suggestive": 0.7}})
    both = combine([prompt, image])
    assert both.decision == "review"
    assert both.categories == {"public_figures": "review", "suggestive": "blur"}
    assert len(both.reasons) == 2
    assert both.to_dict()["normalized"] == "a portrait of joe biden"
    assert combine([image]).to_dict() == image.to_dict()
    with pytest.raises(ValueError):
        combine([])


def test_names_are_not_stretched_into_real_words(default):
    assert decide_prompt(default, "forbidden and bidden").decision == "allow"
    assert decide_prompt(default, "puttin on the ritz").decision == "allow"
    assert decide_prompt(default, "Biiiiden at a podium").decision == "review"


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("nud3 lipstick", "block"),
        ("n.u.d.e lipstick", "block"),
        ("Nude-Lipsticks", "allow"),
        ("goreee", "block"),
        ("c4rtoon of Joe Biden", "review"),
        ("cartoon of Joe Biden, ph0to", "review"),
    ],
)
def test_exceptions_must_be_written_plainly(default, text, decision):
    assert decide_prompt(default, text).decision == decision


@pytest.mark.parametrize(
    ("text", "category", "evidence"),
    [
        ("#SexyTeen photo", "minors", "Teen + Sexy"),
        ("BareBreasts, 8k", "sexual", "BareBreasts"),
        ("photo of JoeBiden", "public_figures", "JoeBiden"),
    ],
)
def test_camel_case_words_are_read_apart(default, text, category, evidence):
    decision = decide_prompt(default, text)
    assert category in decision.categories
    (reason,) = decision.reasons
    assert reason["evidence"] == evidence
    start, end = reason["span"]
    assert evidence.split(" + ")[0] == text[start:end]


def test_camel_case_brands_stay_innocent(default):
    assert decide_prompt(default, "ArtStation, DeviantArt, McDonald's, iPhone, YouTube, PlayStation").allowed


def test_entry_without_letters_names_its_field(tmp_path):
    data = _minimal()
    data["categories"]["bad"]["prompt"]["terms"] = ["ok", "!!!"]
    with pytest.raises(PolicyError, match=r"field categories\.bad\.prompt\.terms: entry '!!!' has no letters"):
        load_policy(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("text", "evidence"),
    [("nu de beach", "nu de"), ("po-rn", "po-rn"), ("a sw astika flag", "sw astika"), ("pe nis", "pe nis")],
)
def test_words_split_by_a_short_non_word_piece_are_joined(default, text, evidence):
    decision = decide_prompt(default, text)
    assert decision.decision == "block"
    assert [r["evidence"] for r in decision.reasons] == [evidence]


@pytest.mark.parametrize(
    "text", ["the pen is mightier", "an Al Pacino movie", "the artist's ex-wife", "Nu Metal band", "a hen tail"]
)
def test_two_real_words_are_never_joined(default, text):
    assert decide_prompt(default, text).decision == "allow"


def test_user_name_list_next_to_the_policy(tmp_path):
    (tmp_path / "staff.yaml").write_text("# our executives\nexecutives:\n  - Jane Example\n  - John Sample\n")
    data = _minimal()
    data["categories"]["people"] = {"action": "review", "prompt": {"name_lists": ["staff.yaml"]}}
    policy = load_policy(_write(tmp_path, data))
    decision = decide_prompt(policy, "a photo of jane example")
    assert decision.decision == "review"
    assert decision.reasons[0]["rule"] == "name:Jane Example"
    data["categories"]["people"]["prompt"]["name_lists"] = ["missing.yaml"]
    with pytest.raises(PolicyError, match=r"categories\.people\.prompt\.name_lists\.0"):
        load_policy(_write(tmp_path, data))
