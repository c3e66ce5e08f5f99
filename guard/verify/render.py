"""The verification report in a terminal, with rich: verdict first, then the evidence, then the history."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from guard.verify.integrity import LEVELS
from guard.verify.report import VerifyReport

ORIGIN_STYLE = {"ai-generated": "bold red", "ai-edited": "bold yellow", "captured (claimed)": "bold cyan"}
INTEGRITY_STYLE = {"intact": "green", "tampered": "bold red", "unverified": "yellow", "no credentials": "dim"}


def render_terminal(report: VerifyReport, console: Console | None = None) -> None:
    console = console or Console()
    document = report.to_dict()
    verdict = document["verdict"]
    headline = (
        f"[{ORIGIN_STYLE.get(verdict['origin'], 'bold')}]{escape(verdict['origin'])}[/] · "
        f"evidence [bold]{verdict['strength']}[/] · "
        f"integrity [{INTEGRITY_STYLE.get(verdict['integrity'], 'bold')}]{verdict['integrity']}[/]"
    )
    reasons = "\n".join(f"• {escape(r)}" for r in verdict["reasons"])
    console.print(Panel(f"{headline}\n\n{reasons}", title=escape(document["path"]), title_align="left"))
    console.print(evidence_table(document))
    c2pa = document["c2pa"]
    if c2pa.get("failures"):
        failures = Table("code", "meaning", "where", title="Validation failures", title_justify="left")
        for failure in c2pa["failures"]:
            failures.add_row(escape(failure["code"]), escape(failure["explanation"]), escape(failure["where"]))
        console.print(failures)
    for title, manifest in (
        ("Content Credentials", c2pa),
        ("Recovered manifest", (document["recovered"] or {}).get("manifest")),
    ):
        if manifest and manifest.get("actions") is not None:
            console.print(history_tree(title, manifest))


def evidence_table(document: dict[str, Any]) -> Table:
    """One row per source of evidence: what it says, in a line."""
    table = Table("evidence", "finding", title="Evidence", title_justify="left", show_lines=False)
    for source, finding in evidence_rows(document):
        table.add_row(escape(source), escape(finding))
    return table


def evidence_rows(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, finding) pairs shared by the terminal and HTML reports."""
    c2pa = document["c2pa"]
    rows: list[tuple[str, str]] = []
    if not c2pa["present"]:
        rows.append(("Content Credentials", "none in the file"))
    elif c2pa["state"] is None:
        rows.append(("Content Credentials", f"present, not verified: {c2pa.get('error')}"))
    else:
        signer = c2pa.get("signer") or {}
        rows.append(
            (
                "Content Credentials",
                f"{c2pa['state']}; manifest {c2pa['manifest_id']}; signed by {signer.get('common_name')} "
                f"({signer.get('organization')}), issuer {signer.get('issuer')}, at {c2pa.get('signing_time') or '?'}",
            )
        )
        trusted_by = c2pa.get("trusted_by")
        if trusted_by:
            when = ", ".join(v for v in (trusted_by.get("origin"), trusted_by.get("date")) if v)
            rows.append(("trusted through", f"{trusted_by['list']}" + (f" ({when})" if when else "")))
        rows.append(("claim generator", str(c2pa.get("claim_generator"))))
        if c2pa.get("digital_source_type"):
            field = c2pa.get("digital_source_type_field")
            where = f", from {field}" if field and field != "digitalSourceType" else ""
            rows.append(
                ("digital source type", f"{c2pa['digital_source_type_label']} ({c2pa['digital_source_type']}{where})")
            )
        if c2pa.get("ai_tool"):
            rows.append(("AI tool", ai_tool_line(c2pa["ai_tool"])))
        rubric = c2pa.get("rubric_integrity") or {}
        levels = ", ".join(f"{level.replace('_', '-')} {'yes' if rubric.get(level) else 'no'}" for level in LEVELS)
        rows.append(("integrity rubric", levels))
        product = c2pa.get("conforming_product") or {}
        rows.append(("conforming product", f"{product.get('status')}: {product.get('reason')}"))
        for identity in c2pa.get("identities") or []:
            trusted = "trusted" if identity["trusted"] else "not trusted"
            rows.append(
                (
                    "identity (CAWG)",
                    f"{identity['common_name']} ({identity['organization']}), {identity['sig_type']}, {trusted}; "
                    f"vouches for {', '.join(identity['referenced_assertions'])}",
                )
            )
        if c2pa.get("training_mining"):
            uses = ", ".join(f"{k.removeprefix('c2pa.')}: {v}" for k, v in c2pa["training_mining"].items())
            rows.append(("AI training / mining", uses))
    if c2pa.get("remote_url"):
        fetched = "fetched" if c2pa.get("remote_fetched") else "not fetched (offline)"
        rows.append(("remote manifest", f"{c2pa['remote_url']} — {fetched}"))
    signals = document.get("signals") or {}
    if signals.get("source"):
        listed = ", ".join(signals["inception"] + signals["transformation"]) or "none"
        rows.append((f"rubric signals ({signals['source']})", listed))
    for mark in document["watermarks"]:
        if mark.get("error"):
            rows.append((f"watermark {mark['scheme']}", f"not read: {mark['error']}"))
        elif mark["detected"]:
            confidence = f", confidence {mark['confidence']}" if mark.get("confidence") is not None else ""
            rows.append((f"watermark {mark['scheme']}", f"present, payload {mark['payload']}{confidence}"))
        else:
            rows.append((f"watermark {mark['scheme']}", "not found"))
    recovered = document.get("recovered")
    if recovered:
        rows.append(
            (
                f"recovered ({recovered['via']})",
                f"{recovered['manifest_id']} from {recovered['source']}: {recovered['explanation']}",
            )
        )
    elif document.get("resolver"):
        resolver = document["resolver"]
        rows.append(("resolver", resolver.get("error") or f"{resolver['url']}: no match"))
    for hint in (document.get("metadata") or {}).get("hints", []):
        rows.append((f"metadata {hint['source']}", f"{hint['origin']}: {hint['detail']}"))
    synthetic = document.get("synthetic") or {}
    if synthetic.get("status") == "ran":
        rows.append(("synthetic classifier", f"score {synthetic['score']} (threshold {synthetic['threshold']})"))
    else:
        rows.append(("synthetic classifier", synthetic.get("reason") or "not run"))
    return rows


