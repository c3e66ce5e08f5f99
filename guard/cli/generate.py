"""`guard generate`: generate images behind the guard (a thin shell over `guard.generate.Guard.generate`)."""

from __future__ import annotations

import click

from guard.cli.common import emit_json, exit_code_for, json_option, policy_option


@click.command("generate")
@click.argument("prompt_words", metavar="PROMPT", nargs=-1, required=True)
@click.option(
    "--model", required=True, metavar="ID|PATH", help="Hub id (e.g. stabilityai/sd-turbo) or pipeline folder."
)
@click.option("--revision", default=None, help="Hub branch, tag or commit of the model (recorded as its version).")
@click.option(
    "-o", "--output-dir", required=True, type=click.Path(file_okay=False), help="Folder for the delivered images."
)
@click.option(
    "--review-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for images the policy holds for review (protected; default: not written).",
)
@click.option("--negative-prompt", default=None, help="What to steer away from (the policy adds its own terms).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the first image (image i: seed+i).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Denoising steps (default: the model's).")
@click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale (default: the model's).")
@click.option("--width", type=click.IntRange(min=8), default=None, help="Image width, a multiple of 8.")
@click.option("--height", type=click.IntRange(min=8), default=None, help="Image height, a multiple of 8.")
@click.option("--num-images", type=click.IntRange(min=1), default=1, show_default=True, help="Images to generate.")
@click.option("--init-image", type=click.Path(dir_okay=False), default=None, help="Image-to-image starting image.")
@click.option("--strength", type=float, default=0.8, show_default=True, help="How far to move from --init-image.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jpg", "png", "webp"]),
    default="jpg",
    show_default=True,
    help="Delivered file format (png: lossless, slower).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cuda, cuda:N, mps or cpu.")
@click.option(
    "--dtype", type=click.Choice(["float16", "bfloat16", "float32"]), default=None, help="Default: per device."
)
@click.option("--low-memory", is_flag=True, help="Attention and VAE slicing, and CPU offload on a GPU.")
@click.option("--offline", is_flag=True, help="Use only local files and the local Hugging Face cache.")
@policy_option
@json_option
@click.pass_context
def generate(
    ctx: click.Context,
    prompt_words: tuple[str, ...],
    model: str,
    revision: str | None,
    output_dir: str,
    review_dir: str | None,
    negative_prompt: str | None,
    seed: int | None,
    steps: int | None,
    guidance: float | None,
    width: int | None,
    height: int | None,
    num_images: int,
    init_image: str | None,
    strength: float,
    output_format: str,
    device: str,
    dtype: str | None,
    low_memory: bool,
    offline: bool,
    policy_ref: str | None,
    as_json: bool,
) -> None:
    """Generate images from PROMPT behind the guard.

    The prompt is checked first (a blocked prompt never reaches the model); every output is scored by the
    policy's detectors and delivered, blurred or withheld; delivered images carry an invisible watermark and
    signed Content Credentials. Diffusers' safety checker is off: the detectors and policy do its job and say
    why. One line per requested image (JSON Lines with --json); exit code 0 when everything was delivered
    as generated, 1 when anything was blocked, blurred or held for review, 2 for bad input.
    """
    from guard.generate import Guard

    _quiet_libraries()
    prompt = " ".join(prompt_words)
    with (
        Guard(
            policy_ref,
            device=device,
            dtype=dtype,
            low_memory=low_memory,
            local_files_only=True if offline else None,
            revision=revision,
            output_format=output_format,
        ) as guard,
        _StepProgress() as progress,
    ):
        records = guard.generate(
            prompt,
            model=model,
            output_dir=output_dir,
            negative_prompt=negative_prompt,
            seed=seed,
            steps=steps,
            guidance=guidance,
            width=width,
            height=height,
            num_images=num_images,
            init_image=init_image,
            strength=strength,
            review_dir=review_dir,
            on_step=progress.update,
        )
    for record in records:
        if as_json:
            emit_json(record.to_dict())
        else:
            click.echo(_line(record))
    ctx.exit(exit_code_for(record.decision for record in records))


def _line(record) -> str:
    """One human-readable line: decision, where the image went, and why."""
    if record.output is not None:
        where = str(record.output) + (" (blurred)" if record.blurred else "")
    elif record.stage == "prompt" and record.decision == "review":
        where = "not generated: the prompt needs review (--review-dir DIR generates it for a reviewer)"
    elif record.stage == "prompt":
        where = "not generated: the prompt was refused"
    elif record.review_output is not None:
        where = f"held for review in {record.review_output}"
    else:
        where = "withheld" + (" for review" if record.decision == "review" else "")
    seed = f"  seed {record.seed}" if record.seed is not None else ""
    why = "; ".join(f"{r['category']}: {r.get('evidence', r['rule'])}" for r in record.reasons)
    return f"{record.decision.upper():<7}{where}{seed}" + (f"  ({why})" if why else "")


class _StepProgress:
    """A rich progress bar over denoising steps, on stderr, shown only when stderr is a terminal."""

    def __enter__(self) -> _StepProgress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self._progress.__enter__()
        self._task = None
        return self

    def update(self, done: int, total: int) -> None:
        if self._task is None:
            self._task = self._progress.add_task("steps", total=total)
        self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, *exc_info) -> None:
        self._progress.__exit__(*exc_info)


def _quiet_libraries() -> None:
    """Keep stderr for our progress bar and errors: diffusers' and transformers' own bars and notices off."""
    import logging
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "critical")  # its load errors are ours to word
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for module in ("diffusers", "transformers", "huggingface_hub"):
        warnings.filterwarnings("ignore", module=module)
    for name in ("diffusers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.CRITICAL if name == "diffusers" else logging.ERROR)
