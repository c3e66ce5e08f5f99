"""Usage mistakes, like bad input, are one `error:` line on stderr and exit code 2, as for every command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GUARD = [str(Path(sys.executable).with_name("guard"))]
"""The installed console script, so messages name `guard` as users see it."""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["protect"], "error: Missing argument 'IN...'. (see `guard protect --help`)"),
        (["scan", "--batch-size", "0", "x.jpg"], "error: Invalid value for '--batch-size'"),
        (["no-such-command"], "error: No such command 'no-such-command'. (see `guard --help`)"),
        (
            ["check-prompt", "--no-such-flag", "x"],
            "error: No such option '--no-such-flag'. (see `guard check-prompt --help`)",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv, expected):
    result = subprocess.run([*GUARD, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(expected)


def test_help_and_decisions_keep_their_exit_codes():
    assert subprocess.run([*GUARD, "--help"], capture_output=True, timeout=120).returncode == 0
    assert subprocess.run([*GUARD, "check-prompt", "a lighthouse"], capture_output=True, timeout=120).returncode == 0
    assert subprocess.run([*GUARD, "check-prompt", "nude"], capture_output=True, timeout=120).returncode == 1
