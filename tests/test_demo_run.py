"""`guard demo`: the whole loop on the bundled sample, checked step by step from its JSON report."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from guard.cli import cli


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(cli, ["demo", "--keep", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), folder


def test_prompts_are_decided_with_reasons(report):
    prompts = {p["prompt"]: p for p in report[0]["prompts"]}
    assert prompts["a watercolor painting of a lighthouse at dawn"]["decision"] == "allow"
    assert prompts["a n.u.d.e woman on a beach"]["decision"] == "block"
    assert prompts["a n.u.d.e woman on a beach"]["reasons"][0]["category"] == "sexual"
    assert prompts["photorealistic portrait of Joe Biden giving a speech"]["decision"] == "review"
    assert prompts["Al Gore planting a tree, children's book illustration"]["decision"] == "allow"


def test_sample_is_scanned_and_allowed(report):
    scan = report[0]["scan"]
    assert scan["decision"] == "allow"
    assert "nudenet" in scan["scores"]


def test_protected_file_verifies_as_trusted_ai_generated(report):
    document, folder = report
    assert (folder / "protected.jpg").exists()
    verified = document["verify_protected"]
    assert verified["c2pa"]["state"] == "Trusted"
    assert verified["c2pa"]["manifest_id"] == document["protect"]["manifest_id"]
    assert verified["verdict"]["origin"] == "ai-generated"
    assert verified["verdict"]["integrity"] == "intact"


def test_stripped_copy_leads_back_to_the_original_manifest(report):
    document = report[0]
    stripped = document["verify_stripped"]
    assert stripped["c2pa"]["present"] is False
    ours = [m for m in stripped["watermarks"] if m["scheme"] == document["protect"]["watermark"]["scheme"]]
    assert ours and ours[0]["detected"] and ours[0]["payload"] == document["protect"]["watermark"]["payload"]
    assert stripped["recovered"]["manifest_id"] == document["protect"]["manifest_id"]
    assert document["recovered_original"] is True
    assert stripped["verdict"]["origin"] == "ai-generated"
    assert stripped["verdict"]["strength"] == "strong"


def test_generation_runs_behind_the_guard_on_the_tiny_pipeline(report):
    document, folder = report
    allowed, refused = document["generate"]
    assert allowed["decision"] == "allow" and allowed["stage"] == "image"
    assert (folder / "generated").exists() and allowed["output"].startswith(str(folder / "generated"))
    assert allowed["watermark"]["payload"] and allowed["manifest_id"].startswith("urn:c2pa:")
    assert allowed["verify"]["c2pa"]["state"] == "Trusted"
    assert allowed["verify"]["c2pa"]["manifest_id"] == allowed["manifest_id"]
    assert allowed["verify"]["verdict"]["origin"] == "ai-generated"
    assert "tiny random" in allowed["generation"]["model"]
    assert refused["decision"] == "block" and refused["stage"] == "prompt" and refused["output"] is None


def test_terminal_run_gives_one_short_line_per_unavailable_detector(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--keep", str(tmp_path)])
    assert result.exit_code == 0, result.output
    unavailable = [line for line in result.output.splitlines() if "unavailable" in line]
    assert unavailable and all(len(line) < 100 and "--json" in line for line in unavailable)
    assert "Generate behind the guard" in result.output and "not generated" in result.output
