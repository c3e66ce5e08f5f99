"""The shape of a policy file: categories with prompt rules, exceptions, image thresholds and an action."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

Action = Literal["allow", "blur", "review", "block"]

SEVERITY: dict[str, int] = {"allow": 0, "blur": 1, "review": 2, "block": 3}
"""Decision severity; when several categories fire, the most severe action wins."""


class _Strict(BaseModel):
    """Unknown keys are errors, so a typo in a policy file is reported instead of silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_blank(values: list[str], what: str) -> list[str]:
    for value in values:
        if not value.strip():
            raise ValueError(f"{what} must not contain an empty entry")
    return values


class RegexRule(_Strict):
    """A regular expression run on the folded prompt: lower-case, accents and look-alike letters mapped,
    invisible characters removed (leetspeak and spacing are left as written)."""

    name: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from None
        return pattern


class TermGroup(_Strict):
    """One ingredient of a combination: any of these words, or anything another category matches."""

    any: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> TermGroup:
        if not self.any and not self.categories:
            raise ValueError("needs at least one entry in 'any' or 'categories'")
        _no_blank(self.any, "'any'")
        return self


class Combination(_Strict):
    """Fires when every group matches somewhere in the same prompt (e.g. a minor term AND a sexual term)."""

    name: str
    all_of: list[TermGroup] = Field(min_length=2)


class PromptRules(_Strict):
    """What in a prompt triggers the category."""

    terms: list[str] = Field(default_factory=list)
    phrases: list[str] = Field(default_factory=list)
    regexes: list[RegexRule] = Field(default_factory=list)
    combinations: list[Combination] = Field(default_factory=list)
    name_lists: list[str] = Field(default_factory=list)

    @field_validator("terms", "phrases", "name_lists")
    @classmethod
    def _entries(cls, values: list[str]) -> list[str]:
        return _no_blank(values, "the list")


class Context(_Strict):
    """Words anywhere in the prompt that make the category's matches innocent, unless an `unless` word is there too."""

    terms: list[str] = Field(min_length=1)
    unless: list[str] = Field(default_factory=list)


class Exceptions(_Strict):
    """Innocent context: phrases that cover a match (e.g. 'nude lipstick'), or prompt-wide context words."""

    phrases: list[str] = Field(default_factory=list)
    context: Context | None = None

    @field_validator("phrases")
    @classmethod
    def _entries(cls, values: list[str]) -> list[str]:
        return _no_blank(values, "the list")


class ImageThreshold(_Strict):
    """The category fires on an image when `detector` reports `label` with a score of at least `min_score`."""

    detector: str
    label: str
    min_score: float = Field(ge=0.0)


class ClassifierThreshold(_Strict):
    """The category fires on a prompt when the text classifier scores `label` at least `min_score` (0 to 1);
    with `together_with`, only when the rules of one of those categories also match the prompt."""

    label: str
    min_score: float = Field(gt=0.0, le=1.0)
    together_with: list[str] = Field(default_factory=list)


class Category(_Strict):
    """One kind of harm: how to spot it in prompts and images, and what to do when it is found.

    `image_match` says how several `image` thresholds combine: `any` (the default) fires when one of them
    is met, `all` only when every one is (e.g. both NSFW models agree)."""

    description: str = ""
    action: Action
    prompt: PromptRules = Field(default_factory=PromptRules)
    exceptions: Exceptions = Field(default_factory=Exceptions)
    classifier: list[ClassifierThreshold] = Field(default_factory=list)
    image: list[ImageThreshold] = Field(default_factory=list)
    image_match: Literal["any", "all"] = "any"


DatasetAction = Literal["drop", "review", "tag"]
"""What the dataset filter does with a sample: drop it, set it aside for review, or keep it and tag it."""

TRAINING_MINING_ENTRIES = ("ai_training", "ai_generative_training", "data_mining", "ai_inference")
"""The uses a C2PA `c2pa.training-mining` / CAWG `cawg.training-mining` assertion rules on (without prefix)."""

