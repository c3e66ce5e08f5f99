"""Content Credentials signed with our identity, read back by c2pa's Reader: Valid, Trusted, Invalid."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from guard.errors import ConfigError
from guard.provenance.credentials.c2pa import (
    Ingredient,
    TrustConfig,
    c2pa_context,
    make_signer,
    read_manifest,
    sign_asset,
)
from guard.provenance.credentials.keys import SigningIdentity
from guard.provenance.credentials.manifest import build_manifest, prompt_sha256
from guard.provenance.credentials.source_types import DigitalSourceType

PAYLOAD = bytes.fromhex("0a1b2c3d4e5f")


@pytest.fixture(scope="module")
def identity(home):
    return SigningIdentity.load(home)


@pytest.fixture(scope="module")
def signer(identity):
    return make_signer(identity)


@pytest.fixture(scope="module")
def anchored(home):
    return TrustConfig(anchors=(home / "keys" / "ca.pem",))


def _photo(fmt: str = "JPEG", size=(320, 240), **options) -> bytes:
    rng = np.random.default_rng(7)
    pixels = np.clip(rng.normal(128, 40, (size[1], size[0], 3)), 0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def _manifest(**overrides):
    options = dict(
        title="out.jpg",
        source_type="trainedAlgorithmicMedia",
        watermark_scheme="guard",
        payload=PAYLOAD,
        generator={"model": "stabilityai/sd-turbo", "model_version": "1.0", "seed": 42, "steps": 1},
        prompt="a lighthouse at dusk",
        policy_decision={
            "decision": "allow",
            "categories": {},
            "reasons": [],
            "policy": {"name": "default", "version": "3"},
        },
    )
    options.update(overrides)
    return build_manifest(**options)


def test_signed_jpeg_reads_back_valid_and_trusted_with_our_ca(signer, identity, anchored):
    signed, store = sign_asset(_manifest(), _photo(), "image/jpeg", signer, identity=identity)
    assert len(store) > 1000
    plain = read_manifest(signed)
    assert plain.present and plain.state == "Valid"
    assert plain.failure_codes == ["signingCredential.untrusted"]
    trusted = read_manifest(signed, trust=anchored)
    assert trusted.state == "Trusted"
    assert trusted.failure_codes == []
    assert trusted.digital_source_types == [DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA.uri]


def test_manifest_says_who_what_and_under_which_policy(signer, identity, anchored):
    signed, _ = sign_asset(_manifest(training_mining="notAllowed"), _photo(), "image/jpeg", signer, identity=identity)
    reading = read_manifest(signed, trust=anchored)
    active = reading.active
    assert active["claim_generator_info"][0]["name"] == "image-guard"
    assert active["signature_info"]["common_name"] == "image-guard signer"
    actions = reading.assertion("c2pa.actions.v2")["actions"]
    assert actions[0]["action"] == "c2pa.created"
    assert actions[0]["softwareAgent"] == {"name": "stabilityai/sd-turbo", "version": "1.0"}
    assert actions[-1]["action"] == "c2pa.watermarked.bound"
    assert reading.soft_bindings == [{"alg": "com.image-guard.watermark.guard", "value": PAYLOAD.hex()}]
    binding = reading.assertion("c2pa.soft-binding")
    assert binding["alg"] == "com.image-guard.watermark.guard"
    assert binding["blocks"] == [{"scope": {}, "value": PAYLOAD.hex()}]
    generation = reading.assertion("com.image-guard.generation")
    assert generation["prompt_sha256"] == prompt_sha256("a lighthouse at dusk")
    assert "prompt" not in generation
    assert generation["seed"] == 42
    assert reading.assertion("com.image-guard.policy") == {"name": "default", "version": "3", "decision": "allow"}
    entries = reading.assertion("c2pa.training-mining")["entries"]
    assert {e["use"] for e in entries.values()} == {"notAllowed"}


def test_prompt_is_included_only_when_asked(signer, identity):
    signed, _ = sign_asset(_manifest(include_prompt=True), _photo(), "image/jpeg", signer, identity=identity)
    assert read_manifest(signed).assertion("com.image-guard.generation")["prompt"] == "a lighthouse at dusk"


@pytest.mark.parametrize(
    ("fmt", "mime", "options"),
    [
        ("PNG", "image/png", {}),
        ("WEBP", "image/webp", {"quality": 90}),
        ("WEBP", "image/webp", {"lossless": True}),
        ("TIFF", "image/tiff", {}),
        ("AVIF", "image/avif", {}),
    ],
)
def test_other_containers_sign_and_validate(signer, identity, anchored, fmt, mime, options):
    signed, _ = sign_asset(_manifest(), _photo(fmt, **options), mime, signer, identity=identity)
    with Image.open(io.BytesIO(signed)) as decoded:
        decoded.load()
        assert decoded.size == (320, 240)
    assert read_manifest(signed, trust=anchored).state == "Trusted"


def _tamper_jpeg_scan(data: bytes) -> bytes:
    """Overwrite a run of entropy-coded bytes in the middle of the scan: a pixel region changes."""
    start = data.rindex(b"\xff\xda")
    middle = start + (len(data) - start) // 2
    tampered = bytearray(data)
    tampered[middle : middle + 64] = bytes(b ^ 0x55 if b not in (0xFF, 0xAA) else b for b in data[middle : middle + 64])
    return bytes(tampered)


def test_tampered_pixels_are_invalid_with_data_hash_mismatch(signer, identity, anchored):
    signed, _ = sign_asset(_manifest(), _photo(), "image/jpeg", signer, identity=identity)
    tampered = _tamper_jpeg_scan(signed)
    original = np.asarray(Image.open(io.BytesIO(signed)).convert("RGB"), dtype=int)
    changed = np.asarray(Image.open(io.BytesIO(tampered)).convert("RGB"), dtype=int)
    assert np.abs(original - changed).max() > 0
    reading = read_manifest(tampered, trust=anchored)
    assert reading.state == "Invalid"
    assert "assertion.dataHash.mismatch" in reading.failure_codes


def test_parent_ingredient_carries_its_manifest(signer, identity, anchored):
    first, _ = sign_asset(_manifest(), _photo(), "image/jpeg", signer, identity=identity)
    second, _ = sign_asset(
        _manifest(has_parent=True),
        first,
        "image/jpeg",
        signer,
        identity=identity,
        ingredient=Ingredient(data=first, mime="image/jpeg", title="first.jpg", relationship="parentOf"),
    )
    reading = read_manifest(second, trust=anchored)
    assert reading.state == "Trusted"
    assert len(reading.store["manifests"]) == 2
    (parent,) = reading.ingredients
    assert parent["relationship"] == "parentOf"
    assert parent["active_manifest"] == read_manifest(first).manifest_id
    assert reading.assertion("c2pa.actions.v2")["actions"][0]["action"] == "c2pa.opened"


def test_detached_manifest_store_validates_against_the_asset(signer, identity, anchored):
    unsigned = _photo()
    signed, store = sign_asset(_manifest(), unsigned, "image/jpeg", signer, identity=identity)
    reading = read_manifest(signed, trust=anchored, manifest_store=store)
    assert reading.state == "Trusted"
    assert reading.manifest_id == read_manifest(signed).manifest_id
    other_bytes = read_manifest(unsigned, trust=anchored, manifest_store=store)
    assert other_bytes.manifest_id == reading.manifest_id
    assert other_bytes.state == "Invalid"
    assert "assertion.dataHash.mismatch" in other_bytes.failure_codes


def test_trust_list_replacing_anchors_does_not_trust_our_ca(shared_dir, signer, identity):
    signed, _ = sign_asset(_manifest(), _photo(), "image/jpeg", signer, identity=identity)
    official = TrustConfig(trust_list=shared_dir / "c2pa-conformance" / "C2PA-TRUST-LIST.pem")
    reading = read_manifest(signed, trust=official)
    assert reading.state == "Valid"
    assert "signingCredential.untrusted" in reading.failure_codes


def test_bad_trust_configuration_is_a_config_error(tmp_path):
    not_pem = tmp_path / "anchors.pem"
    not_pem.write_text("hello")
    with pytest.raises(ConfigError, match="no PEM certificate"):
        c2pa_context(TrustConfig(anchors=(not_pem,)))
    with pytest.raises(ConfigError, match="Cannot read"):
        c2pa_context(TrustConfig(anchors=(tmp_path / "absent.pem",)))


@pytest.mark.parametrize(
    ("name", "present", "state", "failure", "error"),
    [
        ("A.jpg", False, None, None, None),
        ("C.jpg", True, "Valid", "signingCredential.untrusted", None),
        ("CA.jpg", True, "Valid", None, None),
        ("XCA.jpg", True, "Invalid", "assertion.dataHash.mismatch", None),
        ("E-sig-CA.jpg", True, "Invalid", "claimSignature.mismatch", None),
        ("cloud.jpg", True, None, None, "remote"),
    ],
)
def test_reference_fixtures_read_as_c2pa_judges_them(c2pa_dir, name, present, state, failure, error):
    reading = read_manifest(c2pa_dir / name)
    assert reading.present is present
    assert reading.state == state
    if failure:
        assert failure in reading.failure_codes
    if error:
        assert error in reading.error
    else:
        assert reading.error is None


def test_prerelease_manifest_is_reported_not_raised(shared_dir):
    reading = read_manifest(shared_dir / "fixtures" / "formats" / "prerelease.jpg")
    assert reading.present and reading.state is None
    assert "pre-release" in reading.error


def test_trust_from_environment_splits_paths_and_urls(monkeypatch):
    monkeypatch.setenv("GUARD_TRUST_ANCHORS", "/a/ca.pem:https://example.org/anchors.pem,/b/ca.pem")
    monkeypatch.setenv("GUARD_TRUST_LIST", "/lists/C2PA-TRUST-LIST.pem")
    trust = TrustConfig.from_env(extra_anchors=["/home/keys/ca.pem"])
    assert trust.anchors == ("/a/ca.pem", "https://example.org/anchors.pem", "/b/ca.pem", "/home/keys/ca.pem")
    assert trust.trust_list == "/lists/C2PA-TRUST-LIST.pem"


def test_unreachable_timestamp_authority_is_one_config_error(home):
    identity = SigningIdentity.load(home, tsa_url="http://127.0.0.1:9/tsa")
    with pytest.raises(ConfigError, match=r"timestamp authority http://127\.0\.0\.1:9/tsa did not answer"):
        sign_asset(_manifest(), _photo(), "image/jpeg", make_signer(identity), identity=identity)


@pytest.mark.parametrize("data", [b"", b"hello world", _photo()[:60]], ids=["empty", "text", "truncated"])
def test_unreadable_assets_have_no_manifest_and_say_why(data):
    reading = read_manifest(data)
    assert reading.present is False and reading.state is None
    assert reading.error.startswith("c2pa cannot")
