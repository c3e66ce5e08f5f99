"""The verifier: where does an image come from? Evidence (C2PA, watermarks, recovery, metadata, classifier)
and a careful verdict. `verify_file` for one file, `Verifier` for many, `render_terminal` to show a report."""

from guard.verify.report import VerifyReport
from guard.verify.verifier import Verifier, verify_file, verify_paths


def render_terminal(report: VerifyReport, console=None) -> None:
    """Print a report with rich (imported on use, so JSON-only callers never load it)."""
    from guard.verify.render import render_terminal as render

    render(report, console)


__all__ = ["Verifier", "VerifyReport", "render_terminal", "verify_file", "verify_paths"]
