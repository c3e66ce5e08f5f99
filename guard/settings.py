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
SERVE_HOST = "GUARD_SERVE_HOST"
SERVE_PORT = "GUARD_SERVE_PORT"
SERVE_WORKERS = "GUARD_SERVE_WORKERS"
SERVE_MAX_UPLOAD_BYTES = "GUARD_SERVE_MAX_UPLOAD_BYTES"
SERVE_THREADS = "GUARD_SERVE_THREADS"
SERVE_MAX_INFLIGHT = "GUARD_SERVE_MAX_INFLIGHT"
SERVE_TIMEOUT = "GUARD_SERVE_TIMEOUT"
SERVE_PUBLIC = "GUARD_SERVE_PUBLIC"
SERVE_MODEL = "GUARD_SERVE_MODEL"
AUDIT_PROMPTS = "GUARD_AUDIT_PROMPTS"
AUDIT_IMAGES = "GUARD_AUDIT_IMAGES"

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
    SERVE_HOST: ("127.0.0.1", "address `guard serve` listens on (`0.0.0.0` behind a load balancer)"),
    SERVE_PORT: ("8000", "port `guard serve` listens on"),
    SERVE_WORKERS: ("1", "`guard serve` worker processes (each loads the models once)"),
    SERVE_MAX_UPLOAD_BYTES: ("26214400 (25 MiB)", "largest request body `guard serve` reads; larger ones get 413"),
    SERVE_THREADS: (
        "twice the CPU cores, at least 4",
        "threads per worker doing CPU work (scoring, verifying, signing)",
    ),
    SERVE_MAX_INFLIGHT: (
        "64",
        "requests per worker admitted to CPU work at once (running or waiting for a thread); more get 429",
    ),
    SERVE_TIMEOUT: ("60", "seconds a request may take in `guard serve` before it is answered 503"),
    SERVE_PUBLIC: (
        "none: every endpoint needs an API key",
        "comma-separated endpoint groups served without a key: `verify`, `resolution`, `metrics`",
    ),
    SERVE_MODEL: ("none: no `POST /v1/generate`", "diffusers model (hub id or folder) `guard serve` generates with"),
    AUDIT_PROMPTS: ("off (the prompt's SHA-256 only)", "`1` to keep prompt text in the audit log"),
    AUDIT_IMAGES: ("off (the image's SHA-256 only)", "`1` to keep uploaded image bytes in the audit log"),
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


def env_flag(name: str) -> bool:
    """An on/off setting: `1`, `true`, `yes` or `on` (any case) is on; unset or anything else is off."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def env_text(name: str) -> str | None:
    """A text setting from the environment; None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def markdown_table() -> str:
    """The README's configuration table, one row per declared variable (a test keeps the README in step)."""
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    rows += [f"| `{name}` | {meaning} | {default} |" for name, (default, meaning) in sorted(registry().items())]
    return "\n".join(rows)
