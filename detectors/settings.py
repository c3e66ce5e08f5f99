"""The environment variables the detectors read, declared once: name -> (default, meaning).

They describe the machine (where weights live, how many threads), not the policy, so they override the
policy's detector settings.
"""

import os

from detectors.errors import DetectorError

NUDENET_MODEL = "GUARD_NUDENET_MODEL"
NUDENET_THREADS = "GUARD_NUDENET_THREADS"
CLIP_MODEL = "GUARD_CLIP_MODEL"
CLIP_PRETRAINED = "GUARD_CLIP_PRETRAINED"
CLIP_CACHE = "GUARD_CLIP_CACHE"
SYNTHETIC_WEIGHTS = "GUARD_SYNTHETIC_WEIGHTS"
SYNTHETIC_CLIP_MODEL = "GUARD_SYNTHETIC_CLIP_MODEL"
SYNTHETIC_CLIP_PRETRAINED = "GUARD_SYNTHETIC_CLIP_PRETRAINED"
MODEL_CACHE = "GUARD_MODEL_CACHE"

SETTINGS: dict[str, tuple[str, str]] = {
    NUDENET_MODEL: ("the `320n.onnx` inside the nudenet wheel", "another NudeNet-format ONNX model file"),
    NUDENET_THREADS: ("the number of CPU cores", "NudeNet batches scored at once (each single-threaded)"),
    CLIP_MODEL: ("the policy's `clip_concepts.model` (ViT-L-14)", "open_clip architecture for concept scores"),
    CLIP_PRETRAINED: (
        "the policy's `clip_concepts.pretrained` (openai)",
        "pretrained tag, checkpoint file or `local-dir:` folder of the concept CLIP (never downloaded)",
    ),
    CLIP_CACHE: ("`~/.cache/clip`", "folder holding open_clip's URL downloads, searched for pretrained tags"),
    SYNTHETIC_WEIGHTS: ("none: the synthetic-image classifier is unavailable", "UnivFD linear probe weights file"),
    SYNTHETIC_CLIP_MODEL: ("ViT-L-14", "open_clip architecture under the synthetic-image probe"),
    SYNTHETIC_CLIP_PRETRAINED: ("openai", "pretrained tag, checkpoint or `local-dir:` of that CLIP"),
    MODEL_CACHE: (
        "`$XDG_CACHE_HOME/guard/models` or `~/.cache/guard/models`",
        "folder for models derived on first use (the prompt classifier's int8 ONNX encoder, ~23 MB)",
    ),
}


def env_int(name: str, default: int) -> int:
    """A whole-number setting from the environment; `DetectorError` when it is not a number."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise DetectorError(f"{name} must be a whole number, got {raw!r}.") from None
