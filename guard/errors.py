"""Errors a user can fix, and the one place that says which exceptions mean "exit code 2, one line".

`guard`'s own errors are `GuardError` and its kinds; the lower packages own theirs (`policies.errors`,
`detectors.errors`, `generation.errors`) and never import `guard`. `user_errors()` lists them all: the CLI
prints any of them as one line and exits with code 2, library loops turn them into per-file error values,
and the service answers them with a 4xx problem document. (A function, not a constant: importing a lower
package's errors imports that package, which a command that never touches it should not pay for; an
`except user_errors():` clause is only evaluated when something was raised.)
"""

from functools import cache


class GuardError(Exception):
    """A problem with the user's input or setup, stated as one sentence that says what to do."""


class ImageError(GuardError):
    """An image that cannot be read safely: empty, not an image, truncated, too large, unsupported."""


class UnsupportedImageError(ImageError):
    """Data that is not an image, or an image format we do not decode (PDF, SVG, PSD, ...)."""


class ImageTooLargeError(ImageError):
    """An image over the pixel cap (a decompression bomb, or simply too many pixels)."""


class ConfigError(GuardError):
    """A setting, key, certificate or file the user pointed to is missing or wrong."""


@cache
def user_errors() -> tuple[type[Exception], ...]:
    """Every exception type that means the user's input or setup is wrong (not a bug)."""
    from detectors.errors import DetectorError
    from generation.errors import GenerationError, ModelLoadError
    from policies.errors import PolicyError

    return (GuardError, PolicyError, DetectorError, ModelLoadError, GenerationError)
