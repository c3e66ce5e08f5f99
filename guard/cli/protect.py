"""`guard protect`: watermark an image, sign its Content Credentials and record it in the manifest store."""

from __future__ import annotations

import click

from guard.cli.common import emit_json, json_option
from guard.provenance.credentials.manifest import EDIT
from guard.provenance.credentials.source_types import DigitalSourceType

SOURCE_TYPES = {
    "generated": DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA,
    "composite": DigitalSourceType.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    "edit": EDIT,
}


@click.command("protect")
@click.argument("input_paths", metavar="IN...", nargs=-1, required=True, type=click.Path())
@click.option(
    "-o", "--output", "output_path", type=click.Path(dir_okay=False), help="Output file (.jpg, .png, .webp, ...)."
)
@click.option(
    "-d",
    "--output-dir",
    type=click.Path(file_okay=False),
    help="Output folder, for several inputs or folders (names kept; .png where the format cannot be written).",
)
@click.option("--in-place", is_flag=True, help="Replace the input file (atomically).")
@click.option(
    "--source-type",
    type=click.Choice(sorted(SOURCE_TYPES)),
    default="generated",
    show_default=True,
    help="generated: made by an AI model; composite: image-to-image; edit: an existing photo (no AI claim).",
)
@click.option(
    "--init-image", type=click.Path(dir_okay=False, exists=True), help="Image-to-image input, kept as an ingredient."
)
@click.option("--model", default=None, help="Model id that generated the image.")
@click.option("--model-version", default=None, help="Model version or revision.")
@click.option("--prompt", default=None, help="The prompt; only its SHA-256 is written unless --include-prompt.")
@click.option("--include-prompt", is_flag=True, help="Write the prompt itself into the manifest.")
@click.option(
    "--training-mining",
    type=click.Choice(["notAllowed", "allowed", "constrained", "none"]),
    default="notAllowed",
    show_default=True,
    help="AI training and data-mining permission written in the manifest (none: no such assertion).",
)
@click.option(
    "--cert",
    "chain",
    default=None,
    type=click.Path(dir_okay=False),
    help="Certificate chain (PEM); default GUARD_SIGN_CERT or the local identity.",
)
@click.option("--key", default=None, type=click.Path(dir_okay=False), help="Private key (PEM); default GUARD_SIGN_KEY.")
@click.option(
    "--tsa-url", default=None, help="RFC 3161 timestamp authority URL (default GUARD_TSA_URL; none: offline)."
)
@click.option(
    "--store",
    "store_url",
    default=None,
    help="Manifest store SQLAlchemy URL (default GUARD_STORE_URL or SQLite in GUARD_HOME).",
)
@click.option(
    "--require-watermark",
    is_flag=True,
    help="Refuse an image too small for the watermark instead of signing it without one.",
)
@json_option
@click.pass_context
def protect(
    ctx: click.Context,
    input_paths: tuple[str, ...],
    output_path: str | None,
    output_dir: str | None,
    in_place: bool,
    source_type: str,
    init_image: str | None,
    model: str | None,
    model_version: str | None,
    prompt: str | None,
    include_prompt: bool,
    training_mining: str,
    chain: str | None,
    key: str | None,
    tsa_url: str | None,
    store_url: str | None,
    require_watermark: bool,
    as_json: bool,
) -> None:
    """Embed the watermark in IN, sign its Content Credentials, record it, and write OUT.

    One input: `-o OUT` or `--in-place`. Several inputs or folders: `-d DIR` or `--in-place`; one line
    (JSON Lines with --json) per image, and exit code 2 if any image failed. An image too small for the
    watermark is signed without one (and says so), unless --require-watermark.
    """
    from functools import partial
    from pathlib import Path

    from guard.errors import GuardError
    from guard.protect import Protector, protect_paths

    sources = [Path(click.format_filename(p)) for p in input_paths]
    single = len(sources) == 1 and not sources[0].is_dir() and output_dir is None
    results = protect_paths(
        sources,
        output=output_path,
        output_dir=output_dir,
        in_place=in_place,
        init_image=init_image,
        protector=partial(
            Protector.from_env,
            chain=chain,
            key=key,
            tsa_url=tsa_url,
            store_url=store_url,
            require_watermark=require_watermark,
        ),
        source_type=SOURCE_TYPES[source_type],
        generator={"model": model, "model_version": model_version} if model else None,
        prompt=prompt,
        include_prompt=include_prompt,
        training_mining=None if training_mining == "none" else training_mining,
    )
    failed = False
    for outcome in results:
        if outcome.error is not None and single:
            raise GuardError(outcome.error)
        failed = failed or outcome.error is not None
        if as_json:
            emit_json(outcome.to_dict() if not single else outcome.value.to_dict())
        elif outcome.error is not None:
            click.echo(f"error: {outcome.path}: {outcome.error}", err=True)
        else:
            click.echo(_line(outcome.value))
    if failed:
        ctx.exit(2)


def _line(result) -> str:
    if result.scheme is None:
        mark = f"no watermark: {result.watermark_reason}"
    else:
        mark = f"watermark {result.scheme} {result.payload.hex()}"
    return f"{result.output}: signed {result.manifest_id}, {mark}" + (
        " (parent ingredient kept)" if result.has_parent else ""
    )
