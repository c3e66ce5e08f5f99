"""Content Credentials through c2pa-python: sign an asset with a manifest, read and validate one, map errors.

Trust: a `TrustConfig` names PEM files (or http(s) URLs) of trust anchors; `read_manifest(..., trust=...)`
reports `Trusted` when the signer chains to one of them, `Valid` when the manifest is intact but the signer
is not anchored, `Invalid` when anything fails. Without a trust configuration nothing is `Trusted`.
"""

from __future__ import annotations

import io
import json
import os
import re
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa

from guard.errors import ConfigError, GuardError
from guard.provenance.credentials.keys import ALLOWED_EKUS, SigningIdentity
from guard.provenance.credentials.manifest import PARENT_LABEL
from guard.settings import TRUST_ANCHORS, TRUST_LIST

SIGNABLE_MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "HEIF": "image/heic",
}
"""Pillow format name -> MIME type for the formats we write and c2pa signs (embedded manifest)."""

READABLE_MIME = {**SIGNABLE_MIME, "MPO": "image/jpeg", "GIF": "image/gif"}
"""Pillow format name -> the MIME type c2pa reads the file as: what we sign, plus the MPO (a JPEG with extra
frames, as phones write them) and GIF, which c2pa reads and takes as an ingredient but we do not write."""

PARENT_OF = "parentOf"
INPUT_TO = "inputTo"


def mime_of_format(fmt: str | None) -> str | None:
    """The MIME type c2pa reads a Pillow format as, or None when c2pa does not take that format."""
    return READABLE_MIME.get(fmt or "")


@dataclass(frozen=True)
class Ingredient:
    """An image a new manifest names as an ingredient: the file it was opened from (`parentOf`, its history
    is kept) or an input it was made from (`inputTo`, e.g. an image-to-image init image)."""

    data: bytes = field(repr=False)
    mime: str
    title: str
    relationship: str = INPUT_TO

    @classmethod
    def from_bytes(cls, data: bytes, title: str, relationship: str = INPUT_TO) -> Ingredient:
        """The ingredient for an encoded image; `GuardError` when c2pa cannot take its format."""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format
        except Exception:  # any decoder failure means the same thing here: not a format c2pa takes
            fmt = None
        mime = mime_of_format(fmt)
        if mime is None:
            raise GuardError(f"{title}: c2pa cannot take this format as an ingredient ({fmt or 'unknown'}).")
        return cls(data=data, mime=mime, title=title, relationship=relationship)

    @property
    def is_parent(self) -> bool:
        return self.relationship == PARENT_OF


_READ_SETTINGS: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
_SIGN_SETTINGS: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}, **_READ_SETTINGS}


@dataclass(frozen=True)
class TrustConfig:
    """Where trust comes from: anchors added to c2pa's (`user_anchors`), a list replacing them
    (`trust_anchors`, e.g. the C2PA trust list), and end-entity certificates trusted as they are
    (`allowed_list`). Each entry is a PEM file path or an http(s) URL."""

    anchors: tuple[str | Path, ...] = ()
    trust_list: str | Path | None = None
    allowed: tuple[str | Path, ...] = ()

    @classmethod
    def from_env(cls, extra_anchors: Iterable[str | Path] = ()) -> TrustConfig:
        """GUARD_TRUST_ANCHORS (paths or URLs separated by `:` or `,`) and GUARD_TRUST_LIST."""
        raw = os.environ.get(TRUST_ANCHORS, "")
        # A colon separates entries unless it is the one in "https://".
        anchors = [p.strip() for p in re.split(r",|:(?!//)", raw) if p.strip()]
        return cls(
            anchors=(*anchors, *extra_anchors),
            trust_list=os.environ.get(TRUST_LIST) or None,
        )

    def settings(self) -> dict[str, Any]:
        """The `trust` section of c2pa settings (empty when nothing is configured)."""
        trust: dict[str, str] = {}
        if self.anchors:
            trust["user_anchors"] = "".join(load_pem(ref) for ref in self.anchors)
        if self.trust_list is not None:
            trust["trust_anchors"] = load_pem(self.trust_list)
        if self.allowed:
            trust["allowed_list"] = "".join(load_pem(ref) for ref in self.allowed)
        return trust


