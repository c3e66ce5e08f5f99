"""`guard protect`: watermark + signed manifest + store record, end to end, through the library and the CLI."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from guard.errors import GuardError
from guard.protect import Protector, protect_image
from guard.provenance.credentials.c2pa import read_manifest
from guard.provenance.credentials.keys import SigningIdentity
from guard.provenance.credentials.source_types import DigitalSourceType
from guard.provenance.credentials.store import ManifestStore


@pytest.fixture()
def protector(home, tmp_path):
    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        yield Protector(identity=SigningIdentity.load(home), store=store)


@pytest.fixture(scope="module")
def generated():
    """A smooth synthetic 512x512 picture standing in for a model output."""
    y, x = np.mgrid[0:512, 0:512] / 512.0
    pixels = np.stack([128 + 100 * np.sin(6 * x), 128 + 90 * np.cos(5 * y), 128 + 80 * np.sin(4 * (x + y))], axis=-1)
    return Image.fromarray(pixels.astype("uint8"))


def test_protected_image_is_trusted_ai_made_watermarked_and_recorded(protector, generated, trust, tmp_path):
    result = protect_image(
        generated,
        tmp_path / "out.jpg",
        generator={"model": "stabilityai/sd-turbo", "seed": 1},
        prompt="a red bicycle",
        policy_decision={"decision": "allow", "policy": {"name": "default", "version": "1"}},
        protector=protector,
    )
    data = result.output.read_bytes()
    reading = read_manifest(data, trust=trust)
    assert reading.state == "Trusted"
    assert reading.manifest_id == result.manifest_id
    assert reading.digital_source_types == [DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA.uri]
    assert reading.assertion("c2pa.soft-binding")["blocks"][0]["value"] == result.payload.hex()
    assert read_manifest(data).state == "Valid"
    decoded = protector.scheme.decode(Image.open(io.BytesIO(data)).convert("RGB"))
    assert decoded.payload == result.payload
    record = protector.store.find_by_payload(result.payload)
    assert record.manifest_id == result.manifest_id
    assert record.mime == "image/jpeg"
    assert result.to_dict()["watermark"] == {"scheme": protector.scheme.name, "payload": result.payload.hex()}


def test_found_in_store_after_metadata_is_stripped_and_reencoded(protector, generated, tmp_path):
    result = protect_image(generated, tmp_path / "out.png", protector=protector)
    stripped = io.BytesIO()
    Image.open(result.output).convert("RGB").save(stripped, "JPEG", quality=80)
    assert read_manifest(stripped.getvalue()).present is False
    matches = protector.store.find_by_fingerprint(Image.open(io.BytesIO(stripped.getvalue())))
    assert [record.manifest_id for record, _ in matches] == [result.manifest_id]


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif", ".avif", ".heic"])
def test_other_output_formats(protector, generated, trust, tmp_path, suffix):
    result = protect_image(generated, tmp_path / f"out{suffix}", protector=protector)
    assert read_manifest(result.output, trust=trust).state == "Trusted"


def test_reprotecting_a_signed_image_keeps_it_as_parent(protector, generated, trust, tmp_path):
    first = protect_image(generated, tmp_path / "first.jpg", protector=protector)
    second = protector.protect_file(first.output, tmp_path / "second.jpg")
    reading = read_manifest(second.output, trust=trust)
    assert reading.state == "Trusted"
    assert second.has_parent
    (parent,) = reading.ingredients
    assert parent["relationship"] == "parentOf"
    assert parent["active_manifest"] == first.manifest_id
    assert first.manifest_id in reading.store["manifests"]
    assert second.payload != first.payload
    assert protector.store.count() == 2


def test_existing_photo_is_an_edit_with_the_photo_as_parent(formats_dir, protector, trust, tmp_path):
    result = protector.protect_file(formats_dir / "P1000827.jpg", tmp_path / "photo.jpg", source_type="edit")
    reading = read_manifest(result.output, trust=trust)
    assert reading.state == "Trusted"
    assert reading.digital_source_types == []
    actions = [a["action"] for a in reading.assertion("c2pa.actions.v2")["actions"]]
    assert actions == ["c2pa.opened", "c2pa.watermarked.bound"]
    assert reading.ingredients[0]["title"] == "P1000827.jpg"


def test_image_to_image_records_the_init_image_as_input(formats_dir, protector, generated, trust, tmp_path):
    result = protect_image(
        generated,
        tmp_path / "i2i.jpg",
        source_type="compositeWithTrainedAlgorithmicMedia",
        parent_path=formats_dir / "earth_apollo17.jpg",
        protector=protector,
    )
    reading = read_manifest(result.output, trust=trust)
    assert reading.state == "Trusted"
    assert reading.digital_source_types == [DigitalSourceType.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA.uri]
    assert reading.ingredients[0]["relationship"] == "inputTo"


def test_input_is_never_overwritten_unless_in_place(formats_dir, protector, tmp_path):
    source = tmp_path / "in.jpg"
    shutil.copy(formats_dir / "earth_apollo17.jpg", source)
    before = source.read_bytes()
    with pytest.raises(GuardError, match="--in-place"):
        protector.protect_file(source, source)
    with pytest.raises(GuardError, match="output path"):
        protector.protect_file(source)
    assert source.read_bytes() == before
    result = protector.protect_file(source, in_place=True)
    assert result.output == source
    assert read_manifest(source).state == "Valid"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jpg", "store.db", "store.db-shm", "store.db-wal"]


def test_unsupported_output_format_is_refused_before_anything_is_written(protector, generated, tmp_path):
    with pytest.raises(GuardError, match="must end in one of"):
        protect_image(generated, tmp_path / "out.bmp", protector=protector)
    assert protector.store.count() == 0
    assert not (tmp_path / "out.bmp").exists()


def test_input_whose_history_cannot_be_kept_is_refused_in_one_line(formats_dir, protector, tmp_path):
    with pytest.raises(GuardError, match="pre-release"):
        protector.protect_file(formats_dir / "prerelease.jpg", tmp_path / "out.jpg")
    assert protector.store.count() == 0


def test_remote_manifest_input_keeps_its_reference_as_parent(shared_dir, protector, trust, tmp_path):
    result = protector.protect_file(shared_dir / "fixtures" / "c2pa" / "cloud.jpg", tmp_path / "out.jpg")
    reading = read_manifest(result.output, trust=trust)
    assert reading.state == "Trusted"
    assert result.has_parent and reading.ingredients[0]["title"] == "cloud.jpg"


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_colour_profile_of_the_input_is_kept(formats_dir, protector, tmp_path, suffix):
    source = formats_dir / "earth_apollo17.jpg"
    icc = Image.open(source).info["icc_profile"]
    result = protector.protect_file(source, tmp_path / f"out{suffix}")
    assert Image.open(result.output).info.get("icc_profile") == icc
