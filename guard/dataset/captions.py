"""The caption check: one seam, built once per worker, that turns a batch of captions into decisions.

Today it is the prompt policy's rules (`decide_prompt`). The semantic prompt guard (a caption classifier on
a sentence encoder) plugs in here when `guard.check_prompt.PromptChecker` exists: it is built once per
worker, called on the whole batch, and its per-category scores — the reasons it gives with a `score`, by
the prompt guard's contract (`rule: "classifier:<category>"`) — are recorded as `caption_score`, which the
dataset policy's `captions.classifier_min_score` and the summary's threshold sweep read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from guard.errors import GuardError
from policies import Decision, Policy, decide_prompt

CLASSIFIER_RULE = "classifier:"


@dataclass
class CaptionVerdict:
    """The prompt policy's decision on one caption, and the caption classifier's scores when it ran."""

    decision: Decision
    scores: dict[str, float] = field(default_factory=dict)
    """Harm category -> classifier score (empty with rules alone)."""

    @property
    def score(self) -> float | None:
        """The highest classifier score (None with rules alone)."""
        return max(self.scores.values()) if self.scores else None

    @property
    def top_category(self) -> str | None:
        return max(self.scores, key=self.scores.__getitem__) if self.scores else None


class CaptionChecker(Protocol):
    """What the dataset filter needs: a name for the summary and a batch call."""

    name: str

    def check(self, texts: Sequence[str]) -> list[CaptionVerdict]: ...


class RuleCaptionChecker:
    """Captions through the prompt policy's rules only."""

    name = "rules"

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def check(self, texts: Sequence[str]) -> list[CaptionVerdict]:
        return [CaptionVerdict(decide_prompt(self.policy, text)) for text in texts]


class ClassifierCaptionChecker:
    """Captions through the semantic prompt guard (rules and classifier), scores read from its reasons."""

    name = "rules+classifier"

    def __init__(self, checker: object) -> None:
        self.checker = checker

    def check(self, texts: Sequence[str]) -> list[CaptionVerdict]:
        decisions = self.checker.check(list(texts))
        return [CaptionVerdict(decision, classifier_scores(decision)) for decision in decisions]


def classifier_scores(decision: Decision) -> dict[str, float]:
    """Category -> score from a decision's classifier reasons (and its `scores` mapping, when it has one)."""
    scores: dict[str, float] = {}
    for name, value in (getattr(decision, "scores", None) or {}).items():
        if isinstance(value, int | float):
            scores[str(name)] = float(value)
    for reason in decision.reasons:
        rule = str(reason.get("rule", ""))
        if rule.startswith(CLASSIFIER_RULE) and isinstance(reason.get("score"), int | float):
            category = rule[len(CLASSIFIER_RULE) :] or str(reason.get("category"))
            scores[category] = max(scores.get(category, 0.0), float(reason["score"]))
    return scores


def build_caption_checker(policy: Policy) -> CaptionChecker:
    """The best caption check installed: the prompt guard's classifier when present, else the rules."""
    try:
        from guard.check_prompt import PromptChecker  # the semantic prompt guard, once it has landed
    except ImportError:
        return RuleCaptionChecker(policy)
    try:
        return ClassifierCaptionChecker(PromptChecker(policy))
    except TypeError as exc:  # an API mismatch is a bug to report, never a silent fall-back to rules
        raise GuardError(f"the caption classifier (guard.check_prompt.PromptChecker) cannot be built: {exc}.") from None


def caption_check_name(policy: Policy) -> str | None:
    """What checks captions in this installation (`rules` or `rules+classifier`; None when turned off)."""
    if not policy.dataset.captions.check:
        return None
    try:
        from guard.check_prompt import PromptChecker  # noqa: F401  (present once the prompt guard lands)
    except ImportError:
        return RuleCaptionChecker.name
    return ClassifierCaptionChecker.name
