"""Generation behind the guard: check the prompt, generate, score, decide per image, protect, record.

`guarded_generate` is the whole flow, top to bottom. `Guard` holds what is set up once (policy, detectors,
signer and store, loaded models) and `Guard.wrap` / `guard_pipeline` put the same checks around a diffusers
pipeline a platform already has.

Per image: `allow` is delivered; `blur` is delivered blurred; `review` waits for a person in the review folder
when one is given (protected like any output), else it is not written (and a prompt held for review is not
generated at all); `block` is never written.

Diffusers' own safety checker is never used: it is a black box that blacks out a whole image with no
reason. Its job is done by the policy's detectors, whose scores and the policy's reasons are in every record.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from generation.pipeline import GenerationOptions, StepCallback, generate, output_size, validate
from guard.check_prompt import PromptChecker
from guard.errors import GuardError
from guard.images import load_image
from guard.provenance.credentials.source_types import DigitalSourceType
from guard.redact import blur
from policies import Decision, Policy, combine, load_policy

if TYPE_CHECKING:
    from guard.provenance.credentials.c2pa import Ingredient
    from guard.scan import Assessment

DELIVERY_FORMATS = ("jpg", "png", "webp")
"""Delivered file formats. JPEG (quality 95) is the default: encoding a 512x512 PNG costs ~130 ms on one CPU
core, a JPEG ~2 ms, and the watermark is made to survive JPEG."""
TEXT_TO_IMAGE = DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA
IMAGE_TO_IMAGE = DigitalSourceType.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA


@dataclass
class ImageRecord:
    """What happened to one requested image (the JSON line `guard generate --json` prints)."""

    index: int
    decision: str
    stage: str
    """`prompt` (refused before generation) or `image` (decided on the generated image)."""
    output: Path | None
    """The delivered file; None when the image was withheld or never generated."""
    request_id: str
    prompt_decision: str
    reasons: list[dict[str, Any]]
    categories: dict[str, str]
    policy: dict[str, Any]
    seed: int | None = None
    blurred: bool = False
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    detectors: dict[str, Any] = field(default_factory=dict)
    review_output: Path | None = None
    """Where an image held for review was written (only with a review folder)."""
    manifest_id: str | None = None
    watermark: dict[str, str] | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    prompt_classifier: dict[str, Any] | None = None
    """The prompt classifier's status and scores for this request's prompt (see `Decision.classifier`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "decision": self.decision,
            "output": str(self.output) if self.output is not None else None,
            "review_output": str(self.review_output) if self.review_output is not None else None,
            "stage": self.stage,
            "blurred": self.blurred,
            "seed": self.seed,
            "request_id": self.request_id,
            "prompt_decision": self.prompt_decision,
            "reasons": self.reasons,
            "categories": self.categories,
            "scores": self.scores,
            "detectors": self.detectors,
            "policy": self.policy,
            "manifest_id": self.manifest_id,
            "watermark": self.watermark,
            "generation": self.generation,
            "timings_ms": self.timings_ms,
            "prompt_classifier": self.prompt_classifier,
        }


