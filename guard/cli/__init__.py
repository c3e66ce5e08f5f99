"""The `guard` command: a click group whose subcommands load lazily, so `guard check-prompt` never imports torch."""

from __future__ import annotations

import importlib
import sys

import click

from guard import __version__
from guard.errors import user_errors

COMMANDS: dict[str, str] = {
    "audit": "guard.cli.audit:audit",
    "check-prompt": "guard.cli.check_prompt:check_prompt",
    "demo": "guard.cli.demo:demo",
    "filter-dataset": "guard.cli.filter_dataset:filter_dataset",
    "generate": "guard.cli.generate:generate",
    "keys": "guard.cli.keys:keys",
    "protect": "guard.cli.protect:protect",
    "scan": "guard.cli.scan:scan",
    "serve": "guard.cli.serve:serve",
    "trust": "guard.cli.trust:trust",
    "verify": "guard.cli.verify:verify",
    "watermark": "guard.cli.watermark:watermark",
}
"""Subcommand name -> "module:attribute". Each module is a thin shell over a library call."""


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs (or help lists it)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def main(self, *args, **kwargs):
        """Run, then exit like every `guard` command: usage mistakes too are one `error:` line and exit 2."""
        kwargs.pop("standalone_mode", None)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            click.echo(f"error: {' '.join(exc.format_message().split())}{where}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except user_errors() as exc:
            click.echo(f"error: {' '.join(str(exc).split())}", err=True)  # one line, whatever the message holds
            ctx.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="guard")
def cli() -> None:
    """Policy, detection and provenance for generated images.

    Exit codes: 0 done and everything allowed/clean, 1 something was blocked or needs review,
    2 bad input or usage.
    """


def main() -> None:
    """Console entry point."""
    cli.main()
