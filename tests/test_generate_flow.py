"""Generation behind the guard, end to end on a tiny random Stable Diffusion pipeline built offline.

The pipeline is built from configs and saved once per module, then loaded through the real loading code;
nothing is downloaded. Images are 256x256 (the default watermark's minimum) with 2 denoising steps.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from detectors.base import Detection
from generation import GenerationOptions, generate, load_pipeline
from generation.tiny import TINY_SIZE, save_tiny_pipeline
from guard.cli import cli
from guard.errors import GuardError
from guard.generate import Guard, guard_pipeline
from guard.protect import Protector
from guard.provenance.credentials.c2pa import TrustConfig, read_manifest
from guard.provenance.credentials.keys import SigningIdentity
from guard.provenance.credentials.manifest import GENERATION_LABEL, POLICY_LABEL, prompt_sha256
from guard.provenance.credentials.source_types import DigitalSourceType
from guard.provenance.credentials.store import ManifestStore
from guard.redact import blur
from guard.verify import verify_file

STEPS = 2


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model runs fastest on one thread; on a busy shared machine, two threads waiting for each
    other make each generation 20 times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "pipeline")


@pytest.fixture(scope="module")
def pipe(tiny_model):
    return load_pipeline(tiny_model, device="cpu")


@pytest.fixture()
def protector(home, tmp_path):
    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        yield Protector(identity=SigningIdentity.load(home), store=store)


@pytest.fixture()
def cli_env(home, tmp_path, monkeypatch):
    for name in ("GUARD_SIGN_CERT", "GUARD_SIGN_KEY", "GUARD_SIGN_KEY_PASSWORD", "GUARD_TSA_URL", "GUARD_POLICY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GUARD_HOME", str(home))
    monkeypatch.setenv("GUARD_STORE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return home


class StubNudeNet:
    """Stands in for NudeNet with fixed scores, so a test decides what the detector 'sees'."""

    name = "nudenet"
    labels = ("explicit_nudity", "suggestive")
    unavailable_reason = None

    def __init__(self, **scores: float) -> None:
        self.scores = {"explicit_nudity": 0.0, "suggestive": 0.0, **scores}
        self.batches: list[int] = []

    def available(self) -> bool:
        return True

    def score(self, images):
        return [dict(self.scores) for _ in images]

    def analyze(self, images):
        self.batches.append(len(images))
        return [Detection(scores=dict(self.scores)) for _ in images]


class ModelMustNotRun:
    """A pipeline whose every use fails the test: for prompts that must never reach the model."""

    name_or_path = "must-not-run"

    def __call__(self, *args, **kwargs):
        raise AssertionError("the model was called")


def _trust(home: Path) -> TrustConfig:
    return TrustConfig(anchors=(home / "keys" / "ca.pem",))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_allowed_prompt_is_delivered_watermarked_with_valid_ai_credentials(
    pipe, protector, home, tmp_path, monkeypatch
):
    import guard.generate as generate_module

    detector = StubNudeNet(suggestive=0.1)
    steps_seen = []
    asked = []
    real_generate = generate_module.generate
    monkeypatch.setattr(generate_module, "generate", lambda p, o, **kw: asked.append(o) or real_generate(p, o, **kw))
    guard = Guard("default", detectors={"nudenet": detector}, protector=protector)
    records = guard.generate(
        "a red bicycle",
        model=pipe,
        output_dir=tmp_path / "out",
        seed=7,
        steps=STEPS,
        num_images=2,
        on_step=lambda done, total: steps_seen.append((done, total)),
    )
    assert [r.decision for r in records] == ["allow", "allow"]
    assert [r.seed for r in records] == [7, 8]
    assert asked[0].negative_prompt == _negative(), "the policy's negative-prompt terms reach the model"
    assert detector.batches == [2], "both outputs are scored in one batch"
    assert steps_seen == [(1, STEPS), (2, STEPS)]
    for record in records:
        assert record.output.exists() and record.output.parent == tmp_path / "out"
        data = record.output.read_bytes()
        reading = read_manifest(data, trust=_trust(home))
        assert reading.state == "Trusted"
        assert reading.manifest_id == record.manifest_id
        assert reading.digital_source_types == [DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA.uri]
        generation = reading.assertion(GENERATION_LABEL)
        assert generation["seed"] == record.seed
        assert generation["steps"] == STEPS
        assert generation["model"] == pipe.name_or_path
        assert generation["prompt_sha256"] == prompt_sha256("a red bicycle")
        assert "prompt" not in generation
        assert reading.assertion(POLICY_LABEL)["decision"] == "allow"
        decoded = protector.scheme.decode(Image.open(io.BytesIO(data)).convert("RGB"))
        assert decoded.payload.hex() == record.watermark["payload"]
        assert protector.store.find_by_payload(decoded.payload).manifest_id == record.manifest_id
        assert record.to_dict()["scores"] == {"nudenet": detector.scores}


def test_blocked_prompt_never_reaches_the_model(protector, tmp_path):
    guard = Guard("default", detectors={"nudenet": StubNudeNet()}, protector=protector)
    records = guard.generate("a n.u.d.e woman", model=ModelMustNotRun(), output_dir=tmp_path / "out", num_images=3)
    assert [r.decision for r in records] == ["block"] * 3
    assert all(r.output is None and r.stage == "prompt" and r.seed is None for r in records)
    assert records[0].reasons[0]["category"] == "sexual"
    assert _files(tmp_path / "out") == []
    assert protector.store.count() == 0
    # A model given by name is not even loaded.
    records = guard.generate("a n.u.d.e woman", model=str(tmp_path / "no-such-model"), output_dir=tmp_path / "out")
    assert records[0].decision == "block"


def test_flagged_output_is_blurred_when_the_policy_says_blur(pipe, protector, home, tmp_path):
    wrapped = guard_pipeline(pipe, "default", detectors={"nudenet": StubNudeNet(suggestive=0.9)}, protector=protector)
    (record,) = wrapped("a person on a beach", output_dir=tmp_path / "out", seed=3, steps=STEPS)
    assert record.decision == "blur" and record.blurred
    assert record.reasons[0]["category"] == "suggestive"
    raw = generate(pipe, GenerationOptions("a person on a beach", seed=3, steps=STEPS, negative_prompt=_negative()))
    delivered = np.asarray(Image.open(record.output).convert("RGB")).astype(int)
    expected = np.asarray(blur(raw.images[0])).astype(int)
    assert np.abs(delivered - expected).mean() < 3, "the delivered image is the blurred output (plus watermark)"
    assert np.abs(delivered - np.asarray(raw.images[0]).astype(int)).mean() > 10
    report = verify_file(record.output, trust=_trust(home)).to_dict()
    assert (report["verdict"]["origin"], report["c2pa"]["state"]) == ("ai-generated", "Trusted")
    assert any(w["detected"] and w["payload"] == record.watermark["payload"] for w in report["watermarks"])
    assert read_manifest(record.output).assertion(POLICY_LABEL)["decision"] == "blur"


def _negative() -> str:
    from guard.generate import with_policy_terms
    from policies import load_policy

    return with_policy_terms(None, load_policy("default"))


@pytest.mark.parametrize(
    ("detectors", "decision", "category"),
    [
        ({"nudenet": StubNudeNet(explicit_nudity=0.95)}, "block", "sexual"),
        ({}, "review", "detector_unavailable"),
    ],
    ids=["flagged-explicit", "required-detector-missing"],
)
def test_withheld_outputs_are_not_written(pipe, protector, tmp_path, detectors, decision, category):
    guard = Guard("default", detectors=detectors, protector=protector)
    (record,) = guard.wrap(pipe).generate("a quiet lake", output_dir=tmp_path / "out", seed=1, steps=STEPS)
    assert record.decision == decision and record.output is None and record.stage == "image"
    assert category in record.categories
    assert _files(tmp_path / "out") == []
    assert protector.store.count() == 0


def test_review_images_are_held_in_the_review_folder_only(pipe, protector, home, tmp_path):
    guard = Guard("default", detectors={"nudenet": StubNudeNet()}, protector=protector)
    options = {"model": pipe, "output_dir": tmp_path / "out", "seed": 2, "steps": STEPS}
    (held,) = guard.generate("a portrait of Joe Biden", review_dir=tmp_path / "review", **options)
    assert (held.decision, held.prompt_decision, held.output) == ("review", "review", None)
    assert held.review_output.parent == tmp_path / "review"
    assert _files(tmp_path / "out") == []
    reading = read_manifest(held.review_output, trust=_trust(home))
    assert reading.state == "Trusted"
    assert reading.assertion(POLICY_LABEL)["decision"] == "review"
    # Without a review folder its images could not go anywhere: the prompt is not even generated.
    (dropped,) = guard.generate("a portrait of Joe Biden", **{**options, "model": ModelMustNotRun()})
    assert (dropped.decision, dropped.stage, dropped.output, dropped.review_output) == ("review", "prompt", None, None)
    assert dropped.reasons[0]["category"] == "public_figures"
    assert protector.store.count() == 1


def test_image_to_image_records_the_init_image_as_ingredient(pipe, protector, home, tmp_path):
    from skimage import data

    init = tmp_path / "init.jpg"
    Image.fromarray(data.astronaut()).save(init, quality=90)
    guard = Guard("default", detectors={"nudenet": StubNudeNet()}, protector=protector)
    (record,) = guard.generate(
        "an astronaut, oil painting",
        model=pipe,
        output_dir=tmp_path / "out",
        init_image=init,
        strength=0.5,
        width=TINY_SIZE,
        height=TINY_SIZE,
        seed=5,
        steps=4,
    )
    assert record.decision == "allow"
    assert record.generation["pipeline"] == "StableDiffusionImg2ImgPipeline"
    assert record.generation["strength"] == 0.5
    reading = read_manifest(record.output, trust=_trust(home))
    assert reading.state == "Trusted"
    assert reading.digital_source_types == [DigitalSourceType.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA.uri]
    (ingredient,) = reading.ingredients
    assert ingredient["relationship"] == "inputTo"
    assert ingredient["title"] == "init.jpg"
    assert ingredient["format"] == "image/jpeg"


def test_a_wrapped_image_to_image_pipeline_also_serves_text_prompts(pipe, protector, tmp_path):
    from generation import for_task

    image_to_image = for_task(pipe, "image-to-image")
    assert type(image_to_image).__name__ == "StableDiffusionImg2ImgPipeline"
    assert for_task(image_to_image, "image-to-image") is image_to_image
    guard = Guard("default", detectors={"nudenet": StubNudeNet()}, protector=protector)
    (record,) = guard.wrap(image_to_image).generate("a red bicycle", output_dir=tmp_path, seed=1, steps=STEPS)
    assert record.decision == "allow"
    assert record.generation["pipeline"] == "StableDiffusionPipeline"


def test_same_seed_same_image_other_seed_other_image(pipe):
    def image(seed: int) -> np.ndarray:
        return np.asarray(generate(pipe, GenerationOptions("a red bicycle", seed=seed, steps=STEPS)).images[0])

    first, again, other = image(11), image(11), image(12)
    assert np.array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 5


def test_unwritable_output_folder_is_refused_before_generating(protector, tmp_path):
    (tmp_path / "taken").write_text("a file where the folder should be")
    guard = Guard("default", detectors={"nudenet": StubNudeNet()}, protector=protector)
    with pytest.raises(GuardError, match="Cannot create the output folder"):
        guard.generate("a red bicycle", model=ModelMustNotRun(), output_dir=tmp_path / "taken" / "out")


def test_low_memory_switches_slice_attention_without_changing_the_image(tiny_model, pipe):
    low = load_pipeline(tiny_model, device="cpu", low_memory=True)
    processors = {type(p).__name__ for p in low.unet.attn_processors.values()}
    assert processors == {"SlicedAttnProcessor"}
    assert low.vae.use_slicing
    options = GenerationOptions("a red bicycle", seed=4, steps=STEPS)
    sliced, plain = (np.asarray(generate(p, options).images[0]).astype(int) for p in (low, pipe))
    assert np.abs(sliced - plain).max() <= 1


class _SchemeWithMinimum:
    name = "declares-a-minimum"
    payload_bytes = 6
    min_side = 256


class _FakeSD(ModelMustNotRun):
    vae_scale_factor = 8


def test_too_small_for_the_watermark_is_refused_before_generating(home, tmp_path):
    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        protector = Protector(identity=SigningIdentity.load(home), store=store, scheme=_SchemeWithMinimum())
        guard = Guard("default", detectors={"nudenet": StubNudeNet()}, protector=protector)
        with pytest.raises(GuardError, match="too small for the declares-a-minimum watermark"):
            guard.generate("a red bicycle", model=_FakeSD(), output_dir=tmp_path, width=64, height=64)


def test_the_default_watermark_floor_is_checked_before_generating(protector, tmp_path):
    guard = Guard("default", detectors={"nudenet": StubNudeNet()}, protector=protector)
    with pytest.raises(GuardError, match="too small for the guard watermark; generate at least 128x128"):
        guard.generate("a red bicycle", model=_FakeSD(), output_dir=tmp_path, width=96, height=96)


def test_cli_generates_verifiable_images_and_json_lines(tiny_model, cli_env, tmp_path):
    out = tmp_path / "out"
    argv = ["generate", "a red bicycle", "--model", str(tiny_model), "-o", str(out), "--seed", "42"]
    argv += ["--steps", str(STEPS), "--num-images", "2", "--device", "cpu", "--revision", "v1", "--json"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["decision"] for line in lines] == ["allow", "allow"]
    assert [line["seed"] for line in lines] == [42, 43]
    assert lines[0]["detectors"]["nudenet"]["status"] == "ok", "the real NudeNet scored the outputs"
    for line in lines:
        output = Path(line["output"])
        assert output.parent == out and output.suffix == ".jpg"
        assert set(line["watermark"]) == {"scheme", "payload"}
        report = verify_file(output, trust=_trust(cli_env)).to_dict()
        assert report["verdict"]["origin"] == "ai-generated"
        assert report["verdict"]["integrity"] == "intact"
        assert report["c2pa"]["state"] == "Trusted"
        assert report["c2pa"]["manifest_id"] == line["manifest_id"]
        assert report["c2pa"]["digital_source_type"] == DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA.uri
        ours = next(w for w in report["watermarks"] if w["scheme"] == line["watermark"]["scheme"])
        assert ours["detected"] and ours["payload"] == line["watermark"]["payload"]
        generation = read_manifest(output).assertion(GENERATION_LABEL)
        assert (generation["model"], generation["model_version"]) == (str(tiny_model), "v1")
    assert sorted(_files(out)) == sorted(Path(line["output"]) for line in lines)


def test_cli_blocked_prompt_exits_1_without_loading_the_model(cli_env, tmp_path):
    argv = ["generate", "a", "nude", "woman", "--model", str(tmp_path / "no-model"), "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*argv, "--num-images", "2", "--json"])
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["decision"], line["output"], line["stage"]) for line in lines] == [("block", None, "prompt")] * 2
    text = CliRunner().invoke(cli, argv)
    assert text.exit_code == 1
    assert text.stdout.startswith("BLOCK") and "refused" in text.stdout


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("nobody/missing-model", ["nobody/missing-model", "hf download nobody/missing-model"]),
        ("{tmp}/missing-folder", ["missing-folder", "does not exist"]),
        ("{tmp}/damaged", ["Cannot load", "damaged"]),
    ],
)
def test_cli_missing_model_is_one_line_exit_2(tiny_model, cli_env, tmp_path, model, expected):
    shutil.copytree(tiny_model, tmp_path / "damaged")
    (tmp_path / "damaged" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    argv = ["generate", "a red bicycle", "--model", model.format(tmp=tmp_path), "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert all(part in lines[0] for part in expected)
    assert "Traceback" not in result.output
    assert _files(tmp_path / "out") == []


def test_init_image_that_is_not_an_image_is_one_image_error(tmp_path):
    from guard.errors import ImageError
    from guard.generate import init_ingredient

    fake = tmp_path / "init.jpg"
    fake.write_text("not an image")
    with pytest.raises(ImageError, match="not an image"):
        init_ingredient(fake)
    photo = tmp_path / "init.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    ingredient = init_ingredient(photo)
    assert (ingredient.mime, ingredient.title, ingredient.relationship) == ("image/png", "init.png", "inputTo")
