"""`guard demo`: the whole loop on a bundled sample, offline, in a throwaway home folder."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from guard.cli.common import DECISION_COLOURS, emit_json, json_option, policy_option


@click.command("demo")
@policy_option
@click.option(
    "--keep",
    "keep_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the demo's files (images, keys, manifest store) in this folder instead of a temporary one.",
)
@json_option
def demo(policy_ref: str | None, keep_dir: Path | None, as_json: bool) -> None:
    """Check example prompts, generate behind the guard, then scan, protect, strip and verify a sample photo.

    Runs offline with the embedded models, the bundled tiny diffusion pipeline (random weights: its images
    are noise, it shows the flow) and a fresh signing identity made for the demo; your own keys and manifest
    store are not touched.
    """
    from policies import load_policy

    policy = load_policy(policy_ref)
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
        report = _run(policy, keep_dir, as_json)
    else:
        with tempfile.TemporaryDirectory(prefix="guard-demo-") as tmp:
            report = _run(policy, Path(tmp), as_json)
    if as_json:
        emit_json(report)


def _run(policy, folder: Path, as_json: bool) -> dict[str, Any]:
    from rich.console import Console

    from guard import demo as steps

    console = Console(quiet=as_json, highlight=False)
    home = steps.DemoHome(folder / "home")
    sample = steps.sample_path()
    protected = folder / "protected.jpg"
    stripped = folder / "stripped.jpg"
    report: dict[str, Any] = {"policy": {"name": policy.name, "version": policy.version}, "folder": str(folder)}

    console.print(f"[bold]guard demo[/] — policy {policy.name} {policy.version}, files in {folder}")

    _title(console, 1, "Prompts are checked before any GPU time is spent")
    report["prompts"] = steps.check_prompts(policy)
    _prompt_table(console, report["prompts"])

    _title(console, 2, "Generate behind the guard (tiny offline pipeline with random weights: the image is noise)")
    home.init()
    report["generate"] = steps.generate(home, policy, folder / "generated")
    _generation_summary(console, report["generate"])

    _title(console, 3, f"Scan an upload ({sample.name}: {steps.SAMPLE_CREDIT})")
    report["scan"] = steps.scan(policy, sample)
    _scan_summary(console, report["scan"], policy)

    _title(console, 4, "Protect: invisible watermark + signed Content Credentials + manifest store")
    report["protect"] = steps.protect(home, sample, protected, _decision_only(report["scan"]))
    mark = report["protect"]["watermark"]
    console.print(f"  wrote {protected.name}: manifest {report['protect']['manifest_id']}")
    console.print(f"  watermark {mark['scheme']}, payload {mark['payload']} (its key in the manifest store)")

    _title(console, 5, "Verify the protected file")
    report["verify_protected"] = steps.verify(home, protected)
    _verify_summary(console, report["verify_protected"])

    how = f"metadata dropped, resized to {int(steps.STRIP_SCALE * 100)}%, JPEG {steps.STRIP_QUALITY}"
    _title(console, 6, f"Strip it as a platform would: {how}")
    report["strip"] = steps.strip_metadata(protected, stripped)
    console.print(f"  wrote {stripped.name}: {report['strip']['size'][0]}x{report['strip']['size'][1]}, no metadata")

    _title(console, 7, "Verify the stripped copy: the watermark leads back to the original credentials")
    report["verify_stripped"] = steps.verify(home, stripped)
    _verify_summary(console, report["verify_stripped"])
    recovered = (report["verify_stripped"].get("recovered") or {}).get("manifest_id")
    report["recovered_original"] = recovered == report["protect"]["manifest_id"]
    outcome = "[green]yes[/]" if report["recovered_original"] else "[red]no[/]"
    console.print(f"\n[bold]Original Content Credentials recovered after stripping:[/] {outcome}")
    return report


def _title(console, number: int, text: str) -> None:
    console.print(f"\n[bold cyan]{number}. {text}[/]")


def _decision_only(assessment: dict[str, Any]) -> dict[str, Any]:
    keys = ("decision", "categories", "reasons", "policy")
    return {key: assessment[key] for key in keys if key in assessment}


def _prompt_table(console, results: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(box=None, padding=(0, 2), show_header=True, header_style="bold")
    table.add_column("decision")
    table.add_column("prompt")
    table.add_column("why")
    for result in results:
        colour = DECISION_COLOURS[result["decision"]]
        why = "; ".join(f"{r['category']}: {r['rule']} ({r['evidence']!r})" for r in result["reasons"])
        table.add_row(f"[{colour}]{result['decision']}[/]", result["prompt"], why or "-")
    console.print(table)


def _generation_summary(console, records: list[dict[str, Any]]) -> None:
    for record in records:
        colour = DECISION_COLOURS[record["decision"]]
        console.print(f"  [{colour}]{record['decision']}[/] {record['prompt']!r}")
        if record["output"] is None:
            why = "; ".join(f"{r['category']}: {r['rule']}" for r in record["reasons"])
            console.print(f"    not generated: the prompt was refused before any model ran ({why})")
            continue
        mark = record["watermark"] or {}
        console.print(
            f"    {Path(record['output']).name}: seed {record['seed']}, {record['generation'].get('steps')} steps, "
            f"watermark {mark.get('scheme')} {mark.get('payload')}, manifest {record['manifest_id']}"
        )
        verdict = (record.get("verify") or {}).get("verdict") or {}
        state = ((record.get("verify") or {}).get("c2pa") or {}).get("state")
        console.print(f"    verified: credentials {state}, {verdict.get('origin')} ({verdict.get('strength')})")


def _scan_summary(console, assessment: dict[str, Any], policy) -> None:
    for name, status in assessment.get("detectors", {}).items():
        state = status.get("status", "ok") if isinstance(status, dict) else status
        if state != "ok":
            config = policy.detectors.get(name)
            kind = "required" if config is not None and config.required else "optional"
            console.print(f"  {name}: [yellow]{state}[/] ({kind}; the reason is in --json)")
    for detector, labels in assessment.get("scores", {}).items():
        shown = ", ".join(f"{label} {score:.3f}" for label, score in labels.items() if isinstance(score, float))
        console.print(f"  {detector}: {shown or 'no labels'}")
    colour = DECISION_COLOURS[assessment["decision"]]
    console.print(f"  decision: [{colour}]{assessment['decision']}[/]")


def _verify_summary(console, report: dict[str, Any]) -> None:
    c2pa = report.get("c2pa") or {}
    state = c2pa.get("state") or ("unreadable" if c2pa.get("present") else "none")
    console.print(f"  Content Credentials: {state}")
    for mark in report.get("watermarks", []):
        if mark.get("detected"):
            console.print(f"  watermark {mark['scheme']}: payload {mark['payload']} (confidence {mark['confidence']})")
    if report.get("recovered"):
        console.print(f"  recovered from the manifest store: {report['recovered'].get('manifest_id')}")
    verdict = report.get("verdict") or {}
    console.print(
        f"  verdict: [bold]{verdict.get('origin')}[/], {verdict.get('strength')} evidence, "
        f"integrity {verdict.get('integrity')}"
    )
    for reason in verdict.get("reasons", [])[:4]:
        console.print(f"    - {reason}")
