"""The service's settings: one object, read from the environment (`guard.settings` declares every variable).

`guard serve` writes its command-line options into the environment before uvicorn starts the workers, so
every worker process builds the same `ServeSettings` with `ServeSettings.from_env()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from guard.errors import ConfigError
from guard.settings import (
    AUDIT_IMAGES,
    AUDIT_PROMPTS,
    SERVE_MAX_INFLIGHT,
    SERVE_MAX_UPLOAD_BYTES,
    SERVE_MODEL,
    SERVE_PUBLIC,
    SERVE_THREADS,
    SERVE_TIMEOUT,
    env_flag,
    env_int,
    env_text,
)

PUBLIC_GROUPS = ("verify", "resolution", "metrics")
"""Endpoint groups an operator may serve without an API key."""
DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_INFLIGHT = 64
DEFAULT_TIMEOUT = 60.0


def default_threads() -> int:
    """Two threads per CPU core, at least four: much of the work (ONNX inference, c2pa's native reader,
    OpenCV, FFTs, the store) runs outside the interpreter lock, so a thread per core would leave cores idle."""
    return max(4, 2 * (os.cpu_count() or 1))


MAX_URL_LENGTH = 4096
"""Longest request target (path and query) accepted; longer ones get 414 (the resolution API's GET)."""


@dataclass(frozen=True)
class ServeSettings:
    """Everything `create_app` needs that is not a model."""

    store_url: str | None = None
    """Manifest store (also holds API keys and the audit log); None: `GUARD_STORE_URL` or the SQLite default."""
    policy: str | None = None
    """Policy name or file; None: `GUARD_POLICY` or `default`."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    threads: int = field(default_factory=default_threads)
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    timeout: float = DEFAULT_TIMEOUT
    public: frozenset[str] = frozenset()
    model: str | None = None
    """Diffusers model for `POST /v1/generate`; None: the route does not exist."""
    audit_prompts: bool = False
    audit_images: bool = False
    warm_up: bool = True
    """Run one tiny image through every model at startup, so the first request does not pay for loading."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.public) - set(PUBLIC_GROUPS))
        if unknown:
            raise ConfigError(
                f"{SERVE_PUBLIC}: unknown endpoint group(s) {', '.join(unknown)}; use {', '.join(PUBLIC_GROUPS)}."
            )
        for name, value in (
            (SERVE_MAX_UPLOAD_BYTES, self.max_upload_bytes),
            (SERVE_THREADS, self.threads),
            (SERVE_MAX_INFLIGHT, self.max_inflight),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}.")
        if self.timeout <= 0:
            raise ConfigError(f"{SERVE_TIMEOUT} must be a positive number of seconds, got {self.timeout}.")

    @classmethod
    def from_env(cls, **overrides) -> ServeSettings:
        """Settings from the `GUARD_*` environment; keyword arguments win."""
        values = {
            "max_upload_bytes": env_int(SERVE_MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES),
            "threads": env_int(SERVE_THREADS, default_threads()),
            "max_inflight": env_int(SERVE_MAX_INFLIGHT, DEFAULT_MAX_INFLIGHT),
            "timeout": float(env_int(SERVE_TIMEOUT, int(DEFAULT_TIMEOUT))),
            "public": parse_public(os.environ.get(SERVE_PUBLIC, "")),
            "model": env_text(SERVE_MODEL),
            "audit_prompts": env_flag(AUDIT_PROMPTS),
            "audit_images": env_flag(AUDIT_IMAGES),
        }
        values.update(overrides)
        return cls(**values)

    def is_public(self, group: str) -> bool:
        return group in self.public


def parse_public(text: str) -> frozenset[str]:
    """`verify, resolution` -> {"verify", "resolution"} (blank: none)."""
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())