@dataclass
class ManifestReading:
    """What c2pa's Reader says about one asset: whether it has Content Credentials and their state."""

    present: bool
    state: str | None = None
    """`Valid`, `Trusted` or `Invalid` (c2pa's validation_state); None without a manifest."""
    store: dict[str, Any] | None = field(default=None, repr=False)
    """The Reader's JSON (all manifests, validation results)."""
    remote_url: str | None = None
    error: str | None = None
    """Why a manifest could not be read (remote and offline, pre-release, corrupt), else None."""

    @property
    def active(self) -> dict[str, Any] | None:
        if not self.store:
            return None
        return self.store.get("manifests", {}).get(self.store.get("active_manifest"))

    @property
    def manifest_id(self) -> str | None:
        return self.store.get("active_manifest") if self.store else None

    @property
    def failures(self) -> list[dict[str, Any]]:
        """Failure entries (`code`, `url`, `explanation`) of the active manifest's validation."""
        results = (self.store or {}).get("validation_results") or {}
        return list((results.get("activeManifest") or {}).get("failure") or [])

    @property
    def failure_codes(self) -> list[str]:
        return [f.get("code", "") for f in self.failures]

    def assertion(self, label: str) -> Any:
        """The data of the active manifest's first assertion with this label, or None."""
        for item in (self.active or {}).get("assertions", []):
            if item.get("label") == label:
                return item.get("data")
        return None

    @property
    def digital_source_types(self) -> list[str]:
        """Every digitalSourceType in the active manifest's actions."""
        found = []
        for label in ("c2pa.actions.v2", "c2pa.actions"):
            for action in (self.assertion(label) or {}).get("actions", []):
                if action.get("digitalSourceType"):
                    found.append(action["digitalSourceType"])
        return found

    @property
    def soft_bindings(self) -> list[dict[str, str]]:
        """`{"alg", "value"}` for each block of the active manifest's soft-binding assertions (ours: alg
        `com.image-guard.watermark.<scheme>`, value = the watermark payload in hex)."""
        found = []
        for item in (self.active or {}).get("assertions", []):
            if item.get("label") == "c2pa.soft-binding":
                data = item.get("data") or {}
                found.extend({"alg": data.get("alg"), "value": b.get("value")} for b in data.get("blocks", []))
        return found

    @property
    def ingredients(self) -> list[dict[str, Any]]:
        return list((self.active or {}).get("ingredients", []))

    def to_dict(self) -> dict[str, Any]:
        return {
            "present": self.present,
            "state": self.state,
            "manifest_id": self.manifest_id,
            "failures": self.failures,
            "digital_source_type": (self.digital_source_types or [None])[0],
            "remote_url": self.remote_url,
            "error": self.error,
        }


def c2pa_context(trust: TrustConfig | None = None, *, signing: bool = False) -> c2pa.Context:
    """A c2pa Context with our settings: offline (no remote manifest, no OCSP), trust as configured."""
    settings = json.loads(json.dumps(_SIGN_SETTINGS if signing else _READ_SETTINGS))
    if trust is not None:
        trust_settings = trust.settings()
        if trust_settings:
            settings["trust"] = trust_settings
    try:
        return c2pa.Context.from_dict(settings)
    except c2pa.C2paError as exc:
        raise ConfigError(f"The trust configuration was refused by c2pa: {_first_line(exc)}.") from None


def make_signer(identity: SigningIdentity) -> c2pa.Signer:
    """A c2pa Signer for the identity (reusable for many signatures)."""
    info = c2pa.C2paSignerInfo(identity.alg, identity.chain_pem, identity.key_pem, identity.tsa_url)
    try:
        return c2pa.Signer.from_info(info)
    except c2pa.C2paError as exc:
        raise signing_error(exc, identity) from None


def sign_asset(
    manifest: dict[str, Any],
    asset: bytes,
    mime: str,
    signer: c2pa.Signer,
    *,
    ingredient: Ingredient | None = None,
    context: c2pa.Context | None = None,
    identity: SigningIdentity | None = None,
) -> tuple[bytes, bytes]:
    """Sign `asset` (encoded bytes of type `mime`) with `manifest`; return (signed asset, manifest store).

    c2pa copies an ingredient's own manifest into the new store, so the history is kept; a parent ingredient
    is labelled `PARENT_LABEL`, the id the manifest's `c2pa.opened` action names it by.
    """
    builder = c2pa.Builder(manifest, context=context or c2pa_context(signing=True))
    try:
        if ingredient is not None:
            definition = {"title": ingredient.title, "relationship": ingredient.relationship}
            if ingredient.is_parent:
                definition["label"] = PARENT_LABEL
            builder.add_ingredient(definition, ingredient.mime, io.BytesIO(ingredient.data))
        out = io.BytesIO()
        manifest_store = builder.sign(signer, mime, io.BytesIO(asset), out)
    except c2pa.C2paError as exc:
        raise signing_error(exc, identity) from None
    finally:
        builder.close()
    return out.getvalue(), manifest_store


