"""`guard watermark embed|decode`: put a scheme's invisible mark into a copy of an image, or read marks from files."""

from __future__ import annotations

import click

from guard.cli.common import EXIT_BAD_INPUT, EXIT_CLEAN, EXIT_FLAGGED, emit_json, json_option


@click.group("watermark")
def watermark() -> None:
    """Embed or read invisible watermarks (ours and the known ones: Stable Diffusion, SDXL, rivaGan).

    decode exit codes: 0 no watermark found in any file, 1 a watermark was found in some file,
    2 bad usage or an unreadable file (the other files are still read and reported).
    """


@watermark.command("embed")
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Marked copy to write (.png, .jpg, .webp, .tif, .bmp); never the input.",
)
@click.option("--payload", default=None, metavar="HEX", help="Payload to embed, in hex (default: random bytes).")
@click.option("--scheme", default=None, metavar="NAME", help="Watermark scheme (default: the project's own).")
@json_option
def embed(input_path: str, output_path: str, payload: str | None, scheme: str | None, as_json: bool) -> None:
    """Write OUT: IN with an invisible watermark carrying PAYLOAD."""
    from guard.watermark import embed_file, parse_payload

    result = embed_file(
        input_path, output_path, scheme=scheme, payload=parse_payload(payload) if payload is not None else None
    )
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(f"{result.output}: {result.scheme} watermark, payload {result.payload.hex()}")
    if not result.readable:
        click.echo(
            f"warning: the {result.scheme} mark does not read back from {result.output}; a lossless format "
            "(.png) may keep it.",
            err=True,
        )


@watermark.command("decode")
@click.argument("paths", metavar="FILE...", nargs=-1, required=True, type=click.Path())
@click.option(
    "--scheme",
    "schemes",
    multiple=True,
    metavar="NAME",
    help="Scheme to read (repeatable; default: every scheme the verifier tries).",
)
@click.option(
    "--expect",
    default=None,
    metavar="HEX",
    help="Payload to test for, for schemes that cannot detect an unknown payload (rivaGan).",
)
@json_option
@click.pass_context
def decode(ctx: click.Context, paths: tuple[str, ...], schemes: tuple[str, ...], expect: str | None, as_json: bool):
    """Read watermarks from each FILE: one line per file (JSON Lines with --json)."""
    from guard.images import list_image_files
    from guard.watermark import decode_files, parse_payload

    expected = parse_payload(expect) if expect is not None else None
    found = failed = False
    for record in decode_files(list_image_files(paths), schemes or None, expect=expected):
        failed |= "error" in record
        found |= bool(record.get("detected"))
        if as_json:
            emit_json(record)
        else:
            click.echo(_describe(record), err="error" in record)
    ctx.exit(EXIT_BAD_INPUT if failed else EXIT_FLAGGED if found else EXIT_CLEAN)


def _describe(record: dict) -> str:
    if "error" in record:
        return f"error: {record['error']}"
    path = record["path"]
    if record["detected"]:
        found = f"{record['scheme']} watermark, payload {record['payload']}"
        return f"{path}: {found} (confidence {record['confidence']:.2f})"
    tried = ", ".join(mark["scheme"] for mark in record["watermarks"])
    undecided = [
        f"; {mark['scheme']} read {mark['bits_read']}, which says nothing without --expect"
        for mark in record["watermarks"]
        if mark.get("decidable") is False
    ]
    return f"{path}: no watermark found ({tried}){''.join(undecided)}"