def guarded_generate(
    options: GenerationOptions,
    *,
    policy: Policy,
    pipeline: Callable[[str], Any],
    protector: Callable[[], Any],
    output_dir: str | Path,
    model_id: str,
    model_version: str | None = None,
    detectors: Any = None,
    init_ingredient: Ingredient | None = None,
    output_format: str = "jpg",
    review_dir: str | Path | None = None,
    on_step: StepCallback | None = None,
    prompt_checker: PromptChecker | None = None,
) -> list[ImageRecord]:
    """Run one request through the guard and return one record per requested image.

    `pipeline(task)` gives the diffusers pipeline for `text-to-image` or `image-to-image` (loading it on
    first use); `protector()` the `guard.protect.Protector` (opened on first use). Neither is called for a
    blocked prompt: no model is loaded or run for it. The prompt is decided by `prompt_checker` (default:
    a `PromptChecker` for `policy`, rules and text classifier, as `guard check-prompt` decides it).
    """
    validate(options)
    if output_format not in DELIVERY_FORMATS:
        raise GuardError(f"Unknown output format {output_format!r}; use one of {', '.join(DELIVERY_FORMATS)}.")
    request_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    timings: dict[str, float] = {}

    # 1. The prompt: a blocked prompt never reaches the model, nor does one held for review when there is no
    #    review folder to put its images in (they could not be delivered).
    with _timed(timings, "prompt"):
        prompt_decision = (prompt_checker or PromptChecker(policy)).check_one(options.prompt)
    if prompt_decision.decision == "block" or (prompt_decision.decision == "review" and review_dir is None):
        return [_not_generated(index, request_id, prompt_decision, timings) for index in range(options.num_images)]

    # 2. Generate, steering away from what the policy blocks. The signer and the output folders are checked
    #    first, so that a missing key or an unwritable folder fails before any model time is spent.
    signer = protector()
    for folder in (output_dir, review_dir):
        _make_folder(folder)
    task = "image-to-image" if options.init_image is not None else "text-to-image"
    pipe = pipeline(task)
    validate(options, pipe)
    _check_watermarkable(output_size(options, pipe), signer)
    steered = replace(options, negative_prompt=with_policy_terms(options.negative_prompt, policy))
    with _timed(timings, "generate"):
        generated = generate(pipe, steered, on_step=on_step)

    # 3. Score every output in one batch.
    from guard.scan import assess_images

    with _timed(timings, "scan"):
        assessments = assess_images(generated.images, policy, detectors=detectors)

    # 4. Per image: decide; then blur, hold for review or withhold; watermark + sign + store what is written.
    records = []
    for index, (image, seed, assessment) in enumerate(zip(generated.images, generated.seeds, assessments, strict=True)):
        decision = decide_generated(prompt_decision, assessment.decision)
        settings = {"model": model_id, "seed": seed, **generated.settings}
        if model_version:
            settings["model_version"] = model_version
        record = _generated(index, request_id, prompt_decision, decision, assessment, settings, timings)
        records.append(record)
        folder = {"allow": output_dir, "blur": output_dir, "review": review_dir}.get(record.decision)
        if folder is None:
            continue  # blocked, or held for review with no review folder: never written
        if record.decision == "blur":
            with _timed(record.timings_ms, "blur"):
                image = blur(image)
            record.blurred = True
        with _timed(record.timings_ms, "protect"):
            result = signer.protect(
                image,
                Path(folder) / f"{request_id}-{index}.{output_format}",
                source_type=TEXT_TO_IMAGE if init_ingredient is None else IMAGE_TO_IMAGE,
                generator=settings,
                prompt=options.prompt,
                policy_decision=decision.to_dict(),
                ingredient=init_ingredient,
            )
        if record.decision == "review":
            record.review_output = result.output
        else:
            record.output = result.output
        record.manifest_id = result.manifest_id
        record.watermark = result.to_dict()["watermark"]
    return records


def with_policy_terms(negative_prompt: str | None, policy: Policy) -> str | None:
    """The user's negative prompt followed by the policy's `negative_prompt_terms` it does not already have."""
    parts = [negative_prompt.strip()] if negative_prompt and negative_prompt.strip() else []
    present = (negative_prompt or "").lower()
    parts.extend(term for term in policy.negative_prompt_terms if term.lower() not in present)
    return ", ".join(parts) or None


def decide_generated(prompt: Decision, image: Decision) -> Decision:
    """The decision for one generated image: the prompt's and the image's combined (most severe wins), each
    reason tagged with the `stage` it came from."""
    return combine([_staged(prompt, "prompt"), _staged(image, "image")])


def _staged(decision: Decision, stage: str) -> Decision:
    return replace(decision, reasons=[{**reason, "stage": stage} for reason in decision.reasons])


