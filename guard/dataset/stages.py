"""The per-sample work of the dataset filter as stages both engines run: decode, inspect, score, assemble.

* `decode`: the image bytes through `guard.images.load_image` (pixel cap, truncation, EXIF orientation);
  a failure is the sample's error.
* `Inspector`: everything that needs no image model — perceptual hashes, watermarks, Content
  Credentials, metadata, response headers, opt-out lists — and the caption check (the prompt policy's
  rules and caption classifier, `guard.check_prompt.PromptChecker`, built once per worker).
* `Scorer`: the image NSFW models the policy's `dataset.images.detectors` names, loaded once per worker
  and run on the chunk as one batch (a batch that fails is retried image by image, so one bad image
  cannot take the others' scores with it).
* `assemble`: one flat record per sample, what the checkpoint stores and the decisions are made from.

`ChunkProcessor` runs them all on a chunk, decoding each image once: what a local worker process and a Ray
actor run. Both engines cut the same chunks, so they produce the same records.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from guard.dataset import optout, origin
from guard.dataset.captions import CaptionChecker
from guard.dataset.optout import OptOutList
from guard.dataset.samples import Chunk, Sample
from guard.errors import ImageError
from guard.images import load_image
from guard.provenance.credentials.c2pa import c2pa_context, read_manifest
from guard.provenance.credentials.fingerprint import fingerprints
from guard.verify.metadata import read_metadata
from policies import Policy

Decoded = Image.Image | str
"""A decoded RGB image, or why the sample could not be decoded."""


@dataclass
class FilterContext:
    """What every worker needs, sent to it once (it pickles): the policy, the opt-out lists, the detectors."""

    policy: Policy
    opt_out: OptOutList = field(default_factory=OptOutList)
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Detector name -> settings, for the detectors the dataset filter runs."""

    @classmethod
    def for_policy(cls, policy: Policy, opt_out: OptOutList | None = None) -> FilterContext:
        configs = policy.detector_configs()
        run = policy.dataset.images.detectors
        names = list(configs) if run is None else run
        return cls(policy=policy, opt_out=opt_out or OptOutList(), detectors={n: configs[n] for n in names})


def decode(sample: Sample) -> Decoded:
    """The sample's image as RGB, or the one-sentence reason it cannot be read."""
    if sample.error is not None:
        return sample.error
    if sample.image is None:
        return f"{sample.key}: no image"
    try:
        return load_image(sample.image, name=sample.member or sample.key)
    except ImageError as exc:
        return str(exc)


def decode_chunk(chunk: Chunk) -> list[Decoded]:
    return [decode(sample) for sample in chunk.samples]


class Inspector:
    """The model-free checks and the caption check, set up once per worker."""

    def __init__(self, context: FilterContext) -> None:
        self.context = context
        self.rules = context.policy.dataset
        self.captions = CaptionChecker(context.policy) if self.rules.captions.check else None
        self._c2pa = c2pa_context()

    def inspect(self, chunk: Chunk, images: list[Decoded]) -> list[dict[str, Any]]:
        """One inspection per sample of the chunk (`images`: its decoded images)."""
        verdicts = self.captions.check([s.caption for s in chunk.samples]) if self.captions else None
        found = []
        for index, (sample, image) in enumerate(zip(chunk.samples, images, strict=True)):
            record: dict[str, Any] = self._image_evidence(sample, image)
            record["opt_out"] += [e.to_dict() for e in optout.header_evidence(sample.meta, self.rules.opt_out)]
            record["opt_out"] += [e.to_dict() for e in self.context.opt_out.url_evidence(sample.url)]
            record["opt_out"] += [e.to_dict() for e in self.context.opt_out.caption_evidence(sample.caption)]
            if verdicts is not None:
                verdict = verdicts[index]
                record["caption_reasons"] = [_caption_reason(r) for r in verdict.decision.reasons]
                record["caption_categories"] = dict(verdict.decision.categories)
                record["caption_score"] = verdict.score
                record["caption_score_category"] = verdict.top_category
            found.append(record)
        return found

    def _image_evidence(self, sample: Sample, image: Decoded) -> dict[str, Any]:
        record: dict[str, Any] = {"opt_out": [], "ai_origin": []}
        if isinstance(image, str):
            record["error"] = image
            return record
        rules = self.rules
        record["width"], record["height"] = image.size
        hashes = fingerprints(image)
        record["phash"], record["colorhash"] = f"{hashes['phash']:016x}", f"{hashes['colorhash']:016x}"
        evidence = origin.watermark_evidence(image, rules.ai_origin.watermarks)
        reading = read_manifest(sample.image, context=self._c2pa)
        if reading.store is not None:
            evidence += origin.c2pa_evidence(reading.digital_source_types, reading.state, rules.ai_origin)
            assertions = [(a.get("label"), a.get("data")) for a in (reading.active or {}).get("assertions", [])]
            record["opt_out"] += [
                e.to_dict() for e in optout.training_mining_evidence(assertions, rules.opt_out, reading.state)
            ]
        metadata = read_metadata(sample.image)
        evidence += origin.metadata_evidence(metadata, rules.ai_origin)
        record["opt_out"] += [
            e.to_dict() for e in optout.data_mining_evidence(metadata.get("xmp", {}).get("data_mining"), rules.opt_out)
        ]
        record["ai_origin"] = [e.to_dict() for e in evidence]
        return record


