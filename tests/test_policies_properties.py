"""Property-based tests: normalisation is idempotent, obfuscated blocked terms are caught, nothing crashes.

Derandomized, so every run checks the same examples; to explore, run them with more examples and
`derandomize=False`, and pin what you find as a unit test.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import decide_prompt, load_policy
from policies.normalize import _CONFUSABLES, fold, normalize, offsets

DEFAULT = load_policy("default")
POLICIES = [load_policy(name) for name in ("default", "strict", "dataset")]

BLOCKED_ENTRIES = sorted(
    {
        entry
        for category in DEFAULT.categories.values()
        if category.action == "block"
        for entry in (*category.prompt.terms, *category.prompt.phrases)
    }
)

_LEET = {"a": "4@", "b": "8", "e": "3", "g": "9", "i": "1!|", "l": "1|", "o": "0", "s": "5$", "t": "7"}
_LOOKALIKES: dict[str, list[str]] = {}
for _char, _latin in _CONFUSABLES.items():
    if len(_latin) == 1 and _latin.isalpha():
        _LOOKALIKES.setdefault(_latin, []).append(_char)
_INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\x00"]
_SEPARATORS = [" ", ".", "-", "_", "*", ". ", " - ", "/"]


def _variants(char: str) -> list[str]:
    """Ways to write one character of a term that a person could still read as that character."""
    if not char.isalpha() or not char.isascii():
        return [char]
    out = [char, char.upper(), char * 3, unicodedata.normalize("NFD", char + "\u0301"), chr(ord(char) + 0xFEE0)]
    out += list(_LEET.get(char, ""))
    out += _LOOKALIKES.get(char, [])
    out += [char + z for z in _INVISIBLE]
    return out


@st.composite
def obfuscated(draw, entry: str) -> str:
    word = entry.strip("*")
    single_word = " " not in word and "-" not in word
    if single_word and draw(st.booleans()):
        separator = draw(st.sampled_from(_SEPARATORS))
        letters = [draw(st.sampled_from([c, c.upper(), *_LEET.get(c, "")])) for c in word]
        return separator.join(letters)
    return "".join(draw(st.sampled_from(_variants(c))) for c in word)


@pytest.mark.parametrize("entry", BLOCKED_ENTRIES)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(data=st.data())
def test_obfuscated_blocked_terms_are_caught(entry, data):
    variant = data.draw(obfuscated(entry), label="variant")
    template = data.draw(st.sampled_from(["{}", "a photo of {}, highly detailed", "{}!!", "(({})), 8k"]))
    text = template.format(variant)
    decision = decide_prompt(DEFAULT, text)
    assert decision.decision == "block", (text, decision.to_dict())
    for reason in decision.reasons:
        _assert_evidence_at_spans(text, reason)


def _assert_evidence_at_spans(text: str, reason: dict) -> None:
    """The evidence is the original text at the span (for a combination: each part at its own span)."""
    spans = reason.get("spans", [reason["span"]])
    parts = reason["evidence"].split(" + ") if "spans" in reason else [reason["evidence"]]
    assert [text[a:b] for a, b in spans] == parts


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text())
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once
    assert fold(fold(text)) == fold(text)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_arbitrary_unicode_never_crashes_and_spans_are_valid(text):
    positions = offsets(text)
    assert len(positions) == len(fold(text)) + 1
    assert positions == sorted(positions)
    for policy in POLICIES:
        out = decide_prompt(policy, text).to_dict()
        assert out["decision"] in ("allow", "blur", "review", "block")
        for reason in out["reasons"]:
            start, end = reason["span"]
            assert 0 <= start <= end <= len(text)
            _assert_evidence_at_spans(text, reason)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(["nude", "s3x", "n.u.d.e", "Joe Biden", "cat", "é", "\u200b", " ", "ß", "ﬁ"])))
def test_evidence_is_the_original_text_at_span(pieces):
    text = " ".join(pieces)
    for reason in decide_prompt(DEFAULT, text).reasons:
        _assert_evidence_at_spans(text, reason)
