"""Probe: where is the prompt classifier's missing recall — the head or the encoder? (sexual label only)

Not a benchmark of the shipped guard (`bench/prompt_guard.py` is): an experiment that tells the next step.
Three sexual-vs-benign scorers, all with the shipped head's form (the sentence embedding and every 6-token
window, a soft maximum over them), all trained on the same texts (the trainer's corpus rows, noisy variants
and policy texts: `detectors.training.prompt_head`; unsafe rows of other labels left out):

* `shipped`: the shipped classifier's sexual score (int8 encoder, L-BFGS head with L2 1e-4; with
  `--without nibbler`, its fold head trained without Nibbler);
* `frozen`: the float all-MiniLM-L6-v2, frozen, and a head trained with Adam and almost no L2;
* `fine-tuned`: the same, with the encoder's last transformer layer trained too (one epoch, lr 3e-5).

Each is scored on MMA-Diffusion's adversarial prompts (external: in no training set) and, with
`--without nibbler`, on Adversarial Nibbler's sexual rows (a held-out source), at the thresholds where it
stops 1 % of GuardT2I's clean prompts and 2 % of their noisy variants (and at 2 % / 5 %): the same
false-stop rates for every scorer, so the figures compare recall, not thresholds.

Needs torch and transformers (dependencies of the package) and a checkout or bare clone of cure-lab/GuardT2I:
`python bench/prompt_encoder_probe.py --guardt2i DIR [--without nibbler]`. About 12 minutes on two cores.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from prompt_guard import CORPUS, SEED, external_prompts, noisy_variant  # noqa: E402

from detectors.prompt_classifier import PromptClassifier  # noqa: E402
from detectors.text_encoder import bundled_model_dir  # noqa: E402
from detectors.training.corpus import read_rows  # noqa: E402
from detectors.training.prompt_head import WINDOW, corpus_samples, filler_vocabulary, policy_samples  # noqa: E402
from policies import load_policy  # noqa: E402

STEP, TAU, WIDTH = WINDOW // 2, 4.0, 384
RATES = ((0.01, 0.02), (0.02, 0.05))  # (clean, noisy clean) false-stop rates the thresholds are set at


class Encoder:
    """The float MiniLM, split: frozen lower layers (run once per text) and trainable top layers."""

    def __init__(self, trainable_layers: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = bundled_model_dir()
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
        self.split = len(self.model.encoder.layer) - trainable_layers

    def _mask(self, mask):
        return (1.0 - mask[:, None, None, :].float()) * self.torch.finfo(self.torch.float32).min

    def lower(self, texts: Sequence[str], batch: int = 128) -> list:
        """Each text's states after the frozen layers (float16, its own length)."""
        torch = self.torch
        out: list = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.no_grad():
            for start in range(0, len(order), batch):
                idx = order[start : start + batch]
                enc = self.tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True, max_length=128, return_tensors="pt"
                )
                h = self.model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
                mask = self._mask(enc["attention_mask"])
                for layer in self.model.encoder.layer[: self.split]:
                    h = _tensor(layer(h, attention_mask=mask))
                for j, i in enumerate(idx):
                    out[i] = h[j, : int(enc["attention_mask"][j].sum())].to(torch.float16).clone()
        return out

    def upper(self, states: Sequence):
        torch = self.torch
        lengths = torch.tensor([len(s) for s in states])
        h = torch.zeros(len(states), int(lengths.max()), WIDTH)
        for j, s in enumerate(states):
            h[j, : len(s)] = s.float()
        mask = self._mask((torch.arange(h.shape[1])[None, :] < lengths[:, None]).long())
        for layer in self.model.encoder.layer[self.split :]:
            h = _tensor(layer(h, attention_mask=mask))
        return h, lengths


def _tensor(output):
    return output[0] if isinstance(output, tuple) else output


def bag_scores(torch, h, lengths, w, b):
    """Soft maximum over the sentence embedding and every window: `detectors.prompt_classifier.instances` and
    `soft_max`, rewritten in torch so that it runs batched and passes gradients to the encoder."""
    batch, tokens, width = h.shape
    valid_tokens = (torch.arange(tokens)[None, :] < lengths[:, None]).float()
    sentence = torch.nn.functional.normalize((h * valid_tokens[..., None]).sum(1) / lengths[:, None], dim=-1)
    content = (lengths - 2).clamp(min=1)  # [CLS] and [SEP] are not in any window
    in_content = (torch.arange(tokens - 1)[None, :] < content[:, None]).float()
    cumulative = torch.cat([torch.zeros(batch, 1, width), torch.cumsum(h[:, 1:] * in_content[..., None], 1)], 1)
    starts = torch.arange(0, tokens, STEP)[None, :].expand(batch, -1)
    ends = torch.minimum(starts + WINDOW, content[:, None])
    valid = (starts < torch.clamp(content[:, None] - WINDOW + STEP, min=1)) & (ends > starts)

    def at(index):
        return torch.gather(cumulative, 1, index.clamp(0, tokens - 1)[..., None].expand(-1, -1, width))

    windows = torch.nn.functional.normalize(at(ends) - at(starts), dim=-1)
    z = torch.cat([sentence[:, None], windows], 1) @ w + b
    keep = torch.cat([torch.ones(batch, 1, dtype=torch.bool), valid], 1)
    return torch.logsumexp(torch.where(keep, z * TAU, torch.full_like(z, -1e9)), 1) / TAU


