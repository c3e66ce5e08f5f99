"""Producers' own AI fields as signed evidence: Adobe Firefly's partner-model manifest (the source type in
`com.adobe.digitalSourceType` on `c2pa.opened`, the model in `com.adobe.details`/`modelId`/`modelVersion`)
reads as AI-generated from the signed manifest, not from the unsigned XMP hint, with the strength of the
signature; `ai_tool` is reported in JSON, terminal and HTML. The real producers' files are in the real-world
corpus (test_verify_realworld.py); here the one shape no public file shows is signed exactly as Adobe writes it."""

from __future__ import annotations

import io
import json

import c2pa
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from guard.cli import cli
from guard.provenance.credentials.c2pa import c2pa_context, make_signer
from guard.provenance.credentials.keys import SigningIdentity, init_identity
from guard.provenance.credentials.source_types import IPTC_NAMESPACE as IPTC
from guard.verify.producers import TOOL_FIELDS, VENDOR_SOURCE_TYPES, ai_tool, source_type

PARTNER = {
    "com.adobe.digitalSourceType": IPTC + "trainedAlgorithmicMedia",
    "com.adobe.type": "remoteProvider.3rdParty",
    "com.adobe.details": "GPT Image",
    "com.adobe.modelId": "gpt-image",
    "com.adobe.modelVersion": "1",
}
XMP_HINT = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


@pytest.fixture(autouse=True)
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    for name in ("GUARD_STORE_URL", "GUARD_TRUST_ANCHORS", "GUARD_TRUST_LIST"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def partner_image(tmp_path_factory):
    """A JPEG with an unsigned XMP AI hint, signed with a Firefly-shaped partner-model manifest (Valid: the
    signer is on no list); its CA, to trust it."""
    root = tmp_path_factory.mktemp("partner")
    init_identity(root / "home", organization="Example Firefly Test", common_name="Example Firefly Signer")
    source = io.BytesIO()
    Image.fromarray(skdata.chelsea()).save(source, "JPEG", xmp=XMP_HINT)
    manifest = {
        "claim_generator_info": [{"name": "Adobe Firefly", "version": "1.0"}],
        "title": "partner.jpg",
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {"actions": [{"action": "c2pa.opened", "parameters": {"ingredientIds": ["gen"], **PARTNER}}]},
            }
        ],
    }
    builder = c2pa.Builder(manifest, context=c2pa_context(signing=True))
    generated = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(generated, "PNG")
    builder.add_ingredient(
        {"title": "generated.png", "relationship": "parentOf", "instance_id": "gen"}, "image/png", generated
    )
    signed = io.BytesIO()
    builder.sign(make_signer(SigningIdentity.load(root / "home")), "image/jpeg", io.BytesIO(source.getvalue()), signed)
    builder.close()
    path = root / "partner.jpg"
    path.write_bytes(signed.getvalue())
    return path, root / "home" / "keys" / "ca.pem"


def verify(*args: str):
    return CliRunner().invoke(cli, ["verify", *args, "--no-classifier", "--no-local-anchor"])


def test_partner_model_reads_as_ai_generated_from_the_signed_manifest(partner_image, tmp_path):
    path, _ = partner_image
    page = tmp_path / "partner.html"
    result = verify(str(path), "--json", "--html", str(page))
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    c2pa_part, verdict = report["c2pa"], report["verdict"]
    assert c2pa_part["state"] == "Valid"
    assert c2pa_part["digital_source_type"] == IPTC + "trainedAlgorithmicMedia"
    assert c2pa_part["digital_source_type_field"] == "parameters.com.adobe.digitalSourceType"
    tool = c2pa_part["ai_tool"]
    assert (tool["name"], tool["model"], tool["version"]) == ("GPT Image", "gpt-image", "1")
    assert tool["field"] == "c2pa.actions.v2.actions[0].parameters.com.adobe.details"
    assert tool["producer"] == "Adobe Firefly (partner models)" and tool["action"] == "c2pa.opened"
    assert (verdict["origin"], verdict["strength"]) == ("ai-generated", "moderate")
    top = verdict["evidence"][0]
    assert top["source"] == "c2pa" and "com.adobe.digitalSourceType" in top["reason"]
    # The unsigned XMP hint is still listed, as the weaker evidence it is.
    assert any(e["source"] == "metadata" and e["strength"] == "weak" for e in verdict["evidence"])
    html = page.read_text()
    assert "AI tool" in html and "GPT Image" in html and "gpt-image" in html
    terminal = verify(str(path)).output
    assert "AI tool" in terminal and "GPT Image" in terminal


