"""Benchmark: `guard filter-dataset` end to end against the raw cost of decoding and scoring the same samples.

Builds WebDataset shards (img2dataset layout: `.jpg`, `.txt`, `.json`, sibling `.parquet`) of 512x512 JPEGs
cut from real photos (scikit-image and matplotlib samples, the shared fixtures) with random crops, flips,
rotations and colour shifts, then times, in the same run:

* **raw NSFW**: decode + NudeNet + open_nsfw on every sample in `--workers` processes (models loaded once
  per process, batches of 16, single-threaded sessions) — no reading of shards, no other check, nothing
  written;
* **raw, every check**: the same with everything the filter computes per sample (the stages' code called
  directly: hashes, the four watermark decoders, Content Credentials, metadata, opt-outs, captions);
* **local engine**: `guard filter-dataset --workers N` end to end (reading shards, the stages, checkpoints,
  the near-duplicate pass, writing the filtered shards and tables), with the dataset policy, and once
  with a policy that reads no watermarks (so its per-sample work is what "raw NSFW" measures plus the
  cheap checks);
* **ray engine**: the same with `--engine ray --workers N` (a local Ray started for the job; its start-up is
  shown apart);
* **memory**: the peak resident memory of the filter's process tree (main process and workers, sampled
  every 0.1 s) at two dataset sizes.

Also the median cost per sample of each check, one process. Every run starts its worker processes itself
(model loading included). Run: `python bench/dataset.py [--n 2000] [--small 500] [--workers 2] [--rounds 1]`.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import ROOT, median_ms, sample_photos
from PIL import Image, ImageEnhance

CHUNK = 16
SHARD_SIZE = 250


def source_photos() -> list[Image.Image]:
    found = sample_photos(
        ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry", "hubble_deep_field", "moon"),
        ("P1000827.jpg", "earth_apollo17.jpg", "mars.webp", "TUSCANY.TIF"),
    )
    return [image.convert("RGB") for _, image in found]


def make_dataset(folder: Path, count: int, seed: int) -> Path:
    """`count` samples in shards of SHARD_SIZE, img2dataset's layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    photos = source_photos()
    folder.mkdir(parents=True, exist_ok=True)
    for shard, first in enumerate(range(0, count, SHARD_SIZE)):
        rows = []
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as tar:
            for index in range(first, min(first + SHARD_SIZE, count)):
                photo = photos[index % len(photos)]
                width, height = photo.size
                scale = rng.uniform(0.5, 1.0)
                crop_w, crop_h = max(64, int(width * scale)), max(64, int(height * scale))
                left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
                image = photo.crop((left, top, left + crop_w, top + crop_h)).resize((512, 512), Image.BICUBIC)
                if rng.random() < 0.5:
                    image = image.transpose(Image.FLIP_LEFT_RIGHT)
                if rng.random() < 0.3:
                    image = image.rotate(float(rng.choice([90, 180, 270])))
                image = ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))
                image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=90)
                key = f"{index:09d}"
                meta = {"url": f"https://photos.example.org/{key}.jpg", "key": key, "status": "success"}
                meta.update({"width": 512, "height": 512})
                for ext, data in (
                    ("jpg", buffer.getvalue()),
                    ("txt", f"a photograph, variant {index}".encode()),
                    ("json", json.dumps(meta).encode()),
                ):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size, info.mtime = len(data), 1_700_000_000
                    tar.addfile(info, io.BytesIO(data))
                rows.append(meta)
        pq.write_table(pa.Table.from_pylist(rows), folder / f"{shard:05d}.parquet")
    return folder


# --- raw: the same models (and checks) without the pipeline ----------------------------------------------

_worker: dict = {}


def _raw_start(every_check: bool) -> None:
    from detectors import build_detector
    from guard.dataset.stages import ChunkProcessor, FilterContext
    from policies import load_policy

    if every_check:
        _worker["processor"] = ChunkProcessor(FilterContext.for_policy(load_policy("dataset")))
    else:
        _worker["models"] = [
            build_detector("nudenet", {"threads": 1, "batch_size": CHUNK}),
            build_detector("open_nsfw", {"threads": 1, "batch_size": CHUNK}),
        ]


