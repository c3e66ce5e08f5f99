"""CLIP concept and UnivFD synthetic-image detectors on a tiny random open_clip model, loaded the real way.

The tiny model is built from an open_clip config, saved as a `local-dir:` folder (config + weights) and as a
plain checkpoint for a registered architecture, then loaded through `detectors.openclip` exactly as real
weights would be. Scores are checked against an independent computation with open_clip and torchvision.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from detectors import build_detectors
from detectors.concepts import ClipConceptDetector, similarity_to_score
from detectors.errors import DetectorError
from detectors.openclip import resolve
from detectors.synthetic import SyntheticImageDetector, center_crop

TINY = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
CONCEPTS = {"gore": ["a photo of graphic gore", "a bloody body"], "weapons": ["a photo of a gun"]}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    import open_clip

    folder = tmp_path_factory.mktemp("tiny-clip")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": {}}))
    torch.manual_seed(0)
    torch.save(open_clip.CLIP(**TINY).state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder


@pytest.fixture(scope="module")
def reference(tiny_dir):
    """The same model loaded directly with open_clip, to compute expected numbers independently."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tiny_dir}")
    return model.eval(), preprocess, open_clip.get_tokenizer(f"local-dir:{tiny_dir}")


@pytest.fixture(scope="module")
def images():
    from skimage import data

    return [Image.fromarray(data.astronaut()), Image.fromarray(data.coffee()), Image.new("RGB", (20, 24), "red")]


def test_concept_scores_are_the_documented_function_of_cosine_similarity(tiny_dir, reference, images):
    model, preprocess, tokenizer = reference
    detector = ClipConceptDetector(concepts=CONCEPTS, model=f"local-dir:{tiny_dir}")
    assert detector.available(), detector.unavailable_reason
    assert detector.labels == ("gore", "weapons")
    results = detector.analyze(images)
    with torch.no_grad():
        image = torch.nn.functional.normalize(model.encode_image(torch.stack([preprocess(i) for i in images])), dim=-1)
        texts = [t for ts in CONCEPTS.values() for t in ts]
        text = torch.nn.functional.normalize(model.encode_text(tokenizer(texts)), dim=-1)
    cosine = (image @ text.T).numpy()
    for row, result in zip(cosine, results, strict=True):
        expected = {"gore": max(row[0], row[1]), "weapons": row[2]}
        for label, similarity in expected.items():
            assert result.details["similarity"][label] == pytest.approx(similarity, abs=1e-4)
            assert result.scores[label] == pytest.approx(1 / (1 + math.exp(-50 * (similarity - 0.2))), abs=1e-6)
            assert 0.0 <= result.scores[label] <= 1.0


def test_similarity_to_score_anchors():
    assert similarity_to_score(0.2) == pytest.approx(0.5)
    assert similarity_to_score(0.25) == pytest.approx(0.924, abs=1e-3)
    assert similarity_to_score(0.15) == pytest.approx(0.076, abs=1e-3)
    assert similarity_to_score(0.3, center=0.3, scale=10) == pytest.approx(0.5)


def test_concept_batch_equals_single_images(tiny_dir, images):
    detector = ClipConceptDetector(concepts=CONCEPTS, model=f"local-dir:{tiny_dir}", batch_size=2)
    batched = detector.score(images)
    for image, scores in zip(images, batched, strict=True):
        assert detector.score([image])[0] == pytest.approx(scores, rel=1e-4, abs=1e-9)