METADATA_HINTS = ("generator_chunks", "digital_source_type", "software_name")
"""Kinds of unsigned metadata that can count as AI origin: text chunks written by generation tools (PNG
`parameters`, ComfyUI graphs, ...), an XMP digital source type, an AI product named as Software/CreatorTool."""


class DatasetImages(_Strict):
    """Which image detectors the dataset filter runs: names from the policy's `detectors` section (null:
    every detector listed there). A `required` detector must be among them."""

    detectors: list[str] | None = None


class DatasetCaptions(_Strict):
    """Captions go through the prompt policy (rules, and the caption classifier where installed)."""

    check: bool = True


class DatasetAiOrigin(_Strict):
    """Samples that are themselves AI-generated, by watermark, C2PA source type or generator metadata."""

    action: DatasetAction = "drop"
    watermarks: list[str] = Field(default_factory=lambda: ["guard", "sd-v1", "sd-v2", "sdxl"])
    c2pa_source_types: list[str] = Field(
        default_factory=lambda: [
            "trainedAlgorithmicMedia",
            "compositeSynthetic",
            "trainedAlgorithmicData",
            "compositeWithTrainedAlgorithmicMedia",
        ]
    )
    metadata: list[Literal["generator_chunks", "digital_source_type", "software_name"]] = Field(
        default_factory=lambda: ["generator_chunks", "digital_source_type"]
    )


class DatasetOptOut(_Strict):
    """Rights holders' machine-readable reservations against training and data mining."""

    action: DatasetAction = "drop"
    training_mining_entries: list[Literal["ai_training", "ai_generative_training", "data_mining", "ai_inference"]] = (
        Field(default_factory=lambda: list(TRAINING_MINING_ENTRIES))
    )
    """Entries of C2PA/CAWG training-mining assertions that count (each with its `c2pa.` and `cawg.` name)."""
    constrained: Literal["not_allowed", "allowed"] = "not_allowed"
    """How a `constrained` use reads: its constraints cannot be checked by a machine, so not allowed."""
    iptc_data_mining: bool = True
    """XMP `plus:DataMining` with a `DMI-PROHIBITED...` value."""
    tdm_reservation: bool = True
    """A `tdm-reservation: 1` response header (W3C TDMRep)."""
    robots_directives: list[str] = Field(default_factory=lambda: ["noai", "noimageai"])
    """`X-Robots-Tag` directives that reserve the image (compared lower-case)."""
    robots_user_agents: list[str] = Field(default_factory=lambda: ["img2dataset"])
    """`X-Robots-Tag: <agent>: noai` counts for these agents (a directive without an agent always counts)."""


class DatasetDuplicates(_Strict):
    """Near-duplicate images: a sample whose perceptual hash is within `max_distance` bits of an earlier
    sample's (key order) is a duplicate of it."""

    action: DatasetAction = "drop"
    enabled: bool = True
    hash: Literal["phash", "colorhash"] = "phash"
    max_distance: int = Field(default=4, ge=0, le=16)


class DatasetRules(_Strict):
    """How `guard filter-dataset` treats training samples beyond the categories' caption and image rules."""

    images: DatasetImages = Field(default_factory=DatasetImages)
    captions: DatasetCaptions = Field(default_factory=DatasetCaptions)
    ai_origin: DatasetAiOrigin = Field(default_factory=DatasetAiOrigin)
    opt_out: DatasetOptOut = Field(default_factory=DatasetOptOut)
    near_duplicates: DatasetDuplicates = Field(default_factory=DatasetDuplicates)
    sweep: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.98])
    """Thresholds at which the summary counts what each NSFW and caption score would have dropped."""

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, values: list[float]) -> list[float]:
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise ValueError("thresholds must lie between 0 and 1")
        return sorted(set(values))


