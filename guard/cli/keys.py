"""`guard keys`: create the local signing identity and show which identity signs; `guard keys api`: API keys
for `guard serve`."""

from __future__ import annotations

import os

import click

from guard.cli.common import emit_json, json_option


@click.group("keys")
def keys() -> None:
    """The signing identity behind Content Credentials (certificate chain + private key)."""


@keys.command("init")
@click.option(
    "--org", "organization", default="image-guard", show_default=True, help="Organisation named in the certificates."
)
@click.option("--name", "common_name", default=None, help="Common name of the signing certificate.")
@click.option("--days", default=730, show_default=True, type=int, help="Validity of the signing certificate.")
@click.option(
    "--encrypt",
    is_flag=True,
    help="Encrypt the private key with a password (from GUARD_SIGN_KEY_PASSWORD, else asked for).",
)
@click.option("--force", is_flag=True, help="Replace an existing identity.")
@json_option
def init(organization: str, common_name: str | None, days: int, encrypt: bool, force: bool, as_json: bool) -> None:
    """Create a local root CA and an ES256 signing certificate under GUARD_HOME/keys."""
    from guard.provenance.credentials.keys import (
        SigningIdentity,
        init_identity,
        local_trust_anchor,
    )
    from guard.settings import SIGN_KEY_PASSWORD

    password = None
    if encrypt:
        password = os.environ.get(SIGN_KEY_PASSWORD) or click.prompt(
            "Password for the private key", hide_input=True, confirmation_prompt=True
        )
    folder = init_identity(
        organization=organization, common_name=common_name, days=days, password=password, force=force
    )
    identity = SigningIdentity.load(password=password)
    summary = {**identity.describe(), "trust_anchor": str(local_trust_anchor()), "folder": str(folder)}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"Signing identity created in {folder}")
    _print(summary)
    click.echo("Give verifiers the trust anchor above (ca.pem) so they report your images as Trusted.")


@keys.command("show")
@click.option("--cert", "chain", default=None, type=click.Path(dir_okay=False), help="Certificate chain (PEM).")
@click.option("--key", default=None, type=click.Path(dir_okay=False), help="Private key (PEM).")
@json_option
def show(chain: str | None, key: str | None, as_json: bool) -> None:
    """Show the identity that signs (never the private key) and where its files are."""
    from guard.provenance.credentials.keys import CHAIN_FILE, SigningIdentity, keys_dir, local_trust_anchor

    identity = SigningIdentity.load(chain=chain, key=key)
    is_local = identity.chain_path == keys_dir() / CHAIN_FILE
    anchor = local_trust_anchor() if is_local else None
    summary = {**identity.describe(), "trust_anchor": str(anchor) if anchor else None}
    if as_json:
        emit_json(summary)
        return
    _print(summary)


def _print(summary: dict) -> None:
    width = max(len(k) for k in summary)
    for name, value in summary.items():
        click.echo(f"{name.replace('_', ' '):<{width}}  {value if value is not None else '-'}")


store_option = click.option(
    "--store",
    "store_url",
    default=None,
    metavar="URL",
    help="Store database holding the keys (default GUARD_STORE_URL or the SQLite store in GUARD_HOME).",
)


@keys.group("api")
def api() -> None:
    """API keys for `guard serve` (kept hashed in the store database, shared by every replica)."""


@api.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    metavar="SCOPES",
    help="What the key may do, comma-separated or repeated: scan, protect, verify, generate, admin.",
)
@click.option("--name", default="", help="A name to recognise the key by (who or what uses it).")
@store_option
@json_option
def api_create(scopes: tuple[str, ...], name: str, store_url: str | None, as_json: bool) -> None:
    """Create an API key and print it once (only its SHA-256 is kept: store it now)."""
    from guard.provenance.credentials.store import ManifestStore
    from guard.serve.keys import ApiKeys, parse_scopes

    wanted = parse_scopes(scopes)
    with ManifestStore.open(store_url) as store:
        record, key = ApiKeys(store.engine).create(wanted, name)
    if as_json:
        emit_json({**record.to_dict(), "key": key})
        return
    click.echo(key)
    click.echo(
        f"key id {record.key_id} ({record.name}), scopes {', '.join(sorted(record.scopes))}. "
        "This is the only time the key is shown.",
        err=True,
    )


@api.command("list")
@store_option
@json_option
def api_list(store_url: str | None, as_json: bool) -> None:
    """List API keys (ids, names, scopes, when created and revoked; never the keys)."""
    from guard.provenance.credentials.store import ManifestStore
    from guard.serve.keys import ApiKeys

    with ManifestStore.open(store_url) as store:
        records = ApiKeys(store.engine).list()
    for record in records:
        if as_json:
            emit_json(record.to_dict())
            continue
        state = f"revoked {record.revoked:%Y-%m-%d %H:%M}" if record.revoked else "active"
        click.echo(
            f"{record.key_id}  {record.name:<20}  {','.join(sorted(record.scopes)):<28}  "
            f"created {record.created:%Y-%m-%d %H:%M}  {state}"
        )
    if not records and not as_json:
        click.echo("no API keys; create one with `guard keys api create --scope ...`", err=True)


@api.command("revoke")
@click.argument("key_id")
@store_option
@json_option
def api_revoke(key_id: str, store_url: str | None, as_json: bool) -> None:
    """Revoke the key KEY_ID (replicas stop accepting it within 30 seconds)."""
    from guard.provenance.credentials.store import ManifestStore
    from guard.serve.keys import ApiKeys

    with ManifestStore.open(store_url) as store:
        record = ApiKeys(store.engine).revoke(key_id)
    if as_json:
        emit_json(record.to_dict())
        return
    click.echo(f"revoked {record.key_id} ({record.name}) at {record.revoked:%Y-%m-%d %H:%M:%S} UTC")
