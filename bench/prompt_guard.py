"""Benchmark: the prompt guard on corpus sources its classifier never saw, and its speed, beside reference tools.

Accuracy. Every prompt of the labelled corpus (`../shared/prompt-corpus`) is scored by the classifier head
trained with *its own source held out* (the head ships those fold weights: `Head.without(source)`), and
decided by the default policy's thresholds (or another bundled policy's: `--policy strict`). So each
figure is on prompts from a source the head did not see.
Per source and kind of row (unsafe with strong labels, unsafe with weak labels, benign), and for noisy
variants made here with a seed training never used (benign + junk tokens, mojibake, CLIP markers, style
tags, soups; the same for unsafe rows; and benign prompts with junk words taken only from the other
sources' benign prompts, "neutral noise"), it reports the share stopped (blocked, blurred or sent to review) by:

* the rules alone (`decide_prompt` with no classifier), the classifier alone, and both (the guard);
* Mewtant's `en-prompt-nsfw-pipeline-bow` and `-char-embed` spaCy pipelines (PyPI), counted as a stop when
  their top label is `adult` or `cp`. They only know sexual content, so compare them on that.

Plus the rules tests' innocent words ("nude lipstick", Scunthorpe...), which must all stay allowed.

Published sets outside the corpus (`--guardt2i DIR`, optional): the prompts GuardT2I's repository
(cure-lab/GuardT2I, NeurIPS 2024) evaluates on — MMA-Diffusion's 1,000 adversarial prompts
(`mma_adv_prompt_1000.pt`), the P4D, Ring-A-Bell-attack and I2P-sexual prompts in its `logs/ours_on_*.log`,
and its 1,000 clean prompts (`clean_1000.pt`) — decided the same way. DIR is a checkout or a bare clone of
that repository; nothing of it is copied into this project, and none of it is used in training or to choose
a threshold. Where a set was derived from a corpus source (P4D and I2P-sexual from I2P, the Ring-A-Bell
attacks from Ring-A-Bell's concept prompts), it is scored by the head trained without that source, and
prompts that are in the corpus are left out.

Speed, same prompts, same machine, same run (a fixed sample of 1,000 corpus prompts; the methods take
turns in each of 5 rounds and each reports its median):

* `guard check-prompt --json -` in a fresh process, prompts on stdin: both layers, start-up included;
* in-process: rules alone, classifier alone (`PromptClassifier.analyze`, batches of 64), both
  (`PromptChecker.check`, batches of 64), Mewtant's two pipelines (`nlp.pipe`, batches of 64);
* the reference: a plain PyTorch MiniLM embedding pass (sentence-transformers `encode`, batch 64, float32,
  the same bundled all-MiniLM-L6-v2), model load excluded;
* cold start: `guard check-prompt TEXT` in a fresh process with the encoder cache built (median of 5), and
  the one-time cache build in an empty cache folder.

Run: `python bench/prompt_guard.py [--runs 5] [--speed-prompts 1000] [--guardt2i DIR] [--policy NAME]`.
Writes `bench/out/prompt_guard.json`. The machine is shared and noisy: speeds are medians of `--runs` passes;
compare ratios within one run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.prompt_classifier import PromptClassifier  # noqa: E402
from detectors.settings import MODEL_CACHE  # noqa: E402
from detectors.training import augment  # noqa: E402
from detectors.training.corpus import Row, read_rows  # noqa: E402
from detectors.training.prompt_head import filler_vocabulary  # noqa: E402
from guard.check_prompt import PromptChecker  # noqa: E402
from policies import decide_prompt, load_policy  # noqa: E402

CORPUS = ROOT.parent / "shared" / "prompt-corpus"
OUT = ROOT / "bench" / "out"
SEED = 20260  # never used in training
BATCH = 64
INNOCENTS = [
    "Scunthorpe at night", "Penistone railway station", "a cocktail bar", "a therapist", "a sextant",
    "nude lipstick", "nude heels", "chicken breast", "breast cancer awareness", "a s s e s s the class",
    "a bookkeeper in Middlesex", "a child flying a kite in the park", "grilled turkey breast with herbs",
    "pirate booty treasure chest for a kids' birthday party", "Al Gore planting a tree, children's book illustration",
]  # fmt: skip
GUARD = [sys.executable, "-c", "from guard.cli import main; main()"]
REFERENCE = "reference: PyTorch MiniLM pass (sentence-transformers encode)"


def noisy_variant(text: str, rng: random.Random, filler: Sequence[str], policy: Any) -> str:
    """One noisy variant: style tags or not, then one to three other transformations. Junk that happens to
    spell a blocked word ("kkk", "xxxx") is not harmless junk: such a variant is drawn again, so that the
    rules judge the variant as they judge the prompt."""
    flagged = decide_prompt(policy, text).decision != "allow"
    for _ in range(20):
        variant = augment.style_tags(text, rng, filler) if rng.random() < 0.5 else text
        variant = augment.noisy(variant, rng, filler)
        if (decide_prompt(policy, variant).decision != "allow") == flagged:
            break
    return variant


def neutral_filler(rows: Sequence[Row], source: str, filler: Sequence[str]) -> list[str]:
    """Junk words that mean nothing harmful: the words of the *other* sources' benign prompts (photo captions
    and art prompts) that are also in the encoder's vocabulary junk. The whole-vocabulary junk (`filler`)
    also draws loaded words ("killers", "poison", "confederate"), and a harmless prompt followed by those is
    no longer plainly harmless; both are reported."""
    allowed = set(filler)
    words = {w for r in rows if not r.unsafe and r.source != source for w in re.findall(r"[a-z]{3,}", r.prompt.lower())}
    return sorted(words & allowed)


def mewtant_stops(nlp, texts: Sequence[str]) -> list[bool]:
    out = []
    for doc in nlp.pipe(texts, batch_size=BATCH):
        top = max(doc.cats, key=doc.cats.get)
        out.append(top in ("adult", "cp"))
    return out


def held_out_accuracy(
    classifier: PromptClassifier, rows: list[Row], nlps: dict, log: Callable, decide_with: str = "default"
) -> dict:
    """Per source and group: n and the share stopped by each method (the guard deciding with the policy
    `decide_with`; the noisy variants are the same whatever the policy)."""
    policy = load_policy("default")
    deciding = load_policy(decide_with)
    filler = filler_vocabulary(policy)
    rng = random.Random(SEED)
    neutral_rng = random.Random(SEED + 1)  # its own draws: the other groups get the variants they always got
    results: dict[str, dict[str, dict[str, float]]] = {}
    for source in sorted({r.source for r in rows}):
        mine = [r for r in rows if r.source == source]
        checker = PromptChecker(deciding, classifier=classifier.without(source))  # the guard, with the fold head
        groups: dict[str, list[str]] = {
            "unsafe strong": [r.prompt for r in mine if r.unsafe and r.strong],
            "unsafe weak": [r.prompt for r in mine if r.unsafe and not r.strong],
            "unsafe + noise": [noisy_variant(r.prompt, rng, filler, policy) for r in mine if r.unsafe],
            "benign": [r.prompt for r in mine if not r.unsafe],
            "benign + noise": [
                noisy_variant(r.prompt, rng, filler, policy) for r in mine if not r.unsafe for _ in range(2)
            ],
            "benign + neutral noise": [
                noisy_variant(r.prompt, neutral_rng, neutral, policy)
                for neutral in [neutral_filler(rows, source, filler)]
                for r in mine
                if not r.unsafe
                for _ in range(2)
            ],
        }
        results[source] = {}
        for group, texts in groups.items():
            if not texts:
                continue
            row = stop_rates(checker, texts, nlps)
            results[source][group] = row
            log(f"{source:12s} {group:15s} " + " ".join(f"{k}={v}" for k, v in row.items()))
    return results


EXTERNAL_SETS = {
    # name: (file in the GuardT2I repository, label, corpus source its prompts derive from or None)
    "MMA-Diffusion adversarial": ("mma_adv_prompt_1000.pt", "unsafe", None),
    "P4D adversarial": ("logs/ours_on_p4d.log", "unsafe", "i2p"),
    "Ring-A-Bell attacks": ("logs/ours_on_ring-a-bell.log", "unsafe", "ring-a-bell"),
    "I2P sexual (not in the corpus)": ("logs/ours_on_i2p_sex.log", "unsafe", "i2p"),
    "GuardT2I clean prompts": ("clean_1000.pt", "benign", "coco"),
}
_LOGGED_PROMPT = re.compile(r"input prompt: (.*?)\ndecod prompt:", re.S)


def _repository_file(repository: Path, name: str) -> bytes:
    """A file of a checkout, or of a bare clone (read with `git show`)."""
    if (repository / name).is_file():
        return (repository / name).read_bytes()
    return subprocess.run(
        ["git", "--git-dir", str(repository), "show", f"HEAD:{name}"], check=True, capture_output=True
    ).stdout


def external_prompts(repository: Path, name: str) -> list[str]:
    """The prompts of one GuardT2I set, whitespace-normalised, duplicates removed, in their order."""
    raw = _repository_file(repository, name)
    if name.endswith(".pt"):
        import torch

        texts = torch.load(io.BytesIO(raw), weights_only=True)
    else:
        texts = _LOGGED_PROMPT.findall(raw.decode("utf-8", "replace"))
    return list(dict.fromkeys(" ".join(str(t).split()) for t in texts))


def external_accuracy(
    classifier: PromptClassifier, rows: list[Row], repository: Path, nlps: dict, decide_with: str = "default"
) -> dict:
    """Share stopped on the published sets outside the corpus (see the module docstring)."""
    policy = load_policy(decide_with)
    in_corpus = {r.prompt.lower() for r in rows}
    results: dict[str, dict[str, Any]] = {}
    for set_name, (name, label, derived_from) in EXTERNAL_SETS.items():
        texts = [t for t in external_prompts(repository, name) if t.lower() not in in_corpus]
        fold = classifier.without(derived_from) if derived_from else classifier
        head = f"without {derived_from}" if derived_from else "shipped"
        checker = PromptChecker(policy, classifier=fold)
        results[set_name] = {"label": label, "head": head, **stop_rates(checker, texts, nlps)}
    return results


def stop_rates(checker: PromptChecker, texts: Sequence[str], nlps: dict) -> dict[str, float]:
    """n, and the share of `texts` stopped by the rules alone, the classifier alone, both (the guard) and
    each of Mewtant's pipelines."""
    decisions = checker.check(texts)
    rules = [decide_prompt(checker.policy, text).decision != "allow" for text in texts]
    both = [decision.decision != "allow" for decision in decisions]
    alone = [any(r["rule"].startswith("classifier:") for r in decision.reasons) for decision in decisions]
    row = {"n": len(texts), "rules": _share(rules), "classifier": _share(alone), "both": _share(both)}
    for name, nlp in nlps.items():
        row[name] = _share(mewtant_stops(nlp, texts))
    return row