class PromptClassifierConfig(_Strict):
    """How the policy uses the prompt/caption classifier besides its rules.

    `when_unavailable` says what a prompt gets when the classifier cannot run (model missing, cache not
    writable, a head made for another encoder): `review` holds every prompt for a person, `rules_only`
    decides by the rules alone and says so in the decision.
    """

    when_unavailable: Literal["review", "rules_only"] = "review"


class DetectorConfig(BaseModel):
    """Which image detector a policy uses; every key beyond `required` is passed to the detector as is."""

    model_config = ConfigDict(extra="allow", frozen=True)

    required: bool = False

    @property
    def options(self) -> dict[str, Any]:
        """The detector-specific settings (everything except `required`)."""
        return dict(self.model_extra or {})

    def as_dict(self) -> dict[str, Any]:
        """`required` plus every detector-specific setting, as a plain dict."""
        return {"required": self.required, **self.options}

    def get(self, key: str, default: Any = None) -> Any:
        """A setting by name, like `dict.get` (so detectors can treat the config as a plain mapping)."""
        return self.as_dict().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.as_dict()


class Policy(_Strict):
    """A complete policy: its identity, the detectors it needs, and its categories."""

    name: str
    version: str
    description: str = ""
    detectors: dict[str, DetectorConfig] = Field(default_factory=dict)
    negative_prompt_terms: list[str] = Field(default_factory=list)
    prompt_classifier: PromptClassifierConfig = Field(default_factory=PromptClassifierConfig)
    categories: dict[str, Category] = Field(min_length=1)
    dataset: DatasetRules = Field(default_factory=DatasetRules)
    _matcher: Any = PrivateAttr(default=None)
    _source: Any = PrivateAttr(default=None)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    def detector_configs(self) -> dict[str, dict[str, Any]]:
        """Detector name -> plain config dict (`required` and its settings), e.g. for `build_detectors`."""
        return {name: config.as_dict() for name, config in self.detectors.items()}

    @property
    def uses_classifier(self) -> bool:
        """True when some category has a classifier threshold (otherwise the classifier need not run)."""
        return any(category.classifier for category in self.categories.values())

    def reference_problems(self) -> list[tuple[str, str]]:
        """(field, problem) for names that point nowhere: unknown detectors or categories in combinations."""
        problems: list[tuple[str, str]] = []
        for cat_name, category in self.categories.items():
            for i, threshold in enumerate(category.image):
                if threshold.detector not in self.detectors:
                    problems.append(
                        (
                            f"categories.{cat_name}.image.{i}.detector",
                            f"detector {threshold.detector!r} is not in the 'detectors' section",
                        )
                    )
            for t, threshold in enumerate(category.classifier):
                if category.action == "allow":
                    problems.append(
                        (
                            f"categories.{cat_name}.classifier.{t}",
                            "a classifier threshold on an 'allow' category has no effect",
                        )
                    )
                for other in threshold.together_with:
                    if other not in self.categories:
                        problems.append(
                            (f"categories.{cat_name}.classifier.{t}.together_with", f"unknown category {other!r}")
                        )
            for c, combo in enumerate(category.prompt.combinations):
                for g, group in enumerate(combo.all_of):
                    where = f"categories.{cat_name}.prompt.combinations.{c}.all_of.{g}.categories"
                    for other in group.categories:
                        if other not in self.categories:
                            problems.append((where, f"unknown category {other!r}"))
                        elif other == cat_name:
                            problems.append((where, "a category cannot combine with itself"))
        run = self.dataset.images.detectors
        for i, name in enumerate(run or []):
            if name not in self.detectors:
                problems.append(
                    (f"dataset.images.detectors.{i}", f"detector {name!r} is not in the 'detectors' section")
                )
        for name, config in self.detectors.items():
            if run is not None and config.required and name not in run:
                problems.append(("dataset.images.detectors", f"the required detector {name!r} is missing from it"))
        return problems
