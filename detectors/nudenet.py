"""NSFW scoring with NudeNet's ONNX detector (`320n.onnx`, shipped inside the `nudenet` wheel): works offline.

Same numbers as NudeNet's own `NudeDetector().detect()`, computed faster:

* one onnxruntime session, reused, fed real batches (the model's batch dimension is dynamic) with the
  image size fixed at 320×320 so onnxruntime folds the detection head's shape arithmetic into constants;
  a batch is split across `threads` single-threaded runs of that session at once (preprocessing and
  postprocessing included), which beats onnxruntime's per-operator threading on a model this small;
* preprocessing as NudeNet does it — pad bottom/right with black to a square, bilinear resize to 320
  (OpenCV's, so the pixels are bit-identical), scale by 1/255, channels in BGR order (NudeNet's
  `cvtColor(RGBA2BGR)` on a 3-channel image followed by `blobFromImage(swapRB=True)` ends in BGR) — done
  once per batch in numpy, with only the resize per image;
* postprocessing vectorised over the 2,100 candidate boxes (NudeNet loops over them in Python): class
  score >= 0.2, centre to corner, scale back to the original size, clip, then OpenCV's NMS
  (score 0.25, IoU 0.45, across classes) exactly as NudeNet calls it.

NudeNet's classes are grouped into policy labels (`LABEL_CLASSES`); a label's score is the highest score
of a kept box of one of its classes (0 when none). Face boxes are reported as details.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detectors.base import Detection, DetectorUnavailable, LazyDetector
from detectors.errors import DetectorError
from detectors.settings import NUDENET_MODEL, NUDENET_THREADS, env_int

ENV_THREADS = NUDENET_THREADS
ENV_MODEL = NUDENET_MODEL

INPUT_SIZE = 320
CANDIDATE_THRESHOLD = 0.2
NMS_SCORE_THRESHOLD = 0.25
NMS_IOU_THRESHOLD = 0.45

CLASSES: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
"""NudeNet 3.4's class names, in the order of the model's outputs."""

LABEL_CLASSES: dict[str, tuple[str, ...]] = {
    "explicit_nudity": (
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    ),
    # Covered intimate parts: underwear, swimwear, see-through clothes. Covered belly, feet and armpits
    # are everyday clothing and map to nothing, nor do an exposed male chest, belly, feet or armpits.
    "suggestive": (
        "FEMALE_GENITALIA_COVERED",
        "FEMALE_BREAST_COVERED",
        "BUTTOCKS_COVERED",
        "ANUS_COVERED",
    ),
    "face": ("FACE_FEMALE", "FACE_MALE"),
}
"""Policy label -> the NudeNet classes whose boxes count for it (override with the `labels` setting)."""

FACE_CLASSES = frozenset(LABEL_CLASSES["face"])


def bundled_model_path() -> Path | None:
    """`320n.onnx` inside the installed nudenet package (found without importing nudenet, which loads cv2)."""
    import importlib.util

    spec = importlib.util.find_spec("nudenet")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "320n.onnx"


def preprocess(images: Sequence[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """NudeNet's input blob (N, 3, size, size) float32 in BGR order, from RGB uint8 arrays (H, W, 3)."""
    import cv2

    batch = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for index, rgb in enumerate(images):
        height, width = rgb.shape[:2]
        side = max(height, width)
        if height != width:
            square = np.zeros((side, side, 3), dtype=np.uint8)
            square[:height, :width] = rgb
        else:
            square = rgb
        batch[index] = cv2.resize(square, (size, size), interpolation=cv2.INTER_LINEAR)
    blob = batch[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
    blob *= np.float32(1 / 255.0)
    return blob


def postprocess(output: np.ndarray, width: int, height: int, size: int = INPUT_SIZE) -> list[dict[str, Any]]:
    """NudeNet's detections for one image from the model's raw output (22, candidates).

    Each detection: `class`, `score`, `box` [x, y, w, h] in the original image's pixels (integers).
    """
    import cv2

    rows = output.T
    class_scores = rows[:, 4:]
    best = class_scores.max(axis=1)
    keep = best >= np.float32(CANDIDATE_THRESHOLD)
    if not keep.any():
        return []
    class_ids = class_scores[keep].argmax(axis=1)
    scores = best[keep]
    cx, cy, w, h = (rows[keep, i] for i in range(4))
    side = max(width, height)
    # Same float32 operations in the same order as NudeNet's per-box loop, so the numbers match exactly.
    x = (cx - w / 2) * side / size
    y = (cy - h / 2) * side / size
    w = w * side / size
    h = h * side / size
    x = np.maximum(0, np.minimum(x, width))
    y = np.maximum(0, np.minimum(y, height))
    w = np.minimum(w, width - x)
    h = np.minimum(h, height - y)
    boxes = np.stack([x, y, w, h], axis=1).astype(np.float64)
    kept = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), NMS_SCORE_THRESHOLD, NMS_IOU_THRESHOLD)
    return [
        {
            "class": CLASSES[int(class_ids[i])],
            "score": float(scores[i]),
            "box": [int(v) for v in boxes[i]],
        }
        for i in np.asarray(kept, dtype=np.int64).reshape(-1)
    ]


