"""Both layers through `PromptChecker` and `guard check-prompt`: innocents and noisy benign prompts stay allowed,
classifier stops are explained, an unavailable classifier is handled as each policy says, and every entry point
gives the same decision (real encoder and head, not mocked)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from detectors.prompt_classifier import PromptClassifier
from detectors.settings import MODEL_CACHE
from detectors.training.corpus import read_rows
from guard.check_prompt import PromptChecker
from guard.cli import cli
from policies import decide_prompt, load_policy

ROOT = Path(__file__).resolve().parents[1]

INNOCENTS = [
    # the rules tests' innocents (tests/test_cli_prompt.py, tests/test_policies_core.py)
    "Scunthorpe at night", "Penistone railway station", "a cocktail bar", "a therapist", "a sextant",
    "nude lipstick", "nude heels", "chicken breast", "breast cancer awareness", "a s s e s s the class",
    "a bookkeeper in Middlesex", "a child flying a kite in the park", "a cartoon of Joe Biden eating ice cream",
    "pirate booty treasure chest for a kids' birthday party", "Al Gore planting a tree, children's book illustration",
    # more everyday words near the blocked ones
    "a blue tit on a branch", "a weather cock on a church roof", "moby dick, the white whale", "a naked mole rat",
    "summa cum laude diploma", "a pussy willow in spring", "suicide squad movie poster, comic style",
    "a swimmer doing the breast stroke", "grilled turkey breast with herbs", "the naked eye can see Venus",
]  # fmt: skip

BENIGN = [
    "a lighthouse on a cliff at sunset", "a bowl of ramen with a soft-boiled egg", "portrait of an old fisherman",
    "a woman reading in a cafe by the window", "two children building a sandcastle", "a man jogging in the park",
    "a family having a picnic under an oak tree", "a bride and groom dancing at their wedding",
    "a nurse checking a patient's blood pressure", "a surgeon in scrubs in an operating room",
    "a boxer training with a punching bag", "soldiers marching in a parade", "a knight in shining armor",
    "a woman in a red evening dress on a balcony", "a man in swim trunks on the beach", "a ballet dancer on stage",
    "a tattoo artist at work", "a butcher cutting meat in a market", "a hunter in an autumn forest",
    "a fashion model in a beige trench coat", "a couple holding hands at the seaside", "a yoga class at dawn",
    "a red fox in the snow", "a steaming cup of coffee", "a medieval castle on a hill", "a busy street in Tokyo",
    "a grandmother knitting by the fire", "a teenager skateboarding in a city", "a baby sleeping in a crib",
    "a firefighter rescuing a cat from a tree", "a chef plating a steak", "an old church with stained glass",
]  # fmt: skip

TAGS = [
    "masterpiece", "8k", "ultra detailed", "cinematic", "octane", "by some artist", "award winning", "4k photo",
    "sharp", "bokeh", "dslr", "trending", "hyper real", "volumetric fog", "hdr", "concept art", "film still",
]  # fmt: skip
JUNK = ["qwx", "zzv", "blorp", "kr4x", "mnmn", "tiktok", "lol", "xd", "asdf", "uwu", "7741", "///", "++", "~~"]


def _noisy(text: str, rng: random.Random) -> str:
    """This test's own noise (separate from the training noise): junk tokens, broken Unicode, CLIP markers,
    long tag lists, glued words."""
    kind = rng.randrange(6)
    if kind == 0:
        return text + " " + " ".join(rng.choice(JUNK) for _ in range(rng.randint(4, 15)))
    if kind == 1:
        return "".join(c + ("\ufffd" if rng.random() < 0.05 else "") for c in text).replace(" ", "Â ", 2)
    if kind == 2:
        return "<|startoftext|>" + text.replace(" ", " <|endoftext|> ", 1)
    if kind == 3:
        return ", ".join([text, *rng.sample(TAGS, rng.randint(6, 14))])
    if kind == 4:
        return text.replace(" ", "")
    return text.upper() + " ... " + " ".join(rng.sample(TAGS, 3)) + " " + rng.choice(JUNK)


@pytest.fixture(scope="module")
def checker():
    checker = PromptChecker("default")
    assert checker.classifier.available(), checker.classifier.unavailable_reason
    return checker


@pytest.mark.parametrize("policy", ["default", "strict", "dataset"])
def test_innocent_words_stay_allowed(policy):
    """The classifier adds no stop to the rules' innocents (strict and dataset review any public figure by rule)."""
    decisions = PromptChecker(policy).check(INNOCENTS)
    added = {
        text: [r["rule"] for r in d.reasons]
        for text, d in zip(INNOCENTS, decisions, strict=True)
        if any(r["rule"].startswith("classifier:") for r in d.reasons)
    }
    assert added == {}
    if policy == "default":
        assert [d.decision for d in decisions] == ["allow"] * len(INNOCENTS)


def test_benign_prompts_with_noise_stay_allowed(checker):
    rng = random.Random(2024)
    texts = BENIGN + [_noisy(t, rng) for t in BENIGN for _ in range(4)]
    decisions = checker.check(texts)
    stopped = [t for t, d in zip(texts, decisions, strict=True) if d.decision != "allow"]
    assert [t for t in BENIGN if t in stopped] == []
    assert len(stopped) / len(texts) <= 0.02, stopped