def init_ingredient(source: str | Path | bytes | Image.Image) -> Ingredient:
    """The init image as a C2PA `inputTo` ingredient: the file's own bytes when c2pa takes its format,
    else a PNG of its pixels."""
    from guard.provenance.credentials.c2pa import INPUT_TO, SIGNABLE_MIME, Ingredient, mime_of_format

    if isinstance(source, str | Path):
        path = Path(source)
        try:
            data = path.read_bytes()
            with Image.open(io.BytesIO(data)) as probe:
                mime = mime_of_format(probe.format)
        except (OSError, ValueError, Image.DecompressionBombError):
            mime = None  # load_image below says why in one sentence (ImageError)
        if mime is not None and mime in SIGNABLE_MIME.values():
            return Ingredient(data=data, mime=mime, title=path.name, relationship=INPUT_TO)
        title = f"{path.stem}.png"
    else:
        title = "init-image.png"
    buffer = io.BytesIO()
    load_image(source).save(buffer, "PNG")
    return Ingredient(data=buffer.getvalue(), mime="image/png", title=title, relationship=INPUT_TO)


class Guard:
    """Policy, detectors, signer and store set up once; `generate` runs a request through the guard.

    >>> with Guard(policy="default") as guard:
    ...     records = guard.generate("a red bicycle", model="stabilityai/sd-turbo", output_dir="out", steps=1)
    """

    def __init__(
        self,
        policy: Policy | str | Path | None = None,
        *,
        detectors: Any = None,
        protector: Any = None,
        device: str | None = None,
        dtype: str | None = None,
        low_memory: bool = False,
        local_files_only: bool | None = None,
        revision: str | None = None,
        output_format: str = "jpg",
        prompt_classifier: Any = None,
    ) -> None:
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        self.prompt_checker = PromptChecker(self.policy, classifier=prompt_classifier)
        """Decides prompts with the policy's rules and the text classifier (the process-wide one unless
        `prompt_classifier` is given), exactly as `guard check-prompt` does."""
        self.detectors = detectors
        self.output_format = output_format
        self._protector = protector
        self._owns_protector = protector is None
        self._load = {
            "device": device,
            "dtype": dtype,
            "low_memory": low_memory,
            "local_files_only": local_files_only,
            "revision": revision,
        }
        self._pipes: dict[tuple[str, str], Any] = {}

    def generate(
        self,
        prompt: str,
        *,
        model: str | Path | Any,
        output_dir: str | Path,
        negative_prompt: str | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        width: int | None = None,
        height: int | None = None,
        num_images: int = 1,
        init_image: str | Path | bytes | Image.Image | None = None,
        strength: float = 0.8,
        review_dir: str | Path | None = None,
        on_step: StepCallback | None = None,
    ) -> list[ImageRecord]:
        """Generate through the guard with `model` (hub id, local folder or a loaded pipeline object).
        Images the policy sends to review go to `review_dir` when given (else they are not written)."""
        options = GenerationOptions(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            steps=steps,
            guidance=guidance,
            width=width,
            height=height,
            num_images=num_images,
            init_image=load_image(init_image) if init_image is not None else None,
            strength=strength,
        )
        return guarded_generate(
            options,
            policy=self.policy,
            pipeline=lambda task: self._pipeline(model, task),
            protector=self._signer,
            output_dir=output_dir,
            model_id=model_name(model),
            model_version=self._load["revision"] if isinstance(model, str | Path) else None,
            detectors=self.detectors,
            init_ingredient=init_ingredient(init_image) if init_image is not None else None,
            output_format=self.output_format,
            prompt_checker=self.prompt_checker,
            review_dir=review_dir,
            on_step=on_step,
        )

    def wrap(self, pipe: Any) -> GuardedPipeline:
        """`pipe` (a diffusers pipeline a platform already has) behind this guard's checks."""
        return GuardedPipeline(pipe, self)

    def close(self) -> None:
        """Close the signer's store if this guard opened it."""
        if self._owns_protector and self._protector is not None:
            self._protector.close()
            self._protector = None

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _signer(self) -> Any:
        if self._protector is None:
            from guard.protect import Protector

            self._protector = Protector.from_env()
        return self._protector

    def _pipeline(self, model: str | Path | Any, task: str) -> Any:
        from generation.loading import for_task, load_pipeline

        if not isinstance(model, str | Path):
            return for_task(model, task)
        key = (str(model), task)
        if key not in self._pipes:
            base_key = (str(model), "text-to-image")
            if base_key not in self._pipes:
                self._pipes[base_key] = load_pipeline(model, **self._load)
            self._pipes[key] = for_task(self._pipes[base_key], task)
        return self._pipes[key]


