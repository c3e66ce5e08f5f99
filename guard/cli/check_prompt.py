"""`guard check-prompt`: check prompts or captions against a policy before any GPU time is spent."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from guard.cli.common import DECISION_COLOURS, emit_json, exit_code_for, json_option, policy_option


def _clean(text: str) -> str:
    """Replace undecodable bytes (smuggled in as surrogates by the OS) so output can always be printed."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _stdin_lines() -> Iterator[str]:
    for raw in sys.stdin.buffer:
        yield raw.decode("utf-8", "replace").rstrip("\r\n")


def _human_line(prompt: str, result: dict) -> str:
    label = click.style(f"{result['decision'].upper():<6}", fg=DECISION_COLOURS[result["decision"]], bold=True)
    shown = prompt if len(prompt) <= 80 else prompt[:77] + "..."
    why = "; ".join(
        f"{r['category']}: {r['rule']} {r['evidence']!r}"
        + (f" at {r['span'][0]}-{r['span'][1]}" if "span" in r else "")
        for r in result["reasons"]
    )
    return f"{label} {shown}" + (f"  ({why})" if why else "")


@click.command("check-prompt")
@click.argument("text", nargs=-1, required=True)
@policy_option
@json_option
@click.pass_context
def check_prompt(ctx: click.Context, text: tuple[str, ...], policy_ref: str | None, as_json: bool) -> None:
    """Check TEXT (or, with -, one prompt per line from stdin) against a policy.

    Several words are checked as one prompt. Exit code 0 when everything is allowed, 1 when something is
    blocked, blurred or sent to review, 2 for bad input (e.g. an invalid policy file).
    """
    from policies import decide_prompt, load_policy

    policy = load_policy(policy_ref)
    prompts = _stdin_lines() if text == ("-",) else iter([_clean(" ".join(text))])
    decisions: list[str] = []
    for prompt in prompts:
        result = decide_prompt(policy, prompt).to_dict()
        decisions.append(result["decision"])
        if as_json:
            emit_json({"prompt": prompt, **result})
        else:
            click.echo(_human_line(prompt, result))
        sys.stdout.flush()
    ctx.exit(exit_code_for(decisions))