def label_scores(detections: list[dict[str, Any]], labels: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Each label's score: the highest score among the detections of its classes (0.0 when none)."""
    best: dict[str, float] = {}
    for detection in detections:
        best[detection["class"]] = max(best.get(detection["class"], 0.0), detection["score"])
    return {label: max((best.get(c, 0.0) for c in classes), default=0.0) for label, classes in labels.items()}


def _env_threads() -> int:
    return env_int(ENV_THREADS, 0)


class NudeNetDetector(LazyDetector):
    """Nudity scores (`explicit_nudity`, `suggestive`, `face`) from NudeNet's ONNX detector.

    `threads`: how many batches run at once (default: the number of CPU cores); each runs single-threaded
    inside onnxruntime, which for a model this small is faster than splitting every operator across
    threads. `batch_size`: most images per inference call. `model_path`: another NudeNet-format ONNX file
    (default: the one in the nudenet wheel). `labels`: label -> NudeNet classes (default `LABEL_CLASSES`).
    `GUARD_NUDENET_THREADS` and `GUARD_NUDENET_MODEL` override `threads` and `model_path` (they describe the
    machine, not the policy).
    """

    name = "nudenet"

    def __init__(
        self,
        *,
        threads: int | None = None,
        batch_size: int = 8,
        model_path: str | os.PathLike | None = None,
        labels: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        self.threads = max(1, _env_threads() or int(threads or 0) or os.cpu_count() or 1)
        self.batch_size = max(1, int(batch_size))
        self.model_path = os.environ.get(ENV_MODEL) or model_path or None
        self.label_classes = {k: tuple(v) for k, v in (labels or LABEL_CLASSES).items()}
        unknown = sorted({c for classes in self.label_classes.values() for c in classes} - set(CLASSES))
        if unknown:
            raise DetectorError(f"nudenet labels name unknown NudeNet classes {unknown}; known: {list(CLASSES)}.")
        self._session: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._input_name = "images"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.label_classes)

    def _load(self) -> None:
        try:
            import cv2  # noqa: F401  (resize and NMS)
            import onnxruntime as ort
        except ImportError as exc:
            raise DetectorUnavailable(
                f"{exc.name} is not installed; install the nudenet and onnxruntime packages "
                "(pip install nudenet onnxruntime)."
            ) from None
        path = Path(self.model_path) if self.model_path else bundled_model_path()
        if path is None:
            raise DetectorUnavailable(
                "the nudenet package is not installed, so its 320n.onnx model is missing; "
                f"pip install nudenet, or point {ENV_MODEL} (or detectors.nudenet.model_path) to 320n.onnx."
            )
        if not path.is_file():
            raise DetectorUnavailable(
                f"the NudeNet model {path} does not exist; point {ENV_MODEL} (or detectors.nudenet.model_path) "
                "to NudeNet's 320n.onnx, or reinstall nudenet."
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_free_dimension_override_by_name("height", INPUT_SIZE)
        options.add_free_dimension_override_by_name("width", INPUT_SIZE)
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise DetectorUnavailable(f"onnxruntime cannot load the NudeNet model {path} ({exc}).") from None
        self._input_name = self._session.get_inputs()[0].name
        if self.threads > 1:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="nudenet")

    def _chunks(self, count: int) -> list[range]:
        """Split `count` images into at most `threads` runs (more when a run would exceed `batch_size`)."""
        size = min(self.batch_size, max(1, -(-count // self.threads)))
        return [range(start, min(start + size, count)) for start in range(0, count, size)]

    def _run(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        return self._session.run(None, {self._input_name: preprocess(arrays)})[0]

    def raw_outputs(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """The model's raw output (N, 22, candidates) for RGB uint8 arrays."""
        if not self.available():
            raise DetectorUnavailable(f"{self.name} is unavailable: {self._reason}")
        return np.concatenate(self._map(lambda chunk: self._run([arrays[i] for i in chunk]), len(arrays)))

    def _map(self, work, count: int) -> list:
        chunks = self._chunks(count)
        if self._pool is None or len(chunks) == 1:
            return [work(chunk) for chunk in chunks]
        return list(self._pool.map(work, chunks))

    def detections_from_raw(self, raw: np.ndarray, width: int, height: int) -> Detection:
        """Scores and details for one image from its raw model output (used on recorded outputs in tests)."""
        detections = postprocess(raw, width, height)
        faces = [d["box"] for d in detections if d["class"] in FACE_CLASSES]
        return Detection(
            scores=label_scores(detections, self.label_classes),
            details={"faces": len(faces), "face_boxes": faces, "detections": detections},
        )

    def _analyze(self, images: list[Image.Image]) -> list[Detection]:
        arrays = [np.asarray(image.convert("RGB") if image.mode != "RGB" else image) for image in images]

        def work(chunk: range) -> list[Detection]:
            raw = self._run([arrays[i] for i in chunk])
            sizes = [(arrays[i].shape[1], arrays[i].shape[0]) for i in chunk]
            return [self.detections_from_raw(r, w, h) for r, (w, h) in zip(raw, sizes, strict=True)]

        return [detection for part in self._map(work, len(arrays)) for detection in part]
