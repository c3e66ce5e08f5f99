"""`guard trust`: which C2PA trust lists verification uses (`show`), and installing a newer copy (`update`)."""

from __future__ import annotations

import click

from guard.cli.common import emit_json, json_option


@click.group("trust")
def trust() -> None:
    """The official C2PA trust lists that `guard verify` uses by default.

    The C2PA trust list (CAs of conforming signers) and the C2PA TSA trust list (time-stamping authorities)
    ship with the package; `guard trust update` installs a newer copy into GUARD_HOME, which then wins.
    """


@trust.command("show")
@json_option
def show(as_json: bool) -> None:
    """Print the lists in force: name, bundled or installed, source, date, number of certificates; and what
    the environment adds (GUARD_TRUST_LIST replaces the C2PA list, GUARD_TRUST_ANCHORS adds anchors)."""
    from guard.verify.trust import VerifyTrust

    described = VerifyTrust.default().describe()
    document = {
        "lists": described["lists"],
        "trust_list": described["trust_list"],
        "anchors": described["anchors"],
    }
    if as_json:
        emit_json(document)
        return
    for entry in document["lists"]:
        click.echo(f"{entry['name']}: {entry['certificates']} certificates, {entry['origin']}, dated {entry['date']}")
        click.echo(f"  source: {entry['source']}")
        click.echo(f"  file:   {entry['path']}")
    if document["trust_list"]:
        click.echo(f"GUARD_TRUST_LIST (replaces the C2PA trust list): {document['trust_list']}")
    for anchor in document["anchors"]:
        click.echo(f"added anchor: {anchor}")


@trust.command("update")
@click.argument("source", metavar="PATH|URL")
@click.option("--tsa", is_flag=True, help="Install the TSA trust list (default: the C2PA trust list).")
@json_option
def update(source: str, tsa: bool, as_json: bool) -> None:
    """Install a newer copy of the C2PA trust list (or, with --tsa, the TSA list) from a file or an http(s)
    URL into GUARD_HOME/trust/. The copy must be a PEM bundle of CA certificates; it is written in one atomic
    step, and a URL is downloaded only when this machine is online.

    The official lists: https://github.com/c2pa-org/conformance-public/tree/main/trust-list
    """
    from guard.verify.trust_lists import install

    installed = install(click.format_filename(source), "tsa" if tsa else "c2pa")
    if as_json:
        emit_json(installed.describe())
    else:
        click.echo(f"installed {installed.name}: {installed.certificates} certificates from {installed.source}")
        click.echo(f"  file: {installed.path}")
