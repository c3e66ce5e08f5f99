"""Benchmark: `guard protect` (watermark + sign + store) on a 1024x1024 JPEG vs c2pa-python signing alone.

Both run in the same process on the same image and the same signing identity; every figure is the median
of `--runs` repetitions (after one warm-up). The reference is c2pa-python's Builder.sign of an already
encoded JPEG with a minimal manifest, once with c2pa's default settings (which add a thumbnail) and once
with the settings `protect` uses (no thumbnail, offline). Then protect's own steps are timed one by one to
show where the time goes.

    .venv/bin/python bench/protect.py [--runs 15] [--scheme NAME]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import c2pa
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PHOTO, median_ms
from guard.errors import GuardError
from guard.images import load_image
from guard.protect import Protector, encode, protect_image
from guard.provenance.credentials.c2pa import c2pa_context, make_signer, sign_asset
from guard.provenance.credentials.fingerprint import fingerprints
from guard.provenance.credentials.keys import SigningIdentity, init_identity
from guard.provenance.credentials.manifest import build_manifest
from guard.provenance.credentials.store import ManifestStore
from guard.provenance.watermarks import get_scheme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--scheme", default=None, help="watermark scheme (default: the project's default)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-protect-"))
    init_identity(work)
    identity = SigningIdentity.load(work)
    try:
        scheme = get_scheme(args.scheme)
    except GuardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    image = load_image(PHOTO).resize((1024, 1024), Image.Resampling.LANCZOS)
    jpeg = encode(image, "JPEG")
    payload = bytes(range(scheme.payload_bytes))
    minimal = build_manifest(
        title="bench.jpg", source_type="trainedAlgorithmicMedia", watermark_scheme=scheme.name, payload=payload
    )
    signer = make_signer(identity)
    ours = c2pa_context(signing=True)

    def c2pa_default() -> None:
        builder = c2pa.Builder(minimal)
        builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), io.BytesIO())

    def c2pa_same_settings() -> None:
        sign_asset(minimal, jpeg, "image/jpeg", signer, context=ours)

    store = ManifestStore.open(f"sqlite:///{work / 'manifests.db'}")
    protector = Protector(identity=identity, store=store, scheme=scheme)
    counter = iter(range(10**9))

    def protect() -> None:
        protect_image(
            image,
            work / f"out-{next(counter)}.jpg",
            generator={"model": "bench", "seed": 0},
            prompt="a benchmark",
            policy_decision={"decision": "allow", "policy": {"name": "default", "version": "1"}},
            protector=protector,
        )

    marked = scheme.embed(image, payload)
    full = build_manifest(
        title="bench.jpg",
        source_type="trainedAlgorithmicMedia",
        watermark_scheme=scheme.name,
        payload=payload,
        generator={"model": "bench", "seed": 0},
        prompt="a benchmark",
        policy_decision={"decision": "allow", "policy": {"name": "default", "version": "1"}},
    )
    rows = [
        ("c2pa-python sign, default settings (thumbnail)", median_ms(c2pa_default, args.runs)),
        ("c2pa-python sign, protect's settings", median_ms(c2pa_same_settings, args.runs)),
        ("guard protect (watermark + sign + store)", median_ms(protect, args.runs)),
    ]
    steps = [
        (f"  watermark embed ({scheme.name})", median_ms(lambda: scheme.embed(image, payload), args.runs)),
        ("  JPEG encode (q95)", median_ms(lambda: encode(marked, "JPEG"), args.runs)),
        (
            "  sign (full manifest)",
            median_ms(lambda: sign_asset(full, jpeg, "image/jpeg", signer, context=ours), args.runs),
        ),
        ("  fingerprints", median_ms(lambda: fingerprints(marked), args.runs)),
        ("  payload draw (store query)", median_ms(store.new_payload, args.runs)),
    ]
    store.close()

    reference = rows[1][1]
    width = max(len(name) for name, _ in rows + steps)
    print(f"1024x1024 JPEG, {args.runs} runs, medians (ms); ratio vs c2pa signing with protect's settings")
    print(f"{'':<{width}}  {'ms':>9}  {'ratio':>7}")
    for name, ms in rows + steps:
        print(f"{name:<{width}}  {ms:9.2f}  {ms / reference:7.2f}x")
    protect_ms = rows[2][1]
    without_watermark = protect_ms - steps[0][1]
    print(
        f"\nprotect / signing alone: {protect_ms / reference:.1f}x (target <= 1.5x); "
        f"protect without the watermark step: {without_watermark:.2f} ms = {without_watermark / reference:.1f}x; "
        f"vs c2pa defaults: {protect_ms / rows[0][1]:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
