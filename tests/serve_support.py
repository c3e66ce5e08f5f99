"""Helpers shared by the `guard serve` tests: real pictures, a protected one and its stripped copy, a prompt the
default policy blocks (read from the shared corpus at run time), and a real `guard serve` on loopback."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from PIL import Image
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FORMATS = SHARED / "fixtures" / "formats"
CORPUS = SHARED / "prompt-corpus" / "corpus.jsonl"


GUARD = (sys.executable, "-c", "from guard.cli import main; main()")
"""The `guard` command of this interpreter and checkout."""


def picture(name: str = "astronaut", side: int = 384) -> Image.Image:
    """A real photograph from scikit-image, square."""
    return Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((side, side))


def encoded(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def strip(data: bytes, scale: float = 0.75) -> bytes:
    """What a platform does to an upload: pixels only, resized, JPEG quality 80 (no credentials left)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    return encoded(image, "JPEG", quality=80)


def blocked_prompt() -> str:
    """The first strongly-labelled unsafe prompt of the shared corpus that the default policy blocks."""
    from policies import decide_prompt, load_policy

    policy = load_policy("default")
    with CORPUS.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            strong_sexual = row["label"] == "unsafe" and row["strength"] == "strong" and "sexual" in row["categories"]
            if strong_sexual and decide_prompt(policy, row["prompt"]).decision == "block":
                return row["prompt"]
    raise AssertionError("no blocked prompt in the corpus")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def guard_env(home: Path, store_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `guard` subprocess using this checkout, this home and this store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    env.update(
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        GUARD_HOME=str(home),
        GUARD_STORE_URL=store_url,
        **extra,
    )
    return env


@contextlib.contextmanager
def running_server(env: dict[str, str], *args: str, timeout: float = 120.0) -> Iterator[str]:
    """`guard serve` on a free loopback port; yields its base URL once /readyz answers 200."""
    port = free_port()
    log = Path(env["GUARD_HOME"]) / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*GUARD, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"guard serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"guard serve did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
