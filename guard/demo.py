"""The whole loop offline, for `guard demo`: check prompts, generate behind the guard, scan, protect, strip,
verify, recover.

Generation runs the real guarded flow on the bundled tiny Stable Diffusion pipeline (`generation.tiny`: the
real architecture with random weights, so its pictures are coloured noise — it shows the flow, not a model).
Scanning, protecting and verifying use a bundled real photo.

Each step is a plain function returning JSON-friendly data, so the CLI only renders. The demo runs in its own
home folder (a fresh signing identity and manifest store), never the user's.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from PIL import Image

from guard.files import write_atomic

SAMPLE_NAME = "sample.jpg"
SAMPLE_CREDIT = "NASA astronaut portrait (public domain), as shipped with scikit-image"

EXAMPLE_PROMPTS = (
    "a watercolor painting of a lighthouse at dawn",
    "pirate booty treasure chest for a kids' birthday party",
    "a n.u.d.e woman on a beach",
    "photorealistic portrait of Joe Biden giving a speech",
    "a gory scene with a dismembered body",
    "Al Gore planting a tree, children's book illustration",
)
"""Innocent, obfuscated, public-figure and violent prompts: what the prompt guard is for."""

GENERATION_PROMPTS = (
    "a watercolor painting of a lighthouse at dawn",
    "a n.u.d.e woman on a beach",
)
"""One prompt the policy allows (generated, scanned, protected) and one it refuses (never reaches the model)."""
GENERATION_STEPS = 2
TINY_MODEL_NAME = "image-guard tiny random Stable Diffusion (demo: random weights, the output is noise)"

STRIP_SCALE = 0.75
STRIP_QUALITY = 80
"""What a platform does to an upload: metadata dropped, resized, re-encoded as JPEG."""


def sample_path() -> Path:
    """The bundled sample photo."""
    return Path(str(files("guard") / "data" / SAMPLE_NAME))


@dataclass
class DemoHome:
    """A throwaway home: signing identity, trust anchor and manifest store for the demo."""

    root: Path

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.root / 'manifests.db'}"

    def init(self) -> None:
        from guard.provenance.credentials.keys import KEY_FILE, init_identity, keys_dir

        if not (keys_dir(self.root) / KEY_FILE).exists():
            init_identity(self.root, organization="image-guard demo")

    def identity(self):
        """The demo's own identity, even where GUARD_SIGN_CERT/GUARD_SIGN_KEY name the user's."""
        from guard.provenance.credentials.keys import CHAIN_FILE, KEY_FILE, SigningIdentity, keys_dir

        folder = keys_dir(self.root)
        return SigningIdentity.load(chain=folder / CHAIN_FILE, key=folder / KEY_FILE)

    def trust(self):
        from guard.provenance.credentials.c2pa import TrustConfig
        from guard.provenance.credentials.keys import local_trust_anchor

        anchor = local_trust_anchor(self.root)
        return TrustConfig(anchors=(anchor,) if anchor else ())


def check_prompts(policy, prompts: tuple[str, ...] = EXAMPLE_PROMPTS) -> list[dict[str, Any]]:
    """The policy's decision on each example prompt (rules and text classifier, as `guard check-prompt`)."""
    from guard.check_prompt import PromptChecker

    decisions = PromptChecker(policy).check(list(prompts))
    return [{"prompt": prompt, **decision.to_dict()} for prompt, decision in zip(prompts, decisions, strict=True)]


def generate(home: DemoHome, policy, output_dir: Path) -> list[dict[str, Any]]:
    """Each generation prompt through the guarded flow on the tiny offline pipeline: one record per prompt,
    with the delivered file's verification when one was written."""
    from generation.tiny import build_tiny_pipeline
    from guard.generate import Guard
    from guard.protect import Protector
    from guard.provenance.credentials.store import ManifestStore

    pipe = build_tiny_pipeline()
    pipe.register_to_config(_name_or_path=TINY_MODEL_NAME)
    pipe.set_progress_bar_config(disable=True)
    results = []
    with ManifestStore.open(home.store_url) as store:
        guard = Guard(policy, protector=Protector(identity=home.identity(), store=store))
        for prompt in GENERATION_PROMPTS:
            (record,) = guard.generate(prompt, model=pipe, output_dir=output_dir, seed=0, steps=GENERATION_STEPS)
            result = {"prompt": prompt, **record.to_dict()}
            if record.output is not None:
                result["verify"] = verify(home, record.output)
            results.append(result)
    return results


def scan(policy, path: Path) -> dict[str, Any]:
    """Every detector's scores on the image and the policy's decision."""
    from guard.images import load_image
    from guard.scan import assess_images

    return {"path": str(path), **assess_images([load_image(path)], policy)[0].to_dict()}


def protect(home: DemoHome, source: Path, output: Path, decision: dict[str, Any]) -> dict[str, Any]:
    """Watermark, sign and record the sample as a generated image would be."""
    from guard.protect import Protector
    from guard.provenance.credentials.store import ManifestStore

    with ManifestStore.open(home.store_url) as store:
        protector = Protector(identity=home.identity(), store=store)
        result = protector.protect_file(
            source,
            output,
            generator={"model": "demo (the bundled sample stands in for a generation)"},
            prompt=EXAMPLE_PROMPTS[0],
            policy_decision=decision,
        )
    return result.to_dict()


def strip_metadata(source: Path, output: Path) -> dict[str, Any]:
    """Re-encode as a platform would: pixels only (no EXIF, XMP or C2PA), resized, JPEG."""
    with Image.open(source) as image:
        pixels = image.convert("RGB")
    size = (round(pixels.width * STRIP_SCALE), round(pixels.height * STRIP_SCALE))
    buffer = io.BytesIO()
    pixels.resize(size, Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=STRIP_QUALITY)
    write_atomic(output, buffer.getvalue())
    return {"output": str(output), "size": list(size), "quality": STRIP_QUALITY, "metadata": "none"}


def verify(home: DemoHome, path: Path) -> dict[str, Any]:
    """The verifier's report, trusting the demo identity and looking in the demo store."""
    from guard.provenance.credentials.store import ManifestStore
    from guard.verify import verify_file

    with ManifestStore.open(home.store_url) as store:
        return verify_file(path, trust=home.trust(), store=store).to_dict()