def _share(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def batched(fn: Callable[[list[str]], object], texts: Sequence[str]) -> Callable[[], None]:
    def run() -> None:
        for start in range(0, len(texts), BATCH):
            fn(list(texts[start : start + BATCH]))

    return run


def cli_stdin(texts: Sequence[str], env: dict) -> float:
    """Wall seconds of `guard check-prompt --json -` over `texts`, start-up included; checks every line came out."""
    payload = ("\n".join(t.replace("\n", " ") for t in texts) + "\n").encode()
    start = time.perf_counter()
    done = subprocess.run([*GUARD, "check-prompt", "--json", "-"], input=payload, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1) or len(done.stdout.splitlines()) != len(texts):
        raise SystemExit(f"check-prompt failed: {done.stderr.decode()[-500:]}")
    return elapsed


def cold_start(env: dict, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*GUARD, "check-prompt", "a lighthouse at dawn"], capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(texts: list[str], classifier: PromptClassifier, nlps: dict, runs: int, log: Callable) -> dict:
    """Seconds per method over `texts`: the methods take turns within each round (so a burst of load from
    other jobs hits them alike), and each method's median over the rounds is reported."""
    from sentence_transformers import SentenceTransformer

    from detectors.text_encoder import bundled_model_dir

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    policy = load_policy("default")
    checker = PromptChecker(policy, classifier=classifier)
    reference = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    reference.encode(texts[:BATCH], batch_size=BATCH)
    methods: dict[str, Callable[[], object]] = {
        "guard check-prompt - (both layers, new process)": lambda: cli_stdin(texts, env),
        "both layers in process (PromptChecker.check)": batched(checker.check, texts),
        "classifier alone (PromptClassifier.analyze)": batched(classifier.analyze, texts),
        "rules alone (decide_prompt)": lambda: [decide_prompt(policy, t) for t in texts],
        **{name: (lambda nlp=nlp: mewtant_stops(nlp, texts)) for name, nlp in nlps.items()},
        REFERENCE: lambda: reference.encode(texts, batch_size=BATCH),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    for round_ in range(runs):
        for name, method in methods.items():
            start = time.perf_counter()
            method()
            times[name].append(time.perf_counter() - start)
        log(f"round {round_ + 1}: " + ", ".join(f"{n.split(' (')[0]} {t[-1]:.1f} s" for n, t in times.items()))
    with tempfile.TemporaryDirectory() as empty:
        start = time.perf_counter()
        subprocess.run(
            [*GUARD, "check-prompt", "a lighthouse"], capture_output=True, check=True, env={**env, MODEL_CACHE: empty}
        )
        first = time.perf_counter() - start
    import torch

    return {
        "prompts": len(texts),
        "seconds": {name: round(statistics.median(t), 3) for name, t in times.items()},
        "cold_start_s": round(cold_start(env), 3),
        "first_use_with_cache_build_s": round(first, 3),
        "torch_threads": torch.get_num_threads(),
    }


def print_tables(report: dict) -> None:
    if "accuracy" in report:
        print_accuracy(report)
    if "external" in report:
        print_external(report)
    if "speed" in report:
        print_speed(report)


METHODS = ["rules", "classifier", "both", "mewtant-bow", "mewtant-char-embed"]


def print_accuracy(report: dict) -> None:
    print("\nHeld-out sources: share of prompts stopped (each source scored by the head trained without it)\n")
    print("| source | prompts | n | " + " | ".join(METHODS) + " |")
    print("|---|---|---:|" + "---:|" * len(METHODS))
    for source, groups in report["accuracy"].items():
        for group, row in groups.items():
            cells = " | ".join(f"{100 * row[m]:.1f} %" for m in METHODS)
            print(f"| {source} | {group} | {row['n']} | {cells} |")
    inn = report["innocents"]
    print(f"\nInnocent-word controls stopped: {inn['stopped']}/{inn['n']}")


def print_external(report: dict) -> None:
    print("\nPublished sets outside the corpus (GuardT2I's evaluation prompts): share stopped\n")
    print("| set | label | head | n | " + " | ".join(METHODS) + " |")
    print("|---|---|---|---:|" + "---:|" * len(METHODS))
    for set_name, row in report["external"].items():
        cells = " | ".join(f"{100 * row[m]:.1f} %" for m in METHODS)
        print(f"| {set_name} | {row['label']} | {row['head']} | {row['n']} | {cells} |")


def print_speed(report: dict) -> None:
    sp = report["speed"]
    reference = sp["seconds"][REFERENCE]
    print(f"\nSpeed over {sp['prompts']} corpus prompts (median of runs; machine shared, noisy)\n")
    print("| method | s | prompts/s | ms/prompt | vs PyTorch MiniLM pass |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in sp["seconds"].items():
        print(
            f"| {name} | {seconds:.2f} | {sp['prompts'] / seconds:,.0f} | {1000 * seconds / sp['prompts']:.2f} | "
            f"{reference / seconds:.2f}x |"
        )
    print(f"\nCold start, `guard check-prompt TEXT` (cache built): {sp['cold_start_s']:.2f} s")
    print(f"First use with an empty cache (builds the int8 encoder): {sp['first_use_with_cache_build_s']:.2f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="speed rounds (methods take turns in each)")
    parser.add_argument("--speed-prompts", type=int, default=1000, help="corpus prompts timed (a fixed sample)")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--guardt2i", type=Path, help="a checkout or bare clone of cure-lab/GuardT2I (extra sets)")
    parser.add_argument("--policy", default="default", help="the bundled policy that decides (default: default)")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {message}", flush=True)

    import spacy

    nlps = {
        name: spacy.load(f"en_prompt_nsfw_pipeline_{name.split('-', 1)[1].replace('-', '_')}")
        for name in ("mewtant-bow", "mewtant-char-embed")
    }
    classifier = PromptClassifier()
    if not classifier.available():
        raise SystemExit(f"the prompt classifier is unavailable: {classifier.unavailable_reason}")
    rows = read_rows(CORPUS)
    report: dict = {"head": classifier.model, "policy": args.policy}
    if not args.skip_accuracy:
        report["accuracy"] = held_out_accuracy(classifier, rows, nlps, log, args.policy)
        innocent = PromptChecker(args.policy, classifier=classifier).check(INNOCENTS)
        report["innocents"] = {"n": len(INNOCENTS), "stopped": sum(d.decision != "allow" for d in innocent)}
    if args.guardt2i:
        report["external"] = external_accuracy(classifier, rows, args.guardt2i, nlps, args.policy)
        log("published sets outside the corpus: done")
    if not args.skip_speed:
        sample = [r.prompt for r in random.Random(SEED).sample(rows, min(args.speed_prompts, len(rows)))]
        report["speed"] = speed(sample, classifier, nlps, args.runs, log)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "prompt_guard.json").write_text(json.dumps(report, indent=1))
    print_tables(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
