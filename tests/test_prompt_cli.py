"""`guard check-prompt` through click's CliRunner: JSON fields, stdin, exit codes, policy errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


def _json(runner, *args, input=None):
    result = runner.invoke(cli, ["check-prompt", "--json", *args], input=input)
    lines = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    return result, lines


@pytest.mark.parametrize(
    ("text", "evidence"),
    [
        ("a n.u.d.e woman on the beach", "n.u.d.e"),
        ("a n u d e woman", "n u d e"),
        ("nuuuuude painting", "nuuuuude"),
        ("Ｎｕｄｅ", "Ｎｕｄｅ"),
        ("ѕех on a bed", "ѕех"),
        ("n\u200bu\u200bd\u200be", "n\u200bu\u200bd\u200be"),
        ("p0rn$tar", "p0rn$tar"),
        ("a photo, s3x", "s3x"),
        ("NÚDÉ statue", "NÚDÉ"),
    ],
)
def test_obfuscated_prompts_are_blocked(runner, text, evidence):
    result, (line,) = _json(runner, text)
    assert result.exit_code == 1
    assert line["decision"] == "block"
    assert line["prompt"] == text
    assert line["categories"] == {"sexual": "block"}
    (reason,) = line["reasons"]
    start, end = reason["span"]
    assert text[start:end] == reason["evidence"] == evidence
    assert "nude" in line["normalized"] or "sex" in line["normalized"] or "porn" in line["normalized"]
    assert line["policy"]["name"] == "default"


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe at night",
        "Penistone railway station",
        "a cocktail bar",
        "a therapist",
        "a sextant",
        "nude lipstick",
        "nude heels",
        "chicken breast",
        "breast cancer awareness",
        "a s s e s s the class",
    ],
)
def test_innocent_prompts_are_allowed(runner, text):
    result, (line,) = _json(runner, text)
    assert result.exit_code == 0, result.output
    assert line["decision"] == "allow"
    assert line["reasons"] == []
    assert set(line) >= {"decision", "reasons", "normalized", "categories", "policy", "prompt"}


def test_stdin_gives_one_json_line_per_input_line_in_order(runner):
    prompts = ["a cat in a hat", "photo of Joe Biden", "", "chicken breast", "n.u.d.e"]
    result, lines = _json(runner, "-", input="\n".join(prompts) + "\n")
    assert [line["prompt"] for line in lines] == prompts
    assert [line["decision"] for line in lines] == ["allow", "review", "allow", "allow", "block"]
    assert result.exit_code == 1


def test_stdin_all_allowed_exits_zero_and_survives_bad_bytes(runner):
    result, lines = _json(runner, "-", input=b"a red apple\r\ncaf\xe9 au lait\n")
    assert result.exit_code == 0
    assert [line["prompt"] for line in lines] == ["a red apple", "caf\ufffd au lait"]


def test_several_words_are_one_prompt(runner):
    result, (line,) = _json(runner, "a", "nude", "statue")
    assert line["prompt"] == "a nude statue"
    assert result.exit_code == 1


def test_human_output(runner):
    result = runner.invoke(cli, ["check-prompt", "a n.u.d.e woman"])
    assert result.exit_code == 1
    assert result.output.startswith("BLOCK")
    assert "sexual" in result.output and "n.u.d.e" in result.output
    allowed = runner.invoke(cli, ["check-prompt", "a red apple"])
    assert allowed.exit_code == 0
    assert allowed.output.startswith("ALLOW")


def test_policy_option_bundled_and_path(runner, tmp_path):
    result, (line,) = _json(runner, "--policy", "strict", "photo of Joe Biden")
    assert line["decision"] == "block"
    assert line["policy"]["name"] == "strict"
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\nversion: 2\ncategories:\n  words:\n    action: review\n    prompt:\n      terms: [banana]\n"
    )
    result, (line,) = _json(runner, "--policy", str(path), "a b4n4n4")
    assert line["decision"] == "review"
    assert line["policy"] == {"name": "mine", "version": "2"}
    assert result.exit_code == 1


def test_malformed_policy_is_one_line_naming_the_field_exit_2(runner, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nversion: 1\ncategories:\n  words:\n    action: nuke\n")
    result = runner.invoke(cli, ["check-prompt", "--policy", str(path), "hello"])
    assert result.exit_code == 2
    message = result.output.strip()
    assert len(message.splitlines()) == 1
    assert "bad.yaml" in message and "categories.words.action" in message
    assert "Traceback" not in message


def test_unknown_policy_exit_2(runner):
    result = runner.invoke(cli, ["check-prompt", "--policy", "no-such-policy", "hello"])
    assert result.exit_code == 2
    assert "no-such-policy" in result.output


def test_missing_text_is_usage_error(runner):
    result = runner.invoke(cli, ["check-prompt"])
    assert result.exit_code == 2


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(codec="utf-8", exclude_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
            max_size=40,
        ),
        max_size=5,
    )
)
def test_arbitrary_unicode_on_stdin_gives_one_json_line_each(lines):
    result = CliRunner().invoke(cli, ["check-prompt", "--json", "-"], input="".join(f"{line}\n" for line in lines))
    assert result.exit_code in (0, 1), result.output
    out = [json.loads(line) for line in result.output.splitlines()]
    assert [o["prompt"] for o in out] == lines
    assert result.exit_code == (0 if all(o["decision"] == "allow" for o in out) else 1)


def test_a_user_error_spanning_lines_is_printed_on_one_line(monkeypatch):
    import click

    import guard.cli
    from guard.errors import GuardError

    @click.command()
    def failing() -> None:
        raise GuardError("Cannot open the store: connection refused\n\tIs the server running?")

    monkeypatch.setattr(guard.cli, "failing_for_test", failing, raising=False)
    monkeypatch.setitem(guard.cli.COMMANDS, "failing", "guard.cli:failing_for_test")
    result = CliRunner().invoke(guard.cli.cli, ["failing"])
    assert result.exit_code == 2
    assert result.stderr == "error: Cannot open the store: connection refused Is the server running?\n"
