"""What every subcommand shares: options, JSON output, exit codes, and the user-error types."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click

EXIT_CLEAN = 0
EXIT_FLAGGED = 1
EXIT_BAD_INPUT = 2

DECISION_COLOURS = {
    "allow": "green",
    "blur": "yellow",
    "review": "yellow",
    "block": "red",
    "error": "magenta",
    "keep": "green",
    "drop": "red",
}
"""Terminal colour of each decision (and of a file that could not be read), for every command; `keep` and
`drop` are the dataset filter's."""

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (JSON Lines for many inputs).")
policy_option = click.option(
    "--policy",
    "policy_ref",
    default=None,
    metavar="NAME|PATH",
    help="Bundled policy name (default, strict, dataset) or a YAML file; default from GUARD_POLICY.",
)


def emit_json(document: Any) -> None:
    """Print one JSON document on one line (a JSON Lines record)."""
    click.echo(json.dumps(document, ensure_ascii=False, default=str))


def exit_code_for(decisions: Iterable[str]) -> int:
    """0 when every decision is `allow`, else 1 (something was blocked, blurred or sent to review)."""
    return EXIT_CLEAN if all(d == "allow" for d in decisions) else EXIT_FLAGGED
