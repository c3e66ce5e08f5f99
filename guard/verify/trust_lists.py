"""The official C2PA trust lists: the copies bundled with the package, a newer copy installed into GUARD_HOME,
and installing one (`guard trust update`).

Two lists, as the C2PA conformance program publishes them: the C2PA trust list (CAs of conforming claim
signers) and the TSA trust list (time-stamping authorities). Verification uses them by default, as the Content
Credentials Verify site does. A copy installed with `install` (into `GUARD_HOME/trust/`) replaces the bundled
one; it carries its source and installation date in `#` header lines above the certificates, so the list and
what is said about it are written in one atomic rename and can never disagree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography import x509

from guard.errors import ConfigError
from guard.files import write_atomic
from guard.settings import guard_home

KINDS = ("c2pa", "tsa")
"""`c2pa`: the C2PA trust list (claim signers); `tsa`: the C2PA TSA trust list (time-stamping authorities)."""

DOWNLOAD_TIMEOUT_S = 30
MAX_LIST_BYTES = 4 * 1024 * 1024
"""A trust list is tens of kilobytes; anything far larger is not one."""

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_HEADER = re.compile(r"^# guard-trust-([a-z-]+): (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class TrustList:
    """One trust list in force: what it is, where it came from, and its certificates (PEM)."""

    kind: str
    name: str
    origin: str
    """`bundled` (shipped with the package), `installed` (guard trust update) or `GUARD_TRUST_LIST`."""
    source: str
    """Where the list came from: the C2PA repository URL for the bundled one, the path or URL given otherwise."""
    date: str | None
    """The snapshot date of the bundled list, the installation date of an installed one."""
    path: Path | None
    pem: str = field(repr=False, default="")
    certificates: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "origin": self.origin,
            "source": self.source,
            "date": self.date,
            "path": str(self.path) if self.path else None,
            "certificates": self.certificates,
        }


def trust_dir(home: str | Path | None = None) -> Path:
    return (Path(home) if home is not None else guard_home()) / "trust"


def bundled(kind: str) -> TrustList:
    """The copy shipped with the package (snapshot date and source in `guard/data/trust/lists.json`)."""
    info = _bundled_info()[_check_kind(kind)]
    folder = resources.files("guard") / "data" / "trust"
    data = (folder / info["file"]).read_bytes()
    return TrustList(
        kind=kind,
        name=info["name"],
        origin="bundled",
        source=info["source"],
        date=info["date"],
        path=Path(str(folder / info["file"])),
        pem=data.decode("ascii", "replace"),
        certificates=len(parse_bundle(data, info["file"])),
    )


def installed(kind: str, home: str | Path | None = None) -> TrustList | None:
    """The copy `guard trust update` installed into GUARD_HOME, or None. A damaged copy is an error, never
    silently skipped: the user asked for it."""
    path = trust_dir(home) / _bundled_info()[_check_kind(kind)]["file"]
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read the installed trust list {path}: {exc.strerror or exc}.") from None
    certificates = parse_bundle(data, str(path))
    headers = dict(_HEADER.findall(data.decode("utf-8", "replace")))
    return TrustList(
        kind=kind,
        name=_bundled_info()[kind]["name"],
        origin="installed",
        source=headers.get("source", str(path)),
        date=headers.get("installed"),
        path=path,
        pem=data.decode("utf-8", "replace"),
        certificates=len(certificates),
    )


def default_list(kind: str, home: str | Path | None = None) -> TrustList:
    """The list used by default: the installed copy when there is one, else the bundled one."""
    return installed(kind, home) or bundled(kind)


def parse_bundle(data: bytes, ref: str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle; ConfigError unless it is one (only CERTIFICATE blocks, each a CA
    certificate, at least one). Text between blocks (the official lists name each subject) is allowed."""
    if len(data) > MAX_LIST_BYTES:
        raise ConfigError(f"{ref} is {len(data)} bytes; a trust list is a PEM bundle of a few dozen certificates.")
    blocks = _BLOCK.findall(data)
    if not blocks:
        raise ConfigError(f"{ref} is not a PEM bundle of certificates (no BEGIN CERTIFICATE block).")
    kinds = sorted({kind.decode() for kind, _ in blocks if kind != b"CERTIFICATE"})
    if kinds:
        raise ConfigError(f"{ref} holds {', '.join(kinds)} blocks; a trust list holds certificates only.")
    certificates = []
    for number, (_, body) in enumerate(blocks, 1):
        pem = b"-----BEGIN CERTIFICATE-----" + body + b"-----END CERTIFICATE-----\n"
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise ConfigError(f"{ref}: certificate {number} cannot be parsed.") from None
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            subject = certificate.subject.rfc4514_string()
            raise ConfigError(
                f"{ref}: certificate {number} ({subject}) is not a CA certificate; a trust list holds CAs."
            )
        certificates.append(certificate)
    return certificates


def install(ref: str, kind: str = "c2pa", home: str | Path | None = None) -> TrustList:
    """Install a newer copy of a list from a file path or an http(s) URL into GUARD_HOME, atomically.

    The copy must be a PEM bundle of CA certificates that c2pa accepts; otherwise nothing is written. A URL
    is downloaded only here, on the user's request; offline, the error says so and how to install from a file.
    """
    _check_kind(kind)
    data = _fetch(ref) if ref.startswith(("http://", "https://")) else _read(ref)
    parse_bundle(data, ref)
    _check_c2pa_accepts(data, ref)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    header = (
        f"# guard-trust-list: {_bundled_info()[kind]['name']}\n"
        f"# guard-trust-source: {ref if '://' in ref else Path(ref).expanduser().resolve()}\n"
        f"# guard-trust-installed: {now}\n"
        f"# guard-trust-sha256: {hashlib.sha256(data).hexdigest()}\n"
    )
    write_atomic(trust_dir(home) / _bundled_info()[kind]["file"], header.encode() + data)
    found = installed(kind, home)
    assert found is not None  # just written
    return found


def _check_c2pa_accepts(data: bytes, ref: str) -> None:
    import c2pa

    settings = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    settings["trust"] = {"trust_anchors": data.decode("utf-8", "replace")}
    try:
        c2pa.Context.from_dict(settings).close()
    except c2pa.C2paError as exc:
        raise ConfigError(f"c2pa refuses {ref} as a trust list: {str(exc).strip().splitlines()[0]}.") from None


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            return response.read(MAX_LIST_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ConfigError(f"Cannot download {url}: the server answered {exc.code} {exc.reason}.") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(
            f"Cannot download {url} ({reason}); if this machine is offline, download the file elsewhere and run "
            "`guard trust update PATH`."
        ) from None


def _read(ref: str) -> bytes:
    try:
        return Path(ref).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read the trust list {ref}: {exc.strerror or exc}.") from None


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"Unknown trust list {kind!r}; choose one of {', '.join(KINDS)}.")
    return kind


def _bundled_info() -> dict[str, dict[str, str]]:
    return json.loads((resources.files("guard") / "data" / "trust" / "lists.json").read_text(encoding="utf-8"))