def _raw_chunk(payload: list[bytes]) -> int:
    from guard.dataset.samples import Chunk, Sample
    from guard.images import load_image

    if "processor" in _worker:
        samples = [Sample(shard=0, seq=i, key=str(i), member="x.jpg", image=data) for i, data in enumerate(payload)]
        return len(_worker["processor"](Chunk(shard=0, number=0, samples=samples)))
    images = [load_image(data) for data in payload]
    for model in _worker["models"]:
        model.score(images)
    return len(images)


def read_images(folder: Path) -> list[bytes]:
    from guard.dataset.readers import discover, iter_samples

    return [sample.image for shard in discover([folder]) for sample in iter_samples(shard)]


def raw_run(images: list[bytes], workers: int, every_check: bool) -> float:
    """Seconds to decode and score every image in `workers` processes (their start and model loading included)."""
    chunks = [images[i : i + CHUNK] for i in range(0, len(images), CHUNK)]
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_raw_start, initargs=(every_check,)) as pool:
        done = sum(pool.imap(_raw_chunk, chunks))
    assert done == len(images)
    return time.perf_counter() - start


# --- the filter, in a child process whose memory is watched -------------------------------------------------


def filter_run(folder: Path, out: Path, workers: int, engine: str, policy: Path | None) -> dict:
    """Run `guard filter-dataset --json` in a child process; its summary, wall time and peak tree memory."""
    import psutil

    command = [sys.executable, "-c", "from guard.cli import main; main()", "filter-dataset", str(folder)]
    command += ["-o", str(out), "--workers", str(workers), "--engine", engine, "--json"]
    if policy is not None:
        command += ["--policy", str(policy)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def watch() -> None:
        process = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                tree = [process, *process.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - start
    watcher.join()
    if child.returncode != 0:
        raise SystemExit(f"filter-dataset failed ({child.returncode}): {stderr.strip()[-2000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {"summary": summary, "wall": wall, "peak_mib": peak[0] / 2**20}


def stage_costs(images: list[bytes], count: int = 48) -> dict[str, float]:
    """Median ms per sample of each check, one process."""
    from detectors import build_detector
    from guard.dataset.optout import header_evidence
    from guard.dataset.origin import watermark_evidence
    from guard.images import load_image
    from guard.provenance.credentials.c2pa import c2pa_context, read_manifest
    from guard.provenance.credentials.fingerprint import fingerprints
    from guard.verify.metadata import read_metadata
    from policies import decide_prompt, load_policy

    policy = load_policy("dataset")
    nudenet = build_detector("nudenet", {"threads": 1})
    open_nsfw = build_detector("open_nsfw", {"threads": 1})
    context = c2pa_context()
    sample = images[:count]
    decoded = [load_image(data) for data in sample]
    costs = {
        "decode (load_image)": lambda: [load_image(d) for d in sample],
        "NudeNet (batch 16)": lambda: [nudenet.score(decoded[i : i + 16]) for i in range(0, len(decoded), 16)],
        "open_nsfw (batch 16)": lambda: [open_nsfw.score(decoded[i : i + 16]) for i in range(0, len(decoded), 16)],
        "watermarks: guard, sd-v1, sd-v2, sdxl": lambda: [
            watermark_evidence(i, ["guard", "sd-v1", "sd-v2", "sdxl"]) for i in decoded
        ],
        "perceptual hashes": lambda: [fingerprints(i) for i in decoded],
        "C2PA read": lambda: [read_manifest(d, context=context) for d in sample],
        "metadata (EXIF, XMP, text chunks)": lambda: [read_metadata(d) for d in sample],
        "caption rules + headers": lambda: [
            (decide_prompt(policy, f"a photograph, variant {i}"), header_evidence({}, policy.dataset.opt_out))
            for i in range(len(sample))
        ],
    }
    return {name: median_ms(fn, 3) / len(sample) for name, fn in costs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="samples in the large dataset")
    parser.add_argument("--small", type=int, default=500, help="samples in the small dataset (memory)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds of each run (the median is reported)")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        large = make_dataset(root / "large", args.n, seed=1)
        small = make_dataset(root / "small", args.small, seed=2)
        no_marks = root / "no-watermarks.yaml"
        no_marks.write_text("extends: dataset\ndataset:\n  ai_origin:\n    watermarks: []\n")
        images = read_images(large)
        costs = stage_costs(images)
        print(
            f"{os.cpu_count()} CPU cores (shared: other jobs run on this machine, figures are noisy); load "
            f"{os.getloadavg()[0]:.1f}; {args.n} samples of 512x512 JPEG; {args.workers} workers"
        )
        print("\ncost per sample, one process (median of 3 runs over 48 samples):")
        for name, ms in costs.items():
            print(f"  {name:<40} {ms:7.1f} ms")
        print(f"  {'total':<40} {sum(costs.values()):7.1f} ms")

        timings: dict[str, list[float]] = {}
        extra: dict[str, dict] = {}
        for number in range(args.rounds):
            runs = [
                ("raw NSFW", lambda: raw_run(images, args.workers, every_check=False)),
                ("raw every check", lambda: raw_run(images, args.workers, every_check=True)),
                ("local", lambda n=number: filter_run(large, root / f"out-local-{n}", args.workers, "local", None)),
                (
                    "local no-watermarks",
                    lambda n=number: filter_run(large, root / f"out-nowm-{n}", args.workers, "local", no_marks),
                ),
            ]
            if not args.skip_ray:
                runs.append(
                    ("ray", lambda n=number: filter_run(large, root / f"out-ray-{n}", args.workers, "ray", None))
                )
            runs.append(
                (
                    "local small",
                    lambda n=number: filter_run(small, root / f"out-small-{n}", args.workers, "local", None),
                )
            )
            for name, run in runs:
                result = run()
                if isinstance(result, dict):
                    timings.setdefault(name, []).append(result["wall"])
                    extra.setdefault(name, {}).setdefault("peak", []).append(result["peak_mib"])
                    extra[name]["summary"] = result["summary"]
                else:
                    timings.setdefault(name, []).append(result)
                print(f"  round {number + 1}: {name} {timings[name][-1]:.1f} s", flush=True)

        def rate(name: str, count: int) -> float:
            return count / statistics.median(timings[name])

        raw_nsfw, raw_all = rate("raw NSFW", args.n), rate("raw every check", args.n)
        header = f"{'run':<44} {'samples':>8} {'wall s':>8} {'samples/s':>10} {'vs raw':>14} {'peak MiB':>9}"
        print("\n" + header + "\n" + "-" * len(header))
        rows = [
            ("raw NSFW", "raw: decode + NudeNet + open_nsfw", args.n, None),
            ("raw every check", "raw: decode + every per-sample check", args.n, None),
            ("local", "local engine, dataset policy", args.n, ("every check", raw_all)),
            ("local no-watermarks", "local engine, no watermark reads", args.n, ("NSFW", raw_nsfw)),
            ("ray", "ray engine, dataset policy", args.n, ("every check", raw_all)),
            ("local small", "local engine, dataset policy (small)", args.small, None),
        ]
        for name, label, count, versus in rows:
            if name not in timings:
                continue
            wall = statistics.median(timings[name])
            ratio = f"{count / wall / versus[1]:.2f} of {versus[0]}" if versus else ""
            peak = f"{max(extra[name]['peak']):.0f}" if name in extra else ""
            print(f"{label:<44} {count:>8} {wall:>8.1f} {count / wall:>10.2f} {ratio:>14} {peak:>9}")
        if "ray" in extra:
            speed = extra["ray"]["summary"]["throughput"]
            print(
                f"ray start-up inside its wall time: {speed['engine_startup_seconds']:.1f} s; "
                f"ray / local: {rate('ray', args.n) / rate('local', args.n):.2f}"
            )
        for name in ("local", "local small"):
            summary = extra[name]["summary"]
            print(
                f"{name}: kept {summary['kept']}, dropped {summary['dropped']} "
                f"({', '.join(f'{k} {v}' for k, v in summary['by_category'].items())})"
            )
        spread = {name: (min(v), max(v)) for name, v in timings.items() if len(v) > 1}
        if spread:
            print("spread over rounds (wall s): " + "; ".join(f"{k} {a:.1f}-{b:.1f}" for k, (a, b) in spread.items()))


if __name__ == "__main__":
    main()