def test_builtin_architecture_with_a_checkpoint_file(tmp_path, tiny_dir, images):
    import open_clip

    (tmp_path / "guard-tiny-test.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(tmp_path / "guard-tiny-test.json")
    checkpoint = tiny_dir / "open_clip_pytorch_model.bin"
    from_file = ClipConceptDetector(concepts=CONCEPTS, model="guard-tiny-test", pretrained=str(checkpoint))
    from_dir = ClipConceptDetector(concepts=CONCEPTS, model=f"local-dir:{tiny_dir}")
    for a, b in zip(from_file.analyze(images), from_dir.analyze(images), strict=True):
        assert a.details["similarity"] == pytest.approx(b.details["similarity"], abs=1e-6)


def test_weights_not_in_the_local_cache_are_unavailable_and_named(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("GUARD_CLIP_CACHE", str(tmp_path / "clip"))
    detector = ClipConceptDetector(concepts=CONCEPTS, model="ViT-L-14", pretrained="openai")
    assert not detector.available()
    reason = detector.unavailable_reason
    assert "ViT-L-14/openai" in reason and "not in the local cache" in reason
    assert "detectors.clip_concepts.pretrained" in reason and "GUARD_CLIP_PRETRAINED" in reason
    with pytest.raises(Exception, match="unavailable"):
        detector.score([Image.new("RGB", (8, 8))])


def test_environment_points_policies_at_local_weights(monkeypatch, tiny_dir, tmp_path):
    monkeypatch.setenv("GUARD_CLIP_MODEL", f"local-dir:{tiny_dir}")
    detector = ClipConceptDetector(concepts=CONCEPTS, model="ViT-L-14", pretrained="openai")
    assert detector.available(), detector.unavailable_reason
    _probe(tmp_path / "fc_weights.pth")
    monkeypatch.setenv("GUARD_SYNTHETIC_WEIGHTS", str(tmp_path / "fc_weights.pth"))
    monkeypatch.setenv("GUARD_SYNTHETIC_CLIP_MODEL", f"local-dir:{tiny_dir}")
    synthetic = SyntheticImageDetector(weights=None)
    assert synthetic.available(), synthetic.unavailable_reason
    assert 0.0 < synthetic.score([Image.new("RGB", (40, 40), "white")])[0]["synthetic"] < 1.0


@pytest.mark.parametrize(
    ("model", "pretrained", "expected"),
    [
        ("ViT-Nope-99", "openai", "not an open_clip architecture"),
        ("ViT-L-14", "no-such-tag", "neither a file nor a known tag"),
        ("ViT-L-14", "openai", "ViT-L-14/openai are not in the local cache"),
        ("ViT-L-14", None, "no pretrained weights configured"),
        ("hf-hub:someone/not-cached", None, "not in the local Hugging Face cache"),
    ],
)
def test_unresolvable_models_say_why(model, pretrained, expected, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from detectors.base import DetectorUnavailable

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("GUARD_CLIP_CACHE", str(tmp_path / "clip"))
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "some-other-model.pt").write_bytes(b"")  # some weights are cached, not these
    with pytest.raises(DetectorUnavailable, match=expected):
        resolve(model, pretrained, "detectors.clip_concepts.pretrained")


def test_without_any_cached_weights_the_scan_never_imports_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from PIL import Image; from guard.scan import assess_images; "
        "a = assess_images([Image.new('RGB', (64, 64))], 'default')[0]; "
        "print(a.detectors['clip_concepts']['status'], 'torch' in sys.modules)"
    )
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "GUARD_CLIP_CACHE": str(tmp_path / "clip"), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["unavailable", "False"], out.stderr


def test_local_dir_without_weights_is_unavailable(tmp_path):
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY}))
    detector = ClipConceptDetector(concepts=CONCEPTS, model=f"local-dir:{tmp_path}")
    assert not detector.available()
    assert "no weights file" in detector.unavailable_reason


