"""guard.scan and `guard scan`: real NudeNet on benign and synthetic images, stub detectors for the decision
paths, unreadable files, JSON Lines fields and exit codes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from detectors.base import Detection, DetectorUnavailable, LazyDetector
from guard.cli import cli
from guard.scan import assess_images, scan_paths
from policies import load_policy


class StubDetector(LazyDetector):
    """Scores from a function of the image's mean colour; optionally unavailable or failing."""

    def __init__(self, name, score_of, *, reason=None, fail=False):
        super().__init__()
        self.name, self._score_of, self._why, self._fail = name, score_of, reason, fail

    @property
    def labels(self):
        return ("explicit_nudity", "suggestive")

    def _load(self):
        if self._why:
            raise DetectorUnavailable(self._why)

    def _analyze(self, images):
        if self._fail:
            raise RuntimeError("out of memory")
        return [Detection(self._score_of(np.asarray(image).mean(axis=(0, 1)))) for image in images]


def _red_is_nudity(mean):
    red = mean[0] > 200 and mean[1] < 50
    return {"explicit_nudity": 0.93 if red else 0.01, "suggestive": 0.65 if mean[2] > 200 else 0.0}


@pytest.fixture(scope="module")
def default():
    return load_policy("default")


@pytest.fixture(scope="module")
def photo_dir(formats_dir, tmp_path_factory):
    """Benign real photos (scikit-image, matplotlib, the shared fixtures) in a nested folder."""
    from matplotlib import cbook
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    (folder / "nested").mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    shutil.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), folder / "nested" / "grace_hopper.jpg")
    for path in formats_dir.glob("*"):
        if path.suffix.lower() in {".jpg", ".png", ".webp", ".avif", ".heic", ".gif"}:
            shutil.copy(path, folder / "nested" / path.name)
    return folder


def _synthetic_images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, 512, dtype=np.uint8)
    checker = (np.indices((256, 256)).sum(axis=0) // 32 % 2 * 255).astype(np.uint8)
    return [
        Image.fromarray(np.dstack([np.tile(ramp, (512, 1))] * 3)),
        Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)),
        Image.fromarray(np.dstack([checker] * 3)),
        Image.new("RGB", (640, 480), "black"),
        Image.new("RGB", (64, 64), "white"),
        Image.new("RGB", (2000, 40), (30, 120, 200)),
        Image.new("RGB", (1, 1), "gray"),
    ]


def test_benign_photos_are_allowed_by_the_default_policy(photo_dir, default):
    results = list(scan_paths([photo_dir], default))
    readable = [r for r in results if r.assessment]
    assert len(readable) >= 10
    for result in readable:
        record = result.to_dict()
        assert record["decision"] == "allow", (result.path, record["scores"], record["reasons"])
        assert record["detectors"]["nudenet"] == {"status": "ok"}
        assert set(record["scores"]["nudenet"]) == {"explicit_nudity", "suggestive", "face"}
        for name in ("clip_concepts", "synthetic"):
            if record["detectors"][name]["status"] != "ok":
                assert any(name in note for note in record["notes"])
    faces = {r.path.name: r.assessment.details["nudenet"]["faces"] for r in readable}
    assert faces["astronaut.png"] == 1 and faces["grace_hopper.jpg"] >= 1 and faces["coffee.png"] == 0


def test_synthetic_images_are_allowed(default):
    for assessment in assess_images(_synthetic_images(), default):
        assert assessment.decision.decision == "allow", assessment.scores


def test_batch_equals_one_image_at_a_time(photo_dir, default):
    images = [Image.open(p).convert("RGB") for p in sorted(photo_dir.glob("*.png"))] + _synthetic_images()[:3]
    batched = [a.to_dict() for a in assess_images(images, default)]
    for image, together in zip(images, batched, strict=True):
        (alone,) = [a.to_dict() for a in assess_images([image], default)]
        assert alone["decision"] == together["decision"]
        assert alone["scores"]["nudenet"] == pytest.approx(together["scores"]["nudenet"], abs=1e-5)
        assert alone["details"]["nudenet"]["face_boxes"] == together["details"]["nudenet"]["face_boxes"]


