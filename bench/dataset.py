"""Benchmark: `guard filter-dataset` end to end against the raw cost of decoding and scoring the same samples.

Builds WebDataset shards (img2dataset layout: `.jpg`, `.txt`, `.json`, sibling `.parquet`) of 512x512 JPEGs
cut from real photos (scikit-image and matplotlib samples, the shared fixtures) with random crops, flips,
rotations and colour shifts, then times, in the same run:

* **raw models**: decode + NudeNet + open_nsfw on every image and the caption classifier on every caption,
  in `--workers` processes (models loaded once per process, batches of 16, single-threaded sessions) — no
  reading of shards, no other check, nothing written;
* **raw, every check**: the same with everything the filter computes per sample (the stages' code called
  directly: hashes, the four watermark decoders, Content Credentials, metadata, opt-outs, captions through
  the prompt policy's rules and classifier);
* **local engine**: `guard filter-dataset --workers N` end to end (reading shards, the stages, checkpoints,
  the near-duplicate pass, writing the filtered shards and tables), with the dataset policy, and once
  with a policy that reads no watermarks (so its per-sample work is what "raw models" measures plus the
  cheap checks);
* **ray engine**: the same with `--engine ray --workers N` (a local Ray started for the job; its start-up is
  shown apart); and, only when named (`--runs local "ray cluster"`), the same job joining a Ray cluster
  started beforehand on this machine (`ray start --head`, `--address auto`; its daemons' CPU and memory
  counted), to tell Ray's start-up from the rest of its cost;
* **memory**: the peak resident memory of the filter's process tree (main process and workers, sampled
  every 0.1 s) at two dataset sizes.

Also the median cost per sample of each check, one process. Every run starts its worker processes itself
(model loading included). Run: `python bench/dataset.py [--n 2000] [--small 500] [--workers 2] [--rounds 1]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from common import ROOT, median_ms, photo_variant, sample_photos
from PIL import Image

CHUNK = 16
SHARD_SIZE = 250


CAPTIONS = {
    "astronaut": "an astronaut beside a flag",
    "chelsea": "a ginger cat",
    "coffee": "a cup of coffee on a saucer",
    "rocket": "a rocket on the launch pad",
    "camera": "a man with a camera on a tripod",
    "immunohistochemistry": "stained tissue under a microscope",
    "hubble_deep_field": "galaxies in deep space",
    "moon": "the surface of the moon",
    "grace_hopper": "portrait of a naval officer",
    "P1000827.jpg": "a street in the sun",
    "earth_apollo17.jpg": "the earth seen from space",
    "mars.webp": "the surface of mars",
    "TUSCANY.TIF": "hills in tuscany",
}
"""Benign captions (without numbers: the hate rules read some as codes)."""


def source_photos() -> list[tuple[str, Image.Image]]:
    found = sample_photos(
        ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry", "hubble_deep_field", "moon"),
        ("P1000827.jpg", "earth_apollo17.jpg", "mars.webp", "TUSCANY.TIF"),
    )
    return [(name, image.convert("RGB")) for name, image in found]


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
                name, photo = photos[index % len(photos)]
                image = photo_variant(photo, rng, 512, min_side=64)
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=90)
                key = f"{index:09d}"
                meta = {"url": f"https://photos.example.org/{key}.jpg", "key": key, "status": "success"}
                meta.update({"width": 512, "height": 512})
                for ext, data in (
                    ("jpg", buffer.getvalue()),
                    ("txt", CAPTIONS[name].encode()),
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
        from guard.check_prompt import shared_classifier

        _worker["models"] = [
            build_detector("nudenet", {"threads": 1, "batch_size": CHUNK}),
            build_detector("open_nsfw", {"threads": 1, "batch_size": CHUNK}),
        ]
        _worker["captions"] = shared_classifier()


def _raw_chunk(payload: list[tuple[bytes, str]]) -> int:
    from guard.dataset.samples import Chunk, Sample
    from guard.images import load_image

    if "processor" in _worker:
        samples = [
            Sample(shard=0, seq=i, key=str(i), member="x.jpg", image=data, caption=caption)
            for i, (data, caption) in enumerate(payload)
        ]
        return len(_worker["processor"](Chunk(shard=0, number=0, samples=samples)))
    images = [load_image(data) for data, _ in payload]
    for model in _worker["models"]:
        model.score(images)
    _worker["captions"].score([caption for _, caption in payload])
    return len(images)


def read_samples(folder: Path) -> list[tuple[bytes, str]]:
    """Every sample's image bytes and caption."""
    from guard.dataset.readers import discover, iter_samples

    return [(sample.image, sample.caption) for shard in discover([folder]) for sample in iter_samples(shard)]


