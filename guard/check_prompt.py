"""Checking prompts and captions with both layers, the same way everywhere: the policy's rules and the classifier.

```python
from guard.check_prompt import PromptChecker
checker = PromptChecker("default")                 # a policy name, path or Policy
[d.decision for d in checker.check(["a red fox in the snow", "..."])]   # one Decision per text, in order
```

`guard check-prompt`, the guarded generation (`Guard`, `guard generate`), the dataset filter and the
service all decide through `PromptChecker.check`, so a prompt gets the same decision whichever way it
arrives. The text classifier (`detectors.prompt_classifier`) is loaded once per process, on the first check
that needs it, and shared by every checker; a policy with no `classifier` thresholds never loads it. When
it cannot load, every decision says so and the policy's `prompt_classifier.when_unavailable` decides what
that means (`review`, or `rules_only`). The policy's exceptions hold for both layers: a text in which an
exception phrase excused a rule match ("nude lipstick") is also classified with that phrase cut out, and
the lower of the two scores counts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guard.errors import ConfigError
from policies import ClassifierScores, Decision, Policy, decide_prompt, excused_spans, load_policy

_SHARED: Any = None
_SHARED_LOCK = threading.Lock()


def shared_classifier() -> Any:
    """The process-wide `PromptClassifier` (its model loads on first use, once)."""
    global _SHARED
    if _SHARED is None:
        with _SHARED_LOCK:
            if _SHARED is None:
                from detectors.prompt_classifier import PromptClassifier

                _SHARED = PromptClassifier()
    return _SHARED


class PromptChecker:
    """Decides prompts and captions under one policy with its rules and, when the policy uses it, the classifier.

    `classifier` is any object with `available()`, `unavailable_reason`, `labels`, `model` and
    `analyze(texts)` like `detectors.prompt_classifier.PromptClassifier`; by default the shared one.
    Thread-safe: a service may share one checker between requests.
    """

    def __init__(self, policy: Policy | str | Path | None = None, *, classifier: Any = None) -> None:
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        self._classifier = classifier
        self._labels_checked = False

    @property
    def classifier(self) -> Any:
        """The classifier this checker uses; None when the policy has no classifier thresholds."""
        if not self.policy.uses_classifier:
            return None
        if self._classifier is None:
            self._classifier = shared_classifier()
        return self._classifier

    def check(self, texts: Sequence[str]) -> list[Decision]:
        """One decision per text, in order; the classifier reads all of them in batches."""
        texts = list(texts)
        return [
            decide_prompt(self.policy, text, scores) for text, scores in zip(texts, self.scores(texts), strict=True)
        ]

    def check_one(self, text: str) -> Decision:
        """The decision for one prompt or caption."""
        return self.check([text])[0]

    def scores(self, texts: Sequence[str]) -> list[ClassifierScores | None]:
        """What the classifier says about each text, as `decide_prompt` takes it (unavailable: the reason;
        None for each when the policy uses no classifier)."""
        classifier = self.classifier
        if classifier is None:
            return [None for _ in texts]
        if not classifier.available():
            reason = classifier.unavailable_reason
            return [ClassifierScores(unavailable=reason) for _ in texts]
        self._check_labels(classifier)
        if not texts:
            return []
        texts = list(texts)
        # The policy's exceptions hold for both layers: a text with an exception phrase that excused a rule
        # match ("nude lipstick") is also read without it, and the lower score counts.
        without = {i: _without(t, spans) for i, t in enumerate(texts) if (spans := excused_spans(self.policy, t))}
        detections = classifier.analyze(texts + list(without.values()))
        out = []
        model = classifier.model
        rereads = dict(zip(without, detections[len(texts) :], strict=True))
        for index, detection in enumerate(detections[: len(texts)]):
            scores = dict(detection.scores)
            if index in rereads:
                scores = {label: min(score, rereads[index].scores[label]) for label, score in scores.items()}
            out.append(ClassifierScores(scores=scores, evidence=detection.details.get("evidence", {}), model=model))
        return out

    def _check_labels(self, classifier: Any) -> None:
        """Every label the policy's thresholds name must be one the classifier scores (a typo is refused)."""
        if self._labels_checked:
            return
        known = set(classifier.labels)
        for cat_name, category in self.policy.categories.items():
            for index, threshold in enumerate(category.classifier):
                if threshold.label not in known:
                    raise ConfigError(
                        f"policy {self.policy.name!r}: field categories.{cat_name}.classifier.{index}.label: the "
                        f"prompt classifier has no label {threshold.label!r} (it scores {', '.join(sorted(known))})."
                    )
        self._labels_checked = True


def _without(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """`text` with the given character spans cut out."""
    kept, last = [], 0
    for start, end in sorted(spans):
        if start >= last:
            kept.append(text[last:start])
            last = end
        else:
            last = max(last, end)
    kept.append(text[last:])
    return " ".join(" ".join(kept).split())
