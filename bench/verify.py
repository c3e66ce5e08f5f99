"""Benchmark: `guard verify` (no ML classifier) per 1024x1024 JPEG, with and without Content Credentials, vs
c2pa-python's Reader alone on the same files, in one warm process.

Files: a photo without credentials; another picture protected (watermark + signed manifest, Trusted under the
local CA); and a stripped copy of the protected one (JPEG 80, no metadata), which exercises recovery from the
manifest store. Every figure is the median of `--runs` repetitions after one warm-up. The reference is
`c2pa.Reader(...).json()` with the verifier's own settings (offline, same trust anchors). A per-step breakdown
shows where verify's time goes.

    .venv/bin/python bench/verify.py [--runs 15]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import c2pa
from PIL import Image
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PHOTO, median_ms
from guard.images import load_image
from guard.protect import Protector, protect_image
from guard.provenance.credentials.c2pa import TrustConfig
from guard.provenance.credentials.keys import SigningIdentity, init_identity
from guard.provenance.credentials.store import ManifestStore
from guard.verify import Verifier
from guard.verify.c2pa_evidence import gather
from guard.verify.metadata import read_metadata
from guard.verify.recovery import recover_local
from guard.verify.trust import VerifyTrust
from guard.verify.watermark_evidence import read_watermarks

TARGET_MS = 100.0


def make_files(work: Path) -> tuple[dict[str, Path], ManifestStore, TrustConfig]:
    init_identity(work)
    plain = work / "plain.jpg"
    load_image(PHOTO).resize((1024, 1024), Image.Resampling.LANCZOS).save(plain, "JPEG", quality=90)
    picture = Image.fromarray(skdata.astronaut()).resize((1024, 1024), Image.Resampling.LANCZOS)
    store = ManifestStore.open(f"sqlite:///{work / 'store.db'}")
    protector = Protector(identity=SigningIdentity.load(work), store=store)
    result = protect_image(picture, work / "protected.jpg", protector=protector)
    stripped = work / "stripped.jpg"
    buffer = io.BytesIO()
    Image.open(result.output).convert("RGB").save(buffer, "JPEG", quality=80)
    stripped.write_bytes(buffer.getvalue())
    files = {"no credentials": plain, "with credentials": result.output, "stripped (recovered)": stripped}
    return files, store, TrustConfig(anchors=(work / "keys" / "ca.pem",))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    files, store, trust = make_files(work)
    verify_trust = VerifyTrust(trust=trust)
    verifier = Verifier(trust=verify_trust, store=store, classifier=False)
    no_marks = Verifier(trust=verify_trust, store=store, classifier=False, schemes=())
    context = verify_trust.context()

    def reader_alone(path: Path) -> None:
        with open(path, "rb") as fh:
            try:
                reader = c2pa.Reader.try_create("image/jpeg", fh, None, context)
            except c2pa.C2paError:
                return
            if reader is not None:
                with reader:
                    reader.json()

    print(f"guard verify vs c2pa-python Reader alone, 1024x1024 JPEG, median of {args.runs} runs (ms)\n")
    print(
        "| file | c2pa Reader alone | guard verify (no classifier) | ratio | without watermark decoders | ratio "
        "| verdict |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    rows = {}
    for label, path in files.items():
        reference = median_ms(lambda p=path: reader_alone(p), args.runs)
        full = median_ms(lambda p=path: verifier.verify_file(p), args.runs)
        bare = median_ms(lambda p=path: no_marks.verify_file(p), args.runs)
        verdict = verifier.verify_file(path).verdict
        rows[label] = full
        print(
            f"| {label} | {reference:.2f} | {full:.1f} | {full / reference:.0f}x | {bare:.1f} | "
            f"{bare / reference:.0f}x | {verdict.origin}, {verdict.strength}, {verdict.integrity} |"
        )

    print(f"\nverify's steps (median of {args.runs} runs, ms)\n")
    labels = list(files)
    print("| step | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    columns = [_steps(path, verifier, store, context) for path in files.values()]
    for index, (name, _) in enumerate(columns[0]):
        cells = " | ".join(f"{median_ms(column[index][1], args.runs):.1f}" for column in columns)
        print(f"| {name} | {cells} |")
    worst = max(rows.values())
    print(f"\ntarget: full verify without the classifier <= {TARGET_MS:.0f} ms per image; worst case {worst:.1f} ms")
    store.close()
    return 0


def _steps(path: Path, verifier: Verifier, store: ManifestStore, context) -> list[tuple[str, Callable[[], object]]]:
    """verify's steps on one file, each as a callable to time."""
    data = path.read_bytes()
    image = load_image(path)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("decode (load_image)", lambda: load_image(path)),
        ("metadata hints", lambda: read_metadata(data)),
        ("C2PA read + validate (+ crJSON)", lambda: gather(data, context=context, mime="image/jpeg")),
    ]
    for scheme in verifier.schemes or ():
        steps.append((f"watermark {scheme}", lambda s=scheme: read_watermarks(image, (s,))))
    readings = read_watermarks(image, verifier.schemes)
    steps.append(
        (
            "store look-up (+ validation of what is found)",
            lambda: recover_local(store, readings, image, data, mime="image/jpeg", context=context, products=None),
        )
    )
    return steps


if __name__ == "__main__":
    raise SystemExit(main())
