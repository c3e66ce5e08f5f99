"""Decisions as data: the one function for prompts/captions and the one for image scores."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.loader import compile_rules, load_policy
from policies.normalize import fold, normalize, offsets, original_span
from policies.schema import SEVERITY, Policy

UNAVAILABLE_CATEGORY = "detector_unavailable"
CLASSIFIER_UNAVAILABLE_CATEGORY = "classifier_unavailable"


@dataclass(frozen=True)
class ClassifierScores:
    """What the prompt/caption classifier said about one text, as the guard hands it to `decide_prompt`.

    Policies import no model: the guard runs the classifier and passes its output here. `scores` maps each
    label to 0..1; `evidence` maps a label to what explains its score (`span`: the [start, end) characters of
    the text that scored highest, `nearest`: ids and similarities of the closest labelled examples); `model`
    names the classifier. When it could not run, `unavailable` holds the reason and `scores` is empty.
    """

    scores: Mapping[str, float] = field(default_factory=dict)
    evidence: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    model: str | None = None
    unavailable: str | None = None


@dataclass
class Decision:
    """What the policy says about one prompt, caption or image, and why.

    `decision` is `allow`, `blur`, `review` or `block`; `categories` maps every category that fired to its
    action; each reason has `rule`, `category`, `evidence` and, for text, `span` [start, end) into the
    original text.
    """

    decision: str
    reasons: list[dict[str, Any]]
    categories: dict[str, str]
    policy_name: str
    policy_version: str
    text: str | None = None
    notes: list[str] = field(default_factory=list)
    classifier: dict[str, Any] | None = None
    """For prompts checked with the classifier: `status` (`ok` or `unavailable`), the `model`, its `scores`,
    or the `reason` it was unavailable and what the policy did (`when_unavailable`)."""
    _normalized: str | None = field(default=None, repr=False)

    @property
    def normalized(self) -> str | None:
        """The de-obfuscated prompt (None for image decisions); computed on first use."""
        if self.text is None:
            return None
        if self._normalized is None:
            self._normalized = normalize(self.text)
        return self._normalized

    @property
    def allowed(self) -> bool:
        """True when the decision is `allow`."""
        return self.decision == "allow"

    def to_dict(self) -> dict[str, Any]:
        """The decision in the documented JSON form."""
        out: dict[str, Any] = {
            "decision": self.decision,
            "categories": dict(self.categories),
            "reasons": [dict(r) for r in self.reasons],
            "policy": {"name": self.policy_name, "version": self.policy_version},
        }
        if self.text is not None:
            out["normalized"] = self.normalized
        if self.notes:
            out["notes"] = list(self.notes)
        if self.classifier is not None:
            out["classifier"] = dict(self.classifier)
        return out


def most_severe(actions: list[str] | tuple[str, ...] | Any) -> str:
    """The most severe of several actions (allow < blur < review < block); `allow` when there are none."""
    return max(actions, key=SEVERITY.__getitem__, default="allow")


def combine(decisions: list[Decision]) -> Decision:
    """One decision from several (e.g. a prompt's and its image's): the most severe wins, reasons add up.

    The policy is the first decision's; the text (and `normalized`) too, when there is one.
    """
    if not decisions:
        raise ValueError("combine needs at least one decision")
    categories: dict[str, str] = {}
    for decision in decisions:
        for name, action in decision.categories.items():
            categories[name] = most_severe([categories.get(name, "allow"), action])
    first = decisions[0]
    return Decision(
        decision=most_severe([d.decision for d in decisions]),
        reasons=[reason for d in decisions for reason in d.reasons],
        categories=categories,
        policy_name=first.policy_name,
        policy_version=first.policy_version,
        text=next((d.text for d in decisions if d.text is not None), None),
        notes=[note for d in decisions for note in d.notes],
        classifier=next((d.classifier for d in decisions if d.classifier is not None), None),
    )


def _finish(policy: Policy, reasons: list[dict[str, Any]], actions: dict[str, str], **extra: Any) -> Decision:
    return Decision(
        decision=most_severe(list(actions.values())),
        reasons=reasons,
        categories=actions,
        policy_name=policy.name,
        policy_version=policy.version,
        **extra,
    )


_CAMEL_CASE = re.compile(r"[A-Z](?<=[a-z][A-Z])")
"""An upper-case letter right after a lower-case one: "SexyTeen", "BareBreasts" (hashtags, tags).
Written upper-case first so the regex engine skips quickly over the (mostly lower-case) text."""


def _views(text: str) -> list[tuple[str, list[int] | None]]:
    """The texts to match, each with a map from its folded positions back to `text` (None: not built yet).

    Besides the text itself, a camel-cased text is also read with its words split apart."""
    views: list[tuple[str, list[int] | None]] = [(fold(text), None)]
    if not text.islower() and _CAMEL_CASE.search(text):
        cuts = {m.start() for m in _CAMEL_CASE.finditer(text)}
        split = "".join(f" {char}" if index in cuts else char for index, char in enumerate(text))
        back: list[int] = []
        for index in range(len(text)):
            if index in cuts:
                back.append(index)  # the inserted space stands for the start of the next word
            back.append(index)
        back.append(len(text))
        views.append((fold(split), [back[i] for i in offsets(split)]))
    return views


def decide_prompt(policy: Policy | str | Path, text: str, classifier: ClassifierScores | None = None) -> Decision:
    """Check a prompt or caption against the policy (`policy` may also be a name or path).

    The rules always run. `classifier` is the text classifier's output for `text` (None: decide by the rules
    alone, as when no classifier is in use); a category fires on it when a score reaches one of the
    category's `classifier` thresholds, with a reason of its own unless the rules already stopped that
    category (the scores are in the decision's `classifier` record either way). Categories whose action is
    `allow` are building blocks for combinations and never appear in reasons.
    """
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    if not isinstance(text, str):
        raise TypeError(f"decide_prompt needs text, got {type(text).__name__}")
    reasons, actions, matched = _rule_reasons(policy, text)
    notes: list[str] = []
    record: dict[str, Any] | None = None
    if classifier is not None and classifier.unavailable is not None:
        fallback = policy.prompt_classifier.when_unavailable
        record = {"status": "unavailable", "reason": classifier.unavailable, "when_unavailable": fallback}
        if classifier.model:
            record["model"] = classifier.model
        if fallback == "review":
            actions[CLASSIFIER_UNAVAILABLE_CATEGORY] = "review"
            reasons.append(
                {
                    "rule": "classifier:unavailable",
                    "category": CLASSIFIER_UNAVAILABLE_CATEGORY,
                    "evidence": f"prompt classifier unavailable: {classifier.unavailable}",
                }
            )
        else:
            notes.append(f"prompt classifier unavailable ({classifier.unavailable}); decided by the rules only")
    elif classifier is not None:
        record = {"status": "ok", "scores": {k: round(float(v), 4) for k, v in classifier.scores.items()}}
        if classifier.model:
            record["model"] = classifier.model
        for reason in _classifier_reasons(policy, text, classifier, matched):
            if reason["category"] in actions:
                continue  # the rules already stopped this category: its score is in `classifier.scores`
            actions[reason["category"]] = policy.categories[reason["category"]].action
            reasons.append(reason)
    return _finish(policy, reasons, actions, text=text, notes=notes, classifier=record)


def matched_categories(policy: Policy | str | Path, text: str) -> set[str]:
    """Every category whose rules match `text`, `allow` ones included (the building blocks such as
    `mentions_minors` that `together_with` thresholds and combinations refer to)."""
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    return _rule_reasons(policy, text)[2]


def excused_spans(policy: Policy | str | Path, text: str) -> list[tuple[int, int]]:
    """[start, end) spans of `text` covered by an exception phrase that made a rule match innocent ("nude
    lipstick"): the guard lets the classifier read the text without them too, so both layers honour the
    policy's exceptions."""
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    matcher = policy._matcher or compile_rules(policy)._matcher
    spans: set[tuple[int, int]] = set()
    for folded, positions in _views(text):
        excused: list[tuple[int, int]] = []
        matcher.find(folded, excused)
        if excused and positions is None:
            positions = offsets(text)
        spans.update(original_span(positions, *span) for span in excused)
    return sorted(spans)


def _rule_reasons(policy: Policy, text: str) -> tuple[list[dict[str, Any]], dict[str, str], set[str]]:
    """The rules' reasons and actions, and every category whose rules matched (`allow` ones included)."""
    matcher = policy._matcher or compile_rules(policy)._matcher
    reasons: list[dict[str, Any]] = []
    actions: dict[str, str] = {}
    matched: set[str] = set()
    seen: list[tuple[str, int, int]] = []
    for folded, positions in _views(text):
        matches = matcher.find(folded)
        if matches and positions is None:
            positions = offsets(text)
        for match in matches:
            matched.add(match.category)
            action = policy.categories[match.category].action
            if action == "allow":
                continue
            start, end = original_span(positions, *match.span)
            if any(c == match.category and s <= start and end <= e for c, s, e in seen):
                continue  # already reported from the plain reading
            seen.append((match.category, start, end))
            actions[match.category] = action
            reason: dict[str, Any] = {
                "rule": match.rule,
                "category": match.category,
                "evidence": text[start:end],
                "span": [start, end],
            }
            if len(match.spans) > 1:
                parts = [original_span(positions, *s) for s in match.spans]
                reason["evidence"] = " + ".join(text[a:b] for a, b in parts)
                reason["spans"] = [list(p) for p in parts]
            reasons.append(reason)
    return reasons, actions, matched


EVIDENCE_CHARS = 120
"""A classifier reason quotes at most this much of the prompt (the part that scored highest)."""


def _classifier_reasons(
    policy: Policy, text: str, classifier: ClassifierScores, matched: set[str]
) -> list[dict[str, Any]]:
    """One reason per category with a classifier threshold reached (the one passed by the widest margin), with the
    score, the threshold, the highest-scoring span of the text and the nearest labelled examples."""
    out: list[dict[str, Any]] = []
    for cat_name, category in policy.categories.items():
        if category.action == "allow":
            continue
        fired = [
            t
            for t in category.classifier
            if classifier.scores.get(t.label, 0.0) >= t.min_score
            and (not t.together_with or matched.intersection(t.together_with))
        ]
        if not fired:
            continue
        threshold = min(fired, key=lambda t: t.min_score - classifier.scores[t.label])
        score = float(classifier.scores[threshold.label])
        evidence: Mapping[str, Any] = classifier.evidence.get(threshold.label, {})
        reason: dict[str, Any] = {
            "rule": f"classifier:{cat_name}",
            "category": cat_name,
            "evidence": f"{threshold.label} score {score:.2f}",
            "label": threshold.label,
            "score": round(score, 4),
            "threshold": threshold.min_score,
        }
        span = evidence.get("span")
        if span is not None and 0 <= span[0] < span[1] <= len(text):
            start, end = int(span[0]), int(min(span[1], span[0] + EVIDENCE_CHARS))
            reason["evidence"] = text[start:end]
            reason["span"] = [start, end]
        if threshold.together_with:
            reason["together_with"] = sorted(matched.intersection(threshold.together_with))
        if evidence.get("nearest"):
            reason["nearest"] = [dict(n) for n in evidence["nearest"]]
        out.append(reason)
    return out


def decide_image(
    policy: Policy | str | Path,
    scores: dict[str, dict[str, float]],
    unavailable: dict[str, str] | None = None,
) -> Decision:
    """Decide on one image from detector scores (detector -> label -> score); `policy` may be a name or path.

    A category fires when one of its image thresholds is met, or, with `image_match: all`, when every one
    is. `unavailable` maps a detector that could not run to the reason. A `required` detector that did not
    report (unavailable or missing from `scores`) makes the decision at least `review`; an optional one
    is only noted.
    """
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    unavailable = dict(unavailable or {})
    reasons: list[dict[str, Any]] = []
    actions: dict[str, str] = {}
    notes: list[str] = []
    for cat_name, category in policy.categories.items():
        met = []
        for threshold in category.image:
            score = scores.get(threshold.detector, {}).get(threshold.label)
            if score is not None and score >= threshold.min_score:
                met.append((threshold, float(score)))
        if not met or (category.image_match == "all" and len(met) < len(category.image)):
            continue
        if category.action != "allow":
            actions[cat_name] = most_severe([actions.get(cat_name, "allow"), category.action])
        for threshold, score in met:
            reasons.append(
                {
                    "rule": f"image:{threshold.detector}.{threshold.label}>={threshold.min_score:g}",
                    "category": cat_name,
                    "evidence": f"{threshold.label}={score:.3f}",
                    "detector": threshold.detector,
                    "label": threshold.label,
                    "score": score,
                    "threshold": threshold.min_score,
                }
            )
    reasons = [r for r in reasons if policy.categories[r["category"]].action != "allow"]
    for name, config in policy.detectors.items():
        reason = unavailable.get(name)
        if reason is None and name not in scores:
            reason = "no scores were reported"
        if reason is None:
            continue
        if config.required:
            actions[UNAVAILABLE_CATEGORY] = most_severe([actions.get(UNAVAILABLE_CATEGORY, "allow"), "review"])
            reasons.append(
                {"rule": f"detector:{name}", "category": UNAVAILABLE_CATEGORY, "evidence": f"{name}: {reason}"}
            )
        else:
            notes.append(f"optional detector {name} unavailable: {reason}")
    return _finish(policy, reasons, actions, notes=notes)
