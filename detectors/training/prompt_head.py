"""Train the prompt classifier's head, calibrate it with whole sources held out, and write it as package data.

    python -m detectors.training.prompt_head [--corpus ../shared/prompt-corpus] [--out detectors/data]

Reproducible: fixed seeds, deterministic L-BFGS from zero weights, the encoder's cached int8 graph (the one
`guard check-prompt` runs); the head's metadata records the corpus SHA-256, the encoder's identity, every
training setting and the calibration figures.

Steps:

1. Training texts. Every corpus row, plus noisy variants of every row, benign and unsafe alike
   (`detectors.training.augment`): style tags added and stripped, junk appended, mojibake, CLIP markers,
   weights, soups, and a fragment alone and buried in junk (for unsafe rows, the words around a match of
   the default policy's rules; for benign rows, any few words). Plus short texts made from the default
   policy's own entries: its sexual, gore, self-harm and hate terms in plain carriers as positives, each
   with a benign twin (the same carrier and subject with a harmless word instead), and its exception
   phrases ("nude lipstick") as negatives, so that a short plain caption is read for its content, not its
   length. Filler words for the junk come from
   the encoder's vocabulary minus every word the policy's rules match, so no source lends its vocabulary to
   another.
2. Labels: the corpus's sexual / violence / self-harm / hate map to sexual / gore / self_harm / hate. For a
   label, its unsafe rows are positives, benign rows negatives; unsafe rows of other labels do not count.
   Rows the corpus marks `weak` (the text often reads harmless) count `WEAK_WEIGHT`; positives are weighted
   up to balance the negatives.
3. Leave one source out: for each of the five sources, a head trained on the other four scores the
   held-out source's rows and their variants. Those held-out scores fit the calibration (a logistic map per
   label) and give the recommended thresholds for each bundled policy (`TARGETS`): the lowest per-label
   thresholds at which all labels together stop at most that share of held-out benign prompts and of
   their noisy variants; and the lower sexual threshold counted only with a minor word
   (`together_with: [mentions_minors]`): above every held-out benign prompt that mentions a minor, and
   reached by at most `TOGETHER_SHARE` of their noisy variants. The figures per held-out source are
   recorded.
4. The final head is trained on everything and written with its calibration.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.prompt_classifier import DATA_DIR, FORMAT, HEAD_NAME, calibrate, instances
from detectors.text_encoder import TextEncoder, bundled_model_dir
from detectors.training import augment, mil
from detectors.training.corpus import LABELS, Row, read_rows, sha256

SEED = 13
WINDOW = 6
TAU = 4.0
L2 = 1e-4
WEAK_WEIGHT = 0.3
POLICY_WEIGHT = 0.5
TARGETS = {"default": (0.01, 0.02), "strict": (0.02, 0.05)}
"""Per bundled policy (`dataset` takes strict's): the most held-out benign prompts, and noisy variants of
them, that all labels together may stop."""
TOGETHER_SHARE = {"default": 0.05, "strict": 0.10}
"""Per bundled policy: the share of held-out noisy benign prompts mentioning a minor that may reach the
sexual threshold counted together with `mentions_minors`."""
OPTIMISERS = {"lbfgs": mil.fit, "adam": mil.fit_adam}
"""How the head is fitted: `lbfgs` (shipped: to the minimum) or `adam` (early-stopped; measured, not shipped)."""
POLICY_LABELS = {"sexual": "sexual", "gore": "gore", "self_harm": "self_harm", "hate": "hate"}
"""Default-policy category -> label, for the texts made from the policy's entries."""
SUBJECTS = (
    "a woman", "a man", "two people", "a young couple", "an artist's model", "a person on a beach", "a dancer",
    "a figure in a bedroom", "a crowd at a festival", "a soldier", "a statue", "an old man", "a nurse",
    "people in a bathhouse", "a model in a studio", "a woman in a forest", "a man in a kitchen", "a student",
)  # fmt: skip
CARRIERS = ("{x}", "{s}, {x}", "{x}, {s}", "{s} {x}", "{x} {s}, highly detailed", "photo of {s}, {x}", "{s} with {x}")
DEFAULT_CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "prompt-corpus"


@dataclass(frozen=True)
class Sample:
    """One training text: a corpus row or one of its variants, or a text made from the policy's entries."""

    text: str
    kind: str
    source: str
    labels: tuple[str, ...]
    unsafe: bool
    weight: float
    row: int = -1


def filler_vocabulary(policy: Any) -> list[str]:
    """Encoder vocabulary words (3+ letters) that no rule of `policy` matches: junk that says nothing."""
    words = (w.strip() for w in (bundled_model_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines())
    return [w for w in words if re.fullmatch(r"[a-z]{3,}", w) and not policy._matcher.find(w)]


def corpus_samples(rows: Sequence[Row], policy: Any, rng: random.Random, filler: Sequence[str]) -> list[Sample]:
    """Every row and its noisy variants (the same recipe for benign and unsafe rows)."""
    from policies import decide_prompt

    out: list[Sample] = []
    for index, row in enumerate(rows):
        weight = 1.0 if row.strong else WEAK_WEIGHT

        def add(text: str, kind: str, row: Row = row, weight: float = weight, index: int = index) -> None:
            out.append(Sample(text, kind, row.source, row.labels, row.unsafe, weight, index))

        text = row.prompt
        stripped = augment.strip_tags(text)
        add(text, "orig")
        add(augment.style_tags(text, rng, filler), "tags")
        add(augment.noisy(augment.style_tags(text, rng, filler), rng, filler), "tags_noisy")
        add(stripped if stripped != text else augment.noisy(text, rng, filler), "strip")
        add(augment.noisy(text, rng, filler), "noisy")
        add(augment.noisy(stripped, rng, filler), "noisy")
        add(augment.soup(text, rng, filler), "soup")
        # A fragment on its own and buried in junk: around a rule match (unsafe rows: the part known to be
        # unsafe), or any few words of a benign row, so that short texts are read for what they say.
        spans = [tuple(r["span"]) for r in decide_prompt(policy, text).reasons if "span" in r]
        words = text.split()
        if spans:
            fragment = augment.fragment_around(text, rng.choice(spans), rng)
        elif not row.unsafe:
            start = rng.randint(0, max(0, len(words) - 3))
            fragment = " ".join(words[start : start + rng.randint(2, 6)])
        else:
            continue
        add(augment.bury(fragment, rng, filler), "bury")
        add(fragment, "fragment")
    return out


def policy_samples(policy: Any, rng: random.Random, filler: Sequence[str]) -> list[Sample]:
    """Short texts from the policy's own entries: its terms (positives) and exception phrases (negatives).

    Each positive has a benign twin in the same carrier with the same subject and a harmless filler word
    instead of the entry, so that a short carrier text says nothing by itself."""
    out: list[Sample] = []
    for category, label in POLICY_LABELS.items():
        rules = policy.categories[category].prompt
        for entry in [t.strip("*") for t in rules.terms] + list(rules.phrases):
            for carrier in rng.sample(CARRIERS, 3):
                subject = rng.choice(SUBJECTS)
                out.append(
                    Sample(carrier.format(x=entry, s=subject), "policy", "policy", (label,), True, POLICY_WEIGHT)
                )
                twin = carrier.format(x=" ".join(rng.sample(filler, rng.choice((1, 1, 2)))), s=subject)
                out.append(Sample(twin, "policy", "policy", (), False, POLICY_WEIGHT))
    for category in policy.categories.values():
        for phrase in category.exceptions.phrases:
            for carrier in rng.sample(CARRIERS, 2):
                text = carrier.format(x=phrase, s=rng.choice(SUBJECTS))
                out.append(Sample(text, "policy", "policy", (), False, POLICY_WEIGHT))
    out += [
        Sample(augment.noisy(s.text, rng, filler), "policy_noisy", s.source, s.labels, s.unsafe, s.weight)
        for s in list(out)
    ]
    return out


def training_samples(rows: Sequence[Row], policy: Any) -> list[Sample]:
    """Every training text, in the trainer's order and with its seed: corpus rows with their variants, then
    the policy's texts."""
    rng = random.Random(SEED)
    filler = filler_vocabulary(policy)
    return corpus_samples(rows, policy, rng, filler) + policy_samples(policy, rng, filler)


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def embed(samples: Sequence[Sample], encoder: TextEncoder, log: Any = None, cache: Path | None = None) -> mil.Bags:
    """The instances of every sample's text (sentence embedding and token windows), stacked as bags.

    With `cache`, instances are kept per text in that .npz file (float16, keyed by a hash of the text and
    tied to the encoder's identity and the window), so a later run (or the benchmark) encodes only new texts."""
    identity = json.dumps([encoder.identity.to_dict(), WINDOW])
    known: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if str(stored["identity"]) == identity:
                X, starts = stored["X"], stored["starts"]
                ends = np.append(starts[1:], len(X))
                known = {str(k): X[a:b] for k, a, b in zip(stored["keys"], starts, ends, strict=True)}
    keys = [_text_key(s.text) for s in samples]
    missing = sorted({k: s.text for k, s in zip(keys, samples, strict=True) if k not in known}.items())
    started = time.monotonic()
    for begin in range(0, len(missing), 256):
        batch = missing[begin : begin + 256]
        for (key, _), encoding in zip(batch, encoder.encode([t for _, t in batch]), strict=True):
            known[key] = instances(encoding, WINDOW)[0].astype(np.float16)
        if log and (begin // 256) % 10 == 9:
            done = min(begin + 256, len(missing))
            log(f"embedded {done}/{len(missing)} new texts ({time.monotonic() - started:.0f} s)")
    blocks = [known[k] for k in keys]
    sizes = np.array([len(b) for b in blocks])
    bags = mil.Bags(np.concatenate(blocks).astype(np.float32), np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    if cache is not None and missing:
        cache.parent.mkdir(parents=True, exist_ok=True)
        order = sorted(known)
        parts = [known[k] for k in order]
        lengths = np.array([len(p) for p in parts])
        np.savez(
            cache,
            identity=np.array(identity),
            keys=np.array(order),
            X=np.concatenate(parts),
            starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
        )
    return bags


def targets_and_weights(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """Per sample and label: 1/0, and the weight (0 for unsafe samples of other labels; positives balanced)."""
    targets = np.array([[label in s.labels for label in LABELS] for s in samples], dtype=np.float64)
    unsafe = np.array([s.unsafe for s in samples])
    base = np.array([s.weight for s in samples])[:, None] * np.ones((1, len(LABELS)))
    weights = np.where(unsafe[:, None] & (targets == 0), 0.0, base)
    for j in range(len(LABELS)):
        positive = weights[:, j] * targets[:, j]
        if positive.sum() > 0:
            weights[:, j] = np.where(
                targets[:, j] > 0,
                weights[:, j] * (weights[:, j] * (1 - targets[:, j])).sum() / positive.sum(),
                weights[:, j],
            )
    return targets, weights


def fit_head(bags: mil.Bags, samples: Sequence[Sample], optimiser: str = "lbfgs") -> tuple[np.ndarray, np.ndarray]:
    targets, weights = targets_and_weights(samples)
    return OPTIMISERS[optimiser](bags, targets, weights, l2=L2, tau=TAU)


def cross_validate(
    bags: mil.Bags, samples: Sequence[Sample], log: Any = None, optimiser: str = "lbfgs"
) -> dict[str, np.ndarray]:
    """Raw held-out scores per corpus sample (texts, labels), each from the head trained without its source;
    also returns the fold heads (`weights:<source>`, `bias:<source>`)."""
    sources = sorted({s.source for s in samples if s.source != "policy"})
    raw = np.full((len(samples), len(LABELS)), np.nan, np.float32)
    out: dict[str, np.ndarray] = {}
    source_of = np.array([s.source for s in samples])
    for held in sources:
        train = np.flatnonzero(source_of != held)
        test = np.flatnonzero(source_of == held)
        started = time.monotonic()
        w, b = fit_head(bags.subset(train), [samples[i] for i in train], optimiser)
        raw[test] = mil.scores(bags.subset(test), w, b, TAU)
        out[f"weights:{held}"], out[f"bias:{held}"] = w, b
        if log:
            log(f"fold without {held}: trained on {len(train)} texts in {time.monotonic() - started:.0f} s")
    out["raw"] = raw
    return out


def pooled_calibration(raw: np.ndarray, samples: Sequence[Sample]) -> np.ndarray:
    """Per label (a, b) of sigmoid(a * raw + b), fitted on the pooled held-out scores, unchecked."""
    targets, weights = targets_and_weights(samples)
    keep = np.array([s.source != "policy" for s in samples])
    return np.array([mil.platt(raw[keep, j], targets[keep, j], weights[keep, j]) for j in range(len(LABELS))])


class BackwardsCalibration(ValueError):
    """Held-out scores rank a label's unsafe texts below benign ones: the head must not ship."""


def fit_calibration(raw: np.ndarray, samples: Sequence[Sample]) -> np.ndarray:
    """`pooled_calibration`, refusing a slope `a` that is not positive.

    Most corpus sources hold one class only (Nibbler and I2P unsafe, Parti and COCO benign), so a model
    that learns what the training sources look like rather than what they say gives each held-out source a
    score set by its style; a logistic map fitted on those pooled scores may then turn them upside down and
    look near perfect (a character n-gram model did: "100 %" of held-out Nibbler by ranking it *below*
    held-out Parti). A real harm score rises with harm."""
    calibration = pooled_calibration(raw, samples)
    backwards = [label for label, (slope, _) in zip(LABELS, calibration, strict=True) if slope <= 0]
    if backwards:
        raise BackwardsCalibration(
            f"held-out scores for {', '.join(backwards)} fall as harm rises (calibration slope <= 0): the head "
            "tells the corpus's sources apart instead of reading their content; it was not written."
        )
    return calibration


def _benign(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """Masks of held-out benign corpus texts: the rows themselves, and their noisy variants."""
    benign = np.array([not s.unsafe and s.source != "policy" for s in samples])
    plain = benign & np.array([s.kind == "orig" for s in samples])
    return plain, benign & ~plain


def recommend_thresholds(
    scores: np.ndarray, samples: Sequence[Sample], target_benign: float, target_noisy: float
) -> dict[str, float]:
    """The lowest thresholds (one share of false stops for every label) meeting both benign targets together."""
    plain, noisy = _benign(samples)
    best = {label: 1.0 for label in LABELS}
    for share in np.linspace(target_benign / 20, 2 * target_benign, 80):
        noisy_share = share * target_noisy / target_benign
        thresholds = {
            label: float(
                max(np.quantile(scores[plain, j], 1 - share), np.quantile(scores[noisy, j], 1 - noisy_share), 0.05)
            )
            for j, label in enumerate(LABELS)
        }
        stopped = np.zeros(len(samples), bool)
        for j, label in enumerate(LABELS):
            stopped |= scores[:, j] >= thresholds[label]
        if stopped[plain].mean() <= target_benign and stopped[noisy].mean() <= target_noisy:
            best = thresholds
    return {label: round(min(value + 0.005, 0.99), 2) for label, value in best.items()}


def together_threshold(scores: np.ndarray, samples: Sequence[Sample], mentions: np.ndarray, share: float) -> float:
    """The sexual threshold counted only with a minor word: above every held-out benign text that mentions
    one (`mentions`), and reached by at most `share` of their noisy variants."""
    plain, noisy = _benign(samples)
    sexual = scores[:, LABELS.index("sexual")]
    rows, variants = sexual[plain & mentions], sexual[noisy & mentions]
    if not rows.size or not variants.size:
        return 0.99  # nothing to read it from: as good as off
    value = max(float(rows.max()) + 0.01, float(np.quantile(variants, 1 - share)))
    return round(min(value + 0.005, 0.99), 2)


def figures(
    scores: np.ndarray, samples: Sequence[Sample], thresholds: dict[str, float], rules: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Per held-out source and kind of row: how many, and the share stopped by the classifier alone and by
    classifier or rules."""
    stopped = np.zeros(len(samples), bool)
    for j, label in enumerate(LABELS):
        stopped |= scores[:, j] >= thresholds[label]
    out: dict[str, dict[str, Any]] = {}
    for source in sorted({s.source for s in samples if s.source != "policy"}):
        groups: dict[str, np.ndarray] = {}
        for name, test in (
            ("unsafe_strong", lambda s: s.unsafe and s.weight == 1.0 and s.kind == "orig"),
            ("unsafe_weak", lambda s: s.unsafe and s.weight < 1.0 and s.kind == "orig"),
            ("unsafe_noisy", lambda s: s.unsafe and s.kind != "orig"),
            ("benign", lambda s: not s.unsafe and s.kind == "orig"),
            ("benign_noisy", lambda s: not s.unsafe and s.kind != "orig"),
        ):
            groups[name] = np.array([s.source == source and test(s) for s in samples])
        out[source] = {
            name: {
                "n": int(mask.sum()),
                "classifier": round(float(stopped[mask].mean()), 4),
                "both": round(float((stopped | rules)[mask].mean()), 4),
            }
            for name, mask in groups.items()
            if mask.sum()
        }
    return out


def operating_points(scores: np.ndarray, samples: Sequence[Sample]) -> dict[str, list[dict[str, float]]]:
    """Per label, for a range of thresholds: held-out recall on that label's strong rows and the false-stop
    rate on benign rows and on their noisy variants."""
    benign = np.array([not s.unsafe and s.source != "policy" for s in samples])
    plain = benign & np.array([s.kind == "orig" for s in samples])
    out: dict[str, list[dict[str, float]]] = {}
    for j, label in enumerate(LABELS):
        positive = np.array([label in s.labels and s.weight == 1.0 and s.kind == "orig" for s in samples])
        out[label] = [
            {
                "threshold": t,
                "recall_strong": round(float((scores[positive, j] >= t).mean()), 4) if positive.any() else None,
                "false_stops_benign": round(float((scores[plain, j] >= t).mean()), 4),
                "false_stops_noisy": round(float((scores[benign & ~plain, j] >= t).mean()), 4),
            }
            for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
        ]
    return out


def train(
    corpus: Path, out_dir: Path, log: Any = print, cache: Path | None = None, optimiser: str = "lbfgs"
) -> dict[str, Any]:
    """The whole procedure; writes `<out_dir>/prompt_head.{npz,json}` and returns the metadata."""
    from policies import decide_prompt, load_policy, matched_categories
    from policies.loader import DATA_DIR as POLICY_DIR

    rows = read_rows(corpus)
    policy = load_policy("default")
    samples = training_samples(rows, policy)
    log(f"{len(rows)} corpus rows -> {len(samples)} training texts")
    encoder = TextEncoder.load()
    bags = embed(samples, encoder, log, cache)
    folds = cross_validate(bags, samples, log, optimiser)
    corpus_mask = np.array([s.source != "policy" for s in samples])
    calibration = fit_calibration(folds["raw"], samples)
    held_out = calibrate(folds["raw"], calibration)
    held_out[~corpus_mask] = 0.0
    recommended = {name: recommend_thresholds(held_out, samples, *targets) for name, targets in TARGETS.items()}
    thresholds = recommended["default"]
    mentions = np.array(["mentions_minors" in matched_categories(policy, s.text) for s in samples])
    together = {name: together_threshold(held_out, samples, mentions, share) for name, share in TOGETHER_SHARE.items()}
    rules = np.array([decide_prompt(policy, s.text).decision != "allow" for s in samples])
    w, b = fit_head(bags, samples, optimiser)

    examples = [i for i, s in enumerate(samples) if s.kind == "orig" and s.unsafe]
    vectors = np.stack([bags.X[bags.starts[i]] for i in examples]).astype(np.float16)
    example_labels = np.array([[label in samples[i].labels for label in LABELS] for i in examples])
    metadata = {
        "format": FORMAT,
        "labels": list(LABELS),
        "window": WINDOW,
        "tau": TAU,
        "encoder": encoder.identity.to_dict(),
        "example_ids": [rows[samples[i].row].id for i in examples],
        "trained": {
            "corpus_sha256": sha256(corpus),
            "corpus_rows": len(rows),
            "policy_sha256": hashlib.sha256((POLICY_DIR / "default.yaml").read_bytes()).hexdigest(),
            "training_texts": len(samples),
            "seed": SEED,
            "l2": L2,
            "optimiser": optimiser,
            "weak_weight": WEAK_WEIGHT,
            "policy_text_weight": POLICY_WEIGHT,
            "versions": _versions(),
        },
        "calibration": {
            "method": "leave one source out; logistic map per label fitted on the held-out scores",
            "targets": {name: {"benign": b, "benign_noisy": n} for name, (b, n) in TARGETS.items()},
            "recommended_thresholds": thresholds,
            "recommended_thresholds_strict": recommended["strict"],
            "recommended_together_with_minors": together,
            "held_out": figures(held_out, samples, thresholds, rules),
            "operating_points": operating_points(held_out, samples),
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted({s.source for s in samples if s.source != "policy"})
    metadata["fold_sources"] = sources
    np.savez_compressed(
        out_dir / f"{HEAD_NAME}.npz",
        weights=w,
        bias=b,
        fold_weights=np.stack([folds[f"weights:{s}"] for s in sources]),
        fold_bias=np.stack([folds[f"bias:{s}"] for s in sources]),
        calibration=calibration,
        example_vectors=vectors,
        example_labels=example_labels,
    )
    (out_dir / f"{HEAD_NAME}.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    return metadata


def _versions() -> dict[str, str]:
    import onnxruntime
    import scipy
    import tokenizers

    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "onnxruntime": onnxruntime.__version__,
        "tokenizers": tokenizers.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder holding corpus.jsonl")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="where to write prompt_head.{npz,json}")
    parser.add_argument("--cache", type=Path, default=None, help="keep the texts' encoder instances in this .npz")
    parser.add_argument(
        "--optimiser",
        choices=sorted(OPTIMISERS),
        default="lbfgs",
        help="lbfgs (shipped: to the minimum, L2 1e-4) or adam (4 early-stopped epochs; measured, not shipped)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        metadata = train(
            args.corpus,
            args.out,
            log=lambda m: print(f"[{time.monotonic() - started:6.0f} s] {m}", flush=True),
            cache=args.cache,
            optimiser=args.optimiser,
        )
    except BackwardsCalibration as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    calibration = metadata["calibration"]
    for key in ("recommended_thresholds", "recommended_thresholds_strict", "recommended_together_with_minors"):
        print(key, json.dumps(calibration[key]))
    for source, groups in metadata["calibration"]["held_out"].items():
        print(source, {k: (v["n"], v["classifier"], v["both"]) for k, v in groups.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
