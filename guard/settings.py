"""Every `GUARD_*` environment variable, declared once with its meaning and default.

Each package declares the variables it reads in its own `settings` module (`policies.settings`,
`detectors.settings`, `generation.settings`, and this module for `guard`'s own); `registry()` gathers them
all, for the README's configuration table, `guard settings`-style listings and the test that fails when code
reads a name nobody declared. Code reads a variable through the constant declared here, never a literal.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME = "GUARD_HOME"
MAX_PIXELS = "GUARD_MAX_PIXELS"
STORE_URL = "GUARD_STORE_URL"
SIGN_CERT = "GUARD_SIGN_CERT"
SIGN_KEY = "GUARD_SIGN_KEY"
SIGN_KEY_PASSWORD = "GUARD_SIGN_KEY_PASSWORD"
TSA_URL = "GUARD_TSA_URL"
TRUST_ANCHORS = "GUARD_TRUST_ANCHORS"
TRUST_LIST = "GUARD_TRUST_LIST"
CONFORMING_PRODUCTS = "GUARD_CONFORMING_PRODUCTS"
RESOLVER_URL = "GUARD_RESOLVER_URL"

SETTINGS: dict[str, tuple[str, str]] = {
    HOME: (
        "`$XDG_CONFIG_HOME/guard` or `~/.config/guard`",
        "folder for the signing keys, trust anchors and the SQLite manifest store",
    ),
    MAX_PIXELS: ("64000000", "decompression-bomb cap: images with more pixels are refused before decoding"),
    STORE_URL: (
        "SQLite `manifests.db` in `GUARD_HOME`",
        "manifest store as an SQLAlchemy URL (`postgresql+psycopg://...` for a shared PostgreSQL store)",
    ),
    SIGN_CERT: ("the local identity from `guard keys init`", "signing certificate chain (PEM, end entity first)"),
    SIGN_KEY: ("the local identity's key", "private key (PEM) of that certificate"),
    SIGN_KEY_PASSWORD: ("none (asked for when the key is encrypted)", "password of an encrypted private key"),
    TSA_URL: ("none: signatures carry no timestamp (offline)", "RFC 3161 timestamp authority used when signing"),
    TRUST_ANCHORS: (
        "none",
        "extra PEM trust anchors for verification, added to the lists in force: paths or URLs separated by `,` "
        "(or `:`)",
    ),
    TRUST_LIST: (
        "the C2PA trust list bundled with the package (or the copy `guard trust update` installed)",
        "a PEM trust list (path or URL) that replaces the C2PA trust list; the TSA list stays",
    ),
    CONFORMING_PRODUCTS: ("none", "C2PA conforming products list (JSON, path or URL) the verifier matches"),
    RESOLVER_URL: ("none", "C2PA soft-binding resolution service `guard verify` asks for stripped images"),
}


def registry() -> dict[str, tuple[str, str]]:
    """Every declared variable -> (default, meaning), from all four packages; a name declared twice is a bug."""
    from detectors.settings import SETTINGS as DETECTORS
    from generation.settings import SETTINGS as GENERATION
    from policies.settings import SETTINGS as POLICIES

    merged: dict[str, tuple[str, str]] = {}
    for declared in (SETTINGS, POLICIES, DETECTORS, GENERATION):
        for name, entry in declared.items():
            if name in merged:
                raise RuntimeError(f"{name} is declared twice")
            merged[name] = entry
    return merged


def guard_home() -> Path:
    """The folder holding keys, trust anchors and the manifest store.

    `GUARD_HOME` wins; otherwise `$XDG_CONFIG_HOME/guard`, else `~/.config/guard`.
    """
    explicit = os.environ.get(HOME)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "guard"


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment, with a clear error when it is not a number."""
    from guard.errors import ConfigError

    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}.") from None


def env_text(name: str) -> str | None:
    """A text setting from the environment; None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def markdown_table() -> str:
    """The README's configuration table, one row per declared variable (a test keeps the README in step)."""
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    rows += [f"| `{name}` | {meaning} | {default} |" for name, (default, meaning) in sorted(registry().items())]
    return "\n".join(rows)
