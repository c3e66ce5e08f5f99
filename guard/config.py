"""Where the guard keeps its state, and the environment variables that override each setting."""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "GUARD_HOME"
ENV_POLICY = "GUARD_POLICY"
ENV_MAX_PIXELS = "GUARD_MAX_PIXELS"


def guard_home() -> Path:
    """The folder holding keys, trust anchors and the manifest store.

    `GUARD_HOME` wins; otherwise `$XDG_CONFIG_HOME/guard`, else `~/.config/guard`.
    """
    explicit = os.environ.get(ENV_HOME)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "guard"


def default_policy() -> str:
    """The policy used when a command is given none: `GUARD_POLICY`, else the bundled `default`."""
    return os.environ.get(ENV_POLICY, "default")


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