def raw_run(folder: Path, workers: int, every_check: bool) -> None:
    """Decode and score every image of the shards in `workers` processes (the --raw child's work)."""
    images = read_samples(folder)
    chunks = [images[i : i + CHUNK] for i in range(0, len(images), CHUNK)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_raw_start, initargs=(every_check,)) as pool:
        done = sum(pool.imap(_raw_chunk, chunks))
    assert done == len(images)


# --- every run in a child process: wall time, CPU time of the whole tree, peak memory -----------------------


def _cluster_processes() -> list:
    """The processes of a Ray cluster started with `ray start` (its daemons and workers, whoever started them)."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if "site-packages/ray/" in line or line.startswith("ray::"):
            found.append(process)
    return found


def measure(command: list[str], cluster: bool = False) -> dict:
    """Run `command`; its stdout, wall seconds, CPU seconds (it and every descendant) and peak tree RSS (MiB).

    CPU seconds are what a run costs whatever else the machine is doing, so their ratios are steadier than
    wall-clock ratios on a shared machine. They are the larger of the reaped children's usage (exact) and
    the sum over every process of the tree as last sampled (which also covers Ray's processes, never waited
    for by this process; it misses at most the last 0.1 s of each). With `cluster`, the processes of the Ray
    cluster the command joins count too (their CPU since the command started, their memory)."""
    import psutil

    baseline: dict[int, float] = {}
    if cluster:
        for member in _cluster_processes():
            with contextlib.suppress(psutil.Error):
                times = member.cpu_times()
                baseline[member.pid] = times.user + times.system

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    seen: dict[int, float] = {}  # pid -> its CPU seconds when last seen (Ray's processes are never reaped here)

    def watch() -> None:
        process = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                tree = [process, *process.children(recursive=True)] + (_cluster_processes() if cluster else [])
                rss = 0
                for member in tree:
                    with contextlib.suppress(psutil.Error):
                        rss += member.memory_info().rss
                        times = member.cpu_times()
                        seen[member.pid] = times.user + times.system
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - start
    watcher.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode != 0:
        raise SystemExit(f"{command[2:5]} failed ({child.returncode}): {stderr.strip()[-2000:]}")
    reaped = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # Reaped descendants are counted exactly; the ones nobody waited for (Ray's) as last sampled.
    cpu = max(reaped, sum(seen.values()) - sum(baseline.get(pid, 0.0) for pid in seen))
    return {"stdout": stdout, "wall": wall, "cpu": cpu, "peak_mib": peak[0] / 2**20}


def raw_command(folder: Path, workers: int, every_check: bool) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--raw", str(folder), "--workers", str(workers)]
    return command + (["--every-check"] if every_check else [])


def filter_command(
    folder: Path, out: Path, workers: int, engine: str, policy: Path | None, address: str | None = None
) -> list[str]:
    command = [sys.executable, "-c", "from guard.cli import main; main()", "filter-dataset", str(folder)]
    command += ["-o", str(out), "--workers", str(workers), "--engine", engine, "--json"]
    command += ["--address", address] if address else []
    return command + (["--policy", str(policy)] if policy is not None else [])


@contextlib.contextmanager
def ray_cluster(cpus: int) -> Iterator[None]:
    """A Ray cluster on this machine (`ray start --head`), up before the job as a team's cluster would be;
    stopped after it, so it takes nothing from the other runs."""
    ray = str(Path(sys.executable).with_name("ray"))
    start = [ray, "start", "--head", f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats"]
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a cluster of one machine, for the benchmark: no token to pass on
    subprocess.run(start, check=True, capture_output=True)
    try:
        time.sleep(2)  # its prestarted workers finish starting, as on a cluster that has been up a while
        yield
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def image_drops(out: Path) -> dict[str, int]:
    """Samples dropped or set aside by each NSFW model's thresholds (on benign photos: false alarms)."""
    import pyarrow.parquet as pq

    found: dict[str, int] = {}
    for reasons in pq.read_table(out / "samples.parquet", columns=["reasons"]).column("reasons").to_pylist():
        for rule in {r["rule"] for r in reasons if r["rule"].startswith("image:")}:
            found[rule] = found.get(rule, 0) + 1
    return found


