"""open_clip models loaded strictly from local files — nothing is ever downloaded.

A model is named the way open_clip names it:

* a built-in architecture plus a pretrained tag (`ViT-L-14` + `openai`): used only when the weights are
  already in the local cache (the Hugging Face hub cache, or open_clip's URL cache `~/.cache/clip`);
* a built-in architecture plus a checkpoint file (`ViT-L-14` + `/models/vit-l-14.safetensors`);
* `local-dir:/path` — a folder with `open_clip_config.json` and a weights file (any architecture);
* `hf-hub:org/repo` — only when that repository is already in the local Hugging Face cache.

When none of these resolves, `DetectorUnavailable` says which model is missing and how to provide it.
Loaded models are shared between detectors (the concept and synthetic-image detectors both use CLIP
ViT-L/14 by default), keyed by what was resolved.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors.base import DetectorUnavailable
from detectors.settings import CLIP_CACHE

ENV_CLIP_CACHE = CLIP_CACHE
"""Folder open_clip's URL downloads were saved to (default `~/.cache/clip`); the hub cache follows HF_HOME."""

_WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


@dataclass(frozen=True)
class ClipSource:
    """What `open_clip.create_model` is called with, once resolved to local files."""

    model_name: str
    checkpoint: str | None
    quick_gelu: bool = False
    preprocess: tuple[tuple[str, Any], ...] = ()


@dataclass
class LoadedClip:
    """A CLIP model ready for inference, with its image preprocessing and text tokenizer."""

    model: Any
    preprocess: Any
    tokenizer: Any
    source: ClipSource
    device: str = "cpu"

    @property
    def image_size(self) -> int:
        size = getattr(self.model.visual, "image_size", 224)
        return int(size[0] if isinstance(size, tuple | list) else size)

    @property
    def embed_dim(self) -> int:
        return int(self.model.visual.output_dim)


def _how_to_fix(model: str, pretrained: str | None, setting: str) -> str:
    fetch = (
        f'fetch them once on a machine with network access (python -c "import open_clip; '
        f"open_clip.create_model('{model}', pretrained='{pretrained}')\") and copy the cache, or "
        if pretrained
        else ""
    )
    return f"{fetch}set {setting} to a local checkpoint file or a local-dir: folder"


def _hub_cached(repo: str, filename: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo, filename)
    return found if isinstance(found, str) and os.path.isfile(found) else None


def _cached_tag_weights(config: dict[str, Any]) -> str | None:
    """The local file for a pretrained tag's weights, from the hub cache or open_clip's URL cache."""
    hub = config.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else list(_WEIGHT_NAMES)
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        for name in names:
            found = _hub_cached(repo, name)
            if found:
                return found
    url = config.get("url", "")
    if url:
        cache = Path(os.environ.get(ENV_CLIP_CACHE) or Path.home() / ".cache" / "clip")
        candidate = cache / os.path.basename(url)
        if candidate.is_file():
            return str(candidate)
    return None


def _local_dir(path: Path, model: str, setting: str) -> ClipSource:
    if not (path / "open_clip_config.json").is_file():
        raise DetectorUnavailable(
            f"CLIP model {model}: {path} has no open_clip_config.json; {_how_to_fix(model, None, setting)}."
        )
    try:
        json.loads((path / "open_clip_config.json").read_text(encoding="utf-8"))["model_cfg"]
    except (ValueError, KeyError, OSError) as exc:
        raise DetectorUnavailable(f"CLIP model {model}: {path}/open_clip_config.json is not valid ({exc}).") from None
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in path.iterdir() if p.is_file()):
        raise DetectorUnavailable(
            f"CLIP model {model}: {path} has a config but no weights file; {_how_to_fix(model, None, setting)}."
        )
    return ClipSource(model_name=f"local-dir:{path}", checkpoint=None)


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _any_cached_weights() -> bool:
    """Whether any open_clip weights at all are in the local caches (a directory listing, no torch import)."""
    cache = Path(os.environ.get(ENV_CLIP_CACHE) or Path.home() / ".cache" / "clip")
    if cache.is_dir() and any(p.suffix in _WEIGHT_SUFFIXES for p in cache.iterdir()):
        return True
    hub = _hub_cache()
    return hub.is_dir() and any(
        any(hub.glob(f"models--*/snapshots/*/{name}")) for name in (*_WEIGHT_NAMES, "open_clip_config.json")
    )


def _builtin_architecture(name: str) -> bool:
    """Whether open_clip ships a config for `name` (read from its package folder, without importing torch)."""
    import importlib.util
    import sys

    if "open_clip" in sys.modules:
        return name in sys.modules["open_clip"].list_models()
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return False
    return (Path(next(iter(spec.submodule_search_locations))) / "model_configs" / f"{name}.json").is_file()


