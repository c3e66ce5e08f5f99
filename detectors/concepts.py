"""Concept scores with CLIP: how close an image is to text descriptions of concepts the policy names.

The approach of Stable Diffusion's safety checker — cosine similarity between the image embedding and
fixed concept embeddings, flagged above a per-concept threshold — except that the concepts are plain text
in the policy (`detectors.clip_concepts.concepts: {label: [descriptions...]}`), so a policy can change them.

Score. A concept's similarity is the highest cosine similarity between the image and any of its
descriptions. CLIP cosines are small numbers in a narrow band (for ViT-L/14, ~0.1 for unrelated text,
~0.2 where the SD safety checker starts flagging, ~0.3 for a close match), so the score reported is a
logistic curve around that point: `score = 1 / (1 + exp(-scale * (similarity - center)))`, with
`center` 0.2 and `scale` 50 by default. A similarity of `center` scores 0.5; +0.05 scores 0.92; -0.05
scores 0.08. The policy's per-concept `min_score` then sets where each concept fires; the raw
similarities are in the details.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from detectors.base import Detection, DetectorUnavailable, LazyDetector
from detectors.errors import DetectorError
from detectors.openclip import LoadedClip, load_clip
from detectors.settings import CLIP_MODEL as ENV_MODEL
from detectors.settings import CLIP_PRETRAINED as ENV_PRETRAINED

DEFAULT_MODEL = "ViT-L-14"
DEFAULT_PRETRAINED = "openai"
DEFAULT_CENTER = 0.2
DEFAULT_SCALE = 50.0


def similarity_to_score(similarity: float, center: float = DEFAULT_CENTER, scale: float = DEFAULT_SCALE) -> float:
    """The 0..1 score for a cosine similarity (see the module docstring)."""
    return 1.0 / (1.0 + math.exp(-scale * (similarity - center)))


class ClipConceptDetector(LazyDetector):
    """Scores for each concept of the policy (label -> text descriptions) from CLIP image-text similarity.

    `model` and `pretrained` name the CLIP model (default ViT-L-14 / openai; `GUARD_CLIP_MODEL` and
    `GUARD_CLIP_PRETRAINED` override them, since where weights live is the machine's business, not the
    policy's); see `detectors.openclip` for what they may be. Weights are never downloaded. `device`: where
    CLIP runs (`cpu`, `cuda`, `cuda:1`, ...).
    """

    name = "clip_concepts"

    def __init__(
        self,
        *,
        concepts: Mapping[str, Sequence[str] | str],
        model: str | None = None,
        pretrained: str | None = None,
        center: float = DEFAULT_CENTER,
        scale: float = DEFAULT_SCALE,
        batch_size: int = 16,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        self.concepts = {label: [texts] if isinstance(texts, str) else list(texts) for label, texts in concepts.items()}
        if not self.concepts or not all(self.concepts.values()):
            raise DetectorError("clip_concepts needs 'concepts': a label -> list of text descriptions, none empty.")
        self.model_name = os.environ.get(ENV_MODEL) or model or DEFAULT_MODEL
        self.pretrained = os.environ.get(ENV_PRETRAINED) or pretrained or DEFAULT_PRETRAINED
        self.center = float(center)
        self.scale = float(scale)
        self.batch_size = max(1, int(batch_size))
        self.device = str(device)
        self._clip: LoadedClip | None = None
        self._text: Any = None
        self._owner: list[str] = []

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.concepts)

    def _load(self) -> None:
        setting = f"detectors.{self.name}.pretrained (or {ENV_PRETRAINED})"
        clip = load_clip(self.model_name, self.pretrained, setting, self.device)
        import torch

        texts = [text for texts in self.concepts.values() for text in texts]
        self._owner = [label for label, texts in self.concepts.items() for _ in texts]
        try:
            with torch.inference_mode():
                embeddings = clip.model.encode_text(clip.tokenizer(texts).to(clip.device))
        except Exception as exc:  # a tokenizer/model mismatch in a user-supplied folder
            raise DetectorUnavailable(f"CLIP model {self.model_name} cannot encode the concepts ({exc}).") from None
        self._text = torch.nn.functional.normalize(embeddings.float(), dim=-1)
        self._clip = clip

    def similarities(self, images: Sequence[Image.Image]) -> list[dict[str, float]]:
        """Each image's highest cosine similarity with each concept's descriptions."""
        import torch

        assert self._clip is not None
        out: list[dict[str, float]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            pixels = torch.stack([self._clip.preprocess(image) for image in chunk]).to(self._clip.device)
            with torch.inference_mode():
                features = torch.nn.functional.normalize(self._clip.model.encode_image(pixels).float(), dim=-1)
            cosine = (features @ self._text.T).cpu().tolist()
            for row in cosine:
                best: dict[str, float] = {}
                for label, value in zip(self._owner, row, strict=True):
                    best[label] = max(best.get(label, -1.0), float(value))
                out.append(best)
        return out

    def _analyze(self, images: list[Image.Image]) -> list[Detection]:
        return [
            Detection(
                scores={label: similarity_to_score(sim, self.center, self.scale) for label, sim in sims.items()},
                details={"similarity": {label: round(sim, 4) for label, sim in sims.items()}},
            )
            for sims in self.similarities(images)
        ]
