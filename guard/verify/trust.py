"""What the verifier trusts and what it may fetch: the official C2PA trust lists, anchors, allowed certificates,
EKU configuration, remote manifests — turned into one c2pa Context, set up once for many files.

By default the official C2PA trust list and TSA trust list are in force (`guard.verify.trust_lists`: the copy
installed with `guard trust update`, else the bundled one), as on the Content Credentials Verify site, plus
this installation's own CA (`guard keys init`). On top of that, as with c2patool:

- `GUARD_TRUST_LIST` (a PEM path or http(s) URL) REPLACES the C2PA trust list (the TSA list stays);
- `GUARD_TRUST_ANCHORS` and `--trust-anchors` ADD anchors;
- `--allowed-list` trusts end-entity certificates as they are; `--trust-config` adds accepted EKUs;
- `--no-default-trust` turns both official lists off (what GUARD_TRUST_LIST and the anchors give stays).

c2pa-rs checks claim signers and timestamp authorities against one set of anchors, so both lists go into its
`trust_anchors`. When a signer comes out `Trusted`, `trusted_by` names the list or anchor that made it so, by
validating again against each source alone. Nothing is fetched unless the user names a URL or asks for remote
manifests (`fetch_remote`).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.x509.oid import NameOID

from guard.errors import ConfigError
from guard.provenance.credentials.c2pa import TrustConfig, load_pem
from guard.provenance.credentials.keys import local_trust_anchor
from guard.settings import TRUST_LIST
from guard.verify.trust_lists import TrustList, default_list


@dataclass(frozen=True)
class VerifyTrust:
    """Trust settings for verification. `lists`: the official lists in force (empty: none); `trust`: the
    anchors added to them, a list replacing the C2PA trust list (GUARD_TRUST_LIST) and the allowed list;
    `trust_config`: a file of allowed extended-key-usage OIDs (c2patool's `--trust_config`); `fetch_remote` lets
    c2pa download a manifest that lives at a URL (off by default: verification stays offline).

    `VerifyTrust()` trusts nothing; `VerifyTrust.default()` is what `guard verify` uses."""

    trust: TrustConfig = field(default_factory=TrustConfig)
    trust_config: str | Path | None = None
    fetch_remote: bool = False
    lists: tuple[TrustList, ...] = ()
    local_anchor: Path | None = None
    """This installation's own CA (guard keys init), when it is among `trust.anchors`."""
    _contexts: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """c2pa contexts (all sources, each source alone) and each source's CA names, made on first use."""

    @classmethod
    def default(
        cls,
        *,
        anchors: tuple[str | Path, ...] = (),
        allowed: tuple[str | Path, ...] = (),
        trust_config: str | Path | None = None,
        fetch_remote: bool = False,
        include_local: bool = True,
        default_lists: bool = True,
    ) -> VerifyTrust:
        """The official lists (unless `default_lists=False`; GUARD_TRUST_LIST replaces the C2PA one),
        GUARD_TRUST_ANCHORS, the anchors given here, and the local CA of `guard keys init` (so this
        installation's own signatures are `Trusted`) unless `include_local=False`."""
        local = local_trust_anchor() if include_local else None
        base = TrustConfig.from_env(extra_anchors=(*anchors, *((local,) if local else ())))
        kinds = ("tsa",) if base.trust_list is not None else ("c2pa", "tsa")
        return cls(
            trust=TrustConfig(anchors=base.anchors, trust_list=base.trust_list, allowed=tuple(allowed)),
            trust_config=trust_config,
            fetch_remote=fetch_remote,
            lists=tuple(default_list(kind) for kind in kinds) if default_lists else (),
            local_anchor=local,
        )

    @property
    def configured(self) -> bool:
        """Whether any trust list, anchor or allowed certificate is in force (without one nothing is `Trusted`)."""
        return bool(self.lists or self.trust.anchors or self.trust.trust_list is not None or self.trust.allowed)

    def settings(self) -> dict[str, Any]:
        return self._settings(self.trust.settings(), "".join(t.pem for t in self.lists))

    def _settings(self, trust: dict[str, str], official: str = "") -> dict[str, Any]:
        settings: dict[str, Any] = {
            "verify": {"remote_manifest_fetch": self.fetch_remote, "ocsp_fetch": False},
        }
        trust = dict(trust)
        if official:
            trust["trust_anchors"] = trust.get("trust_anchors", "") + official
        if self.trust_config is not None:
            trust["trust_config"] = _read_text(self.trust_config)
        if trust:
            settings["trust"] = trust
        return settings

    def context(self) -> c2pa.Context:
        """A c2pa Context with these settings (one per verifier; contexts are reusable)."""
        if "all" not in self._contexts:
            self._contexts["all"] = _context(self.settings())
        return self._contexts["all"]

    def sources(self) -> list[dict[str, Any]]:
        """Each source of trust on its own, in the order `trusted_by` tries them: the official lists,
        GUARD_TRUST_LIST, each added anchor file (the local CA named as such), the allowed list."""
        found: list[dict[str, Any]] = [
            {"list": t.name, "origin": t.origin, "source": t.source, "date": t.date, "_pem": t.pem} for t in self.lists
        ]
        if self.trust.trust_list is not None:
            found.append({"list": TRUST_LIST, "source": str(self.trust.trust_list), "_ref": self.trust.trust_list})
        for anchor in self.trust.anchors:
            local = self.local_anchor is not None and str(anchor) == str(self.local_anchor)
            name = "this installation's CA (guard keys init)" if local else "trust anchors"
            found.append({"list": name, "source": str(anchor), "_ref": anchor})
        if self.trust.allowed:
            found.append({"list": "allowed list", "source": ", ".join(map(str, self.trust.allowed)), "_allowed": True})
        return found

    def trusted_by(
        self, data: bytes, mime: str | None, manifest_store: bytes | None = None, issuer: str | None = None
    ) -> dict[str, Any] | None:
        """The source of trust that alone makes this asset's signer `Trusted` (None if none does alone).
        `issuer`: the signing certificate's issuer CN; sources holding a CA of that name are tried first, so
        a trusted file usually costs one more validation, not one per source."""
        sources = list(enumerate(self.sources()))
        sources.sort(key=lambda item: issuer is None or issuer not in self._subject_names(*item))
        for number, source in sources:
            try:
                context = self._source_context(number, source)
                reader = c2pa.Reader.try_create(mime, io.BytesIO(data), manifest_store, context)
            except c2pa.C2paError:
                return None
            if reader is None:
                return None
            with reader:
                state = reader.get_validation_state()
            if state == "Trusted":
                return {k: v for k, v in source.items() if not k.startswith("_")}
        return None

    def _source_pem(self, source: dict[str, Any]) -> tuple[str, str]:
        """(c2pa trust setting, PEM text) of one source."""
        if "_pem" in source:
            return "trust_anchors", source["_pem"]
        if "_allowed" in source:
            return "allowed_list", "".join(load_pem(ref) for ref in self.trust.allowed)
        return "trust_anchors", load_pem(source["_ref"])

    def _source_context(self, number: int, source: dict[str, Any]) -> c2pa.Context:
        key = f"source-{number}"
        if key not in self._contexts:
            setting, pem = self._source_pem(source)
            self._contexts[key] = _context(self._settings({setting: pem}))
        return self._contexts[key]

    def _subject_names(self, number: int, source: dict[str, Any]) -> frozenset[str]:
        """The subject CNs of a source's certificates (cached; unparsable PEM gives none: it is tried last)."""
        key = f"names-{number}"
        if key not in self._contexts:
            try:
                certificates = x509.load_pem_x509_certificates(_pem_blocks(self._source_pem(source)[1]))
            except ValueError:
                certificates = []
            self._contexts[key] = frozenset(
                str(attribute.value)
                for certificate in certificates
                for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            )
        return self._contexts[key]

    def describe(self) -> dict[str, Any]:
        """What the report says about trust (paths and URLs as given, never certificate contents)."""
        return {
            "lists": [t.describe() for t in self.lists],
            "anchors": [str(a) for a in self.trust.anchors],
            "trust_list": str(self.trust.trust_list) if self.trust.trust_list is not None else None,
            "allowed_list": [str(a) for a in self.trust.allowed],
            "trust_config": str(self.trust_config) if self.trust_config is not None else None,
            "remote_manifests": "fetched" if self.fetch_remote else "not fetched (offline)",
        }


_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", re.DOTALL)


def _pem_blocks(text: str) -> bytes:
    """Only the certificate blocks of a PEM text (the official lists carry `Subject` lines between them)."""
    return b"".join(
        re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", text.encode(), re.DOTALL)
    )


def _context(settings: dict[str, Any]) -> c2pa.Context:
    try:
        return c2pa.Context.from_dict(json.loads(json.dumps(settings)))
    except c2pa.C2paError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"The trust configuration was refused by c2pa: {first}.") from None


def _read_text(ref: str | Path) -> str:
    try:
        text = Path(ref).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the trust configuration {ref}: {exc.strerror or exc}.") from None
    if not text.strip():
        raise ConfigError(f"The trust configuration {ref} is empty; it should list extended key usage OIDs.")
    return text
