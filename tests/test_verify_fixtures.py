"""`guard verify` on real files made by other tools: the c2pa fixtures get the verdict their README states
(state and failure codes exactly as c2pa-rs reports them), every format is handled or refused in one line,
and the rubric signals use the Asset Rubrics' own vocabulary."""

from __future__ import annotations

import io
import itertools
import json
import re
from pathlib import Path

import c2pa
import pytest
import yaml
from click.testing import CliRunner
from conftest import SHARED_DIR

from guard.cli import cli
from guard.verify import Verifier
from guard.verify import signals as sig
from guard.verify.conformance import ConformingProducts
from guard.verify.trust import VerifyTrust
from guard.verify.verdict import INTEGRITY, ORIGINS, STRENGTHS

# file: (manifest present, state, failure codes that must be reported, integrity, ingredients at the top)
EXPECTED = {
    "A.jpg": (False, None, set(), "no credentials", None),
    "C.jpg": (True, "Valid", {"signingCredential.untrusted"}, "intact", 0),
    "C_with_CAWG_data.jpg": (
        True,
        "Valid",
        {"signingCredential.untrusted", "cawg.x509.credential.untrusted"},
        "intact",
        0,
    ),
    "CA.jpg": (True, "Valid", {"signingCredential.untrusted"}, "intact", 1),
    "CACAE-uri-CA.jpg": (True, "Valid", {"signingCredential.untrusted"}, "intact", 1),
    "boxhash.jpg": (True, "Valid", {"signingCredential.untrusted"}, "intact", 1),
    "legacy_ingredient_hash.jpg": (True, "Valid", {"signingCredential.untrusted"}, "intact", 2),
    "E-sig-CA.jpg": (True, "Invalid", {"claimSignature.mismatch"}, "tampered", 1),
    "XCA.jpg": (True, "Invalid", {"assertion.dataHash.mismatch"}, "tampered", 1),
    "CIE-sig-CA.jpg": (True, "Invalid", {"claimSignature.mismatch"}, "tampered", 1),
    "cloud.jpg": (True, None, set(), "unverified", None),
}


@pytest.fixture(scope="module")
def verify(conformance_dir):
    """Each file's report, verified once for the whole module (the full verifier, every watermark scheme)."""
    verifier = Verifier(
        trust=VerifyTrust(),
        products=ConformingProducts.load(conformance_dir / "conforming-products-list.json"),
    )
    reports: dict[Path, dict] = {}

    def report(path: Path) -> dict:
        if path not in reports:
            reports[path] = verifier.verify_file(path).to_dict()
        return reports[path]

    return report


def c2pa_rs_codes(path: Path) -> set[str]:
    """Every failure code c2pa-rs reports for the file, read straight from c2pa-python."""
    with open(path, "rb") as fh:
        reader = c2pa.Reader("image/jpeg", fh)
        store = json.loads(reader.json())
    return {s["code"] for s in store.get("validation_status") or []}