def _not_cached(model: str, pretrained: str, setting: str) -> DetectorUnavailable:
    return DetectorUnavailable(
        f"CLIP weights {model}/{pretrained} are not in the local cache and nothing is downloaded at run time; "
        f"{_how_to_fix(model, pretrained, setting)}."
    )


def resolve(model: str, pretrained: str | None, setting: str) -> ClipSource:
    """Turn a model name and pretrained tag/path into local files, or raise `DetectorUnavailable`.

    `setting` names where the user configures it (e.g. "detectors.clip_concepts.pretrained"), for the message.
    When no CLIP weights are cached at all, a tag is refused before open_clip (and torch) is even imported,
    so a scan on a machine without them starts in a second, not in the ten it takes to import torch.
    """
    name = model.replace("/", "-")
    schema = model.startswith(("local-dir:", "hf-hub:"))
    if not schema and not _builtin_architecture(name):
        raise DetectorUnavailable(
            f"CLIP model {model!r} is not an open_clip architecture; use one of open_clip.list_models(), "
            f"or a local-dir: folder."
        )
    if not schema and pretrained and not Path(pretrained).expanduser().is_file() and not _any_cached_weights():
        raise _not_cached(model, pretrained, setting)
    import open_clip

    if model.startswith("local-dir:"):
        return _local_dir(Path(model[len("local-dir:") :]).expanduser(), model, setting)
    if model.startswith("hf-hub:"):
        repo = model[len("hf-hub:") :]
        config = _hub_cached(repo, "open_clip_config.json")
        if config is None:
            raise DetectorUnavailable(
                f"CLIP model {model} is not in the local Hugging Face cache and nothing is downloaded at run time; "
                f"{_how_to_fix(model, None, setting)}."
            )
        return _local_dir(Path(config).parent, model, setting)
    if not pretrained:
        raise DetectorUnavailable(
            f"CLIP model {model} has no pretrained weights configured (random weights score nothing); "
            f"{_how_to_fix(model, None, setting)}."
        )
    path = Path(pretrained).expanduser()
    if path.is_file():
        return ClipSource(model_name=name, checkpoint=str(path))
    tag_config = open_clip.get_pretrained_cfg(name, pretrained)
    if not tag_config:
        raise DetectorUnavailable(
            f"CLIP weights {pretrained!r} for {model} are neither a file nor a known tag "
            f"({', '.join(open_clip.list_pretrained_tags_by_model(name)) or 'none'}); "
            f"{_how_to_fix(model, None, setting)}."
        )
    local = _cached_tag_weights(tag_config)
    if local is None:
        raise _not_cached(model, pretrained, setting)
    preprocess = {k: tag_config[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_config}
    return ClipSource(
        model_name=name,
        checkpoint=local,
        quick_gelu=bool(tag_config.get("quick_gelu", False)),
        preprocess=tuple(sorted(preprocess.items())),
    )


_LOADED: dict[tuple[ClipSource, str], LoadedClip] = {}
_LOCK = threading.Lock()


def load_clip(model: str, pretrained: str | None, setting: str, device: str = "cpu") -> LoadedClip:
    """The CLIP model for `model`/`pretrained` on `device`, loaded once per process from local files only."""
    source = resolve(model, pretrained, setting)
    with _LOCK:
        if (source, device) not in _LOADED:
            _LOADED[source, device] = _create(source, model, _check_device(device, setting))
        return _LOADED[source, device]


def _check_device(device: str, setting: str) -> str:
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise DetectorUnavailable(f"device {device!r} is not a torch device ({exc}).") from None
    if kind == "cuda" and not torch.cuda.is_available():
        where = setting.split(".pretrained")[0]
        raise DetectorUnavailable(
            f"device {device!r} was asked for but no CUDA GPU is available; set {where}.device: cpu."
        )
    return device


def _create(source: ClipSource, model: str, device: str) -> LoadedClip:
    import open_clip

    kwargs: dict[str, Any] = {"pretrained": source.checkpoint} if source.checkpoint else {}
    if source.quick_gelu:
        kwargs["force_quick_gelu"] = True
    if source.preprocess:
        kwargs["force_preprocess_cfg"] = dict(source.preprocess)
    try:
        clip, _, preprocess = open_clip.create_model_and_transforms(source.model_name, device=device, **kwargs)
        tokenizer = open_clip.get_tokenizer(source.model_name)
    except Exception as exc:  # open_clip raises RuntimeError/ValueError/OSError for unreadable weights
        raise DetectorUnavailable(f"CLIP model {model} could not be loaded from local files ({exc}).") from None
    clip.eval()
    return LoadedClip(model=clip, preprocess=preprocess, tokenizer=tokenizer, source=source, device=device)
