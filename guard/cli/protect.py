"""`guard protect`: watermark an image, sign its Content Credentials and record it in the manifest store."""

from __future__ import annotations

import click

from guard.cli.common import emit_json, json_option

SOURCE_TYPES = {
    "generated": "trainedAlgorithmicMedia",
    "composite": "compositeWithTrainedAlgorithmicMedia",
    "edit": "edit",
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
    as_json: bool,
) -> None:
    """Embed the watermark in IN, sign its Content Credentials, record it, and write OUT.

    One input: `-o OUT` or `--in-place`. Several inputs or folders: `-d DIR` or `--in-place`; one line
    (JSON Lines with --json) per image, and exit code 2 if any image failed.
    """
    from pathlib import Path

    from guard.errors import GuardError
    from guard.images import list_image_files
    from guard.protect import Protector, batch_outputs
    from guard.provenance.credentials.keys import SigningIdentity
    from guard.provenance.credentials.store import ManifestStore

    sources = [click.format_filename(p) for p in input_paths]
    single = len(sources) == 1 and not Path(sources[0]).is_dir() and output_dir is None
    if not single and output_path is not None:
        raise GuardError("-o names one output file; for several inputs or a folder use -d DIR.")
    if not single and init_image is not None:
        raise GuardError("--init-image belongs to one generated image; give one input with it.")
    options = {
        "source_type": SOURCE_TYPES[source_type],
        "generator": {"model": model, "model_version": model_version} if model else None,
        "prompt": prompt,
        "include_prompt": include_prompt,
        "training_mining": None if training_mining == "none" else training_mining,
    }
    if not single:
        list_image_files(sources)  # a folder without images is an error, before any key or store is opened
    identity = SigningIdentity.load(chain=chain, key=key, tsa_url=tsa_url)
    with ManifestStore.open(store_url) as store:
        protector = Protector.default(identity=identity, store=store)
        if single:
            result = protector.protect_file(
                sources[0], output_path, in_place=in_place, init_image=init_image, **options
            )
            _report(result, as_json)
            return
        failed = False
        for source, output in batch_outputs(sources, output_dir, in_place=in_place):
            try:
                if isinstance(output, GuardError):
                    raise output
                result = protector.protect_file(source, None if in_place else output, in_place=in_place, **options)
            except GuardError as exc:
                failed = True
                if as_json:
                    emit_json({"path": str(source), "error": str(exc)})
                else:
                    click.echo(f"error: {source}: {exc}", err=True)
                continue
            _report(result, as_json, source=source)
    if failed:
        ctx.exit(2)


def _report(result, as_json: bool, source=None) -> None:
    if as_json:
        emit_json({"path": str(source), **result.to_dict()} if source is not None else result.to_dict())
        return
    click.echo(
        f"{result.output}: signed {result.manifest_id}, watermark {result.scheme} {result.payload.hex()}"
        + (" (parent ingredient kept)" if result.has_parent else "")
    )