def test_every_c2pa_fixture_is_covered(c2pa_dir):
    assert sorted(p.name for p in c2pa_dir.glob("*.jpg")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_c2pa_fixture_verdict(c2pa_dir, verify, name):
    present, state, codes, integrity, ingredients = EXPECTED[name]
    report = verify(c2pa_dir / name)
    c2pa_part = report["c2pa"]
    assert c2pa_part["present"] is present
    assert c2pa_part["state"] == state
    reported = {f["code"] for f in c2pa_part["failures"]}
    assert codes <= reported
    if state is not None:
        assert reported == c2pa_rs_codes(c2pa_dir / name)
        assert all(f["explanation"] and f["where"] for f in c2pa_part["failures"])
        assert c2pa_part["signer"]["common_name"] == "C2PA Signer"
        assert c2pa_part["claim_generator"]
        assert c2pa_part["conforming_product"]["status"] == "no"
    if ingredients is not None:
        assert len(c2pa_part["ingredients"]) == ingredients
    verdict = report["verdict"]
    assert verdict["integrity"] == integrity
    assert verdict["reasons"]
    assert (verdict["origin"], verdict["strength"], verdict["integrity"]) in itertools.product(
        ORIGINS, STRENGTHS, INTEGRITY
    )
    if integrity == "tampered":
        assert any(code in " ".join(verdict["reasons"]) for code in codes)


def test_history_tree_and_plain_words(c2pa_dir, verify):
    report = verify(c2pa_dir / "CA.jpg")
    (parent,) = report["c2pa"]["ingredients"]
    assert parent["title"] == "A.jpg" and parent["relationship"] == "parentOf" and parent["manifest_id"] is None
    assert "provenance unknown" in parent["note"]
    assert [a["action"] for a in report["c2pa"]["actions"]] == ["c2pa.opened", "c2pa.color_adjustments"]
    assert "mediaUnknownProvenance" in report["signals"]["inception"]

    nested = verify(c2pa_dir / "CACAE-uri-CA.jpg")["c2pa"]["ingredients"]
    assert nested[0]["relationship"] == "componentOf"
    assert nested[0]["ingredients"][0]["title"] == "E-uri-CA.jpg"
    assert nested[0]["ingredients"][0]["ingredients"][0]["title"] == "A.jpg"

    xca = verify(c2pa_dir / "XCA.jpg")["c2pa"]["failures"]
    mismatch = next(f for f in xca if f["code"] == "assertion.dataHash.mismatch")
    assert "changed after signing" in mismatch["explanation"]
    cie = verify(c2pa_dir / "CIE-sig-CA.jpg")["c2pa"]["failures"]
    assert any(f["code"] == "claimSignature.mismatch" and f["where"] == 'ingredient "E-sig-CA.jpg"' for f in cie)


def test_capture_claim_and_no_authenticity_from_absence(c2pa_dir, verify):
    captured = verify(c2pa_dir / "C_with_CAWG_data.jpg")
    assert captured["signals"]["inception"] == ["capturedMedia"]
    assert (captured["verdict"]["origin"], captured["verdict"]["strength"]) == ("captured (claimed)", "moderate")
    (identity,) = captured["c2pa"]["identities"]
    assert (identity["common_name"], identity["sig_type"], identity["trusted"]) == (
        "C2PA Signer",
        "cawg.x509.cose",
        False,
    )
    assert "cawg.training-mining" in identity["referenced_assertions"]
    assert captured["c2pa"]["training_mining"]["cawg.ai_generative_training"] == "notAllowed"
    algorithmic = verify(c2pa_dir / "C.jpg")
    assert (algorithmic["verdict"]["origin"], algorithmic["verdict"]["strength"]) == ("unknown", "none")
    for report in (captured, algorithmic):
        text = json.dumps(report["verdict"]).lower()
        assert "authentic" not in text.replace("not evidence that it is authentic", "")
        assert "human-made" not in text.replace("authentic or human-made", "")


def test_remote_manifest_is_named_not_fetched(c2pa_dir, verify):
    report = verify(c2pa_dir / "cloud.jpg")
    assert report["c2pa"]["remote_url"].startswith("https://cai-manifests.adobe.com/")
    assert report["c2pa"]["remote_fetched"] is False
    assert "not fetched offline" in report["c2pa"]["error"]
    assert report["trust"]["remote_manifests"] == "not fetched (offline)"


@pytest.mark.parametrize("path", sorted((SHARED_DIR / "fixtures" / "formats").iterdir()), ids=lambda p: p.name)
def test_every_format_is_handled_or_refused_in_one_line(path, tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["verify", str(path), "--json", "--no-classifier"])
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        return
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    assert report["path"] == str(path)
    assert not any(w["detected"] for w in report["watermarks"])
    if path.name == "prerelease.jpg":
        assert report["verdict"]["integrity"] == "unverified"
        assert "pre-release" in report["c2pa"]["error"]
    assert not list(tmp_path.iterdir())  # verify never creates a store or any file


def test_camera_metadata_is_a_weak_claim_only(formats_dir, verify):
    report = verify(formats_dir / "P1000827.jpg")
    assert report["metadata"]["exif"]["Make"] == "Panasonic"
    assert (report["verdict"]["origin"], report["verdict"]["strength"]) == ("captured (claimed)", "weak")
    assert report["verdict"]["integrity"] == "no credentials"


def _variables(rubrics: Path, name: str) -> dict:
    return yaml.safe_load((rubrics / name).read_text())["variables"]


def test_signal_tables_are_the_rubrics(conformance_dir):
    actions = _variables(conformance_dir / "asset-rubrics", "globals-actions.yml")
    assert tuple(actions["$inception_actions"]) == sig.INCEPTION_ACTIONS
    assert tuple(actions["$non_editorial_actions"]) == sig.NON_EDITORIAL_ACTIONS
    signal_vars = _variables(conformance_dir / "asset-rubrics", "globals-signals.yml")
    assert tuple(signal_vars["$genai_dst_types"]) == sig.GENAI_DST
    assert tuple(signal_vars["$possibly_genai_dst_types"]) == sig.POSSIBLY_GENAI_DST
    names = set()
    for path in (conformance_dir / "asset-rubrics").glob("signal-*-local.yml"):
        kind, name = path.stem.removeprefix("signal-").removesuffix("-local").split("-", 1)
        names.add(name)
        statement = list(yaml.safe_load_all(path.read_text()))[1][0]
        assert statement["id"] == f"signal_{name}"
        if kind == "inception" and name != sig.UNKNOWN_PROVENANCE:
            uris = tuple(re.findall(r'_createdWithDst\(@, "([^"]+)"\)', statement["expression"]))
            assert sig.INCEPTION_SIGNALS[name] == uris
        assert name in (sig.INCEPTION if kind == "inception" else sig.TRANSFORMATION)
    assert names == set(sig.INCEPTION) | set(sig.TRANSFORMATION)


def test_integrity_tables_are_the_rubrics(conformance_dir):
    from guard.verify import integrity

    variables = _variables(conformance_dir / "asset-rubrics", "globals.yml")
    assert tuple(variables["$well_formed_error_codes"]) == integrity.WELL_FORMED_ERROR_CODES
    assert tuple(variables["$valid_error_codes"]) == integrity.VALID_ERROR_CODES
    assert tuple(variables["$trust_error_codes"]) == integrity.TRUST_ERROR_CODES


@pytest.mark.parametrize(
    ("name", "levels"),
    [
        ("C.jpg", {"well_formed": True, "valid": True, "trusted": False}),
        ("XCA.jpg", {"well_formed": True, "valid": False, "trusted": False}),
        ("E-sig-CA.jpg", {"well_formed": True, "valid": True, "trusted": False}),
    ],
)
def test_integrity_rubric_levels(c2pa_dir, verify, name, levels):
    rubric = verify(c2pa_dir / name)["c2pa"]["rubric_integrity"]
    assert {k: rubric[k] for k in levels} == levels
    if name == "XCA.jpg":
        assert rubric["failed_by"]["valid"] == ["assertion.dataHash.mismatch"]
    if name == "E-sig-CA.jpg":
        assert rubric["failed_by"]["trusted"] == ["claimSignature.mismatch", "signingCredential.untrusted"]


def test_local_signals_follow_the_rubric_criteria():
    iptc = "http://cv.iptc.org/newscodes/digitalsourcetype/"
    manifest = {
        "assertions": {
            "c2pa.actions.v2": {
                "allActionsIncluded": True,
                "actions": [
                    {"action": "c2pa.created", "digitalSourceType": iptc + "trainedAlgorithmicMedia"},
                    {"action": "c2pa.edited", "digitalSourceType": iptc + "compositeWithTrainedAlgorithmicMedia"},
                    {"action": "c2pa.resized.proportional"},
                ],
            },
            "c2pa.ingredient.v3": {"relationship": "inputTo"},
        },
        "claim.v2": {"created_assertions": [{"url": "self#jumbf=c2pa.assertions/c2pa.actions.v2"}]},
    }
    assert sig.local_signals(manifest) == {
        "inception": ["fullyGenAIMedia", sig.UNKNOWN_PROVENANCE],
        "transformation": ["perceptibleGenAI", "nonEditorial"],
    }
    manifest["assertions"]["c2pa.actions.v2"]["actions"].append({"action": "com.example.filter"})
    assert "ambiguousActions" in sig.local_signals(manifest)["transformation"]
    capture = {
        "assertions": {
            "c2pa.actions": {"actions": [{"action": "c2pa.created", "digitalSourceType": iptc + "digitalCapture"}]}
        }
    }
    assert sig.local_signals(capture)["inception"] == ["capturedMedia"]


def test_metadata_hints_from_generation_tools(tmp_path):
    from PIL import Image, PngImagePlugin

    from guard.verify.metadata import read_metadata

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, Seed: 1, Model: sd_xl_base_1.0")
    info.add_text(
        "prompt",
        json.dumps({"3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1.safetensors"}}}),
    )
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG", pnginfo=info)
    hints = {h["source"]: h for h in read_metadata(buffer.getvalue())["hints"]}
    assert hints["text:parameters"]["origin"] == "ai-generated"
    assert "sd_xl_base_1.0" in hints["text:parameters"]["detail"]
    assert "flux1.safetensors" in hints["text:prompt"]["detail"]

    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    exif = Image.Exif()
    exif[0x0131] = "Adobe Firefly"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "JPEG", xmp=xmp, exif=exif)
    hints = {h["source"]: h for h in read_metadata(buffer.getvalue())["hints"]}
    assert hints["xmp:DigitalSourceType"]["origin"] == "ai-edited"
    assert hints["exif:Software"]["tool"] == "Firefly"
