"""The caption check: built once per worker, it turns a batch of captions into decisions.

Captions go through `guard.check_prompt.PromptChecker`, the same two layers every prompt passes (the
policy's rules and, where the policy sets classifier thresholds, the caption classifier), so a caption gets
the decision the same text would get as a prompt. The classifier's per-label scores are kept for the
sample's record (`caption_score`: the highest, `caption_score_category`: its label), where the summary's
threshold sweep reads them; the thresholds themselves are the prompt policy's `classifier` entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from guard.check_prompt import PromptChecker
from policies import Decision, Policy

RULES = "rules"
RULES_AND_CLASSIFIER = "rules+classifier"


@dataclass
class CaptionVerdict:
    """The prompt policy's decision on one caption, and the caption classifier's scores when it ran."""

    decision: Decision
    scores: dict[str, float] = field(default_factory=dict)
    """Classifier label -> score (empty with rules alone or when the classifier could not run)."""

    @property
    def score(self) -> float | None:
        """The highest classifier score (None without scores)."""
        return max(self.scores.values()) if self.scores else None

    @property
    def top_category(self) -> str | None:
        return max(self.scores, key=self.scores.__getitem__) if self.scores else None


class CaptionChecker:
    """Captions through the prompt policy, in batches."""

    def __init__(self, policy: Policy) -> None:
        self.checker = PromptChecker(policy)

    def check(self, texts: Sequence[str]) -> list[CaptionVerdict]:
        return [CaptionVerdict(d, classifier_scores(d)) for d in self.checker.check(list(texts))]


def classifier_scores(decision: Decision) -> dict[str, float]:
    """Label -> score from a decision's classifier record (empty when the classifier did not run)."""
    record = decision.classifier or {}
    if record.get("status") != "ok":
        return {}
    return {str(label): float(score) for label, score in (record.get("scores") or {}).items()}


def caption_check_name(policy: Policy) -> str | None:
    """What checks captions under this policy (`rules` or `rules+classifier`; None when turned off)."""
    if not policy.dataset.captions.check:
        return None
    return RULES_AND_CLASSIFIER if policy.uses_classifier else RULES
