"""Per-category harm scores for prompts and captions: the bundled sentence encoder plus a trained head.

Scoring, not deciding: `PromptClassifier.analyze(texts)` gives each text a score in 0..1 per label
(`sexual`, `gore`, `self_harm`, `hate`, named after the default policy's categories) and, per label, the
evidence behind it; the policy's thresholds decide (`policies.decide_prompt`).

How a text is scored. The encoder reads the whole text once (`detectors.text_encoder`); from its contextual
token states the head takes *instances*: the sentence embedding (the mean of all token states, as
sentence-transformers computes it) and the mean of every window of `WINDOW` consecutive tokens (stride
`WINDOW // 2`). Each label has one linear scorer over instances, and a text's raw score is a soft maximum of
its instances' scores (`logsumexp(tau * s) / tau`), trained as multiple-instance learning: a benign text has
no unsafe instance, an unsafe one has at least one. So an unsafe fragment buried in a token soup still
scores high (its window does), while a long harmless prompt is not pulled up by its length. A logistic map
fitted on held-out folds turns the raw score into the reported one. The window that scored highest is the
evidence `span`; `nearest` lists the labelled corpus rows (by id, never by text) most similar to the text.

The head (`data/prompt_head.npz` and its metadata `data/prompt_head.json`) is trained by
`python -m detectors.training.prompt_head` on the embeddings of exactly the encoder run here; loading
refuses a head whose recorded encoder (name, weights hash, tokenizer hash, export recipe) differs from the
installed one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from detectors.base import Detection, DetectorUnavailable, LazyDetector
from detectors.text_encoder import EncoderIdentity, EncoderUnavailable, Encoding, TextEncoder

DATA_DIR = Path(__file__).resolve().parent / "data"
HEAD_NAME = "prompt_head"
FORMAT = "image-guard/prompt-head/1"
NEAREST = 3
"""Labelled examples listed as evidence for a label's score."""


class HeadMismatch(DetectorUnavailable):
    """The head was trained on another encoder (or another head format) than the one installed."""


