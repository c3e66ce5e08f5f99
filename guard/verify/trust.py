"""What the verifier trusts and what it may fetch: anchors, allowed certificates, EKU configuration, remote
manifests — turned into one c2pa Context, set up once for many files.

As with c2patool: trust anchors (`--trust-anchors`, PEM files or http(s) URLs), end-entity certificates trusted
as they are (`--allowed-list`), and the extended key usages signers may carry (`--trust-config`, one OID a line).
Nothing is fetched unless the user names a URL or asks for remote manifests (`fetch_remote`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa

from guard.errors import ConfigError
from guard.provenance.credentials.c2pa import TrustConfig
from guard.provenance.credentials.keys import local_trust_anchor


@dataclass(frozen=True)
class VerifyTrust:
    """Trust settings for verification. `trust` holds the anchors and allowed list; `trust_config` is a file
    of allowed extended-key-usage OIDs (c2patool's `--trust_config`); `fetch_remote` lets c2pa download a
    manifest that lives at a URL (off by default: verification stays offline)."""

    trust: TrustConfig = field(default_factory=TrustConfig)
    trust_config: str | Path | None = None
    fetch_remote: bool = False

    @classmethod
    def default(
        cls,
        *,
        anchors: tuple[str | Path, ...] = (),
        allowed: tuple[str | Path, ...] = (),
        trust_config: str | Path | None = None,
        fetch_remote: bool = False,
        include_local: bool = True,
    ) -> VerifyTrust:
        """GUARD_TRUST_ANCHORS / GUARD_TRUST_LIST, the anchors given here, and the local CA of `guard keys init`
        (so this installation's own signatures are `Trusted`) unless `include_local=False`."""
        local = local_trust_anchor() if include_local else None
        base = TrustConfig.from_env(extra_anchors=(*anchors, *((local,) if local else ())))
        return cls(
            trust=TrustConfig(anchors=base.anchors, trust_list=base.trust_list, allowed=tuple(allowed)),
            trust_config=trust_config,
            fetch_remote=fetch_remote,
        )

    @property
    def configured(self) -> bool:
        """Whether any trust anchor or allowed certificate is configured (without one nothing is `Trusted`)."""
        return bool(self.trust.anchors or self.trust.trust_list is not None or self.trust.allowed)

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "verify": {"remote_manifest_fetch": self.fetch_remote, "ocsp_fetch": False},
        }
        trust = self.trust.settings()
        if self.trust_config is not None:
            trust["trust_config"] = _read_text(self.trust_config)
        if trust:
            settings["trust"] = trust
        return settings

    def context(self) -> c2pa.Context:
        """A c2pa Context with these settings (one per verifier; contexts are reusable)."""
        try:
            return c2pa.Context.from_dict(json.loads(json.dumps(self.settings())))
        except c2pa.C2paError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"The trust configuration was refused by c2pa: {first}.") from None

    def describe(self) -> dict[str, Any]:
        """What the report says about trust (paths and URLs as given, never certificate contents)."""
        return {
            "anchors": [str(a) for a in self.trust.anchors],
            "trust_list": str(self.trust.trust_list) if self.trust.trust_list is not None else None,
            "allowed_list": [str(a) for a in self.trust.allowed],
            "trust_config": str(self.trust_config) if self.trust_config is not None else None,
            "remote_manifests": "fetched" if self.fetch_remote else "not fetched (offline)",
        }


def _read_text(ref: str | Path) -> str:
    try:
        text = Path(ref).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the trust configuration {ref}: {exc.strerror or exc}.") from None
    if not text.strip():
        raise ConfigError(f"The trust configuration {ref} is empty; it should list extended key usage OIDs.")
    return text