def read_manifest(
    source: str | Path | bytes,
    *,
    trust: TrustConfig | None = None,
    mime: str | None = None,
    manifest_store: bytes | None = None,
    context: c2pa.Context | None = None,
) -> ManifestReading:
    """Read and validate the Content Credentials of a file or bytes; never raises for a bad manifest.

    `manifest_store` validates a detached store (e.g. one recovered from the manifest store database)
    against the asset instead of the manifest embedded in it.

    A file without a manifest gives `present=False`; a remote manifest (offline), a pre-release one or an
    unreadable one gives `present=True, state=None` and a one-line `error`.
    """
    if isinstance(source, str | Path):
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise GuardError(f"Cannot read {source}: {exc.strerror or exc}.") from None
    else:
        data = bytes(source)
    if manifest_store is not None and mime is None:
        mime = _sniff_mime(data)
    ctx = context or c2pa_context(trust)
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), manifest_store, ctx)
    except c2pa.C2paError as exc:
        message = _first_line(exc)
        if message.startswith("Remote:"):
            url = message.rsplit(" ", 1)[-1]
            return ManifestReading(
                present=True, remote_url=url, error=f"the manifest is remote ({url}) and is not fetched offline"
            )
        if "NotSupported" in message or "type is unsupported" in message:
            return ManifestReading(present=False, error="c2pa cannot read this format")
        if "could not be parsed" in message:
            return ManifestReading(present=False, error=f"c2pa cannot parse this file ({message})")
        return ManifestReading(present=True, error=_reading_error(message))
    if reader is None:
        return ManifestReading(present=False)
    with reader:
        store = json.loads(reader.json())
        remote = reader.get_remote_url()
    return ManifestReading(
        present=True,
        state=store.get("validation_state"),
        store=store,
        remote_url=remote,
    )


def signing_error(exc: BaseException, identity: SigningIdentity | None) -> GuardError:
    """One sentence for a failed signature, naming the certificate file when that is the cause."""
    message = _first_line(exc)
    where = f" ({identity.chain_path})" if identity is not None and identity.chain_path else ""
    if "not valid at time of signing" in message:
        return ConfigError(f"The signing certificate{where} is expired or not yet valid.")
    if "certificate is invalid" in message or "invalid signing credentials" in message:
        allowed = ", ".join(sorted(set(ALLOWED_EKUS.values())))
        return ConfigError(
            f"c2pa refused the signing certificate or key{where}: it needs a CA-issued end-entity certificate "
            f"with digitalSignature and one of these extended key usages ({allowed}), matching the key."
        )
    if identity is not None and identity.tsa_url and ("http" in message or "timestamp" in message.lower()):
        return ConfigError(
            f"The timestamp authority {identity.tsa_url} did not answer ({message}); check the URL, or sign "
            "without a timestamp by leaving GUARD_TSA_URL and --tsa-url unset."
        )
    if "type is unsupported" in message or message.startswith("NotSupported"):
        return GuardError(f"c2pa cannot sign this format: {message}.")
    if message.startswith("Verify:"):
        return GuardError(f"c2pa refused the manifest: {message.removeprefix('Verify:').strip()}.")
    return GuardError(f"Signing failed: {message}.")


def _sniff_mime(data: bytes) -> str | None:
    """The asset's MIME type from its header (c2pa needs it to bind a detached manifest store)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as probe:
            return mime_of_format(probe.format)
    except (OSError, ValueError):
        return None


def _reading_error(message: str) -> str:
    if "prerelease" in message:
        return "the manifest comes from a pre-release version of C2PA and cannot be validated"
    return f"the manifest cannot be read ({message})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {'; '.join(lines[1:])}"
    return lines[0] if lines else type(exc).__name__


def load_pem(ref: str | Path) -> str:
    """The PEM text of a trust file (a path or an http(s) URL); ConfigError when it holds no certificate."""
    ref = str(ref)
    if ref.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(ref, timeout=20) as response:
                text = response.read().decode("utf-8", "replace")
        except OSError as exc:
            raise ConfigError(f"Cannot fetch the trust list {ref}: {exc}.") from None
    else:
        try:
            text = Path(ref).expanduser().read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(f"Cannot read the trust anchors file {ref}: {exc.strerror or exc}.") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"{ref} holds no PEM certificate.")
    return text if text.endswith("\n") else text + "\n"
