"""Benchmark: what the guard adds to each generated image (prompt, scan, protect, store) next to generation.

Every run goes through the real guarded flow (`guard.generate.Guard.generate`) with the default policy and its
real detectors (NudeNet on CPU; the optional CLIP and synthetic detectors only where their weights are
present). The references, timed in the same run: the generation itself (the diffusers pipeline call), and
what diffusers' own safety checker would cost per image instead of our scan: `StableDiffusionSafetyChecker`
with its real architecture (CLIP ViT-L/14 vision tower at 224x224, the config of
CompVis/stable-diffusion-safety-checker) and random weights, since nothing is downloaded; its cost does
not depend on the weights.
Without `--model`, the tiny random Stable Diffusion pipeline (`generation.tiny`) makes 512x512 images on
the CPU, so generation time here says nothing about a real model; the guard stages do not depend on it.
With `--model` (hub id or folder) and `--device cuda`, the same table for a real model on a GPU.

Every figure is the median over `--runs` requests (after one warm-up request), per image.

    .venv/bin/python bench/generate.py [--runs 7] [--size 512] [--num-images 1]
    .venv/bin/python bench/generate.py --model stabilityai/sd-turbo --device cuda --steps 1 --guidance 0
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_MS = 100.0


class Clock:
    """Wall-clock and process CPU time of one block, in ms. CPU time counts every thread of the process
    (NudeNet, onnxruntime), and is less disturbed than wall time by other processes on a shared machine."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.wall = (time.perf_counter() - self._wall) * 1000
        self.cpu = (time.process_time() - self._cpu) * 1000


