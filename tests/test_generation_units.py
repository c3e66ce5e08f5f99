"""Generation pieces that need no model: device and dtype choice, model references, options, blur,
negative-prompt terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from generation.devices import choose_device
from generation.errors import GenerationError, ModelLoadError
from generation.loading import offline_mode, resolve_model
from generation.pipeline import GenerationOptions, validate
from guard.generate import decide_generated, with_policy_terms
from guard.redact import BLUR_GRID, blur
from policies import Decision, decide_prompt, load_policy


def test_cpu_gets_float32_and_half_precision_on_cpu_is_refused():
    choice = choose_device("cpu")
    assert (choice.device, choice.dtype) == ("cpu", torch.float32)
    for dtype in ("float16", "bfloat16"):
        with pytest.raises(ModelLoadError, match="not supported for generation on the CPU"):
            choose_device("cpu", dtype)


def test_auto_device_matches_this_machine():
    choice = choose_device("auto")
    if torch.cuda.is_available():
        assert (choice.device, choice.dtype_name) == ("cuda", "float16")
    else:
        assert choice.device in ("cpu", "mps")
        assert choice.dtype_name == ("float32" if choice.device == "cpu" else "float16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_one_clear_error():
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        choose_device("cuda")
    with pytest.raises(ModelLoadError, match="Unknown device"):
        choose_device("tpu")


def test_model_references(tmp_path):
    assert resolve_model("stabilityai/sd-turbo") == ("stabilityai/sd-turbo", False)
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match=r"no model_index\.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        resolve_model(str(tmp_path / "model.safetensors"))
    (tmp_path / "model_index.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == (str(tmp_path), True)


def test_offline_mode_is_read_at_call_time(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert offline_mode() is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert offline_mode() is True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt": "  "}, "prompt is empty"),
        ({"num_images": 0}, "at least 1"),
        ({"steps": 0}, "at least 1"),
        ({"width": 250}, "multiple of 8"),
        ({"height": 0}, "multiple of 8"),
        ({"seed": -1}, "seed must be"),
        ({"init_image": Image.new("RGB", (64, 64)), "strength": 1.5}, "Strength"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(GenerationError, match=message):
        validate(GenerationOptions(**{"prompt": "a red bicycle", **options}))


def test_policy_negative_terms_are_added_once():
    policy = load_policy("default")
    assert policy.negative_prompt_terms
    merged = with_policy_terms("blurry, Gore", policy)
    assert merged.startswith("blurry, Gore, ")
    assert merged.lower().count("gore") == 1
    assert all(term in merged.lower() for term in policy.negative_prompt_terms)
    assert with_policy_terms(None, policy) == ", ".join(policy.negative_prompt_terms)


def test_image_decision_is_combined_with_the_prompt_decision():
    policy = load_policy("default")
    prompt = decide_prompt(policy, "a portrait of Joe Biden")
    assert prompt.decision == "review"
    image = Decision(
        decision="blur",
        categories={"suggestive": "blur"},
        reasons=[{"rule": "r", "category": "c"}],
        policy_name=policy.name,
        policy_version=policy.version,
    )
    decision = decide_generated(prompt, image)
    assert decision.decision == "review"
    assert decision.categories["suggestive"] == "blur"
    assert {r["stage"] for r in decision.reasons} == {"prompt", "image"}
    assert decide_generated(decide_prompt(policy, "a red bicycle"), image).decision == "blur"


def _astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def test_blur_leaves_nothing_finer_than_the_grid():
    image = _astronaut()
    blurred = blur(image)
    assert blurred.size == image.size and blurred.mode == "RGB"
    # Fine detail does not survive: an image and the same image overlaid with a strong fine pattern (a
    # +-50 checkerboard, kept inside 0..255 so nothing clips) blur to the same picture.
    base = 55 + np.asarray(image).astype(int) * 145 // 255
    y, x = np.mgrid[0 : image.height, 0 : image.width]
    pattern = np.where((x + y) % 2 == 0, 50, -50)[..., None]
    plain, detailed = (Image.fromarray((base + offset).astype("uint8")) for offset in (0, pattern))
    difference = np.abs(np.asarray(blur(detailed)).astype(int) - np.asarray(blur(plain)).astype(int))
    assert difference.max() <= 1
    # Edges are gone: the largest step between neighbouring pixels is tiny compared with the original's.
    gray = np.asarray(blurred.convert("L")).astype(int)
    original = np.asarray(image.convert("L")).astype(int)
    assert np.abs(np.diff(gray, axis=1)).max() <= 6 < np.abs(np.diff(original, axis=1)).max() // 10
    # The overall colours stay (a coarse thumbnail is about the same).
    side = BLUR_GRID // 4
    thumbnails = [np.asarray(i.resize((side, side), Image.Resampling.BOX)).astype(int) for i in (image, blurred)]
    assert np.abs(thumbnails[0] - thumbnails[1]).mean() < 12


class _PipelineWithoutNegativePrompt:
    """A pipeline whose call takes no negative prompt (as some families): records what it was given."""

    def __call__(self, prompt, num_images_per_prompt=1, generator=None, output_type="pil", num_inference_steps=28):
        from types import SimpleNamespace

        self.generators = generator
        return SimpleNamespace(images=[Image.new("RGB", (64, 48))] * num_images_per_prompt)


def test_options_a_pipeline_does_not_take_are_reported_not_passed():
    from generation.pipeline import generate

    pipe = _PipelineWithoutNegativePrompt()
    generated = generate(pipe, GenerationOptions("a red bicycle", negative_prompt="blurry", seed=5, num_images=2))
    assert generated.settings["ignored"] == ["negative_prompt"]
    assert generated.settings["steps"] == 28, "the pipeline's own default is recorded"
    assert (generated.settings["width"], generated.settings["height"]) == (64, 48)
    assert generated.seeds == [5, 6]
    assert [g.initial_seed() for g in pipe.generators] == [5, 6]


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_picks_cuda_then_mps_then_cpu_with_their_dtypes(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    choice = choose_device("auto")
    assert choice.device == expected
    assert choice.dtype_name == {"cuda": "float16", "mps": "float16", "cpu": "float32"}[expected]
    assert choose_device("auto", "float32").dtype == torch.float32


class _RecordingPipeline:
    """Records how `place` sets a pipeline up."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.calls: list[tuple] = []
        self.vae = SimpleNamespace(enable_slicing=lambda: self.calls.append(("vae_slicing",)))

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, *args, *kwargs.values()))


@pytest.mark.parametrize(
    ("device", "low_memory", "expected"),
    [
        ("cpu", False, [("to", "cpu")]),
        ("cpu", True, [("enable_attention_slicing",), ("vae_slicing",), ("to", "cpu")]),
        ("cuda", False, [("to", "cuda")]),
        ("cuda", True, [("enable_attention_slicing",), ("vae_slicing",), ("enable_model_cpu_offload", "cuda")]),
    ],
)
def test_placement_and_low_memory_switches(device, low_memory, expected):
    from generation.devices import DeviceChoice
    from generation.loading import place

    pipe = _RecordingPipeline()
    place(pipe, DeviceChoice(device, "float32" if device == "cpu" else "float16"), low_memory=low_memory)
    assert pipe.calls[0][0] == "set_progress_bar_config"
    assert pipe.calls[1:] == expected
