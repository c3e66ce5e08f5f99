"""Verify an image: gather every piece of evidence it carries, then state the verdict.

`Verifier` sets up once what many files share (the c2pa context with its trust settings, the manifest store,
the resolver, the conforming products list, the classifier) — `Verifier.from_env()` sets it up exactly as
`guard verify` does; `verify_file` runs one file through it, `verify_paths` many (one result or error each):

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

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from guard.errors import ImageError, user_errors
from guard.files import FileResult
from guard.images import IMAGE_SUFFIXES, list_image_files, load_image, read_file
from guard.provenance.credentials.c2pa import TrustConfig, mime_of_format
from guard.provenance.credentials.store import ManifestStore, existing_store
from guard.settings import RESOLVER_URL
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

    trust: VerifyTrust = field(default_factory=VerifyTrust.from_env)
    store: ManifestStore | None = None
    resolver: SoftBindingResolver | None = None
    products: ConformingProducts | None = None
    classifier: bool | None = None
    """Run the synthetic-image classifier: None runs it when its weights are configured, False never."""
    schemes: tuple[str, ...] | None = None
    """Watermark schemes to try (None: `KNOWN_SCHEMES`, ours first; `schemes_to_try` adds the default scheme
    when it is not among them and a store or resolver can resolve its payload)."""
    detector: Any = None
    """The synthetic-image detector (the detectors protocol); None: the registry's `synthetic` detector."""

    def __post_init__(self) -> None:
        if self.schemes is None:
            self.schemes = schemes_to_try(with_default=self.store is not None or self.resolver is not None)
        self._context = self.trust.context()
        if self.detector is None and self.classifier is not False:
            self.detector = load_synthetic_detector()
        self._owns_store = False

    @classmethod
    def from_env(
        cls,
        *,
        trust_anchors: Iterable[str | Path] = (),
        allowed_list: Iterable[str | Path] = (),
        trust_config: str | Path | None = None,
        local_anchor: bool = True,
        default_trust: bool = True,
        fetch_remote: bool = False,
        conforming_products: str | Path | None = None,
        store_url: str | None = None,
        use_store: bool = True,
        store: ManifestStore | None = None,
        resolver_url: str | None = None,
        classifier: bool | None = None,
    ) -> Verifier:
        """The verifier `guard verify` runs: the official C2PA trust list and TSA list (installed or bundled;
        `default_trust=False`: neither; GUARD_TRUST_LIST replaces the C2PA one), GUARD_TRUST_ANCHORS, the
        anchors and allowed certificates given and the local CA (unless `local_anchor=False`); the conforming
        products list given, else GUARD_CONFORMING_PRODUCTS; the manifest store at `store_url`, else
        GUARD_STORE_URL, else the SQLite store in GUARD_HOME when it exists (verifying never creates one;
        `use_store=False`: none; `store`: one the caller has open, used as it is and not closed here); the
        resolution service at `resolver_url`, else GUARD_RESOLVER_URL.
        A store opened here is closed by `close()` (or at the end of a `with` block)."""
        trust = VerifyTrust.from_env(
            anchors=tuple(trust_anchors),
            allowed=tuple(allowed_list),
            trust_config=trust_config,
            fetch_remote=fetch_remote,
            include_local=local_anchor,
            default_lists=default_trust,
        )
        products = (
            ConformingProducts.load(conforming_products) if conforming_products else ConformingProducts.from_env()
        )
        resolver_url = resolver_url or os.environ.get(RESOLVER_URL) or None
        resolver = SoftBindingResolver(resolver_url) if resolver_url else None
        owned = existing_store(store_url) if use_store and store is None else None
        try:
            verifier = cls(
                trust=trust, store=store or owned, resolver=resolver, products=products, classifier=classifier
            )
        except BaseException:
            if owned is not None:
                owned.close()
            raise
        verifier._owns_store = owned is not None
        return verifier

    def close(self) -> None:
        """Close the store if `from_env` opened it."""
        if self._owns_store and self.store is not None:
            self.store.close()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

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
        mime = mime or mime_of_format(metadata.get("format"))
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


def verify_paths(
    paths: Iterable[str | Path], verifier: Verifier | None = None, **options: Any
) -> Iterator[FileResult[VerifyReport]]:
    """Verify files and folders (inside folders, recursively, every file the verifier reads: `VERIFY_SUFFIXES`):
    one `FileResult` per file, in order;
    a file that cannot be read is an error value and the others go on. A folder without images raises.

    Without `verifier`, `Verifier.from_env(**options)` is set up (after the files are listed) and closed at
    the end."""
    files = list_image_files(paths, suffixes=VERIFY_SUFFIXES)
    own = verifier is None
    verifier = verifier or Verifier.from_env(**options)
    try:
        for path in files:
            try:
                yield FileResult(path=path, value=verifier.verify_file(path))
            except user_errors() as exc:
                yield FileResult(path=path, error=str(exc))
    finally:
        if own:
            verifier.close()


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
        trust=trust or VerifyTrust.from_env(), store=store, resolver=resolver, products=products, classifier=classifier
    )
    return verifier.verify_file(path)
