"""Probe: does a character n-gram scorer carry over to prompt sources it never saw? (Answer: no.)

Not a benchmark of the shipped guard (`bench/prompt_guard.py` is): an experiment behind a choice not made.
The issue names character n-grams as one kind of local evidence; MMA-Diffusion's glued word pieces look
like their natural prey. This trains, on the trainer's very texts and weights (corpus rows, noisy variants,
policy texts: `detectors.training.prompt_head`), a per-label logistic regression on hashed character 3-5-grams
(`DIM` buckets, L2-normalised binary counts) for each L2 strength given, leave one source out as the head
is, and reports per held-out source the mean raw sexual score of its sexual rows (unsafe sources) or of its
benign rows (benign sources), beside the shipped head's fold scores; then the slope of the logistic map
fitted on the pooled held-out scores (the trainer's calibration) and the held-out share of strong unsafe
rows stopped at thresholds set for 1 % of benign rows and 2 % of their noisy variants.

A scorer that reads content ranks every held-out unsafe source above every held-out benign one. The
n-gram scorers rank held-out *benign* sources highest; the calibration then fits a negative slope and the
"recall" comes out near 100 %: the map has learnt which source is which, not what is harmful. The trainer
now refuses such a head (`BackwardsCalibration`).

    python bench/prompt_char_probe.py [--l2 1e-4 1e-3 1e-2] [--cache FILE]

`--cache` is the trainer's instance cache (`python -m detectors.training.prompt_head --cache FILE`), to skip
re-encoding 36,000 texts for the shipped head's column. About 4 minutes per L2 on two cores, plus encoding.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
import zlib
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.prompt_classifier import Head, calibrate  # noqa: E402
from detectors.text_encoder import TextEncoder  # noqa: E402
from detectors.training import mil  # noqa: E402
from detectors.training import prompt_head as trainer  # noqa: E402
from detectors.training.corpus import LABELS, read_rows  # noqa: E402
from policies import decide_prompt, load_policy  # noqa: E402

DIM = 2**18
GRAMS = (3, 4, 5)
SHOWN = ("nibbler", "i2p", "ring-a-bell", "parti", "coco")


def ngram_matrix(texts: list[str]) -> sparse.csr_matrix:
    """Hashed character n-grams of each text (lower-cased, NFKC, non-alphanumerics as one space)."""
    indptr, indices = [0], []
    for text in texts:
        flat = " " + " ".join(re.sub(r"[^0-9a-z]+", " ", unicodedata.normalize("NFKC", text).lower()).split()) + " "
        grams = {zlib.crc32(flat[i : i + n].encode()) & (DIM - 1) for n in GRAMS for i in range(len(flat) - n + 1)}
        indices += sorted(grams)
        indptr.append(len(indices))
    counts = np.diff(indptr)
    data = np.repeat(1.0 / np.sqrt(np.maximum(counts, 1)), counts).astype(np.float32)
    return sparse.csr_matrix((data, np.array(indices), np.array(indptr)), shape=(len(texts), DIM))


def fit_logistic(X: sparse.csr_matrix, targets: np.ndarray, weights: np.ndarray, l2: float):
    """Per-label weighted logistic regression (the trainer's loss, one instance per text), L-BFGS."""
    features, labels = X.shape[1], targets.shape[1]
    total = np.maximum(weights.sum(axis=0), 1e-12)
    XT = X.T.tocsr()

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: features * labels].reshape(features, labels), theta[features * labels :]
        s = np.asarray(X @ w) + b
        d = (1 / (1 + np.exp(-s)) - targets) * weights / total
        loss = float(((np.logaddexp(0, s) - targets * s) * weights / total).sum() + l2 * (w**2).sum())
        return loss, np.concatenate([(np.asarray(XT @ d) + 2 * l2 * w).ravel(), d.sum(axis=0)])

    theta = np.zeros(features * labels + labels)
    theta[features * labels :] = -2.0
    theta = minimize(loss_and_grad, theta, jac=True, method="L-BFGS-B", options={"maxiter": 300}).x
    return theta[: features * labels].reshape(features, labels), theta[features * labels :]


def held_out_ngrams(X, samples, targets, weights, l2: float) -> np.ndarray:
    source = np.array([s.source for s in samples])
    raw = np.zeros((len(samples), len(LABELS)))
    for held in sorted(set(source) - {"policy"}):
        train, test = np.flatnonzero(source != held), np.flatnonzero(source == held)
        w, b = fit_logistic(X[train], targets[train], weights[train], l2)
        raw[test] = np.asarray(X[test] @ w) + b
    return raw


def held_out_head(samples, cache: Path | None) -> np.ndarray:
    """The shipped head's fold scores (each source scored by the head trained without it)."""
    head = Head.load()
    bags = trainer.embed(samples, TextEncoder.load(), None, cache)
    source = np.array([s.source for s in samples])
    raw = np.zeros((len(samples), len(LABELS)))
    for held in head.metadata["fold_sources"]:
        test = np.flatnonzero(source == held)
        fold = head.without(held)
        raw[test] = mil.scores(bags.subset(test), fold.weights, fold.bias, trainer.TAU)
    return raw


def summary(name: str, raw: np.ndarray, samples, rules) -> str:
    corpus = np.array([s.source != "policy" for s in samples])
    calibration = trainer.pooled_calibration(raw, samples)  # unchecked: the point is to see its sign
    scores = calibrate(raw, calibration)
    scores[~corpus] = 0.0
    thresholds = trainer.recommend_thresholds(scores, samples, *trainer.TARGETS["default"])
    figures = trainer.figures(scores, samples, thresholds, rules)
    cells = []
    for source in SHOWN:
        rows = [
            i
            for i, s in enumerate(samples)
            if s.source == source and s.kind == "orig" and (("sexual" in s.labels) if s.unsafe else True)
        ]
        cells.append(f"{raw[rows, 0].mean():.2f}")
    slopes = " ".join(f"{a:+.2f}" for a in calibration[:, 0])
    stopped = " / ".join(f"{100 * figures[s]['unsafe_strong']['both']:.0f} %" for s in SHOWN[:3])
    return f"| {name} | " + " | ".join(cells) + f" | {slopes} | {stopped} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--l2", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    parser.add_argument("--cache", type=Path, default=None, help="the trainer's instance cache (.npz)")
    args = parser.parse_args()
    policy = load_policy("default")
    samples = trainer.training_samples(read_rows(trainer.DEFAULT_CORPUS), policy)
    targets, weights = trainer.targets_and_weights(samples)
    rules = np.array([decide_prompt(policy, s.text).decision != "allow" for s in samples])
    print("mean held-out raw sexual score: sexual rows of Nibbler, I2P, Ring-A-Bell; benign rows of Parti, COCO")
    print(
        "| scorer | Nibbler | I2P | Ring-A-Bell | Parti | COCO | calibration slopes (sexual gore self_harm hate)"
        " | 'stopped' Nibbler / I2P / Ring-A-Bell at 1 % / 2 % |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|")
    print(summary("shipped head (fold heads)", held_out_head(samples, args.cache), samples, rules))
    X = ngram_matrix([s.text for s in samples])
    for l2 in args.l2:
        raw = held_out_ngrams(X, samples, targets, weights, l2)
        print(summary(f"char 3-5-grams, L2 {l2:g}", raw, samples, rules), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
