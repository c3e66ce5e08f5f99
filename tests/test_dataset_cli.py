"""`guard filter-dataset` on the command line: the JSON summary, the summary table, exit codes and one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from dataset_builder import jpeg, photo

from guard.cli import cli


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "images"
    root.mkdir()
    (root / "a.jpg").write_bytes(jpeg(photo("astronaut", 256)))
    (root / "a.txt").write_text("an astronaut", encoding="utf-8")
    (root / "b.jpg").write_bytes(jpeg(photo("coffee", 256)))
    (root / "b.txt").write_text("a nude portrait", encoding="utf-8")
    return root


def _run(*args: str):
    return CliRunner().invoke(cli, ["filter-dataset", *args], catch_exceptions=False)


def test_json_summary_and_exit_code_zero_whatever_was_dropped(folder, tmp_path):
    result = _run(str(folder), "-o", str(tmp_path / "out"), "--workers", "0", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("samples", "kept", "dropped", "review", "errors")} == {
        "samples": 2,
        "kept": 1,
        "dropped": 1,
        "review": 0,
        "errors": 0,
    }
    assert summary["by_category"] == {"sexual": 1}


def test_summary_table_and_resume(folder, tmp_path):
    out = str(tmp_path / "out")
    result = _run(str(folder), "-o", out, "--workers", "0")
    assert result.exit_code == 0
    assert "filter-dataset summary" in result.stdout and "sexual" in result.stdout
    again = _run(str(folder), "-o", out, "--workers", "0")
    assert again.exit_code == 2 and again.stderr.startswith("error: ") and "--resume" in again.stderr
    resumed = _run(str(folder), "-o", out, "--workers", "0", "--resume")
    assert resumed.exit_code == 0 and "2 of 1 shards" not in resumed.stdout and "1 of 1 shards" in resumed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing-folder"], "no such file or folder"),
        (["{empty}"], "no shards found"),
        (["{folder}", "--policy", "{bad_policy}"], "invalid YAML"),
        (["{folder}", "--policy", "no-such-policy"], "neither a bundled policy"),
        (["{folder}", "--opt-out", "{missing}"], "the opt-out list cannot be read"),
        (["{folder}", "--opt-out", "{bad_list}"], "line 1"),
        (["{folder}", "--address", "auto"], "--address is for --engine ray"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_two(folder, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    (tmp_path / "bad.txt").write_text("not a domain\n")
    values = {
        "folder": str(folder),
        "empty": str(tmp_path / "empty"),
        "bad_policy": str(tmp_path / "bad.yaml"),
        "missing": str(tmp_path / "missing.txt"),
        "bad_list": str(tmp_path / "bad.txt"),
    }
    result = _run(*[a.format(**values) for a in args], "-o", str(tmp_path / "out"), "--workers", "0")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_help_lists_the_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert "filter-dataset" in result.stdout
