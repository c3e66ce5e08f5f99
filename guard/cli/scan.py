"""`guard scan PATH...`: score images and folders with the policy's detectors and print each decision with reasons."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from guard.cli.common import DECISION_COLOURS, EXIT_BAD_INPUT, emit_json, exit_code_for, json_option, policy_option


def _why(result: dict) -> str:
    parts = []
    for reason in result["reasons"]:
        if "label" in reason:
            parts.append(f"{reason['category']}: {reason['label']} {reason['score']:.2f} >= {reason['threshold']:g}")
        else:
            parts.append(f"{reason['category']}: {reason['evidence']}")
    return "; ".join(parts)


def _scores(result: dict) -> str:
    return "  ".join(f"{label} {score:.2f}" for labels in result["scores"].values() for label, score in labels.items())


def _human_line(result: dict) -> str:
    if "error" in result:
        return f"{click.style('ERROR ', fg=DECISION_COLOURS['error'], bold=True)} {result['error']}"
    decision = result["decision"]
    label = click.style(f"{decision.upper():<6}", fg=DECISION_COLOURS[decision], bold=True)
    why = _why(result)
    return f"{label} {result['path']}  {_scores(result)}" + (f"  ({why})" if why else "")


def _summary(counts: Counter, detectors: dict[str, dict[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="scan summary", show_header=True, header_style="bold")
    table.add_column("result")
    table.add_column("images", justify="right")
    for key in ("allow", "blur", "review", "block", "error"):
        if counts.get(key):
            table.add_row(f"[{DECISION_COLOURS[key]}]{key}[/]", str(counts[key]))
    table.add_row("[bold]total[/]", str(sum(counts.values())))
    console.print(table)
    for name, status in detectors.items():
        if status["status"] != "ok":
            console.print(f"detector {name} {status['status']}: {status.get('reason', '')}", highlight=False)


@click.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@policy_option
@json_option
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1, 1024), help="Images per batch.")
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Search folders' subfolders too.")
@click.pass_context
def scan(
    ctx: click.Context, paths: tuple[Path, ...], policy_ref: str | None, as_json: bool, batch_size: int, recursive: bool
) -> None:
    """Score images (files, or folders searched recursively) and decide on each with the policy.

    Prints one line per image (with --json one JSON line: path, decision, scores, reasons, ...; or path and
    error for a file that cannot be read) and a summary. Exit code 0 when every image is allowed, 1 when
    any is blurred, sent to review or blocked, 2 for bad input — including any unreadable file (the scan
    still goes through every other file first).
    """
    from guard.images import list_image_files
    from guard.scan import detectors_for, scan_paths
    from policies import load_policy

    policy = load_policy(policy_ref)
    detectors = detectors_for(policy)
    files = list_image_files(paths, recursive=recursive)
    counts: Counter = Counter()
    statuses: dict[str, dict[str, str]] = {}
    results = scan_paths(paths, policy, detectors, batch_size=batch_size, files=files)
    show_progress = not as_json and _stderr_is_terminal() and any(p.is_dir() for p in paths)
    progress = _progress() if show_progress else None
    task = progress.add_task("scanning", total=len(files)) if progress else None
    try:
        if progress:
            progress.start()
        for result in results:
            record = result.to_dict()
            counts[result.decision or "error"] += 1
            if result.assessment:
                statuses.update(result.assessment.detectors)
            if as_json:
                emit_json(record)
            else:
                click.echo(_human_line(record))
            sys.stdout.flush()
            if progress:
                progress.advance(task)
    finally:
        if progress:
            progress.stop()
    if not as_json:
        _summary(counts, statuses)
    if counts.get("error"):
        ctx.exit(EXIT_BAD_INPUT)
    ctx.exit(exit_code_for(key for key in counts if counts[key]))


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
