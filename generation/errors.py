"""Errors a user can fix while loading or running a generation model (one line, exit code 2 in the CLI)."""


class ModelLoadError(Exception):
    """A model that cannot be loaded: missing offline, not a diffusers pipeline, wrong device or dtype."""


class GenerationError(Exception):
    """Generation options the pipeline cannot honour (size, strength, steps), said before any GPU time."""