def _classifier_only_stops(checker, shared_dir, count=3):
    rows = [r for r in read_rows(shared_dir / "prompt-corpus") if r.unsafe and r.strong and r.source == "nibbler"]
    found = []
    for row, decision in zip(rows, checker.check([r.prompt for r in rows]), strict=True):
        if decision.decision == "block" and decide_prompt(checker.policy, row.prompt).decision == "allow":
            found.append((row, decision))
        if len(found) == count:
            break
    assert len(found) == count, "the classifier stops prompts the rules let through"
    return found


def test_a_classifier_stop_is_explained_in_json_and_terminal(checker, shared_dir):
    rows = {r.id: r.prompt for r in read_rows(shared_dir / "prompt-corpus")}
    runner = CliRunner()
    for row, _ in _classifier_only_stops(checker, shared_dir):
        result = runner.invoke(cli, ["check-prompt", "--json", row.prompt])
        assert result.exit_code == 1
        line = json.loads(result.stdout)
        reasons = [r for r in line["reasons"] if r["rule"].startswith("classifier:")]
        assert reasons and line["classifier"]["status"] == "ok"
        for reason in reasons:
            assert reason["rule"] == f"classifier:{reason['category']}"
            assert reason["score"] >= reason["threshold"]
            threshold = [
                t for t in checker.policy.categories[reason["category"]].classifier if t.label == reason["label"]
            ]
            assert reason["threshold"] in [t.min_score for t in threshold]
            start, end = reason["span"]
            assert row.prompt[start:end] == reason["evidence"]
            assert reason["nearest"] and all(n["id"] in rows for n in reason["nearest"])
        human = runner.invoke(cli, ["check-prompt", row.prompt])
        assert human.exit_code == 1 and human.stdout.startswith("BLOCK")
        assert f"classifier:{reasons[0]['category']} {reasons[0]['score']:.2f} >= " in human.stdout
        assert reasons[0]["nearest"][0]["id"] in human.stdout
        for reason in reasons:  # never a labelled example's text in the terminal
            for near in reason["nearest"]:
                if rows[near["id"]] != row.prompt:
                    assert rows[near["id"]][:40] not in human.stdout


def test_every_entry_point_gives_the_same_decision(checker, shared_dir):
    from guard.cli.check_prompt import BATCH
    from guard.generate import Guard

    rng = random.Random(5)
    rows = read_rows(shared_dir / "prompt-corpus")
    texts = [r.prompt for r in rng.sample(rows, BATCH + 10)]  # two batches through the CLI
    expected = [d.to_dict() for d in checker.check(texts)]
    result = CliRunner().invoke(cli, ["check-prompt", "--json", "-"], input="\n".join(texts) + "\n")
    assert [
        {k: v for k, v in json.loads(line).items() if k != "prompt"} for line in result.stdout.splitlines()
    ] == expected
    guard = Guard("default", protector=object())
    assert [guard.prompt_checker.check_one(t).to_dict() for t in texts[:10]] == expected[:10]
    assert guard.prompt_checker.classifier is checker.classifier, "one classifier per process"


@pytest.mark.parametrize(("policy", "decision"), [("default", "allow"), ("strict", "review"), ("dataset", "review")])
def test_an_unavailable_classifier_is_handled_as_the_policy_says(tmp_path, policy, decision):
    broken = PromptClassifier(head_dir=tmp_path)  # no head there
    checker = PromptChecker(policy, classifier=broken)
    (safe, blocked) = checker.check(["a red apple", "a n.u.d.e statue"])
    assert safe.decision == decision
    assert blocked.decision == "block", "the rules still run"
    record = safe.to_dict()["classifier"]
    assert record["status"] == "unavailable" and str(tmp_path) in record["reason"]
    assert record["when_unavailable"] == load_policy(policy).prompt_classifier.when_unavailable


def test_cli_says_when_the_classifier_is_unavailable(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    env = {**os.environ, MODEL_CACHE: str(blocker / "cache"), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", "from guard.cli import main; main()", "check-prompt"]
    plain = subprocess.run([*command, "a red apple"], capture_output=True, text=True, env=env)
    assert plain.returncode == 0, plain.stderr
    assert "rules only" in plain.stdout and "prompt classifier unavailable" in plain.stderr
    strict = subprocess.run(
        [*command, "--policy", "strict", "--json", "a red apple"], capture_output=True, text=True, env=env
    )
    assert strict.returncode == 1
    line = json.loads(strict.stdout)
    assert line["decision"] == "review" and line["classifier"]["status"] == "unavailable"
    assert MODEL_CACHE in line["classifier"]["reason"]


def test_a_policy_naming_a_label_the_classifier_lacks_is_exit_2(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(
        "name: typo\nversion: 1\ncategories:\n  s:\n    action: block\n"
        "    classifier: [{label: sexy, min_score: 0.5}]\n"
    )
    result = CliRunner().invoke(cli, ["check-prompt", "--policy", str(path), "hello"])
    assert result.exit_code == 2
    assert "categories.s.classifier.0.label" in result.output and "sexy" in result.output


def test_a_policy_without_classifier_thresholds_never_loads_it(tmp_path):
    path = tmp_path / "words.yaml"
    path.write_text(
        "name: words\nversion: 1\ncategories:\n  w:\n    action: review\n    prompt:\n      terms: [banana]\n"
    )
    checker = PromptChecker(path)
    assert checker.classifier is None
    assert "classifier" not in checker.check_one("a banana").to_dict()
