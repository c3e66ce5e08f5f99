"""Run a diffusers pipeline with explicit, recorded settings: seeds, steps, guidance, size, image-to-image.

Seeds: image `i` of a request is drawn from its own CPU `torch.Generator` seeded with `seed + i`, so the same
seed gives the same images, and image `i` can be made again alone with `--seed seed+i` (up to floating-point
differences between batch sizes). A CPU generator makes the starting noise the same on every device.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from generation.errors import GenerationError

MAX_SEED = 2**63 - 1
StepCallback = Callable[[int, int], None]
"""Called after each denoising step with (steps done, total steps)."""


@dataclass
class GenerationOptions:
    """What to generate. None means the pipeline's own default (steps, guidance, size)."""

    prompt: str
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    num_images: int = 1
    init_image: Image.Image | None = None
    strength: float = 0.8


@dataclass
class Generated:
    """The images of one request and the settings that made them (for the manifest and the record)."""

    images: list[Image.Image]
    seeds: list[int]
    settings: dict[str, Any] = field(default_factory=dict)


def validate(options: GenerationOptions, pipe: Any | None = None) -> None:
    """Refuse options the pipeline cannot honour, before any model time is spent."""
    if not isinstance(options.prompt, str) or not options.prompt.strip():
        raise GenerationError("The prompt is empty; say what to generate.")
    if options.num_images < 1:
        raise GenerationError(f"The number of images must be at least 1 (got {options.num_images}).")
    if options.steps is not None and options.steps < 1:
        raise GenerationError(f"Steps must be at least 1 (got {options.steps}).")
    if options.seed is not None and not 0 <= options.seed <= MAX_SEED - options.num_images:
        raise GenerationError(f"The seed must be between 0 and {MAX_SEED - options.num_images} (got {options.seed}).")
    if options.init_image is not None and not 0.0 < options.strength <= 1.0:
        raise GenerationError(f"Strength must be above 0 and at most 1 (got {options.strength}).")
    multiple = size_multiple(pipe)
    for name in ("width", "height"):
        value = getattr(options, name)
        if value is not None and (value < multiple or value % multiple):
            raise GenerationError(f"The {name} must be a positive multiple of {multiple} (got {value}).")


def size_multiple(pipe: Any | None) -> int:
    """The multiple image sides must be (the VAE's down-sampling factor; 8 for Stable Diffusion)."""
    return int(getattr(pipe, "vae_scale_factor", None) or 8)


def default_size(pipe: Any) -> tuple[int, int] | None:
    """(width, height) the pipeline makes when none is given, where it can be read from its config."""
    sample = getattr(pipe, "default_sample_size", None)
    unet = getattr(pipe, "unet", None)
    if sample is None and unet is not None:
        sample = getattr(unet.config, "sample_size", None)
    if not isinstance(sample, int):
        return None
    side = sample * size_multiple(pipe)
    return side, side


def output_size(options: GenerationOptions, pipe: Any) -> tuple[int, int] | None:
    """(width, height) the request will produce, when it can be known before generating."""
    if options.init_image is not None:
        return init_size(options, pipe)
    default = default_size(pipe)
    width = options.width or (default[0] if default else None)
    height = options.height or (default[1] if default else None)
    return (width, height) if width and height else None


def init_size(options: GenerationOptions, pipe: Any) -> tuple[int, int]:
    """The size an init image is used at: the requested size, else its own, rounded down to the multiple."""
    multiple = size_multiple(pipe)
    image = options.init_image
    width = options.width or max(multiple, image.width // multiple * multiple)
    height = options.height or max(multiple, image.height // multiple * multiple)
    return width, height


def new_seed() -> int:
    """A random seed, recorded so the image can be made again."""
    return secrets.randbelow(2**32)


def generate(pipe: Any, options: GenerationOptions, *, on_step: StepCallback | None = None) -> Generated:
    """Run `pipe` once for `options.num_images` images and return them with their seeds and settings.

    `pipe` is a diffusers pipeline (or anything with its call signature); image-to-image when
    `options.init_image` is set (the pipeline must take `image`, see `generation.loading.for_task`).
    """
    import torch

    validate(options, pipe)
    parameters = inspect.signature(pipe.__call__).parameters
    base_seed = options.seed if options.seed is not None else new_seed()
    seeds = [base_seed + i for i in range(options.num_images)]
    kwargs: dict[str, Any] = {
        "prompt": options.prompt,
        "num_images_per_prompt": options.num_images,
        "generator": [torch.Generator("cpu").manual_seed(s) for s in seeds],
        "output_type": "pil",
    }
    if options.negative_prompt:
        kwargs["negative_prompt"] = options.negative_prompt
    if options.steps is not None:
        kwargs["num_inference_steps"] = options.steps
    if options.guidance is not None:
        kwargs["guidance_scale"] = options.guidance
    settings: dict[str, Any] = {
        "pipeline": type(pipe).__name__,
        "scheduler": type(pipe.scheduler).__name__ if getattr(pipe, "scheduler", None) is not None else None,
        "steps": options.steps if options.steps is not None else _default(parameters, "num_inference_steps"),
        "guidance": options.guidance if options.guidance is not None else _default(parameters, "guidance_scale"),
    }
    if options.init_image is not None:
        if "image" not in parameters:
            raise GenerationError(f"{type(pipe).__name__} does not take an init image (it is text-to-image only).")
        width, height = init_size(options, pipe)
        kwargs["image"] = options.init_image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
        kwargs["strength"] = options.strength
        settings["strength"] = options.strength
    else:
        if options.width is not None:
            kwargs["width"] = options.width
        if options.height is not None:
            kwargs["height"] = options.height
    if on_step is not None and "callback_on_step_end" in parameters:
        kwargs["callback_on_step_end"] = _step_reporter(on_step, settings["steps"])
    ignored = sorted(name for name in kwargs if name not in parameters and not _takes_any_keyword(parameters))
    if ignored:
        settings["ignored"] = ignored  # e.g. Flux takes no negative prompt: say so instead of failing
    images = list(pipe(**{name: value for name, value in kwargs.items() if name not in ignored}).images)
    if len(images) != options.num_images:
        raise RuntimeError(f"{type(pipe).__name__} returned {len(images)} images for {options.num_images}")
    settings["width"], settings["height"] = images[0].size
    return Generated(images=images, seeds=seeds, settings=settings)


def _takes_any_keyword(parameters: dict[str, inspect.Parameter]) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _default(parameters: dict[str, inspect.Parameter], name: str) -> Any:
    parameter = parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def _step_reporter(on_step: StepCallback, planned: int | None) -> Callable[..., dict]:
    """A diffusers `callback_on_step_end` that reports (done, total); total is the pipeline's own count
    (fewer than the steps asked for in image-to-image, where strength skips the first ones)."""

    def callback(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        total = getattr(pipe, "num_timesteps", None) or planned or step + 1
        on_step(step + 1, int(total))
        return {}

    return callback
