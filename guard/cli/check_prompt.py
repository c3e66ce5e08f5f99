"""`guard check-prompt`: check prompts or captions against a policy before any GPU time is spent."""

from __future__ import annotations

import itertools
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


BATCH = 256
"""Prompts read from a pipe go through the classifier this many at a time (one at a time from a terminal)."""


def _reason_text(reason: dict) -> str:
    """One reason for the terminal: the rule and the part of the prompt; for the classifier also its score
    against the threshold and the ids of the nearest labelled examples (never their text)."""
    text = f"{reason['category']}: {reason['rule']}"
    if "score" in reason and "threshold" in reason:
        text += f" {reason['score']:.2f} >= {reason['threshold']:.2f}"
    if "span" in reason:
        text += f" {reason['evidence']!r} at {reason['span'][0]}-{reason['span'][1]}"
    elif "score" not in reason:
        text += f" {reason['evidence']!r}"
    if reason.get("nearest"):
        text += ", nearest " + ", ".join(n["id"] for n in reason["nearest"])
    return text


def _human_line(prompt: str, result: dict) -> str:
    label = click.style(f"{result['decision'].upper():<6}", fg=DECISION_COLOURS[result["decision"]], bold=True)
    shown = prompt if len(prompt) <= 80 else prompt[:77] + "..."
    why = "; ".join(_reason_text(r) for r in result["reasons"])
    line = f"{label} {shown}" + (f"  ({why})" if why else "")
    classifier = result.get("classifier") or {}
    if classifier.get("status") == "unavailable" and classifier.get("when_unavailable") == "rules_only":
        line += "  [rules only: prompt classifier unavailable]"
    return line


def _batches(prompts: Iterator[str], size: int) -> Iterator[list[str]]:
    while batch := list(itertools.islice(prompts, size)):
        yield batch


@click.command("check-prompt")
@click.argument("text", nargs=-1, required=True)
@policy_option
@json_option
@click.pass_context
def check_prompt(ctx: click.Context, text: tuple[str, ...], policy_ref: str | None, as_json: bool) -> None:
    """Check TEXT (or, with -, one prompt per line from stdin) against a policy.

    Both layers run: the policy's rules and, when the policy sets classifier thresholds, the text
    classifier (loaded once; stdin is read in batches). Several words are checked as one prompt. Exit code
    0 when everything is allowed, 1 when something is blocked, blurred or sent to review, 2 for bad input
    (e.g. an invalid policy file).
    """
    from guard.check_prompt import PromptChecker

    checker = PromptChecker(policy_ref)
    from_stdin = text == ("-",)
    prompts = _stdin_lines() if from_stdin else iter([_clean(" ".join(text))])
    size = BATCH if from_stdin and not sys.stdin.isatty() else 1
    decisions: list[str] = []
    warned = False
    for batch in _batches(prompts, size):
        for prompt, decision in zip(batch, checker.check(batch), strict=True):
            result = decision.to_dict()
            decisions.append(result["decision"])
            if as_json:
                emit_json({"prompt": prompt, **result})
            else:
                click.echo(_human_line(prompt, result))
            classifier = result.get("classifier") or {}
            if classifier.get("status") == "unavailable" and not warned:
                action = "sent to review" if classifier["when_unavailable"] == "review" else "decided by the rules only"
                click.echo(
                    f"warning: prompt classifier unavailable ({classifier['reason']}); prompts are {action}.", err=True
                )
                warned = True
        sys.stdout.flush()
    ctx.exit(exit_code_for(decisions))
