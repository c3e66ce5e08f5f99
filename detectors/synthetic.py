"""Synthetic-image (AI-generated) score: the UnivFD recipe, a linear probe on frozen CLIP image features.

Ojha, Li, Lee, "Towards Universal Fake Image Detectors that Generalize Across Generative Models" (CVPR
2023): CLIP ViT-L/14's image embedding (768 values, not normalised) goes through one linear layer and a
sigmoid; the result is the probability that the image is generated. Preprocessing follows the paper's
evaluation: a 224×224 centre crop of the image *without resizing* (smaller images are padded with black),
normalised with CLIP's mean and standard deviation.

The probe weights are a file: the published `pretrained_weights/fc_weights.pth` of
github.com/WisconsinAIVision/UniversalFakeDetect (a state dict with `weight` [1, 768] and `bias` [1]),
or any probe with the same layout (`fc.` prefixes are accepted). No weights configured -> unavailable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detectors.base import Detection, DetectorUnavailable, LazyDetector
from detectors.openclip import LoadedClip, load_clip
from detectors.settings import SYNTHETIC_CLIP_MODEL, SYNTHETIC_CLIP_PRETRAINED, SYNTHETIC_WEIGHTS

ENV_WEIGHTS = SYNTHETIC_WEIGHTS
ENV_MODEL = SYNTHETIC_CLIP_MODEL
ENV_PRETRAINED = SYNTHETIC_CLIP_PRETRAINED

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LABEL = "synthetic"
PUBLISHED_WEIGHTS = "fc_weights.pth from github.com/WisconsinAIVision/UniversalFakeDetect (pretrained_weights/)"


def sigmoid(value: float) -> float:
    """The logistic function, without overflow for large negative values."""
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)


def center_crop(image: Image.Image, size: int) -> np.ndarray:
    """A size×size centre crop as float32 (H, W, 3) in 0..1, padded with black when the image is smaller.

    The crop offsets round like torchvision's `CenterCrop`, which the paper's evaluation uses.
    """
    rgb = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
    height, width = rgb.shape[:2]
    if height < size or width < size:
        top, left = max(0, (size - height) // 2), max(0, (size - width) // 2)
        padded = np.zeros((max(size, height), max(size, width), 3), dtype=np.uint8)
        padded[top : top + height, left : left + width] = rgb
        rgb, height, width = padded, padded.shape[0], padded.shape[1]
    top = round((height - size) / 2.0)
    left = round((width - size) / 2.0)
    return rgb[top : top + size, left : left + size].astype(np.float32) / 255.0


def load_probe(path: Path, dim: int) -> tuple[Any, Any]:
    """(weight [1, dim], bias [1]) tensors from a UnivFD-style state dict; DetectorUnavailable if malformed."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise DetectorUnavailable(f"the synthetic-image probe {path} is not a readable torch file ({exc}).") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DetectorUnavailable(f"the synthetic-image probe {path} is not a state dict with 'weight' and 'bias'.")
    state = {key.removeprefix("module.").removeprefix("fc."): value for key, value in state.items()}
    weight, bias = state.get("weight"), state.get("bias")
    if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
        raise DetectorUnavailable(
            f"the synthetic-image probe {path} has no 'weight' and 'bias' tensors (keys: {sorted(state)[:6]})."
        )
    if tuple(weight.shape) != (1, dim) or bias.numel() != 1:
        raise DetectorUnavailable(
            f"the synthetic-image probe {path} has weight {tuple(weight.shape)} and bias {tuple(bias.shape)}; "
            f"this CLIP model needs weight (1, {dim}) and bias (1,)."
        )
    return weight.float(), bias.float().reshape(1)


class SyntheticImageDetector(LazyDetector):
    """The probability that an image is AI-generated (label `synthetic`), UnivFD-style.

    `weights`: the probe file; `model`/`pretrained`: the frozen CLIP (default ViT-L-14 / openai, as in the
    paper), loaded from local files only; `device`: where it runs (`cpu`, `cuda`, ...).
    `GUARD_SYNTHETIC_WEIGHTS`, `GUARD_SYNTHETIC_CLIP_MODEL` and `GUARD_SYNTHETIC_CLIP_PRETRAINED` override
    them (file locations belong to the machine).
    """

    name = "synthetic"

    def __init__(
        self,
        *,
        weights: str | os.PathLike | None = None,
        model: str | None = None,
        pretrained: str | None = None,
        batch_size: int = 16,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        self.weights = os.environ.get(ENV_WEIGHTS) or weights or None
        self.model_name = os.environ.get(ENV_MODEL) or model or "ViT-L-14"
        self.pretrained = os.environ.get(ENV_PRETRAINED) or pretrained or "openai"
        self.batch_size = max(1, int(batch_size))
        self.device = str(device)
        self._clip: LoadedClip | None = None
        self._weight: Any = None
        self._bias: Any = None

    @property
    def labels(self) -> tuple[str, ...]:
        return (LABEL,)

    def _load(self) -> None:
        if not self.weights:
            raise DetectorUnavailable(
                f"no probe weights configured; download {PUBLISHED_WEIGHTS} and set detectors.{self.name}.weights "
                f"in the policy or {ENV_WEIGHTS} to its path."
            )
        path = Path(self.weights).expanduser()
        if not path.is_file():
            raise DetectorUnavailable(
                f"the probe weights file {path} does not exist; set detectors.{self.name}.weights or {ENV_WEIGHTS} "
                f"to the path of {PUBLISHED_WEIGHTS}."
            )
        setting = f"detectors.{self.name}.pretrained (or {ENV_PRETRAINED})"
        clip = load_clip(self.model_name, self.pretrained, setting, self.device)
        weight, bias = load_probe(path, clip.embed_dim)
        self._weight, self._bias = weight.to(clip.device), bias.to(clip.device)
        self._clip = clip

    def logits(self, images: Sequence[Image.Image]) -> list[float]:
        """The probe's raw output (before the sigmoid) for each image."""
        import torch

        assert self._clip is not None
        size = self._clip.image_size
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        out: list[float] = []
        for start in range(0, len(images), self.batch_size):
            crops = np.stack([center_crop(image, size) for image in images[start : start + self.batch_size]])
            pixels = ((torch.from_numpy(crops).permute(0, 3, 1, 2) - mean) / std).to(self._clip.device)
            with torch.inference_mode():
                features = self._clip.model.encode_image(pixels).float()
                out.extend((features @ self._weight.T + self._bias).reshape(-1).cpu().tolist())
        return out

    def _analyze(self, images: list[Image.Image]) -> list[Detection]:
        return [
            Detection(scores={LABEL: sigmoid(logit)}, details={"logit": round(logit, 4)})
            for logit in self.logits(images)
        ]