def test_partner_model_strength_follows_the_signature_trust(partner_image):
    path, ca = partner_image
    report = json.loads(verify(str(path), "--json", "--trust-anchors", str(ca)).output)
    assert report["c2pa"]["state"] == "Trusted"
    assert (report["verdict"]["origin"], report["verdict"]["strength"]) == ("ai-generated", "strong")


def test_a_tampered_partner_image_is_only_weak(partner_image, tmp_path):
    path, ca = partner_image
    data = bytearray(path.read_bytes())
    data[-200] ^= 0xFF  # inside the JPEG scan: the pixels no longer match the hard binding
    tampered = tmp_path / "tampered.jpg"
    tampered.write_bytes(bytes(data))
    report = json.loads(verify(str(tampered), "--json", "--trust-anchors", str(ca)).output)
    assert report["c2pa"]["state"] == "Invalid"
    assert (report["verdict"]["origin"], report["verdict"]["strength"]) == ("ai-generated", "weak")


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ({"action": "c2pa.created", "digitalSourceType": f" {IPTC}trainedAlgorithmicMedia "}, "digitalSourceType"),
        ({"action": "c2pa.opened", "parameters": PARTNER}, "parameters.com.adobe.digitalSourceType"),
        ({"action": "c2pa.created", "description": "AI Generated Image"}, "description"),
        ({"action": "c2pa.created", "description": "a photo I took"}, None),
        ({"action": "c2pa.edited", "parameters": {"com.adobe.digitalSourceType": ""}}, None),
    ],
)
def test_source_type_fields(action, expected):
    dst, field = source_type(action)
    assert field == expected
    assert (dst is None) == (expected is None)


def test_ai_tool_prefers_the_action_that_names_the_tool():
    manifest = {
        "claim_generator_info": [{"name": "Adobe Photoshop", "version": "26.9.0"}],
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {"action": "c2pa.opened", "digitalSourceType": IPTC + "compositeWithTrainedAlgorithmicMedia"},
                        {
                            "action": "c2pa.edited",
                            "digitalSourceType": IPTC + "compositeWithTrainedAlgorithmicMedia",
                            "softwareAgent": {"name": "Adobe Firefly", "version": "4.0"},
                        },
                    ]
                },
            }
        ],
    }
    tool = ai_tool(manifest)
    assert (tool["name"], tool["version"], tool["producer"]) == ("Adobe Firefly", "4.0", "Adobe")
    assert tool["field"] == "c2pa.actions.v2.actions[1].softwareAgent.name"
    # Without any AI action there is no tool, whatever the claim generator.
    assert ai_tool({"claim_generator": "Adobe Firefly", "assertions": []}) is None
    # A generator's version is not the model's: it is used only with the generator's name.
    only_generator = {
        "claim_generator_info": [{"name": "Amazon Bedrock", "version": "9"}],
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", **_dst()}]}}],
    }
    assert ai_tool(only_generator)["version"] == "9"
    with_agent = json.loads(json.dumps(only_generator))
    with_agent["assertions"][0]["data"]["actions"][0]["softwareAgent"] = "Titan Image Generator G1"
    assert (ai_tool(with_agent)["name"], ai_tool(with_agent)["version"]) == ("Titan Image Generator G1", None)


def test_tables_are_data():
    assert {spec.part for spec in TOOL_FIELDS} == {"name", "model", "version"}
    assert all(v.field.startswith("parameters.") or v.value for v in VENDOR_SOURCE_TYPES)


def _dst() -> dict[str, str]:
    return {"digitalSourceType": IPTC + "trainedAlgorithmicMedia"}
