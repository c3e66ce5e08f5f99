"""`guard audit`: read the service's audit log (moderation decisions: who, when, what input, which decision)."""

from __future__ import annotations

import click

from guard.cli.common import emit_json, json_option

DECISIONS = ("allow", "blur", "review", "block", "signed")


@click.command("audit")
@click.option(
    "--since", default=None, metavar="WHEN", help="Only entries since then: 30m, 24h, 7d, or an ISO date/time."
)
@click.option(
    "--decision",
    "decisions",
    multiple=True,
    type=click.Choice(DECISIONS),
    help="Only these decisions (repeatable; `signed` is an image protected).",
)
@click.option(
    "--endpoint", default=None, help="Only one endpoint (prompts.check, images.scan, images.protect, generate)."
)
@click.option("--key", "key_id", default=None, metavar="KEY_ID", help="Only requests made with this API key id.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the most recent N entries.")
@click.option(
    "--store",
    "store_url",
    default=None,
    metavar="URL",
    help="Store database of the service (default GUARD_STORE_URL or the SQLite store in GUARD_HOME).",
)
@json_option
def audit(
    since: str | None,
    decisions: tuple[str, ...],
    endpoint: str | None,
    key_id: str | None,
    limit: int | None,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Print the audit log's entries, oldest first (JSON Lines with --json).

    Each entry: time, API key id, endpoint, SHA-256 of the input (prompt or image), decision, categories,
    reasons and policy. Prompt text and image bytes are there only if the service was told to keep them.
    """
    from guard.errors import GuardError
    from guard.provenance.credentials.store import default_url, existing_store
    from guard.serve.audit import AuditLog, parse_since

    moment = parse_since(since) if since else None
    url = store_url or default_url()
    store = existing_store(url)  # querying never creates a store
    if store is None:
        raise GuardError(f"There is no store at {url.removeprefix('sqlite:///')}: give --store or GUARD_STORE_URL.")
    with store:
        entries = AuditLog(store.engine).query(
            since=moment, decisions=decisions, endpoint=endpoint, key_id=key_id, limit=limit
        )
    for entry in entries:
        if as_json:
            emit_json(entry.to_dict())
            continue
        categories = ",".join(f"{k}:{v}" for k, v in sorted(entry.categories.items())) or "-"
        policy = f"{entry.policy.get('name')} {entry.policy.get('version')}" if entry.policy.get("name") else "-"
        click.echo(
            f"{entry.created:%Y-%m-%d %H:%M:%S}  {entry.endpoint:<14} {entry.decision:<7} {categories:<24} "
            f"key {entry.key_id or 'public'}  input {entry.input_sha256[:16]}  {policy}"
        )
    if not entries and not as_json:
        click.echo("no audit entries match", err=True)
