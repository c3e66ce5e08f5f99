"""Benchmark: `guard serve` over HTTP vs the same library calls in process — requests/s, p50 and p99 for scan
and verify, same images, same run.

In process, `--concurrency` threads (and, as a second reference, as many threads as the service's CPU pool
has, `GUARD_SERVE_THREADS`' default) call what the routes call:
`assess_images([load_image(data)], ...)` for a scan and `Verifier.verify_bytes(data, image=load_image(data))`
for a verification, with the detectors and verifier the service loads. Over HTTP, a real `guard serve`
(uvicorn, `--workers` processes, on loopback) gets the same uploads from `--concurrency` kept-alive
connections: multipart bodies encoded once by httpx and sent by a minimal HTTP/1.1 client, so the load
generator takes little of the shared cores. The HTTP figure includes what only the service does: HTTP and
multipart parsing, auth, the audit row of every scan, JSON encoding, the metrics — and the load generator,
which runs on the same cores. Images: real photographs at 512 px (JPEG 90), and for verify also protected
files and stripped copies (recovered from the store). The rounds alternate in process and HTTP; the table
gives the median round. Target: HTTP keeps >= 80 % of in-process throughput at concurrency >= 8 (compared with the
better of the two in-process references).

    .venv/bin/python bench/serve.py [--requests 400] [--concurrency 8] [--rounds 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from serve_support import guard_env, running_server  # noqa: E402

from bench.common import sample_photos  # noqa: E402
from guard.images import load_image  # noqa: E402
from guard.protect import Protector  # noqa: E402
from guard.provenance.credentials.keys import SigningIdentity, init_identity  # noqa: E402
from guard.provenance.credentials.store import ManifestStore  # noqa: E402
from guard.scan import assess_images  # noqa: E402
from guard.serve.config import ServeSettings, default_threads  # noqa: E402
from guard.serve.keys import ApiKeys  # noqa: E402
from guard.serve.metrics import Metrics  # noqa: E402
from guard.serve.services import Services  # noqa: E402

TARGET_RATIO = 0.8
LOAD_GENERATOR_CPU: dict[str, list[float]] = {}
"""Per call: the load generator's own CPU seconds per request, in each HTTP round."""
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
FIXTURES = ("P1000827.jpg", "earth_apollo17.jpg")


