"""`guard verify`: where does an image come from? Evidence and a careful verdict, for one file or many."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from guard.cli.common import EXIT_BAD_INPUT, EXIT_CLEAN, EXIT_FLAGGED, emit_json, json_option
from guard.settings import RESOLVER_URL


@click.command("verify")
@click.argument("input_paths", metavar="IMAGE...", nargs=-1, required=True, type=click.Path())
@json_option
@click.option(
    "--html",
    "html_path",
    type=click.Path(),
    help="Also write an HTML report. One image: its page. Several images or a folder: a PATH ending in .html gets "
    "one self-contained sortable page (a row per file, each opening its full report); any other PATH is a folder "
    "of per-file pages with an index.html.",
)
@click.option(
    "--trust-anchors",
    multiple=True,
    metavar="PATH|URL",
    help="PEM trust anchors, repeatable; added to the official C2PA lists, GUARD_TRUST_ANCHORS and the local CA.",
)
@click.option(
    "--no-default-trust",
    is_flag=True,
    help="Do not use the official C2PA trust list and TSA list (see `guard trust show`); GUARD_TRUST_LIST, "
    "GUARD_TRUST_ANCHORS and --trust-anchors still apply.",
)
@click.option(
    "--allowed-list", multiple=True, metavar="PATH|URL", help="PEM end-entity certificates trusted as they are."
)
@click.option(
    "--trust-config",
    type=click.Path(dir_okay=False),
    help="More extended key usage OIDs to accept in signing certificates, one a line (c2patool's trust_config).",
)
@click.option("--no-local-anchor", is_flag=True, help="Do not trust this installation's own CA (guard keys init).")
@click.option("--fetch-remote", is_flag=True, help="Download manifests that live at a URL (offline by default).")
@click.option(
    "--conforming-products",
    metavar="PATH|URL",
    default=None,
    help="C2PA conforming products list (JSON); default GUARD_CONFORMING_PRODUCTS.",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    metavar="URL",
    help="Manifest store to recover from (default GUARD_STORE_URL or the SQLite store in GUARD_HOME, if it exists).",
)
@click.option("--no-store", is_flag=True, help="Do not look in any local manifest store.")
@click.option(
    "--resolver",
    "resolver_url",
    default=None,
    metavar="URL",
    help=f"C2PA soft binding resolution service URL (or {RESOLVER_URL}).",
)
@click.option(
    "--classifier/--no-classifier",
    default=None,
    help="Run the synthetic-image classifier (default: when GUARD_SYNTHETIC_WEIGHTS is configured).",
)
@click.pass_context
def verify(
    ctx: click.Context,
    input_paths: tuple[str, ...],
    as_json: bool,
    html_path: str | None,
    trust_anchors: tuple[str, ...],
    no_default_trust: bool,
    allowed_list: tuple[str, ...],
    trust_config: str | None,
    no_local_anchor: bool,
    fetch_remote: bool,
    conforming_products: str | None,
    store_url: str | None,
    no_store: bool,
    resolver_url: str | None,
    classifier: bool | None,
) -> None:
    """Gather the evidence IMAGE carries (Content Credentials, watermarks, manifest store, metadata) and say
    where it comes from.

    One image: a report (JSON with --json). Several images or a folder: one JSON line per image and a
    progress bar. Exit codes: 0 nothing to flag (which is not a claim of authenticity), 1 an image shows AI
    involvement or credentials that fail validation, 2 bad input or usage (for many images: any unreadable).
    """
    from guard.errors import GuardError
    from guard.verify import Verifier

    sources = [click.format_filename(p) for p in input_paths]
    single = len(sources) == 1 and not Path(sources[0]).is_dir()
    if html_path and not single and Path(html_path).is_file() and not _is_page(Path(html_path)):
        raise GuardError(
            f"--html {html_path} is a file; for several images give a .html file for one page, or a folder for pages."
        )
    if html_path and single and Path(html_path).exists() and Path(html_path).samefile(sources[0]):
        raise GuardError(f"--html {html_path} is the image being verified; give another file for the report.")
    with Verifier.from_env(
        trust_anchors=trust_anchors,
        allowed_list=allowed_list,
        trust_config=trust_config,
        local_anchor=not no_local_anchor,
        default_trust=not no_default_trust,
        fetch_remote=fetch_remote,
        conforming_products=conforming_products,
        store_url=store_url,
        use_store=not no_store,
        resolver_url=resolver_url,
        classifier=classifier,
    ) as verifier:
        if single:
            report = verifier.verify_file(sources[0])
            if html_path:
                from guard.verify.html import write_html

                write_html(report, html_path)
            if as_json:
                emit_json(report.to_dict())
            else:
                from guard.verify import render_terminal

                render_terminal(report)
            ctx.exit(EXIT_FLAGGED if report.flagged else EXIT_CLEAN)
        ctx.exit(_verify_many(verifier, sources, Path(html_path) if html_path else None))


def _verify_many(verifier, sources: list[str], html: Path | None) -> int:
    """JSON Lines on stdout; with `html`, one page for the batch (`*.html`) or a folder of pages and its index."""
    from rich.console import Console
    from rich.progress import Progress

    from guard.images import list_image_files
    from guard.verify import verify_paths
    from guard.verify.html_batch import BatchPage
    from guard.verify.verifier import VERIFY_SUFFIXES

    files = list_image_files(sources, suffixes=VERIFY_SUFFIXES)
    flagged = failed = False
    pages = html if html is not None and not _is_page(html) else None
    batch = BatchPage(title=f"guard verify: {', '.join(sources)}", base=pages) if html is not None else None
    written: set[Path] = {pages / "index.html"} if pages is not None else set()
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("verifying", total=len(files))
        for outcome in verify_paths(files, verifier):
            failed = failed or not outcome.ok
            document = outcome.to_dict()
            if outcome.ok:
                flagged = flagged or outcome.value.flagged
                page = None
                if pages is not None:
                    from guard.verify.html import write_html

                    page = _page_name(pages, outcome.path, written)
                    write_html(outcome.value, page)
                    document["html"] = str(page)
                if batch is not None:
                    batch.add(outcome.value, page, document)
            elif batch is not None:
                batch.add_error(str(outcome.path), outcome.error)
            emit_json(document)
            progress.advance(task)
    if batch is not None:
        batch.write(pages / "index.html" if pages is not None else html)
    if failed:
        return EXIT_BAD_INPUT
    return EXIT_FLAGGED if flagged else EXIT_CLEAN


def _is_page(path: Path) -> bool:
    """Whether --html names one page (a .html file) rather than a folder of pages."""
    return path.suffix.lower() in (".html", ".htm") and not path.is_dir()


def _page_name(folder: Path, image: Path, written: set[Path]) -> Path:
    """`<folder>/<image name>.html`, numbered when two images share a name."""
    page = folder / f"{image.name}.html"
    number = 1
    while page in written:
        number += 1
        page = folder / f"{image.name}-{number}.html"
    written.add(page)
    return page