def ai_tool_line(tool: dict[str, Any], *, with_field: bool = True) -> str:
    """`Seedance — model seedance, version seedance_2.0 — by Adobe Firefly (partner models) (from …details)`."""
    parts = [str(tool["name"])]
    details = ", ".join(f"{k} {tool[k]}" for k in ("model", "version") if tool.get(k))
    if details:
        parts.append(details)
    if tool.get("producer"):
        parts.append(f"by {tool['producer']}")
    return " — ".join(parts) + (f" (from {tool['field']})" if with_field else "")


def history_tree(title: str, manifest: dict[str, Any]) -> Tree:
    """The manifest's actions and its ingredients, recursively."""
    signer = (manifest.get("signer") or {}).get("common_name")
    tree = Tree(f"[bold]{escape(title)}[/]: {escape(str(manifest.get('title')))} — {escape(str(signer))}")
    for action in manifest.get("actions") or []:
        tree.add(escape(action_line(action)))
    _ingredients(tree, manifest.get("ingredients") or [])
    return tree


def action_line(action: dict[str, Any]) -> str:
    parts = [str(action.get("action"))]
    if action.get("digital_source_type_label"):
        parts.append(f"— {action['digital_source_type_label']}")
    if action.get("software_agent"):
        parts.append(f"by {action['software_agent']}")
    return " ".join(parts)


def ingredient_line(node: dict[str, Any]) -> str:
    line = f"{node.get('relationship')}: {node.get('title')}"
    if node.get("manifest_id"):
        line += f" — signed by {node.get('signer')} ({node.get('claim_generator')})"
        if node.get("actions"):
            line += f"; actions {', '.join(map(str, node['actions']))}"
    else:
        line += f" — {node.get('note')}"
    return line


def _ingredients(tree: Tree, nodes: list[dict[str, Any]]) -> None:
    for node in nodes:
        branch = tree.add(escape(ingredient_line(node)))
        _ingredients(branch, node.get("ingredients") or [])
