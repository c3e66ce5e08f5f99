"""`guard filter-dataset INPUT... -o OUT`: drop unsafe, opted-out, AI-generated and duplicate training samples."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from guard.cli.common import DECISION_COLOURS, emit_json, json_option, policy_option


@click.command("filter-dataset")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option(
    "--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Where the work runs."
)
@click.option("--address", default=None, help="Ray cluster to join (auto, ray://host:10001); with --engine ray.")
@click.option(
    "--workers",
    type=click.IntRange(0),
    default=None,
    help="Worker processes (local; 0: in this process) or actors per stage (ray); default: one per CPU.",
)
@click.option("--resume", is_flag=True, help="Continue a job killed or stopped in OUT, skipping finished shards.")
@click.option("--overwrite", is_flag=True, help="Delete a previous job's outputs in OUT and start again.")
@policy_option
@click.option(
    "--opt-out",
    "opt_out",
    multiple=True,
    type=click.Path(path_type=Path),
    help="File of opt-outs, one a line: a domain, a URL prefix or artist:Name (repeatable).",
)
@click.option("--chunk-size", type=click.IntRange(1, 1024), default=16, show_default=True, help="Samples per batch.")
@click.option(
    "--shard-size", type=click.IntRange(1), default=1000, show_default=True, help="Images per shard of a folder input."
)
@click.option("--image-column", default=None, help="Parquet input: the column with image bytes or paths.")
@click.option("--caption-column", default=None, help="Parquet input: the column with captions.")
@json_option
def filter_dataset(
    inputs: tuple[Path, ...],
    output: Path,
    engine: str,
    address: str | None,
    workers: int | None,
    resume: bool,
    overwrite: bool,
    policy_ref: str | None,
    opt_out: tuple[Path, ...],
    chunk_size: int,
    shard_size: int,
    image_column: str | None,
    caption_column: str | None,
    as_json: bool,
) -> None:
    """Filter a training set (WebDataset tars, image folders with .txt captions, or Parquet) into OUT.

    Each sample's caption goes through the prompt policy, its image through two NSFW models (NudeNet and
    open_nsfw, both scores recorded), and its provenance is read: AI-generated (watermarks, C2PA source
    type, generator metadata), opted out of training (C2PA/CAWG training-mining, IPTC data mining,
    tdm-reservation and X-Robots-Tag noai headers, --opt-out lists), or a near-duplicate of an earlier
    sample. The policy (default: dataset) decides keep, drop or review.

    Writes OUT/shards/ (kept samples, in the input's layout), OUT/review/, OUT/samples.parquet (one row
    per sample: decision, reasons, every score and the evidence found) and OUT/summary.json (counts,
    throughput, and what other thresholds would have dropped). Exit code 0 when the job completed,
    whatever it dropped; 2 for bad input.
    """
    from guard.filter_dataset import filter_dataset as run_job

    show = not as_json and sys.stderr.isatty()
    bar = _ProgressBar() if show else None
    try:
        summary = run_job(
            inputs,
            output,
            policy=policy_ref,
            opt_out=opt_out,
            engine=engine,
            address=address,
            workers=workers,
            resume=resume,
            overwrite=overwrite,
            chunk_size=chunk_size,
            folder_shard_size=shard_size,
            image_column=image_column,
            caption_column=caption_column,
            progress=bar.update if bar else None,
        )
    finally:
        if bar:
            bar.stop()
    if as_json:
        emit_json(summary)
    else:
        _print_summary(summary)


class _ProgressBar:
    """Shards done, samples, samples/s, and drops so far, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("filtering shards"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[line]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = None

    def update(self, state: Any) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("filter", total=state.shards_total, line="")
        line = (
            f"{state.samples:,} samples  {state.rate:.1f}/s  dropped {state.dropped:,}  "
            f"review {state.review:,}  errors {state.errors:,}"
        )
        self.progress.update(self.task, completed=state.shards_done, line=line)

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="filter-dataset summary", header_style="bold")
    table.add_column("decision")
    table.add_column("samples", justify="right")
    for label, key in (("keep", "kept"), ("drop", "dropped"), ("review", "review"), ("error", "errors")):
        table.add_row(f"[{DECISION_COLOURS[label]}]{label}[/]", f"{summary[key]:,}")
    table.add_row("[bold]total[/]", f"{summary['samples']:,}")
    console.print(table)
    if summary["by_category"]:
        reasons = Table(title="samples by reason", header_style="bold")
        reasons.add_column("category")
        reasons.add_column("samples", justify="right")
        for category, count in summary["by_category"].items():
            reasons.add_row(category, f"{count:,}")
        console.print(reasons)
    if summary["tags"]:
        console.print("tagged (kept): " + ", ".join(f"{k} {v:,}" for k, v in summary["tags"].items()), highlight=False)
    speed = summary["throughput"]
    rate = speed["samples_per_second"]
    console.print(
        f"{speed['samples_scored']:,} samples scored on the {speed['engine']} engine with {speed['workers']} "
        f"worker{'s' if speed['workers'] != 1 else ''}"
        + (f" at {rate:.1f} samples/s" if rate else "")
        + f"; {summary['shards']['resumed']} of {summary['shards']['total']} shards were already done.",
        highlight=False,
    )
    for name, status in summary["detectors"].items():
        if status["status"] != "ok":
            console.print(f"detector {name} {status['status']}: {status.get('reason', '')}", highlight=False)
    outputs = summary["outputs"]
    console.print(f"kept samples in {outputs['shards']}; every sample's row in {outputs['samples']}", highlight=False)
