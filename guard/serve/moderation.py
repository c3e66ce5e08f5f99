"""The moderation-client view of decisions: `flagged`, `categories` (true/false per category) and
`category_scores` (0..1), the fields moderation APIs already use, computed from the policy's decisions.

Every category of the policy that can act (its action is not `allow`) is listed. A prompt category scores 1
when it fired and 0 otherwise (rules match or they do not; a classifier's reason may carry its own `score`).
An image category scores the highest detector score among its thresholds, whether or not it reached one, so
clients can see how close an image came. `detector_unavailable` appears when a required detector could not
run (the policy then sends the image to review).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies import Policy
from policies.decide import UNAVAILABLE_CATEGORY


def actionable_categories(policy: Policy) -> list[str]:
    return [name for name, category in policy.categories.items() if category.action != "allow"]


def view(
    policy: Policy, decision: Mapping[str, Any], scores: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, Any]:
    """`flagged`, `categories` and `category_scores` for one decision (`scores`: an image's detector scores)."""
    fired = decision.get("categories") or {}
    names = actionable_categories(policy)
    if UNAVAILABLE_CATEGORY in fired:
        names.append(UNAVAILABLE_CATEGORY)
    category_scores: dict[str, float] = {}
    for name in names:
        score = 1.0 if name in fired and scores is None else 0.0
        if scores is not None and name in policy.categories:
            for threshold in policy.categories[name].image:
                score = max(score, float(scores.get(threshold.detector, {}).get(threshold.label, 0.0)))
        if scores is not None and name == UNAVAILABLE_CATEGORY:
            score = 1.0
        for reason in decision.get("reasons") or []:
            if reason.get("category") == name and isinstance(reason.get("score"), int | float):
                score = max(score, float(reason["score"]))
        category_scores[name] = round(min(1.0, max(0.0, score)), 6)
    return {
        "flagged": decision.get("decision") != "allow",
        "categories": {name: name in fired for name in names},
        "category_scores": category_scores,
    }


def combine_views(views: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The top level of a batch: flagged when any item is, a category when any item has it, the highest score."""
    flagged = False
    categories: dict[str, bool] = {}
    category_scores: dict[str, float] = {}
    for item in views:
        flagged = flagged or bool(item["flagged"])
        for name, value in item["categories"].items():
            categories[name] = categories.get(name, False) or bool(value)
        for name, score in item["category_scores"].items():
            category_scores[name] = max(category_scores.get(name, 0.0), score)
    return {"flagged": flagged, "categories": categories, "category_scores": category_scores}
