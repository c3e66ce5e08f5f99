"""The job's summary: counts per decision and per reason category, throughput, and a threshold sweep.

The sweep answers the question Stable Diffusion 2's LAION filtering taught to ask (a hard `punsafe` 0.1
threw away far too much): for every NSFW score the policy thresholds, and the caption classifier's score,
how many samples would each threshold of a small grid drop (`at_or_above`), and how many of the samples
kept now would it drop on top (`kept_at_or_above`)?
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from guard.dataset.samples import score_column
from policies import Policy

DECISIONS = ("keep", "drop", "review", "error")


@dataclass
class Tally:
    """Counts gathered while the decisions are made, shard after shard."""

    decisions: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    tags: Counter = field(default_factory=Counter)
    scores: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    """Score column -> (score, kept?) for every sample that has that score."""

    def add(self, row: dict[str, Any], score_columns: list[str]) -> None:
        self.decisions[row["decision"]] += 1
        for category in {reason["category"] for reason in row["reasons"]}:
            self.categories[category] += 1
        self.tags.update(set(row["tags"]))
        kept = row["decision"] == "keep"
        for name in [*score_columns, "caption_score"]:
            value = row.get(name)
            if value is not None:
                self.scores.setdefault(name, []).append((float(value), kept))


def sweep_columns(policy: Policy, score_columns: list[str]) -> dict[str, list[float]]:
    """Score column -> the policy's own thresholds on it, for the columns the policy thresholds."""
    found: dict[str, list[float]] = {}
    for category in policy.categories.values():
        for threshold in category.image:
            column = score_column(threshold.detector, threshold.label)
            if column in score_columns and category.action != "allow":
                found.setdefault(column, []).append(threshold.min_score)
    caption_thresholds = [
        threshold.min_score
        for category in policy.categories.values()
        if category.action != "allow"
        for threshold in category.classifier
        if not threshold.together_with
    ]
    if policy.dataset.captions.check and caption_thresholds:
        found["caption_score"] = caption_thresholds
    return found


def sweep(tally: Tally, policy: Policy, score_columns: list[str]) -> dict[str, Any]:
    """For each thresholded score: the policy's thresholds and, per grid threshold, what it would drop."""
    grid = policy.dataset.sweep
    out: dict[str, Any] = {}
    for column, thresholds in sweep_columns(policy, score_columns).items():
        pairs = tally.scores.get(column, [])
        scores = np.sort(np.array([score for score, _ in pairs], dtype=np.float64))
        kept = np.sort(np.array([score for score, was_kept in pairs if was_kept], dtype=np.float64))
        out[column] = {
            "policy_thresholds": sorted(set(thresholds)),
            "scored": len(pairs),
            "grid": [
                {
                    "threshold": threshold,
                    "at_or_above": int(len(scores) - np.searchsorted(scores, threshold, side="left")),
                    "kept_at_or_above": int(len(kept) - np.searchsorted(kept, threshold, side="left")),
                }
                for threshold in grid
            ],
        }
    return out


def build_summary(tally: Tally, policy: Policy, score_columns: list[str], **extra: Any) -> dict[str, Any]:
    """summary.json: `samples`, `kept`, `dropped`, `review`, `errors`, `by_category`, `tags`, `sweep`, ..."""
    decisions = tally.decisions
    return {
        "samples": sum(decisions.values()),
        "kept": decisions["keep"],
        "dropped": decisions["drop"],
        "review": decisions["review"],
        "errors": decisions["error"],
        "by_category": dict(sorted(tally.categories.items())),
        "tags": dict(sorted(tally.tags.items())),
        "policy": {"name": policy.name, "version": policy.version},
        "sweep": sweep(tally, policy, score_columns),
        **extra,
    }
