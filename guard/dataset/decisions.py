"""A sample's decision — `keep`, `drop`, `review` or `error` — from its recorded evidence, by the policy.

Policy actions map onto dataset decisions: `block` drops, `review` (and `blur`, which a training sample
cannot be) sets aside, `allow` keeps. The dataset section's own actions are `drop`, `review` and `tag`
(kept, with the tag recorded). The most severe wins; every reason names its category:

* a prompt-policy category for the caption (`sexual`, `minors`, `public_figures`, ...), from its rules or
  its classifier thresholds (`caption:classifier:<label>`), or `classifier_unavailable` when the policy
  sets captions aside while the classifier cannot run;
* a prompt-policy category for the image scores (both NSFW models, combined as the category says), or
  `detector_unavailable` when a required model could not score the image;
* `opt_out`, `ai_origin`, `duplicate` (the policy's dataset section), and `error` for an unreadable sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from policies import Policy, decide_image

DATASET_ACTIONS = {"allow": "keep", "blur": "review", "review": "review", "block": "drop"}
"""Policy action -> dataset decision."""
SEVERITY = {"keep": 0, "review": 1, "drop": 2}

AI_ORIGIN = "ai_origin"
OPT_OUT = "opt_out"
DUPLICATE = "duplicate"
ERROR = "error"


@dataclass(frozen=True)
class Duplicate:
    """The earlier sample (key order) this one is a near-duplicate of, and how many hash bits differ."""

    key: str
    shard: str
    distance: int


@dataclass
class SampleDecision:
    decision: str
    reasons: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def _reason(category: str, action: str, rule: str, evidence: str) -> dict[str, str]:
    return {"category": category, "action": action, "rule": rule, "evidence": evidence}


def decide_record(record: dict[str, Any], policy: Policy, duplicate: Duplicate | None = None) -> SampleDecision:
    """The decision on one sample's record (`duplicate`: what the near-duplicate pass found, if anything)."""
    if record.get("error"):
        return SampleDecision(ERROR, [_reason(ERROR, ERROR, "read", str(record["error"]))])
    rules = policy.dataset
    reasons: list[dict[str, str]] = []
    tags: list[str] = []
    caption_actions = record.get("caption_categories") or {}
    for reason in record.get("caption_reasons") or []:
        action = DATASET_ACTIONS[caption_actions.get(reason["category"], "block")]
        reasons.append(_reason(reason["category"], action, f"caption:{reason['rule']}", reason["evidence"]))
    image = decide_image(policy, record.get("scores") or {}, record.get("unavailable") or {})
    for reason in image.reasons:
        action = DATASET_ACTIONS[image.categories.get(reason["category"], "review")]
        reasons.append(_reason(reason["category"], action, reason["rule"], reason["evidence"]))
    for category, section, evidence in (
        (OPT_OUT, rules.opt_out, record.get("opt_out") or []),
        (AI_ORIGIN, rules.ai_origin, record.get("ai_origin") or []),
    ):
        if not evidence:
            continue
        if section.action == "tag":
            tags.append(category)
            continue
        for item in evidence:
            reasons.append(_reason(category, section.action, item["source"], item["detail"]))
    if duplicate is not None:
        detail = f"{duplicate.distance} bits from {duplicate.key} ({duplicate.shard})"
        section = rules.near_duplicates
        if section.action == "tag":
            tags.append(DUPLICATE)
        else:
            reasons.append(_reason(DUPLICATE, section.action, f"{section.hash}<={section.max_distance}", detail))
    decision = max((r["action"] for r in reasons), key=SEVERITY.__getitem__, default="keep")
    return SampleDecision(decision, reasons, tags)
