"""Load any diffusers pipeline by hub id or local folder, text-to-image or image-to-image, offline-aware.

diffusers' auto pipelines read the folder's `model_index.json` and pick the task's class for the family
(Stable Diffusion 1.x/2.x, SDXL, SD3, Flux, Kandinsky, ...). The diffusers safety checker is never loaded:
its job (deciding which outputs may be shown) is done by the guard's detectors and policy, which explain
each decision; loading it would also download weights a platform did not ask for.

Offline: with `local_files_only=True` or `HF_HUB_OFFLINE=1`, only the local Hugging Face cache and local
folders are used; a missing model is one sentence naming it and how to provide it.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from generation.devices import DeviceChoice, choose_device
from generation.errors import GenerationError, ModelLoadError

TASKS = ("text-to-image", "image-to-image")
OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_mode() -> bool:
    """True when `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is set to a true value, read at call time."""
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in OFFLINE_ENV)


def resolve_model(model: str | Path) -> tuple[str, bool]:
    """(`model` as diffusers takes it, whether it is a local folder). A path that does not exist is refused
    here, so a typo is not sent to the hub as a model id."""
    text = str(model).strip()
    if not text:
        raise ModelLoadError("No model given: pass a hub id (e.g. stabilityai/sd-turbo) or a local pipeline folder.")
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(
                f"{text} is a file; give the folder of a diffusers pipeline (with model_index.json), "
                "e.g. one written by pipe.save_pretrained(FOLDER)."
            )
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"{text} is not a diffusers pipeline folder (no model_index.json); save one with "
                "pipe.save_pretrained(FOLDER) or give a hub id."
            )
        return str(path), True
    looks_like_path = text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text
    if looks_like_path:
        raise ModelLoadError(f"Model folder {text} does not exist; give an existing pipeline folder or a hub id.")
    return text, False


def load_pipeline(
    model: str | Path,
    *,
    task: str = "text-to-image",
    device: DeviceChoice | str | None = None,
    dtype: str | None = None,
    local_files_only: bool | None = None,
    revision: str | None = None,
    low_memory: bool = False,
) -> Any:
    """A ready diffusers pipeline for `task`, placed on the device (see `place`), its progress bar off."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}")
    choice = device if isinstance(device, DeviceChoice) else choose_device(device, dtype)
    name, local = resolve_model(model)
    offline = offline_mode() if local_files_only is None else local_files_only
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image, DiffusionPipeline

    hub = {"local_files_only": offline or local, "revision": revision}
    try:
        config = DiffusionPipeline.load_config(name, **hub)
    except (OSError, ValueError) as exc:
        raise _missing(name, local, offline, exc) from None
    kwargs: dict[str, Any] = {**hub, _dtype_keyword(): choice.dtype}
    if "safety_checker" in config:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    auto = AutoPipelineForText2Image if task == "text-to-image" else AutoPipelineForImage2Image
    try:
        with _quiet_loading():
            pipe = auto.from_pretrained(name, **kwargs)
    except ValueError as exc:
        if "AutoPipeline can't find a pipeline linked to" in str(exc):
            raise ModelLoadError(
                f"{name} is a {config.get('_class_name')}, which has no {task} pipeline in diffusers."
            ) from None
        raise ModelLoadError(f"Cannot load {name}: {_first_line(exc)}") from None
    except OSError as exc:
        raise _missing(name, local, offline, exc) from None
    except Exception as exc:  # a damaged folder or cache entry fails in many ways; each is the user's to fix
        raise ModelLoadError(f"Cannot load {name} ({type(exc).__name__}): {_first_line(exc)}") from None
    place(pipe, choice, low_memory=low_memory)
    return pipe


def for_task(pipe: Any, task: str) -> Any:
    """The same model (shared weights, no reload) as a pipeline for `task`, through diffusers' `from_pipe`:
    image-to-image from a text-to-image pipeline and back; `pipe` itself when it already fits."""
    image_to_image = "Img2Img" in type(pipe).__name__ or "ImageToImage" in type(pipe).__name__
    takes_image = "image" in inspect.signature(pipe.__call__).parameters
    if task == "text-to-image" and not image_to_image:
        return pipe
    if task == "image-to-image" and takes_image:
        return pipe
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

    auto = AutoPipelineForImage2Image if task == "image-to-image" else AutoPipelineForText2Image
    try:
        converted = auto.from_pipe(pipe)
    except (ValueError, AttributeError, KeyError) as exc:
        raise GenerationError(
            f"{type(pipe).__name__} has no {task} variant in diffusers ({_first_line(exc)}); "
            + ("drop --init-image or use another model." if task == "image-to-image" else "give an init image.")
        ) from None
    converted.set_progress_bar_config(disable=True)
    return converted


def place(pipe: Any, choice: DeviceChoice, *, low_memory: bool = False) -> None:
    """Move `pipe` to the device; with `low_memory`, slice attention and VAE decoding and, on a GPU, keep
    each sub-model on the CPU until it runs (diffusers' model CPU offload, through accelerate)."""
    pipe.set_progress_bar_config(disable=True)
    if low_memory:
        pipe.enable_attention_slicing()
        vae = getattr(pipe, "vae", None)
        if vae is not None and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()
        if choice.device != "cpu":
            try:
                pipe.enable_model_cpu_offload(device=choice.device)
            except ImportError as exc:
                raise ModelLoadError(f"CPU offload needs the accelerate package ({_first_line(exc)}).") from None
            return
    pipe.to(choice.device)


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No "Loading pipeline components" / "Loading weights" bars on the caller's stderr while loading."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    shown = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown[0]:
            diffusers_logging.enable_progress_bar()
        if shown[1]:
            transformers_logging.enable_progress_bar()


def _dtype_keyword() -> str:
    """`dtype` on diffusers releases that renamed it (they warn on `torch_dtype`), else `torch_dtype`."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def _missing(name: str, local: bool, offline: bool, exc: BaseException) -> ModelLoadError:
    if local:
        return ModelLoadError(f"Cannot load the pipeline folder {name}: {_first_line(exc)}")
    if offline:
        return ModelLoadError(
            f"Model {name} is not in the local Hugging Face cache and downloads are off (offline mode); "
            f"download it first with `hf download {name}` or pass a local pipeline folder."
        )
    return ModelLoadError(
        f"Cannot load model {name} from the Hugging Face Hub ({_first_line(exc)}); check the id and your "
        f"connection, or download it with `hf download {name}` and retry, or pass a local folder."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__
