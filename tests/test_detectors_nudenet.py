"""NudeNet detector: same detections as NudeNet's own code, label mapping and decisions on recorded outputs.

No explicit imagery anywhere: real model runs are on benign photos; the exposed classes are tested on raw
model outputs fabricated as arrays (boxes and class scores), which go through the same postprocessing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detectors.nudenet import CLASSES, LABEL_CLASSES, NudeNetDetector, label_scores, postprocess, preprocess
from policies import decide_image, load_policy

RECORDED = Path(__file__).parent / "data" / "nudenet_benign_raw.json"
CANDIDATES = 2100


@pytest.fixture(scope="module")
def detector():
    return NudeNetDetector()


@pytest.fixture(scope="module")
def nudenet_module():
    from nudenet import nudenet

    return nudenet


@pytest.fixture(scope="module")
def photos():
    from skimage import data

    return {
        "astronaut": data.astronaut(),
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "tall": np.ascontiguousarray(data.astronaut()[:, ::3]),
        "gray": np.repeat(data.camera()[:, :, None], 3, axis=2),
    }


def _raw(boxes: list[tuple[str, float, tuple[float, float, float, float]]]) -> np.ndarray:
    """A fabricated model output (22, 2100): one candidate per (class, score, (cx, cy, w, h) in 320 space)."""
    raw = np.zeros((4 + len(CLASSES), CANDIDATES), dtype=np.float32)
    for column, (name, score, box) in enumerate(boxes):
        raw[:4, column] = box
        raw[4 + CLASSES.index(name), column] = score
    return raw


def _theirs(nudenet_module, raw: np.ndarray, width: int, height: int) -> list[dict]:
    side = max(width, height)
    return nudenet_module._postprocess([raw[None]], side - width, side - height, 0, 0, width, height, 320, 320)


def test_class_names_follow_the_installed_nudenet(nudenet_module):
    assert list(CLASSES) == nudenet_module.__dict__["__labels"]
    assert set(c for classes in LABEL_CLASSES.values() for c in classes) <= set(CLASSES)


def test_preprocessing_is_bit_identical_to_nudenet(nudenet_module, photos):
    for rgb in photos.values():
        theirs = nudenet_module._read_image(np.ascontiguousarray(rgb[:, :, ::-1]), 320)[0]
        assert np.array_equal(preprocess([rgb]), theirs)


def test_detections_equal_nudenet_detect_on_photos(detector, nudenet_module, photos):
    reference = nudenet_module.NudeDetector()
    ours = detector.analyze([Image.fromarray(rgb) for rgb in photos.values()])
    for (name, rgb), result in zip(photos.items(), ours, strict=True):
        theirs = reference.detect(np.ascontiguousarray(rgb[:, :, ::-1]))
        mine = result.details["detections"]
        assert [d["class"] for d in mine] == [d["class"] for d in theirs], name
        for a, b in zip(mine, theirs, strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-4)
            assert a["box"] == b["box"]
    astronaut = ours[0]
    assert astronaut.details["faces"] == 1
    assert astronaut.scores["face"] > 0.5
    assert astronaut.scores["explicit_nudity"] == 0.0


def test_batches_equal_single_images(photos):
    images = [Image.fromarray(rgb) for rgb in photos.values()]
    batched = NudeNetDetector(batch_size=8, threads=2).analyze(images)
    single = NudeNetDetector(batch_size=1, threads=1).analyze(images)
    for a, b in zip(batched, single, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
        assert [d["box"] for d in a.details["detections"]] == [d["box"] for d in b.details["detections"]]


def test_recorded_benign_outputs(detector, nudenet_module):
    records = json.loads(RECORDED.read_text())
    assert {r["name"] for r in records} >= {"astronaut", "chelsea", "coffee", "rocket"}
    default = load_policy("default")
    for record in records:
        raw = np.zeros(record["shape"], dtype=np.float32)
        for column, values in record["candidates"].items():
            raw[:, int(column)] = values
        width, height = record["width"], record["height"]
        assert postprocess(raw, width, height) == _theirs(nudenet_module, raw, width, height)
        result = detector.detections_from_raw(raw, width, height)
        decision = decide_image(default, {"nudenet": result.scores})
        assert decision.decision == "allow", (record["name"], result.scores)


def test_recording_matches_the_model_today(detector):
    from skimage import data

    record = next(r for r in json.loads(RECORDED.read_text()) if r["name"] == "astronaut")
    raw = detector.raw_outputs([data.astronaut()])[0]
    for column, values in record["candidates"].items():
        assert np.allclose(raw[:, int(column)], values, atol=1e-4)


def test_exposed_classes_map_to_explicit_nudity_and_block(detector, nudenet_module):
    raw = _raw(
        [
            ("FEMALE_BREAST_EXPOSED", 0.91, (100, 100, 40, 40)),
            ("BUTTOCKS_COVERED", 0.7, (250, 250, 40, 40)),
            ("FACE_FEMALE", 0.8, (100, 30, 30, 30)),
            ("FACE_MALE", 0.6, (200, 30, 30, 30)),
            ("BELLY_COVERED", 0.95, (160, 200, 50, 50)),
        ]
    )
    result = detector.detections_from_raw(raw, 640, 480)
    assert result.details["detections"] == _theirs(nudenet_module, raw, 640, 480)
    assert result.scores == pytest.approx({"explicit_nudity": 0.91, "suggestive": 0.7, "face": 0.8})
    assert result.details["faces"] == 2
    assert result.details["face_boxes"][0] == [170, 30, 60, 60]  # scaled by 640/320, top-left corner
    decision = decide_image(load_policy("default"), {"nudenet": result.scores})
    assert decision.decision == "block"
    assert decision.categories == {"sexual": "block", "suggestive": "blur"}
    sexual = next(r for r in decision.reasons if r["category"] == "sexual")
    assert (sexual["label"], sexual["threshold"]) == ("explicit_nudity", 0.5)
    assert sexual["score"] == pytest.approx(0.91)


@pytest.mark.parametrize("name", LABEL_CLASSES["explicit_nudity"])
def test_every_exposed_class_counts(detector, name):
    result = detector.detections_from_raw(_raw([(name, 0.55, (160, 160, 60, 60))]), 320, 320)
    assert result.scores["explicit_nudity"] == pytest.approx(0.55)
    assert result.scores["suggestive"] == 0.0


@pytest.mark.parametrize(
    "name", ["MALE_BREAST_EXPOSED", "BELLY_EXPOSED", "FEET_EXPOSED", "ARMPITS_EXPOSED", "BELLY_COVERED"]
)
def test_everyday_classes_count_for_nothing(detector, name):
    result = detector.detections_from_raw(_raw([(name, 0.9, (160, 160, 60, 60))]), 320, 320)
    assert result.scores == {"explicit_nudity": 0.0, "suggestive": 0.0, "face": 0.0}
    assert result.details["detections"][0]["class"] == name


def test_nms_is_across_classes_and_drops_weak_candidates(detector, nudenet_module):
    raw = _raw(
        [
            ("FEMALE_BREAST_COVERED", 0.8, (100, 100, 50, 50)),
            ("FEMALE_BREAST_EXPOSED", 0.6, (102, 101, 50, 50)),  # overlaps the stronger box: suppressed
            ("ANUS_EXPOSED", 0.22, (250, 250, 20, 20)),  # a candidate (>= 0.2) but under NMS's 0.25
            ("FACE_MALE", 0.19, (30, 30, 20, 20)),  # not even a candidate
        ]
    )
    result = detector.detections_from_raw(raw, 320, 320)
    assert result.details["detections"] == _theirs(nudenet_module, raw, 320, 320)
    assert [d["class"] for d in result.details["detections"]] == ["FEMALE_BREAST_COVERED"]
    assert result.scores == pytest.approx({"explicit_nudity": 0.0, "suggestive": 0.8, "face": 0.0})


def test_boxes_are_clipped_to_the_image(detector, nudenet_module):
    raw = _raw([("FACE_FEMALE", 0.9, (5, 310, 40, 40)), ("FEET_COVERED", 0.5, (315, 5, 30, 30))])
    result = detector.detections_from_raw(raw, 300, 200)
    assert result.details["detections"] == _theirs(nudenet_module, raw, 300, 200)
    for detection in result.details["detections"]:
        x, y, w, h = detection["box"]
        assert x >= 0 and y >= 0 and x + w <= 300 and y + h <= 200


def test_label_mapping_is_configurable():
    detector = NudeNetDetector(labels={"swimwear": ["FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED"]})
    assert detector.labels == ("swimwear",)
    detections = [{"class": "BUTTOCKS_COVERED", "score": 0.4, "box": [0, 0, 1, 1]}]
    assert label_scores(detections, detector.label_classes) == {"swimwear": 0.4}


def test_unknown_class_in_labels_is_a_config_error():
    from detectors.errors import DetectorError

    with pytest.raises(DetectorError, match="BREASTS_EXPOSED"):
        NudeNetDetector(labels={"x": ["BREASTS_EXPOSED"]})


def test_missing_model_file_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_NUDENET_MODEL", str(tmp_path / "320n.onnx"))
    detector = NudeNetDetector()
    assert not detector.available()
    assert "320n.onnx" in detector.unavailable_reason and "GUARD_NUDENET_MODEL" in detector.unavailable_reason
    (tmp_path / "320n.onnx").write_bytes(b"not a model")
    broken = NudeNetDetector()
    assert not broken.available() and "cannot load" in broken.unavailable_reason


def test_thread_count_from_env_and_argument(monkeypatch):
    monkeypatch.setenv("GUARD_NUDENET_THREADS", "3")
    assert NudeNetDetector().threads == 3
    assert NudeNetDetector(threads=2).threads == 3  # the machine's setting wins over the policy's
    monkeypatch.delenv("GUARD_NUDENET_THREADS")
    assert NudeNetDetector(threads=2).threads == 2
    one = NudeNetDetector(threads=1)
    assert one.available() and one._pool is None
    assert one._session.get_session_options().intra_op_num_threads == 1
    two = NudeNetDetector(threads=2, batch_size=8)
    assert [len(c) for c in two._chunks(16)] == [8, 8]
    assert [len(c) for c in two._chunks(5)] == [3, 2]
    assert [len(c) for c in two._chunks(20)] == [8, 8, 4]
    assert [len(c) for c in two._chunks(1)] == [1]