def test_decisions_and_reasons_from_detector_scores(default):
    stub = {"nudenet": StubDetector("nudenet", _red_is_nudity)}
    red, blue, grey = (Image.new("RGB", (32, 32), c) for c in ("red", "blue", "gray"))
    block, blur, allow = assess_images([red, blue, grey], default, stub)
    assert block.decision.decision == "block"
    record = block.to_dict()
    assert set(record) >= {"decision", "scores", "reasons", "categories", "detectors", "policy"}
    (reason,) = record["reasons"]
    assert reason["category"] == "sexual" and reason["label"] == "explicit_nudity"
    assert reason["score"] == pytest.approx(0.93) and reason["threshold"] == 0.5
    assert record["policy"] == {"name": "default", "version": "1.0"}
    assert blur.to_dict()["categories"] == {"suggestive": "blur"}
    assert allow.allowed and allow.to_dict()["reasons"] == []


def test_unavailable_or_failing_required_detector_sends_to_review(default):
    image = Image.new("RGB", (32, 32), "gray")
    (missing,) = assess_images([image], default, {"nudenet": StubDetector("nudenet", None, reason="no model")})
    assert missing.decision.decision == "review"
    assert missing.detectors["nudenet"] == {"status": "unavailable", "reason": "no model"}
    assert missing.to_dict()["reasons"][0]["category"] == "detector_unavailable"
    (failed,) = assess_images([image], default, {"nudenet": StubDetector("nudenet", None, fail=True)})
    assert failed.decision.decision == "review"
    assert failed.detectors["nudenet"] == {"status": "error", "reason": "RuntimeError: out of memory"}


def test_a_detector_returning_too_few_results_is_an_error(default):
    class Short(StubDetector):
        def _analyze(self, images):
            return super()._analyze(images)[:-1]

    results = assess_images([Image.new("RGB", (8, 8))] * 2, default, {"nudenet": Short("nudenet", _red_is_nudity)})
    assert [r.decision.decision for r in results] == ["review", "review"]
    assert results[0].detectors["nudenet"] == {"status": "error", "reason": "RuntimeError: 1 results for 2 images"}


def test_exif_orientation_of_images_in_memory_is_applied(default):
    seen = []

    def record(mean):
        return {"explicit_nudity": 0.0, "suggestive": 0.0}

    class Sizes(StubDetector):
        def _analyze(self, images):
            seen.extend(image.size for image in images)
            return super()._analyze(images)

    image = Image.new("RGB", (40, 20), "gray")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the upright image is 20 wide, 40 high
    rotated = Image.open(_saved(image, exif))
    assess_images([rotated, image], default, {"nudenet": Sizes("nudenet", record)})
    assert seen == [(20, 40), (40, 20)]


def _saved(image, exif):
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    buffer.seek(0)
    return buffer


def test_unavailable_optional_detector_is_reported_not_faked(default):
    detectors = {
        "nudenet": StubDetector("nudenet", _red_is_nudity),
        "synthetic": StubDetector("synthetic", None, reason="no probe weights configured"),
    }
    (result,) = assess_images([Image.new("RGB", (8, 8), "gray")], default, detectors)
    record = result.to_dict()
    assert record["decision"] == "allow"
    assert "synthetic" not in record["scores"]
    assert record["detectors"]["synthetic"]["status"] == "unavailable"
    assert any("no probe weights configured" in note for note in record["notes"])


def test_a_detector_with_only_score_is_enough(default):
    class ScoreOnly:
        name = "nudenet"
        labels = ("explicit_nudity", "suggestive")
        unavailable_reason = None

        def available(self):
            return True

        def score(self, images):
            return [{"explicit_nudity": 0.7, "suggestive": 0.0} for _ in images]

    (result,) = assess_images([Image.new("RGB", (8, 8))], default, {"nudenet": ScoreOnly()})
    assert result.decision.decision == "block"
    assert result.scores == {"nudenet": {"explicit_nudity": 0.7, "suggestive": 0.0}}
    assert "details" not in result.to_dict()