def instances(encoding: Encoding, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The instances of one encoded text: row 0 the sentence embedding, then one row per token window (all
    unit length), and each row's [start, end) characters in the text (the whole text for the sentence row)."""
    rows = [encoding.embedding()]
    ends = [int(o[:, 1].max()) for o in encoding.offsets if len(o)]
    spans = [(0, max(ends, default=0))]
    step = max(1, window // 2)
    for states, offsets in zip(encoding.states, encoding.offsets, strict=True):
        content, where = (states[1:-1], offsets[1:-1]) if len(states) > 2 else (states, offsets)
        for start in range(0, max(1, len(content) - window + step), step):
            piece = content[start : start + window]
            if len(piece) == 0:
                continue
            vector = piece.mean(axis=0)
            rows.append(vector / max(float(np.linalg.norm(vector)), 1e-12))
            spans.append((int(where[start : start + window, 0].min()), int(where[start : start + window, 1].max())))
    return np.asarray(rows, np.float32), np.asarray(spans, np.int64)


def soft_max(scores: np.ndarray, tau: float) -> np.ndarray:
    """`logsumexp(tau * scores) / tau` over the instance axis (0): close to the maximum, but every instance
    contributes a little, which keeps training smooth."""
    top = scores.max(axis=0)
    return top + np.log(np.exp(tau * (scores - top)).sum(axis=0)) / tau


def calibrate(raw: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """Reported 0..1 scores from raw scores (labels on the last axis): `sigmoid(a * raw + b)` per label, with
    `calibration` (labels, 2) holding (a, b); the trainer fits it with this very map."""
    return 1.0 / (1.0 + np.exp(-(calibration[:, 0] * raw + calibration[:, 1])))


@dataclass(frozen=True)
class Head:
    """A trained head: per-label instance scorers, the calibration, and the labelled examples for evidence."""

    labels: tuple[str, ...]
    weights: np.ndarray  # (384, labels)
    bias: np.ndarray  # (labels,)
    tau: float
    window: int
    calibration: np.ndarray  # (labels, 2): reported = sigmoid(a * raw + b)
    example_vectors: np.ndarray  # (examples, 384) unit length, float16
    example_labels: np.ndarray  # (examples, labels) bool
    example_ids: tuple[str, ...]
    encoder: EncoderIdentity
    metadata: dict[str, Any]
    fold_weights: np.ndarray | None = None  # (sources, 384, labels): the heads trained without each source
    fold_bias: np.ndarray | None = None

    @classmethod
    def load(cls, folder: Path = DATA_DIR, name: str = HEAD_NAME) -> Head:
        """Read `<name>.json` and `<name>.npz`; DetectorUnavailable naming the file when either is unusable."""
        meta_path, array_path = folder / f"{name}.json", folder / f"{name}.npz"
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
            arrays = np.load(array_path, allow_pickle=False)
            if metadata.get("format") != FORMAT:
                raise HeadMismatch(f"{meta_path} is not a prompt head in format {FORMAT!r}.")
            encoder = EncoderIdentity(**metadata["encoder"])
            return cls(
                labels=tuple(metadata["labels"]),
                weights=arrays["weights"].astype(np.float32),
                bias=arrays["bias"].astype(np.float32),
                tau=float(metadata["tau"]),
                window=int(metadata["window"]),
                calibration=arrays["calibration"].astype(np.float64),
                example_vectors=arrays["example_vectors"],
                example_labels=arrays["example_labels"].astype(bool),
                example_ids=tuple(metadata["example_ids"]),
                encoder=encoder,
                metadata=metadata,
                fold_weights=arrays.get("fold_weights"),
                fold_bias=arrays.get("fold_bias"),
            )
        except HeadMismatch:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DetectorUnavailable(
                f"the prompt classifier's head {array_path} cannot be read ({exc}); reinstall image-guard or "
                "retrain it with `python -m detectors.training.prompt_head`."
            ) from None

    def without(self, source: str) -> Head:
        """The head trained with `source` held out (same calibration), to score that source honestly."""
        sources = list(self.metadata.get("fold_sources", []))
        if self.fold_weights is None or self.fold_bias is None or source not in sources:
            raise KeyError(f"this head has no fold trained without {source!r} (it has: {', '.join(sources)})")
        index = sources.index(source)
        return replace(self, weights=self.fold_weights[index].astype(np.float32), bias=self.fold_bias[index])

    def check_encoder(self, installed: EncoderIdentity) -> None:
        """Refuse to run on an encoder other than the one the head was trained on."""
        if installed != self.encoder:
            raise HeadMismatch(
                f"the prompt head was trained on {self.encoder.describe()}, but the installed encoder is "
                f"{installed.describe()}; retrain the head with `python -m detectors.training.prompt_head`."
            )

    def raw_scores(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per label: the text's raw score and the index of its highest-scoring instance."""
        scores = rows @ self.weights + self.bias
        return soft_max(scores, self.tau), scores.argmax(axis=0)

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        """The reported 0..1 scores for raw scores (labels on the last axis)."""
        return calibrate(raw, self.calibration)

    def nearest(self, similarity: np.ndarray, k: int = NEAREST) -> list[list[dict[str, Any]]]:
        """Per label, the `k` labelled examples of that label with the highest `similarity` (one value per
        example: its best cosine with any instance of the text)."""
        out = []
        for label in range(len(self.labels)):
            members = np.flatnonzero(self.example_labels[:, label])
            best = members[np.argsort(-similarity[members], kind="stable")[:k]]
            out.append([{"id": self.example_ids[i], "similarity": round(float(similarity[i]), 3)} for i in best])
        return out


class PromptClassifier(LazyDetector):
    """Scores prompts and captions per harm label. Loads the encoder and head on first use (or `load()`);
    unavailable, with the reason, when either cannot be loaded or they do not belong together.

    `analyze(texts)` (from `LazyDetector`) gives per text the scores (label -> 0..1) and the evidence
    (`details["evidence"][label]`: `span`, `nearest`); `score(texts)` the scores alone."""

    name = "prompt_classifier"

    def __init__(self, head_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> None:
        super().__init__()
        self._head_dir = Path(head_dir) if head_dir is not None else DATA_DIR
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._head: Head | None = None
        self._encoder: TextEncoder | None = None
        self._examples: np.ndarray | None = None  # (384, examples) float32, for `nearest`

    @property
    def labels(self) -> tuple[str, ...]:
        return self.head.labels

    @property
    def model(self) -> str:
        """The classifier's name for records: encoder, and the head's training date and corpus hash."""
        head = self._head
        if head is None:
            return "prompt_classifier (not loaded)"
        trained = head.metadata.get("trained", {})
        return f"{head.encoder.name}+{HEAD_NAME}@{trained.get('corpus_sha256', '?')[:12]}"

    @property
    def head(self) -> Head:
        """The loaded head (loads it first)."""
        if not self.available():
            raise DetectorUnavailable(f"{self.name} is unavailable: {self.unavailable_reason}")
        assert self._head is not None
        return self._head

    def _load(self) -> None:
        head = Head.load(self._head_dir)
        try:
            encoder = TextEncoder.load(self._cache_dir)
        except EncoderUnavailable as exc:
            raise DetectorUnavailable(str(exc)) from None
        head.check_encoder(encoder.identity)
        self._head, self._encoder = head, encoder
        self._examples = np.ascontiguousarray(head.example_vectors.astype(np.float32).T)

    def without(self, source: str) -> PromptClassifier:
        """This classifier with the head trained while `source` was held out (for held-out evaluation only),
        sharing the loaded encoder and the nearest-example matrix (the fold heads keep the same examples)."""
        fold = PromptClassifier(self._head_dir, self._cache_dir)
        fold._head, fold._encoder, fold._examples = self.head.without(source), self._encoder, self._examples
        fold._loaded = True
        return fold

    def _analyze(self, texts: list[str]) -> list[Detection]:  # type: ignore[override]
        assert self._head is not None and self._encoder is not None and self._examples is not None
        head = self._head
        out = []
        for encoding in self._encoder.encode(texts):
            rows, spans = instances(encoding, head.window)
            raw, best = head.raw_scores(rows)
            scores = head.calibrated(raw)
            nearest = head.nearest((rows @ self._examples).max(axis=0))
            evidence: dict[str, dict[str, Any]] = {}
            for index, label in enumerate(head.labels):
                start, end = spans[best[index]]
                entry: dict[str, Any] = {"nearest": nearest[index]}
                if end > start:
                    entry["span"] = [int(start), int(end)]
                evidence[label] = entry
            out.append(
                Detection(
                    scores={label: float(scores[i]) for i, label in enumerate(head.labels)},
                    details={"evidence": evidence},
                )
            )
        return out
