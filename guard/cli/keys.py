"""`guard keys`: create the local signing identity and show which identity signs."""

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