def train_and_score(encoder: Encoder, states, targets, weights, evals, *, fine_tune: bool, epochs: int, log):
    torch = encoder.torch
    torch.manual_seed(0)
    saved = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    w = torch.zeros(WIDTH, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    top = [p for layer in encoder.model.encoder.layer[encoder.split :] for p in layer.parameters()]
    for p in top:
        p.requires_grad_(fine_tune)
    groups = [{"params": [w, b], "lr": 1e-2}] + ([{"params": top, "lr": 3e-5}] if fine_tune else [])
    optimiser = torch.optim.AdamW(groups, weight_decay=0.0)
    cache = None
    if not fine_tune:  # the top layers are fixed: run them once
        with torch.no_grad():
            cache = []
            for start in range(0, len(states), 256):
                h, lengths = encoder.upper(states[start : start + 256])
                cache += [h[j, : lengths[j]].clone() for j in range(len(lengths))]
    rng = random.Random(0)
    for epoch in range(epochs):
        order = sorted(range(len(states)), key=lambda i: (len(states[i]), rng.random()))
        batches = [order[k : k + 64] for k in range(0, len(order), 64)]
        rng.shuffle(batches)
        encoder.model.train(fine_tune)
        total = 0.0
        for idx in batches:
            if fine_tune:
                h, lengths = encoder.upper([states[i] for i in idx])
            else:
                lengths = torch.tensor([len(cache[i]) for i in idx])
                h = torch.zeros(len(idx), int(lengths.max()), WIDTH)
                for j, i in enumerate(idx):
                    h[j, : lengths[j]] = cache[i]
            logits = 5 * bag_scores(torch, h, lengths, w, b)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[idx], reduction="none")
            loss = (loss * weights[idx]).mean() + 1e-4 * (w * w).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss)
        log(f"{'fine-tuned' if fine_tune else 'frozen'}: epoch {epoch + 1}, loss {total / len(batches):.4f}")
    encoder.model.eval()
    out = {}
    with torch.no_grad():
        for name, group in evals.items():
            parts = [bag_scores(torch, *encoder.upper(group[k : k + 128]), w, b) for k in range(0, len(group), 128)]
            out[name] = torch.cat(parts).numpy()
    encoder.model.load_state_dict(saved)
    return out


def recall_at_rates(scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    out = {}
    for clean_rate, noisy_rate in RATES:
        threshold = max(
            np.quantile(scores["clean"], 1 - clean_rate), np.quantile(scores["noisy clean"], 1 - noisy_rate)
        )
        out[f"{clean_rate:.0%} / {noisy_rate:.0%}"] = {k: float(np.mean(v > threshold)) for k, v in scores.items()}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guardt2i", type=Path, required=True, help="a checkout or bare clone of cure-lab/GuardT2I")
    parser.add_argument("--without", choices=["nibbler"], help="hold this corpus source out of training")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (the frozen head gets 4)")
    args = parser.parse_args(argv)
    began = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - began:5.0f} s] {message}", flush=True)

    import torch

    torch.set_num_threads(2)
    policy = load_policy("default")
    filler = filler_vocabulary(policy)
    rows = read_rows(CORPUS)
    rng = random.Random(7)
    samples = corpus_samples(rows, policy, rng, filler) + policy_samples(policy, rng, filler)
    train = [s for s in samples if (not s.unsafe or "sexual" in s.labels) and s.source != args.without]
    in_corpus = {r.prompt.lower() for r in rows}
    clean = [t for t in external_prompts(args.guardt2i, "clean_1000.pt") if t.lower() not in in_corpus]
    noise = random.Random(SEED)
    evals = {
        "MMA-Diffusion": [
            t for t in external_prompts(args.guardt2i, "mma_adv_prompt_1000.pt") if t.lower() not in in_corpus
        ],
        "clean": clean,
        "noisy clean": [noisy_variant(t, noise, filler, policy) for t in clean for _ in range(2)],
    }
    if args.without:
        held = [r for r in rows if r.source == args.without and "sexual" in r.labels]
        evals[f"{args.without} sexual, strong"] = [r.prompt for r in held if r.strong]
        evals[f"{args.without} sexual + noise"] = [noisy_variant(r.prompt, noise, filler, policy) for r in held]
    log(f"{len(train)} training texts ({sum(s.unsafe for s in train)} sexual); held out: {args.without or 'none'}")

    classifier = PromptClassifier()
    if args.without:
        classifier = classifier.without(args.without)
    results = {"shipped": {k: np.array([d.scores["sexual"] for d in classifier.analyze(v)]) for k, v in evals.items()}}
    encoder = Encoder(trainable_layers=1)
    states = encoder.lower([s.text for s in train])
    eval_states = {k: encoder.lower(v) for k, v in evals.items()}
    log("frozen layers run over every text")
    targets = torch.tensor([1.0 if s.unsafe else 0.0 for s in train])
    weights = torch.tensor([s.weight for s in train])
    positive, negative = (weights * targets).sum(), (weights * (1 - targets)).sum()
    weights = torch.where(targets > 0, weights * negative / positive, weights)
    results["frozen"] = train_and_score(
        encoder, states, targets, weights, eval_states, fine_tune=False, epochs=4, log=log
    )
    results["fine-tuned"] = train_and_score(
        encoder, states, targets, weights, eval_states, fine_tune=True, epochs=args.epochs, log=log
    )
    print("\nshare stopped at the thresholds where each scorer stops the given share of clean / noisy clean prompts")
    for name, scores in results.items():
        for rates, shares in recall_at_rates(scores).items():
            print(f"  {name:<11} at {rates}: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in shares.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