def test_unreadable_files_are_reported_and_the_scan_goes_on(tmp_path, default):
    Image.new("RGB", (40, 40), "gray").save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "c.png").write_bytes(b"")
    Image.new("RGB", (40, 40), "red").save(tmp_path / "d.png")
    stub = {"nudenet": StubDetector("nudenet", _red_is_nudity)}
    results = list(scan_paths([tmp_path, tmp_path / "missing.png"], default, stub, batch_size=2))
    assert [r.path.name for r in results] == ["a.png", "b.jpg", "c.png", "d.png", "missing.png"]
    assert [r.decision for r in results] == ["allow", None, None, "block", None]
    assert "empty" in results[2].error and "no such file" in results[4].error
    assert set(results[1].to_dict()) == {"path", "error"}


# --- the command ---


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_cli_json_lines_for_a_folder_of_benign_photos(photo_dir):
    result = CliRunner().invoke(cli, ["scan", str(photo_dir), "--json"])
    lines = _lines(result.output)
    readable = [line for line in lines if "error" not in line]
    assert len(readable) >= 10
    for line in readable:
        assert {"path", "decision", "scores", "reasons"} <= set(line)
        assert line["decision"] == "allow"
    errors = [line for line in lines if "error" in line]
    assert result.exit_code == (2 if errors else 0)
    assert all(set(line) == {"path", "error"} for line in errors)


def test_cli_exit_1_and_reasons_when_the_policy_flags_an_image(tmp_path):
    from skimage import data

    policy = tmp_path / "faces.yaml"
    policy.write_text(
        "extends: default\nname: faces\nversion: '1'\n"
        "detectors: {clip_concepts: {required: false, concepts: {x: [a]}, model: ViT-Nope-99}}\n"
        "categories:\n  faces:\n    action: review\n"
        "    image: [{detector: nudenet, label: face, min_score: 0.5}]\n"
    )
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    result = CliRunner().invoke(
        cli, ["scan", str(tmp_path / "astronaut.png"), str(tmp_path / "coffee.png"), "--json", "--policy", str(policy)]
    )
    assert result.exit_code == 1, result.output
    astronaut, coffee = _lines(result.output)
    assert astronaut["decision"] == "review" and coffee["decision"] == "allow"
    (reason,) = astronaut["reasons"]
    assert (reason["category"], reason["label"], reason["threshold"]) == ("faces", "face", 0.5)
    assert astronaut["detectors"]["clip_concepts"]["status"] == "unavailable"
    assert "ViT-Nope-99" in astronaut["detectors"]["clip_concepts"]["reason"]
    human = CliRunner().invoke(cli, ["scan", str(tmp_path), "--policy", str(policy)])
    assert human.exit_code == 1
    assert "REVIEW" in human.output and "faces: face 0.7" in human.output and "scan summary" in human.output


def test_cli_unreadable_file_exit_2_after_scanning_the_rest(tmp_path):
    Image.new("RGB", (40, 40), "gray").save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    result = CliRunner().invoke(cli, ["scan", str(tmp_path), "--json"])
    assert result.exit_code == 2
    bad, good = _lines(result.output)
    assert bad["path"].endswith("bad.png") and "not an image" in bad["error"]
    assert good["decision"] == "allow"
    (tmp_path / "sub").mkdir()
    (tmp_path / "bad.png").rename(tmp_path / "sub" / "bad.png")
    shallow = CliRunner().invoke(cli, ["scan", str(tmp_path), "--json", "--no-recursive"])
    assert shallow.exit_code == 0 and [line["path"] for line in _lines(shallow.output)] == [str(tmp_path / "good.png")]
    human = CliRunner().invoke(cli, ["scan", str(tmp_path)])
    assert human.exit_code == 2 and "ERROR" in human.output and "error" in human.output


def test_cli_progress_bar_for_folders_on_a_terminal(tmp_path, monkeypatch):
    import guard.cli.scan

    monkeypatch.setattr(guard.cli.scan, "_stderr_is_terminal", lambda: True)
    for index in range(3):
        Image.new("RGB", (32, 32), (index * 80, 90, 90)).save(tmp_path / f"{index}.png")
    result = CliRunner().invoke(cli, ["scan", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ALLOW") == 3 and "scan summary" in result.output
    quiet = CliRunner().invoke(cli, ["scan", str(tmp_path), "--json"])
    assert len(_lines(quiet.output)) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["EMPTY"], "no image files found"),
        (["EMPTY/x.png", "--policy", "no-such-policy"], "no-such-policy"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    args = [a.replace("EMPTY", str(tmp_path)) for a in args]
    result = CliRunner().invoke(cli, ["scan", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
