"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""


class GuardError(Exception):
    """A problem with the user's input or setup, stated as one sentence that says what to do."""


class ImageError(GuardError):
    """An image that cannot be read safely: empty, not an image, truncated, too large, unsupported."""


class ConfigError(GuardError):
    """A setting, key, certificate or file the user pointed to is missing or wrong."""