def jpeg(image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def make_images(work: Path, store_url: str) -> dict[str, list[bytes]]:
    """Scan: real photos at 512 px. Verify: those, plus protected files and their stripped copies."""
    photos = []
    for _, image in sample_photos(PHOTOS, FIXTURES):
        image = image.copy()
        image.thumbnail((512, 512))
        photos.append(jpeg(image))
    verify = list(photos)
    with ManifestStore.open(store_url) as store:
        protector = Protector(identity=SigningIdentity.load(work), store=store)
        for index, data in enumerate(photos[:4]):
            source = work / f"source-{index}.jpg"
            source.write_bytes(data)
            signed = protector.protect_file(source, work / f"protected-{index}.jpg").output.read_bytes()
            stripped = load_image(signed)
            verify += [signed, jpeg(stripped, 80)]
    return {"scan": photos, "verify": verify}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def in_process(services: Services, kind: str, images: list[bytes], requests: int, concurrency: int):
    def scan(data: bytes) -> None:
        assess_images([load_image(data)], services.policy, services.detectors)

    def verify(data: bytes) -> None:
        services.verifier.verify_bytes(data, image=load_image(data))

    call = scan if kind == "scan" else verify

    def timed(index: int) -> float:
        start = time.perf_counter()
        call(images[index % len(images)])
        return time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        start, cpu = time.perf_counter(), time.process_time()
        latencies = list(pool.map(timed, range(requests)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return requests / elapsed, latencies, cpu / requests


def server_cpu_seconds() -> float:
    """User + system CPU seconds so far of every process this one started (the server and its workers)."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one pre-built HTTP/1.1 request on a kept-alive connection; read the whole answer; its status."""
    writer.write(request)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in head[1:])}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    else:
        raise SystemExit(f"HTTP answer {status} without a length: {headers}")
    if headers.get("connection", "").lower() == "close":
        raise SystemExit(f"the server closed a kept-alive connection (status {status})")
    return status


def over_http(url: str, key: str, kind: str, images: list[bytes], requests: int, concurrency: int):
    """`requests` uploads from `concurrency` kept-alive connections. The load generator is a minimal HTTP/1.1
    client (like wrk): each multipart request is encoded once, by httpx, and its bytes sent again and again,
    every answer read in full and its status checked; it shares the two cores with the server, so it must
    cost as little as it can (httpx itself spent about 3 ms of CPU per request here)."""
    path = f"/v1/images/{kind}"
    host, port = url.removeprefix("http://").split(":")
    uploads = []
    for data in images:
        request = httpx.Request(
            "POST",
            f"{url}{path}",
            files={"file": ("image.jpg", data, "image/jpeg")},
            headers={"Authorization": f"Bearer {key}"},
        )
        body = request.read()
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in request.headers.items() if name.lower() != "host"]
        uploads.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    latencies: list[float] = []
    failures: dict[int, int] = {}

    async def run() -> float:
        jobs = iter(range(requests))

        async def worker() -> None:
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                for index in jobs:
                    start = time.perf_counter()
                    status = await _exchange(reader, writer, uploads[index % len(uploads)])
                    latencies.append(time.perf_counter() - start)
                    if status != 200:
                        failures[status] = failures.get(status, 0) + 1
            finally:
                writer.close()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start

    server, client = server_cpu_seconds(), time.process_time()
    elapsed = asyncio.run(run())
    server, client = server_cpu_seconds() - server, time.process_time() - client
    if failures:
        raise SystemExit(f"HTTP {kind}: non-200 answers {failures}")
    LOAD_GENERATOR_CPU.setdefault(kind, []).append(client / requests)
    return requests / elapsed, latencies, server / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="guard serve worker processes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="guard-bench-serve-") as folder:
        work = Path(folder)
        init_identity(work)
        store_url = f"sqlite:///{work / 'store.db'}"
        images = make_images(work, store_url)
        with ManifestStore.open(store_url) as store:
            key = ApiKeys(store.engine).create("admin", "bench")[1]
        os.environ["GUARD_HOME"] = str(work)
        services = Services.load(ServeSettings(store_url=store_url), Metrics())
        results: dict[tuple[str, str], list[tuple[float, list[float]]]] = {}
        env = guard_env(work, store_url)
        with running_server(env, "--workers", str(args.workers), "--log-level", "warning") as url:
            for kind in ("scan", "verify"):  # warm both sides once
                in_process(services, kind, images[kind], 2 * args.concurrency, args.concurrency)
                over_http(url, key, kind, images[kind], 2 * args.concurrency, args.concurrency)
            pool_threads = default_threads()
            for _ in range(args.rounds):
                for kind in ("scan", "verify"):
                    results.setdefault((kind, f"{args.concurrency} threads"), []).append(
                        in_process(services, kind, images[kind], args.requests, args.concurrency)
                    )
                    if pool_threads != args.concurrency:
                        results.setdefault((kind, f"{pool_threads} threads"), []).append(
                            in_process(services, kind, images[kind], args.requests, pool_threads)
                        )
                    results.setdefault((kind, "HTTP"), []).append(
                        over_http(url, key, kind, images[kind], args.requests, args.concurrency)
                    )
        services.close()

    print(
        f"\nguard serve vs in-process library calls: {args.requests} requests x {args.rounds} rounds, "
        f"concurrency {args.concurrency}, {args.workers} worker(s), {os.cpu_count()} CPU cores "
        f"(median round; shared machine, noisy)\n"
    )
    print(
        f"| {'call':<7} | {'path':<22} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | {'CPU ms/req':>10} "
        f"| {'HTTP / in-process':>17} |"
    )
    print(f"|{'-' * 9}|{'-' * 24}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 12}|{'-' * 19}|")
    worst = None
    for kind in ("scan", "verify"):
        wheres = [where for (k, where) in results if k == kind]
        medians = {}
        for where in wheres:
            rounds = sorted(results[(kind, where)], key=lambda r: r[0])
            throughput, latencies, cpu = rounds[len(rounds) // 2]
            medians[where] = throughput
            reference = max(v for w, v in medians.items() if w != "HTTP")
            ratio = f"{throughput / reference:.2f}" if where == "HTTP" else ""
            label = "HTTP (guard serve)" if where == "HTTP" else f"in process, {where}"
            p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000
            print(
                f"| {kind:<7} | {label:<22} | {throughput:>7.1f} | {p50:>7.0f} | {p99:>7.0f} | {1000 * cpu:>10.1f} "
                f"| {ratio:>17} |"
            )
        ratio = medians["HTTP"] / max(v for w, v in medians.items() if w != "HTTP")
        worst = ratio if worst is None else min(worst, ratio)
    verdict = "met" if worst >= TARGET_RATIO else "NOT met"
    print(
        "\nCPU ms/req: in process, the whole process; over HTTP, the server's processes only. The load "
        "generator itself used "
        + ", ".join(f"{kind} {1000 * statistics.median(v):.1f}" for kind, v in LOAD_GENERATOR_CPU.items())
        + " CPU ms per request on the same cores."
    )
    print(f"\ntarget HTTP >= {TARGET_RATIO:.0%} of in-process throughput: {verdict} (worst {worst:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
