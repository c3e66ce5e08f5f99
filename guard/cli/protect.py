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
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", "output_path", type=click.Path(dir_okay=False), help="Output file (.jpg, .png, .webp, ...)."
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
def protect(
    input_path: str,
    output_path: str | None,
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
    """Embed the watermark in IN, sign its Content Credentials, record it, and write OUT."""
    from guard.protect import Protector
    from guard.provenance.keys import SigningIdentity
    from guard.provenance.store import ManifestStore

    generator = {"model": model, "model_version": model_version} if model else None
    identity = SigningIdentity.load(chain=chain, key=key, tsa_url=tsa_url)
    with ManifestStore.open(store_url) as store:
        result = Protector.default(identity=identity, store=store).protect_file(
            click.format_filename(input_path),
            output_path,
            in_place=in_place,
            source_type=SOURCE_TYPES[source_type],
            init_image=init_image,
            generator=generator,
            prompt=prompt,
            include_prompt=include_prompt,
            training_mining=None if training_mining == "none" else training_mining,
        )
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(
        f"{result.output}: signed {result.manifest_id}, watermark {result.scheme} {result.payload.hex()}"
        + (" (parent ingredient kept)" if result.has_parent else "")
    )