def test_device_that_is_not_there_is_unavailable(tiny_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    detector = ClipConceptDetector(concepts=CONCEPTS, model=f"local-dir:{tiny_dir}", device="cuda")
    assert not detector.available()
    assert (
        "no CUDA GPU" in detector.unavailable_reason
        and "detectors.clip_concepts.device: cpu" in detector.unavailable_reason
    )
    bogus = SyntheticImageDetector(weights=__file__, model=f"local-dir:{tiny_dir}", device="warp-drive")
    assert not bogus.available() and "not a torch device" in bogus.unavailable_reason


def test_concepts_are_required():
    with pytest.raises(DetectorError, match="concepts"):
        ClipConceptDetector(concepts={})
    with pytest.raises(DetectorError, match="concepts"):
        ClipConceptDetector(concepts={"gore": []})


# --- synthetic-image probe (UnivFD) ---


def _probe(path, dim=16, seed=1, prefix=""):
    generator = torch.Generator().manual_seed(seed)
    state = {
        f"{prefix}weight": torch.randn(1, dim, generator=generator),
        f"{prefix}bias": torch.randn(1, generator=generator),
    }
    torch.save(state, path)
    return state


def test_synthetic_needs_configured_weights(monkeypatch):
    monkeypatch.delenv("GUARD_SYNTHETIC_WEIGHTS", raising=False)
    detector = SyntheticImageDetector()
    assert not detector.available()
    assert "fc_weights.pth" in detector.unavailable_reason
    assert "GUARD_SYNTHETIC_WEIGHTS" in detector.unavailable_reason
    missing = SyntheticImageDetector(weights="/nonexistent/fc_weights.pth")
    assert not missing.available() and "does not exist" in missing.unavailable_reason


def test_synthetic_score_is_the_papers_recipe(tmp_path, tiny_dir, reference, images):
    from torchvision import transforms

    state = _probe(tmp_path / "fc_weights.pth")
    detector = SyntheticImageDetector(weights=tmp_path / "fc_weights.pth", model=f"local-dir:{tiny_dir}")
    assert detector.available(), detector.unavailable_reason
    assert detector.labels == ("synthetic",)
    model = reference[0]
    paper = transforms.Compose(
        [
            transforms.CenterCrop(32),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.48145466, 0.4578275, 0.40821073], std=[0.26862954, 0.26130258, 0.27577711]),
        ]
    )
    with torch.no_grad():
        features = model.encode_image(torch.stack([paper(image) for image in images]))
        expected = torch.sigmoid(features @ state["weight"].T + state["bias"]).reshape(-1).tolist()
    scores = [s["synthetic"] for s in detector.score(images)]
    assert scores == pytest.approx(expected, abs=1e-5)


def test_center_crop_matches_torchvision():
    from torchvision import transforms

    rng = np.random.default_rng(0)
    for height, width in [(40, 50), (33, 32), (20, 24), (10, 45)]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        expected = transforms.ToTensor()(transforms.CenterCrop(32)(image)).permute(1, 2, 0).numpy()
        assert np.allclose(center_crop(image, 32), expected, atol=1e-6)


def test_synthetic_probe_layouts(tmp_path, tiny_dir):
    _probe(tmp_path / "prefixed.pth", prefix="fc.")
    ok = SyntheticImageDetector(weights=tmp_path / "prefixed.pth", model=f"local-dir:{tiny_dir}")
    assert ok.available(), ok.unavailable_reason
    _probe(tmp_path / "wide.pth", dim=768)
    wrong = SyntheticImageDetector(weights=tmp_path / "wide.pth", model=f"local-dir:{tiny_dir}")
    assert not wrong.available()
    assert "(1, 768)" in wrong.unavailable_reason and "(1, 16)" in wrong.unavailable_reason
    (tmp_path / "junk.pth").write_bytes(b"junk")
    junk = SyntheticImageDetector(weights=tmp_path / "junk.pth", model=f"local-dir:{tiny_dir}")
    assert not junk.available() and "not a readable torch file" in junk.unavailable_reason


# --- registry ---


def test_registry_builds_what_the_default_policy_names():
    from policies import load_policy

    built = build_detectors(load_policy("default").detector_configs())
    assert set(built) == {"nudenet", "clip_concepts", "synthetic"}
    assert type(built["clip_concepts"]).__name__ == "ClipConceptDetector"
    assert set(built["clip_concepts"].labels) == {"gore", "hate_symbols", "self_harm", "weapons"}
    assert built["synthetic"].labels == ("synthetic",)
    assert build_detectors(load_policy("default").detector_configs())["nudenet"] is built["nudenet"]


def test_registry_refuses_unknown_names_and_settings():
    with pytest.raises(DetectorError, match="unknown detector 'nsfw'"):
        build_detectors({"nsfw": {"required": True}})
    with pytest.raises(DetectorError, match=r"detectors.nudenet: unknown setting\(s\) \['thread'\]"):
        build_detectors({"nudenet": {"required": True, "thread": 2}}, reuse=False)