def _caption_reason(reason: dict[str, Any]) -> dict[str, Any]:
    return {"category": reason["category"], "rule": str(reason.get("rule", "")), "evidence": str(reason["evidence"])}


class Scorer:
    """The image NSFW models, loaded once per worker (single-threaded: the engine runs one worker per core)."""

    def __init__(self, context: FilterContext, *, threads: int | None = 1) -> None:
        from detectors import build_detector

        self.detectors = {}
        for name, settings in context.detectors.items():
            options = dict(settings)
            if threads is not None and "threads" in _parameters(name):
                options["threads"] = threads
            self.detectors[name] = build_detector(name, options)

    def score(self, images: list[Decoded]) -> list[dict[str, Any]]:
        """Per decoded image: `scores` (detector -> label -> score) and `unavailable` (detector -> reason)."""
        good = [i for i, image in enumerate(images) if not isinstance(image, str)]
        results: list[dict[str, Any]] = [{"scores": {}, "unavailable": {}} for _ in images]
        batch = [images[i] for i in good]
        for name, detector in self.detectors.items():
            reason = detector.unavailable_reason
            if reason is not None:
                for i in good:
                    results[i]["unavailable"][name] = reason
                continue
            for i, scores in zip(good, _score_batch(detector, batch), strict=True):
                if isinstance(scores, str):
                    results[i]["unavailable"][name] = scores
                else:
                    results[i]["scores"][name] = {label: float(value) for label, value in scores.items()}
        return results


def _parameters(name: str) -> set[str]:
    from detectors.registry import detector_class

    return set(inspect.signature(detector_class(name).__init__).parameters)


def _score_batch(detector: Any, images: list[Image.Image]) -> list[dict[str, float] | str]:
    """Scores per image; when the batch fails, each image alone (a failure is that image's reason)."""
    if not images:
        return []
    try:
        scores = detector.score(images)
    except Exception:  # a model error on the batch: find the image it comes from
        scores = []
    if len(scores) == len(images):
        return scores
    found: list[dict[str, float] | str] = []
    for image in images:
        try:
            found.append(detector.score([image])[0])
        except Exception as exc:  # a model failing on one image: recorded, and the policy decides
            found.append(f"{type(exc).__name__}: {exc}")
    return found


def assemble(chunk: Chunk, inspections: list[dict[str, Any]], scorings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat record per sample of the chunk, in order."""
    records = []
    for sample, inspected, scored in zip(chunk.samples, inspections, scorings, strict=True):
        record: dict[str, Any] = {
            "key": sample.key,
            "shard": sample.shard,
            "seq": sample.seq,
            "member": sample.member,
            "url": sample.url,
            "caption": sample.caption,
            "error": None,
            "width": None,
            "height": None,
            "phash": None,
            "colorhash": None,
            "caption_reasons": [],
            "caption_categories": {},
            "caption_score": None,
            "caption_score_category": None,
        }
        record.update(inspected)
        record.update(scored)
        records.append(record)
    return records


class ChunkProcessor:
    """Both stages in one process, decoding once: what a local worker and a Ray actor run."""

    def __init__(self, context: FilterContext) -> None:
        self.inspector = Inspector(context)
        self.scorer = Scorer(context)

    def __call__(self, chunk: Chunk) -> list[dict[str, Any]]:
        images = decode_chunk(chunk)
        return assemble(chunk, self.inspector.inspect(chunk, images), self.scorer.score(images))