def stage_costs(samples: list[tuple[bytes, str]], count: int = 48) -> dict[str, float]:
    """Median ms per sample of each check, one process."""
    from detectors import build_detector
    from guard.dataset.captions import CaptionChecker
    from guard.dataset.optout import header_evidence
    from guard.dataset.origin import watermark_evidence
    from guard.images import load_image
    from guard.provenance.credentials.c2pa import c2pa_context, read_manifest
    from guard.provenance.credentials.fingerprint import fingerprints
    from guard.verify.metadata import read_metadata
    from policies import load_policy

    policy = load_policy("dataset")
    captions = CaptionChecker(policy)
    texts = [caption for _, caption in samples[:count]]
    nudenet = build_detector("nudenet", {"threads": 1})
    open_nsfw = build_detector("open_nsfw", {"threads": 1})
    context = c2pa_context()
    sample = [data for data, _ in samples[:count]]
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
        "captions (rules + classifier)": lambda: captions.check(texts),
        "response headers": lambda: [header_evidence({}, policy.dataset.opt_out) for _ in sample],
    }
    return {name: median_ms(fn, 3) / len(sample) for name, fn in costs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="samples in the large dataset")
    parser.add_argument("--small", type=int, default=500, help="samples in the small dataset (memory)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of every run (medians reported)")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--runs", nargs="+", help="only these runs (names as printed in the rounds)")
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--every-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw is not None:
        raw_run(args.raw, args.workers, args.every_check)
        return

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        large = make_dataset(root / "large", args.n, seed=1)
        small = make_dataset(root / "small", args.small, seed=2)
        no_marks = root / "no-watermarks.yaml"
        no_marks.write_text("extends: dataset\ndataset:\n  ai_origin:\n    watermarks: []\n")
        costs = stage_costs(read_samples(small))
        print(
            f"{os.cpu_count()} CPU cores, shared with other jobs (load {os.getloadavg()[0]:.1f} at the start): "
            f"wall-clock figures are noisy, CPU-seconds steadier; {args.n} samples of 512x512 JPEG; "
            f"{args.workers} workers; {args.rounds} round(s)"
        )
        print("\ncost per sample, one process (median of 3 runs over 48 samples):")
        for name, ms in costs.items():
            print(f"  {name:<40} {ms:7.1f} ms")
        print(f"  {'total':<40} {sum(costs.values()):7.1f} ms")

        w = args.workers
        plan = [
            ("raw models", lambda n: raw_command(large, w, False)),
            ("raw every check", lambda n: raw_command(large, w, True)),
            ("local", lambda n: filter_command(large, root / f"local-{n}", w, "local", None)),
            ("local no-watermarks", lambda n: filter_command(large, root / f"nowm-{n}", w, "local", no_marks)),
            ("local small", lambda n: filter_command(small, root / f"small-{n}", w, "local", None)),
        ]
        if not args.skip_ray:
            plan[3:3] = [
                ("ray", lambda n: filter_command(large, root / f"ray-{n}", w, "ray", None)),
                ("ray cluster", lambda n: filter_command(large, root / f"rayc-{n}", w, "ray", None, "auto")),
            ]
        # "ray cluster" only when asked for: it answers whether Ray's start-up is the gap (it is not).
        wanted = set(args.runs) if args.runs else {name for name, _ in plan} - {"ray cluster"}
        plan = [(name, command) for name, command in plan if name in wanted]
        results: dict[str, list[dict]] = {name: [] for name, _ in plan}
        for number in range(args.rounds):
            order = plan if number % 2 == 0 else list(reversed(plan))  # alternate, so drift hits both sides
            for name, command in order:
                cluster = name == "ray cluster"
                with ray_cluster(w) if cluster else contextlib.nullcontext():
                    result = measure(command(number), cluster=cluster)
                if "filter-dataset" in command(number):
                    result["summary"] = json.loads(result["stdout"].strip().splitlines()[-1])
                results[name].append(result)
                print(
                    f"  round {number + 1}: {name}: {result['wall']:.1f} s wall, {result['cpu']:.1f} CPU-s", flush=True
                )

        def median(name: str, field: str) -> float:
            if name not in results:
                return float("nan")
            return statistics.median(r[field] for r in results[name])

        sizes = {name: args.small if name == "local small" else args.n for name in results}
        header = (
            f"{'run':<40} {'samples':>7} {'wall s':>7} {'samples/s':>9} {'vs raw':>7} "
            f"{'CPU ms/sample':>13} {'vs raw':>7} {'peak MiB':>8}"
        )
        print("\n" + header + "\n" + "-" * len(header))
        rows = [
            ("raw models", "raw: decode + NudeNet + open_nsfw + caption classifier", None),
            ("raw every check", "raw: decode + every per-sample check", None),
            ("local", "local engine, dataset policy", "raw every check"),
            ("local no-watermarks", "local engine, no watermark reads", "raw models"),
            ("ray", "ray engine, dataset policy", "raw every check"),
            ("ray cluster", "ray engine, on a running Ray (auto)", "raw every check"),
            ("local small", f"local engine, dataset policy, {args.small}", None),
        ]
        for name, label, versus in rows:
            if name not in results:
                continue
            rate = sizes[name] / median(name, "wall")
            cpu = median(name, "cpu") / sizes[name] * 1000
            wall_ratio = cpu_ratio = ""
            if versus in results:
                wall_ratio = f"{rate / (sizes[versus] / median(versus, 'wall')):.2f}"
                cpu_ratio = f"{(median(versus, 'cpu') / sizes[versus] * 1000) / cpu:.2f}"
            peak = max(r["peak_mib"] for r in results[name])
            print(
                f"{label:<40} {sizes[name]:>7} {median(name, 'wall'):>7.1f} {rate:>9.2f} {wall_ratio:>7} "
                f"{cpu:>13.1f} {cpu_ratio:>7} {peak:>8.0f}"
            )

        def throughput(name: str, field: str) -> float:
            return statistics.median(r["summary"]["throughput"][field] for r in results[name])

        for ray in ("ray", "ray cluster"):
            if ray not in results or "local" not in results:
                continue
            print(
                f"{ray} / local: {median('local', 'wall') / median(ray, 'wall'):.2f} by wall time (Ray's start-up or "
                f"joining {throughput(ray, 'engine_startup_seconds'):.1f} s included), "
                f"{median('local', 'cpu') / median(ray, 'cpu'):.2f} by CPU time; first scored chunk after "
                f"{throughput('local', 'first_result_seconds'):.1f} s (local) and "
                f"{throughput(ray, 'first_result_seconds'):.1f} s; from then on local "
                f"{throughput('local', 'steady_samples_per_second'):.2f} samples/s, {ray} "
                f"{throughput(ray, 'steady_samples_per_second'):.2f}: "
                f"{throughput(ray, 'steady_samples_per_second') / throughput('local', 'steady_samples_per_second'):.2f}"
                " (the rate a longer job approaches)"
            )
        local = results["local"][0]["summary"] if "local" in results else None
        if local is not None:
            print(
                f"local: kept {local['kept']}, dropped {local['dropped']} "
                f"({', '.join(f'{k} {v}' for k, v in local['by_category'].items())}); NSFW model thresholds that "
                f"fired on these benign photos: {image_drops(root / 'local-0') or 'none'}"
            )
        if args.rounds > 1:
            print(
                "spread over rounds (wall s): "
                + "; ".join(
                    f"{k} {min(r['wall'] for r in v):.0f}-{max(r['wall'] for r in v):.0f}" for k, v in results.items()
                )
            )


if __name__ == "__main__":
    main()