class GuardedPipeline:
    """A pipeline a platform already has, behind a `Guard`: same prompt check, scoring, decisions and
    protection as `Guard.generate`. Call it (or `.generate`) with a prompt and an output folder."""

    def __init__(self, pipe: Any, guard: Guard) -> None:
        self.pipe = pipe
        self.guard = guard

    def generate(self, prompt: str, *, output_dir: str | Path, **options: Any) -> list[ImageRecord]:
        return self.guard.generate(prompt, model=self.pipe, output_dir=output_dir, **options)

    __call__ = generate

    def close(self) -> None:
        """Close the guard's store if the guard opened it."""
        self.guard.close()

    def __enter__(self) -> GuardedPipeline:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def guard_pipeline(pipe: Any, policy: Policy | str | Path | None = None, **guard_options: Any) -> GuardedPipeline:
    """Put `pipe` behind a new `Guard(policy, **guard_options)`."""
    return Guard(policy, **guard_options).wrap(pipe)


def model_name(model: str | Path | Any) -> str:
    """The model id written into the manifest: the hub id or folder, or a pipeline's `name_or_path`."""
    if isinstance(model, str | Path):
        return str(model)
    return str(getattr(model, "name_or_path", None) or type(model).__name__)


def _generated(
    index: int,
    request_id: str,
    prompt: Decision,
    decision: Decision,
    assessment: Assessment,
    settings: dict[str, Any],
    timings: dict[str, float],
) -> ImageRecord:
    return ImageRecord(
        index=index,
        decision=decision.decision,
        stage="image",
        output=None,
        request_id=request_id,
        prompt_decision=prompt.decision,
        reasons=decision.reasons,
        categories=decision.categories,
        policy={"name": decision.policy_name, "version": decision.policy_version},
        seed=settings["seed"],
        scores={name: dict(labels) for name, labels in assessment.scores.items()},
        detectors={name: dict(status) for name, status in assessment.detectors.items()},
        generation=settings,
        timings_ms=dict(timings),
        prompt_classifier=prompt.classifier,
    )


def _not_generated(index: int, request_id: str, decision: Decision, timings: dict[str, float]) -> ImageRecord:
    return ImageRecord(
        index=index,
        decision=decision.decision,
        stage="prompt",
        output=None,
        request_id=request_id,
        prompt_decision=decision.decision,
        reasons=[{**reason, "stage": "prompt"} for reason in decision.reasons],
        categories=dict(decision.categories),
        policy={"name": decision.policy_name, "version": decision.policy_version},
        timings_ms=dict(timings),
        prompt_classifier=decision.classifier,
    )


def _make_folder(folder: str | Path | None) -> None:
    if folder is None:
        return
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GuardError(f"Cannot create the output folder {folder}: {exc.strerror or exc}.") from None


def _check_watermarkable(size: tuple[int, int] | None, signer: Any) -> None:
    """Refuse, before generating, a size the watermark scheme cannot carry."""
    min_side = getattr(signer.scheme, "min_side", None)
    if size is not None and min_side and min(size) < min_side:
        raise GuardError(
            f"{size[0]}x{size[1]} images are too small for the {signer.scheme.name} watermark; "
            f"generate at least {min_side}x{min_side}."
        )


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round((time.perf_counter() - start) * 1000, 3)
