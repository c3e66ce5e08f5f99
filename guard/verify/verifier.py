"""Verify an image: gather every piece of evidence it carries, then state the verdict.

`Verifier` sets up once what many files share (the c2pa context with its trust settings, the manifest store,
the resolver, the conforming products list, the classifier); `verify_file` runs one file through it:

1. decode the image (`load_image`: bad files are refused with one `ImageError` line);
2. Content Credentials embedded in the file, validated;
3. watermarks (every known scheme);
4. when the file's credentials are absent or not intact: recovery from the local store (watermark payload,
   then fingerprint), then from a resolution service if one is configured; when they are intact, only the
   watermark payload is looked up, to catch credentials swapped on an image someone else protected;
5. metadata hints; the synthetic-image classifier when asked for and configured;
6. the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from guard.errors import ImageError
from guard.images import IMAGE_SUFFIXES, load_image, read_file
from guard.provenance.credentials.c2pa import SIGNABLE_MIME, TrustConfig
from guard.provenance.credentials.store import ManifestStore
from guard.verify.c2pa_evidence import C2paEvidence, gather
from guard.verify.conformance import ConformingProducts
from guard.verify.metadata import read_metadata
from guard.verify.recovery import Recovery, recover_local, recover_remote
from guard.verify.report import VerifyReport
from guard.verify.resolver import SoftBindingResolver
from guard.verify.synthetic_evidence import classify, load_synthetic_detector
from guard.verify.trust import VerifyTrust
from guard.verify.verdict import decide
from guard.verify.watermark_evidence import bind_to_manifest, read_watermarks, schemes_to_try

CREDENTIALS_ONLY_MIME: dict[str, str] = {
    ".dng": "image/dng",
    ".arw": "image/x-sony-arw",
    ".nef": "image/x-nikon-nef",
    ".jxl": "image/jxl",
}
"""Suffix -> MIME type of the formats c2pa reads whose pixels we may not decode (camera RAW, JPEG XL): their
Content Credentials are verified all the same; pixel evidence (watermarks, fingerprint, classifier) is not."""

VERIFY_SUFFIXES = frozenset(IMAGE_SUFFIXES | CREDENTIALS_ONLY_MIME.keys())
"""What a folder run of `guard verify` picks up: every image we decode, and every format c2pa reads."""


@dataclass
class Verifier:
    """Shared set-up for verifying many files."""

    trust: VerifyTrust = field(default_factory=VerifyTrust.default)
    store: ManifestStore | None = None
    resolver: SoftBindingResolver | None = None
    products: ConformingProducts | None = None
    classifier: bool | None = None
    """Run the synthetic-image classifier: None runs it when its weights are configured, False never."""
    schemes: tuple[str, ...] | None = None
    """Watermark schemes to try (None: the known ones, plus ours when a store or resolver can resolve it)."""
    detector: Any = None
    """The synthetic-image detector (the detectors protocol); None: the registry's `synthetic` detector."""

    def __post_init__(self) -> None:
        if self.schemes is None:
            self.schemes = schemes_to_try(with_default=self.store is not None or self.resolver is not None)
        self._context = self.trust.context()
        if self.detector is None and self.classifier is not False:
            self.detector = load_synthetic_detector()

    def verify_file(self, path: str | Path) -> VerifyReport:
        """Verify one file. A camera RAW or JPEG XL file whose pixels we cannot decode still has its Content
        Credentials verified (`CREDENTIALS_ONLY_MIME`); any other undecodable file is refused (ImageError)."""
        data = read_file(path)
        try:
            image = load_image(data, name=str(path))
        except ImageError as exc:
            mime = CREDENTIALS_ONLY_MIME.get(Path(path).suffix.lower())
            if mime is None:
                raise
            return self.verify_bytes(data, name=str(path), mime=mime, undecoded=str(exc))
        return self.verify_bytes(data, name=str(path), image=image)

    def verify_bytes(
        self,
        data: bytes,
        *,
        name: str = "<bytes>",
        image: Image.Image | None = None,
        mime: str | None = None,
        undecoded: str | None = None,
    ) -> VerifyReport:
        """Verify an encoded image (`image`: its decoded pixels, when the caller already has them). With
        `undecoded` (why the pixels could not be decoded) and the file's `mime`, only the credentials and
        metadata are read."""
        if undecoded is None:
            image = image if image is not None else load_image(data)
        metadata = read_metadata(data)
        if mime is None:
            mime = SIGNABLE_MIME.get(metadata.get("format") or "")
            if metadata.get("format") == "MPO":
                mime = "image/jpeg"
        c2pa = gather(data, context=self._context, mime=mime, products=self.products, trust=self.trust)
        if image is None:
            return self._credentials_only(name, c2pa, metadata, undecoded or "not decoded")
        watermarks = read_watermarks(image, self.schemes)
        bind_to_manifest(watermarks, c2pa.reading.soft_bindings if c2pa.state is not None else [])
        recovery: Recovery | None = None
        resolver_info: dict[str, Any] | None = None
        intact = c2pa.state in ("Valid", "Trusted")
        if self.store is not None:
            recovery = recover_local(
                self.store,
                watermarks,
                image,
                data,
                mime=mime,
                context=self._context,
                products=self.products,
                embedded_id=c2pa.manifest_id if intact else None,
            )
        if recovery is None and not intact and self.resolver is not None:
            recovery, error = recover_remote(
                self.resolver, watermarks, data, mime=mime, context=self._context, products=self.products
            )
            resolver_info = {"url": self.resolver.base_url, "error": error, "found": recovery is not None}
        synthetic = (
            classify(image, self.detector)
            if self.classifier is not False
            else {"status": "not run", "reason": "not run (switched off)"}
        )
        verdict = decide(c2pa, recovery, watermarks, metadata.get("hints", []), synthetic)
        return VerifyReport(
            path=name,
            c2pa=c2pa,
            watermarks=watermarks,
            recovered=recovery,
            metadata=metadata,
            synthetic=synthetic,
            verdict=verdict,
            trust=self.trust.describe(),
            resolver=resolver_info,
            image=image,
        )

    def _credentials_only(self, name: str, c2pa: C2paEvidence, metadata: dict[str, Any], why: str) -> VerifyReport:
        """The report of a file whose pixels were not decoded: credentials and metadata, nothing pixel-based."""
        skipped = f"not run: the pixels were not decoded ({why})"
        synthetic = {"status": "not run", "reason": skipped}
        verdict = decide(c2pa, None, [], metadata.get("hints", []), synthetic)
        verdict.reasons.append(
            "watermarks, fingerprint recovery and the classifier need the pixels, which were not decoded: only the "
            "Content Credentials and metadata were checked"
        )
        return VerifyReport(
            path=name,
            c2pa=c2pa,
            watermarks=[],
            recovered=None,
            metadata={**metadata, "pixels": skipped},
            synthetic=synthetic,
            verdict=verdict,
            trust=self.trust.describe(),
        )


def verify_file(
    path: str | Path,
    *,
    trust: VerifyTrust | TrustConfig | None = None,
    store: ManifestStore | None = None,
    resolver: SoftBindingResolver | str | None = None,
    products: ConformingProducts | str | Path | None = None,
    classifier: bool | None = None,
) -> VerifyReport:
    """Verify one file. `trust`: a `VerifyTrust` or a plain `TrustConfig` (default: the environment and the
    local CA); `store`: the manifest store to recover from (None: no local recovery); `resolver`: a
    resolution service or its URL; `products`: the conforming products list or its path/URL (default:
    GUARD_CONFORMING_PRODUCTS)."""
    if isinstance(trust, TrustConfig):
        trust = VerifyTrust(trust=trust)
    if isinstance(resolver, str):
        resolver = SoftBindingResolver(resolver)
    if isinstance(products, str | Path):
        products = ConformingProducts.load(products)
    elif products is None:
        products = ConformingProducts.from_env()
    verifier = Verifier(
        trust=trust or VerifyTrust.default(), store=store, resolver=resolver, products=products, classifier=classifier
    )
    return verifier.verify_file(path)
