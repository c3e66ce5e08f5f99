"""Benchmark: prompts per second through the default policy, against naive per-term regex matching.

Generates a reproducible mix of a few thousand realistic prompts (benign Stable-Diffusion-style prompts of
10-60 words, prompts with a blocked word, the same with the word obfuscated, prompts naming a public
figure), then times, single process pinned to one core:

* guard: `decide_prompt` (normalisation, matching, spans mapped back to the original text);
* guard + to_dict: the same plus the readable `normalized` form, as the CLI and the server return it;
* naive loop: one precompiled `\\bterm\\b` regex per policy entry on the lower-cased prompt;
* naive alternation: all entries in one precompiled `\\b(?:a|b|...)\\b` regex;
* reference tools, when installed: flashtext (a keyword trie) and better_profanity (a profanity filter
  that also generates leetspeak variants), loaded with the same entries.

It also reports how many obfuscated prompts each method catches and how many innocent "trap" prompts
(Scunthorpe, cocktail, nude lipstick...) it flags. Run: `python bench/prompts.py [--n 5000] [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import time
from collections.abc import Callable

from policies import decide_prompt, load_policy
from policies.loader import DATA_DIR, _load_name_list

SUBJECTS = [
    "a portrait of an old fisherman", "a cozy cabin in the woods", "a cyberpunk street market", "a red fox",
    "a lighthouse on a cliff", "an astronaut riding a horse", "a bowl of ramen", "a medieval castle",
    "a young woman reading in a cafe", "a samurai under cherry blossoms", "a futuristic city skyline",
    "a golden retriever puppy", "a steampunk airship", "a dragon curled around a tower", "a vintage car",
    "a mountain lake at sunrise", "a wizard casting a spell", "a robot gardener", "a knight in armor",
    "a jazz band in a smoky bar", "a child flying a kite", "a cup of coffee on a wooden table",
    "an owl in the snow", "a busy train station in Tokyo", "a sailboat in a storm", "a field of sunflowers",
]  # fmt: skip
SETTINGS = [
    "at golden hour", "in the rain", "at night with neon lights", "in a misty forest", "on a snowy peak",
    "in a sunlit meadow", "underwater", "in outer space", "in a Victorian library", "on a busy street",
    "by the sea", "in a desert at dusk", "in an abandoned factory", "in a zen garden",
]  # fmt: skip
STYLES = [
    "highly detailed", "8k", "photorealistic", "cinematic lighting", "volumetric light", "octane render",
    "unreal engine 5", "trending on artstation", "digital painting", "concept art", "sharp focus",
    "depth of field", "bokeh", "35mm photo", "oil painting", "watercolor", "studio ghibli style",
    "by greg rutkowski", "by alphonse mucha", "by james gurney", "masterpiece", "best quality",
    "dramatic clouds", "soft shadows", "ultra realistic", "intricate", "elegant", "symmetrical",
    "wide angle", "hdr", "matte painting", "4k wallpaper", "film grain", "kodak portra 400",
]  # fmt: skip
TRAPS = [
    "Scunthorpe town centre at dusk", "a cocktail bar in Penistone", "a therapist's office, soft light",
    "an antique sextant on a map", "nude lipstick and nude heels, fashion photo", "grilled chicken breast",
    "pink ribbon for breast cancer awareness", "a class assessing essays in Essex", "a bookkeeper at work",
    "a peacock in a garden", "a shuttlecock on grass", "the annals of Rome", "spices in a market",
]  # fmt: skip
BLOCKED = ["nude", "naked", "porn", "sex", "topless", "hentai", "gore", "decapitated", "swastika", "suicide",
           "nsfw", "erotic", "bare breasts", "sieg heil", "self-harm"]  # fmt: skip
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "$", "t": "7"}
LOOKALIKE = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і"}


def obfuscate(word: str, rng: random.Random) -> str:
    """One of the usual tricks: leetspeak, spacing, look-alike letters, invisible characters, stretching."""
    trick = rng.choice(["leet", "spaced", "lookalike", "zero-width", "stretch", "fullwidth"])
    if trick == "leet":
        return "".join(LEET.get(c, c) if rng.random() < 0.6 else c for c in word)
    if trick == "spaced" and " " not in word:
        return rng.choice([" ", ".", "-", "*"]).join(word)
    if trick == "lookalike":
        return "".join(LOOKALIKE.get(c, c) for c in word)
    if trick == "zero-width":
        return "\u200b".join(word)
    if trick == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in word)
    index = next((i for i, c in enumerate(word) if c in "aeiou"), 0)
    return word[: index + 1] + word[index] * rng.randint(2, 5) + word[index + 1 :]


def benign(rng: random.Random) -> str:
    words = [rng.choice(SUBJECTS), rng.choice(SETTINGS)]
    target = rng.randint(10, 60)
    while sum(len(w.split()) for w in words) < target:
        words.append(rng.choice(STYLES))
    return ", ".join(words)


def make_mix(n: int, seed: int = 7) -> dict[str, list[str]]:
    rng = random.Random(seed)
    names = _load_name_list("public_figures", DATA_DIR / "default.yaml", "")
    mix: dict[str, list[str]] = {"benign": [], "blocked": [], "obfuscated": [], "public figure": [], "trap": []}
    for _ in range(n):
        roll = rng.random()
        prompt = benign(rng)
        if roll < 0.70:
            mix["benign"].append(prompt)
        elif roll < 0.78:
            mix["blocked"].append(f"{rng.choice(BLOCKED)} {prompt}")
        elif roll < 0.86:
            mix["obfuscated"].append(f"{prompt}, {obfuscate(rng.choice(BLOCKED), rng)}")
        elif roll < 0.94:
            mix["public figure"].append(f"photo of {rng.choice(names)}, {prompt}")
        else:
            mix["trap"].append(f"{rng.choice(TRAPS)}, {prompt}")
    return mix


def naive_entries(policy) -> list[str]:
    names = _load_name_list("public_figures", DATA_DIR / "default.yaml", "")
    entries = {e.strip("*").lower() for c in policy.categories.values() if c.action != "allow"
               for e in (*c.prompt.terms, *c.prompt.phrases)}  # fmt: skip
    return sorted(entries | {n.lower() for n in names})


def _any_match(patterns: list[re.Pattern[str]], text: str) -> bool:
    return any(pattern.search(text) for pattern in patterns)


def timed(fn: Callable[[str], bool], prompts: list[str], repeats: int) -> float:
    """Median seconds for one pass over `prompts`."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for prompt in prompts:
            fn(prompt)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def reference_tools(entries: list[str]) -> dict[str, tuple[Callable[[str], bool], int]]:
    """Off-the-shelf matchers loaded with the same entries: flashtext (keyword trie) and better_profanity
    (profanity filter with leetspeak variants). Each comes with how many prompts to time it on (the slow one
    gets a sample). Missing packages are skipped with a note."""
    tools: dict[str, tuple[Callable[[str], bool], int]] = {}
    try:
        from flashtext import KeywordProcessor
    except ImportError:
        print("note: flashtext is not installed; skipping it (pip install flashtext)")
    else:
        keywords = KeywordProcessor()
        keywords.add_keywords_from_list(entries)
        tools["flashtext keywords"] = (lambda p: bool(keywords.extract_keywords(p)), 0)
    try:
        from better_profanity import profanity
    except ImportError:
        print("note: better_profanity is not installed; skipping it (pip install better-profanity)")
    else:
        profanity.load_censor_words(entries)
        tools["better_profanity"] = (profanity.contains_profanity, 300)
    return tools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of prompts in the mix")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (the median is reported)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    policy = load_policy("default")
    mix = make_mix(args.n)
    prompts = [p for group in mix.values() for p in group]
    random.Random(1).shuffle(prompts)
    words = sum(len(p.split()) for p in prompts) / len(prompts)

    entries = naive_entries(policy)
    per_term = [re.compile(rf"\b{re.escape(e)}\b") for e in entries]
    alternation = re.compile(r"\b(?:" + "|".join(re.escape(e) for e in sorted(entries, key=len, reverse=True)) + r")\b")

    methods: dict[str, tuple[Callable[[str], bool], int]] = {
        "guard decide_prompt": (lambda p: decide_prompt(policy, p).decision != "allow", 0),
        "guard + to_dict (CLI/server)": (lambda p: decide_prompt(policy, p).to_dict()["decision"] != "allow", 0),
        "naive per-term regex loop": (lambda p: _any_match(per_term, p.lower()), 0),
        "naive one alternation regex": (lambda p: alternation.search(p.lower()) is not None, 0),
        **reference_tools(entries),
    }
    for fn, _ in methods.values():  # warm caches (translation tables, compiled regexes)
        for p in prompts[:50]:
            fn(p)

    print(f"{len(prompts)} prompts, mean {words:.1f} words; {len(entries)} policy entries; one core, median of "
          f"{args.repeats} passes (methods marked * are timed on a sample, once)")  # fmt: skip
    print("mix: " + ", ".join(f"{k} {len(v)}" for k, v in mix.items()))
    header = f"{'method':<30} {'prompts/s':>10} {'us/prompt':>10} {'vs naive loop':>14} " \
             f"{'obfuscated caught':>18} {'traps flagged':>14}"  # fmt: skip
    print(header)
    print("-" * len(header))
    per_prompt = {}
    for name, (fn, sample) in methods.items():
        chosen = prompts[:sample] if sample else prompts
        per_prompt[name] = timed(fn, chosen, 1 if sample else args.repeats) / len(chosen)
    baseline = per_prompt["naive per-term regex loop"]
    for name, (fn, sample) in methods.items():
        seconds = per_prompt[name]
        caught = sum(fn(p) for p in mix["obfuscated"])
        traps = sum(fn(p) for p in mix["trap"])
        label = f"{name}{' *' if sample else ''}"
        print(f"{label:<30} {1 / seconds:>10,.0f} {seconds * 1e6:>10.1f} {baseline / seconds:>13.1f}x "
              f"{caught:>8}/{len(mix['obfuscated']):<9} {traps:>6}/{len(mix['trap']):<7}")  # fmt: skip


if __name__ == "__main__":
    main()