class Timed:
    """A wrapped object whose method `method` is timed on every call (wall, CPU); the rest passes through."""

    def __init__(self, inner: Any, method: str) -> None:
        self._inner, self._method = inner, method
        self.calls: list[Clock] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name != self._method:
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            with Clock() as clock:
                result = attribute(*args, **kwargs)
            self.calls.append(clock)
            return result

        return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--num-images", type=int, default=1, help="images per request (scored as one batch)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--model", default=None, help="hub id or folder (default: the tiny random pipeline)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: one core)")
    parser.add_argument("--format", default="jpg", choices=("jpg", "png", "webp"), help="delivered file format")
    parser.add_argument("--no-safety-checker", action="store_true", help="skip the safety-checker reference")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from generation import GenerationOptions, generate, load_pipeline
    from generation.tiny import save_tiny_pipeline
    from guard.generate import Guard
    from guard.protect import Protector
    from guard.provenance.credentials.keys import SigningIdentity, init_identity
    from guard.provenance.credentials.store import ManifestStore
    from guard.provenance.watermarks import get_scheme
    from guard.redact import blur
    from guard.scan import assess_images, detectors_for
    from policies import decide_prompt, load_policy

    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    model = args.model or save_tiny_pipeline(work / "tiny-sd")
    pipe = load_pipeline(model, device=args.device)
    init_identity(work)
    policy = load_policy("default")
    detectors = detectors_for(policy)
    store = Timed(ManifestStore.open(f"sqlite:///{work / 'store.db'}"), "add")
    scheme = Timed(get_scheme(), "embed")
    protector = Protector(identity=SigningIdentity.load(work), store=store, scheme=scheme)
    guard = Guard(policy, detectors=detectors, protector=protector, output_format=args.format)
    prompt = "a watercolor of a lighthouse at dawn"
    n = args.num_images
    options = {"steps": args.steps, "guidance": args.guidance, "width": args.size, "height": args.size}
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}

    def note(stage: str, clock: Clock) -> None:
        wall.setdefault(stage, []).append(clock.wall / n)
        cpu.setdefault(stage, []).append(clock.cpu / n)

    safety_checker = None if args.no_safety_checker else diffusers_safety_checker()
    decisions: list[str] = []
    for run in range(args.runs + 1):  # run 0 warms up (model load, detector load, caches)
        with Clock() as reference:
            images = generate(pipe, GenerationOptions(prompt, seed=run, num_images=n, **options)).images
        with Clock() as request:
            records = guard.generate(prompt, model=pipe, output_dir=work / "flow", seed=run, num_images=n, **options)
        decisions += [r.decision for r in records]
        # The same stages one by one on the reference images, for CPU time and the protect breakdown.
        with Clock() as prompt_clock:
            decide_prompt(policy, prompt)
        with Clock() as scan_clock:
            assess_images(images, policy, detectors)
        scheme.calls.clear()
        store.calls.clear()
        with Clock() as protect_clock:
            for index, image in enumerate(images):
                protector.protect(image, work / "stages" / f"{run}-{index}.{args.format}", prompt=prompt)
        with Clock() as blur_clock:
            for image in images:
                blur(image)
        if safety_checker is not None:
            with Clock() as checker_clock:
                safety_checker(images)
        if run == 0:
            continue
        note("generation (diffusers pipeline call alone)", reference)
        overhead = Clock()
        overhead.wall = request.wall - records[0].timings_ms["generate"]
        overhead.cpu = float("nan")
        note("guard overhead inside the flow (request - generation)", overhead)
        note("prompt check (policy)", prompt_clock)
        note("scan (detectors + image decision, one batch)", scan_clock)
        if safety_checker is not None:
            note("reference: diffusers' safety checker instead of our scan (CLIP ViT-L/14)", checker_clock)
        embed = _sum(scheme.calls)
        add = _sum(store.calls)
        rest = Clock()
        rest.wall, rest.cpu = protect_clock.wall - embed.wall - add.wall, protect_clock.cpu - embed.cpu - add.cpu
        note("protect: watermark embed", embed)
        note("protect: encode + C2PA sign + fingerprints + atomic write", rest)
        note("protect: manifest store (insert + commit)", add)
        note("protect total", protect_clock)
        total = Clock()
        total.wall = prompt_clock.wall + scan_clock.wall + protect_clock.wall
        total.cpu = prompt_clock.cpu + scan_clock.cpu + protect_clock.cpu
        note("**guard total (prompt + scan + protect)**", total)
        note("blur (only for images the policy blurs)", blur_clock)

    med_wall = {stage: statistics.median(values) for stage, values in wall.items()}
    med_cpu = {stage: statistics.median(values) for stage, values in cpu.items()}
    generation = med_wall["generation (diffusers pipeline call alone)"]
    print(
        f"model: {args.model or 'tiny random Stable Diffusion (generation.tiny)'} on {args.device}, "
        f"{args.size}x{args.size}, {args.steps} steps, {n} image(s)/request, {args.runs} runs, "
        f"{args.format} output, torch threads {args.threads}; decisions: {sorted(set(decisions))}"
    )
    status = {name: "unavailable" if d.unavailable_reason else "ok" for name, d in detectors.items()}
    print("detectors: " + ", ".join(f"{name}={state}" for name, state in status.items()))
    print()
    print("| stage (per image) | median wall ms | median CPU ms | wall, share of generation |")
    print("|---|---:|---:|---:|")
    for stage, value in med_wall.items():
        cpu_ms = "n/a" if math.isnan(med_cpu[stage]) else f"{med_cpu[stage]:,.1f}"
        print(f"| {stage} | {value:,.1f} | {cpu_ms} | {value / generation:.1%} |")
    total = "**guard total (prompt + scan + protect)**"
    verdict = "met" if med_wall[total] <= TARGET_MS else "MISSED"
    print(
        f"\ntarget: guard stages <= {TARGET_MS:.0f} ms per image: {verdict} "
        f"(wall {med_wall[total]:.1f} ms, CPU {med_cpu[total]:.1f} ms)"
    )
    store.close()
    return 0


def diffusers_safety_checker():
    """A callable running diffusers' safety checker on PIL images the way StableDiffusionPipeline does
    (feature extractor, then the checker), with the real architecture and random weights."""
    import numpy as np
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    config = CLIPConfig(
        vision_config={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "patch_size": 14,
            "image_size": 224,
        },
        projection_dim=768,
    )
    checker = StableDiffusionSafetyChecker(config).eval()
    extractor = CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224})

    def run(images: list[Any]) -> Any:
        with torch.no_grad():
            clip_input = extractor(images, return_tensors="pt").pixel_values
            arrays = np.stack([np.asarray(image, dtype=np.float32) / 255 for image in images])
            return checker(clip_input=clip_input, images=arrays)

    return run


def _sum(clocks: list[Clock]) -> Clock:
    total = Clock()
    total.wall = sum(c.wall for c in clocks)
    total.cpu = sum(c.cpu for c in clocks)
    return total


if __name__ == "__main__":
    raise SystemExit(main())
