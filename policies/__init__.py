"""Policies: the policy schema and bundled YAML files, prompt normalisation, rule matching and decisions."""

from policies.decide import (
    ClassifierScores,
    Decision,
    combine,
    decide_image,
    decide_prompt,
    excused_spans,
    matched_categories,
    most_severe,
)
from policies.errors import PolicyError
from policies.loader import bundled_policies, load_policy
from policies.normalize import normalize
from policies.schema import SEVERITY, Category, DetectorConfig, ImageThreshold, Policy

__all__ = [
    "SEVERITY",
    "Category",
    "ClassifierScores",
    "Decision",
    "DetectorConfig",
    "ImageThreshold",
    "Policy",
    "PolicyError",
    "bundled_policies",
    "combine",
    "decide_image",
    "decide_prompt",
    "excused_spans",
    "load_policy",
    "matched_categories",
    "most_severe",
    "normalize",
]
