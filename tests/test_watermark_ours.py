"""Our watermark ("guard", tiled spread spectrum): payload round trip, robustness, calibrated detection, version,
small images, bad payloads; and the channel code under it."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from guard.errors import GuardError
from guard.provenance.watermarks import DEFAULT_SCHEME, KNOWN_SCHEMES, convolutional, decode_all, get_scheme
from guard.provenance.watermarks import ours as ss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.attacks import crop, reencode, resize, social

PAYLOAD = bytes.fromhex("a1b2c3d4e5f6")


def _photo(name: str, size: tuple[int, int]) -> Image.Image:
    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    return image.resize(size, Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def scheme() -> ss.TiledSpreadSpectrum:
    return ss.TiledSpreadSpectrum()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return _photo("astronaut", (512, 512))


@pytest.fixture(scope="module")
def marked(scheme, photo) -> Image.Image:
    return scheme.embed(photo, PAYLOAD)


def test_ours_is_the_default_and_first_known_scheme():
    assert DEFAULT_SCHEME == "guard"
    assert KNOWN_SCHEMES[0] == "guard"
    assert isinstance(get_scheme(), ss.TiledSpreadSpectrum)
    assert get_scheme().payload_bytes == 6


def test_payload_round_trip_with_the_fields_the_cli_prints(scheme, photo, marked):
    result = scheme.decode(marked)
    assert result.detected and result.payload == PAYLOAD
    document = result.to_dict()
    assert document["scheme"] == "guard" and document["payload"] == PAYLOAD.hex()
    assert document["confidence"] > 1 - ss.FALSE_POSITIVE_RATE
    assert document["version"] == ss.VERSION and document["crc_ok"] is True
    assert document["z"] >= document["threshold"]
    pixels, original = np.asarray(marked, dtype=np.float64), np.asarray(photo, dtype=np.float64)
    psnr = 10 * math.log10(255**2 / np.mean((pixels - original) ** 2))
    assert psnr >= 38.0


def test_round_trip_on_a_non_square_image_and_other_payloads(scheme):
    image = _photo("coffee", (600, 400))
    for payload in (bytes(6), b"\xff" * 6, bytes.fromhex("0123456789ab")):
        result = scheme.decode(scheme.embed(image, payload))
        assert result.detected and result.payload == payload


def test_embedding_is_deterministic(scheme, photo, marked):
    assert np.array_equal(np.asarray(scheme.embed(photo, PAYLOAD)), np.asarray(marked))


@pytest.mark.parametrize(
    "attack",
    [
        lambda im: reencode(im, "JPEG", 75),
        lambda im: resize(im, 0.5),
        lambda im: crop(im, 0.8),
        lambda im: crop(im, 0.8, rescale=True),
        lambda im: reencode(im, "JPEG", 50),
        social,
        lambda im: crop(im, 0.6),
    ],
    ids=["jpeg75", "resize0.5", "crop80", "crop80+rescale", "jpeg50", "social", "crop60"],
)
def test_payload_survives(scheme, marked, attack):
    result = scheme.decode(attack(marked))
    assert result.detected and result.payload == PAYLOAD


def test_crop_is_found_as_a_shift_and_rescale_as_a_scale(scheme, marked):
    shifted = scheme.decode(marked.crop((37, 53, 512, 512)))
    assert shifted.payload == PAYLOAD
    rescaled = scheme.decode(crop(marked, 0.8, rescale=True))
    assert rescaled.details["scale"] == pytest.approx(1.25, abs=0.02)


def test_an_unrescaled_crop_is_read_at_the_tile_size_of_its_original(scheme, marked):
    # 60 % of a 512² image is 307 pixels: 2.4 tiles a side, too few for the autocorrelation alone; the tile kept
    # its 128 pixels, i.e. scale 512 / 307 at the working resolution
    result = scheme.decode(crop(marked, 0.6))
    assert result.payload == PAYLOAD
    assert result.details["scale"] == pytest.approx(512 / 307, abs=0.01)
    assert (512 / 307, 0.0) in ss._cropped_geometries(307)
    assert all(scale > 1.0 for scale, _ in ss._cropped_geometries(307))


def test_message_weights_follow_the_channel_that_carries_the_mark(scheme):
    """Maximum-ratio combining: a channel that holds only noise gets (almost) no weight for the message."""
    layout = scheme._layout
    rng = np.random.default_rng(0)
    carrier = np.zeros((ss.TILE, ss.TILE), np.float32)
    carrier[:: ss.CHIP, :: ss.CHIP] = layout.targets(np.zeros(ss.CODED_BITS, np.uint8)).reshape(ss.GRID, ss.GRID)
    luma = carrier + rng.normal(0.0, 0.5, carrier.shape).astype(np.float32)
    chroma = rng.normal(0.0, 1.0, carrier.shape).astype(np.float32)
    combined = ss._combined(luma, chroma, layout, 0, 0)
    (luma_weight, chroma_weight), *_ = np.linalg.lstsq(
        np.stack([luma.ravel(), chroma.ravel()], axis=1), combined.ravel(), rcond=None
    )
    assert luma_weight > 0 and abs(chroma_weight) < 0.1 * luma_weight
    swapped = ss._combined(chroma, luma, layout, 0, 0)  # the same with the channels' roles exchanged
    assert np.corrcoef(swapped.ravel(), luma.ravel())[0, 1] > 0.99


def test_threshold_bounds_the_false_positive_rate():
    assert ss.false_positive_bound(ss.THRESHOLD) == pytest.approx(ss.FALSE_POSITIVE_RATE, rel=1e-9)
    assert ss.false_positive_bound(ss.THRESHOLD_WITH_MESSAGE, message_valid=True) == pytest.approx(
        ss.FALSE_POSITIVE_RATE, rel=1e-9
    )
    assert ss.THRESHOLD_WITH_MESSAGE < ss.THRESHOLD
    # one geometry x one offset bound, Hoeffding: P(z >= t) <= exp(-t^2/2); the union over all tests and the
    # two detection paths (sync alone, sync + valid message) is what false_positive_bound returns
    assert ss.false_positive_bound(ss.THRESHOLD) == pytest.approx(2 * ss.HYPOTHESES * math.exp(-(ss.THRESHOLD**2) / 2))
    assert ss.false_positive_bound(0.0) == 1.0


def test_hoeffding_z_is_sub_gaussian_over_random_keys(photo):
    """The statistic the bound rests on: for a fixed image, z over random sign sequences is at most as heavy-tailed
    as exp(-t^2/2), whatever the image."""
    rng = np.random.default_rng(0)
    values = np.asarray(photo.convert("L"), dtype=np.float64)[::4, ::4].reshape(-1)[:256]
    signs = rng.choice([-1.0, 1.0], (20000, values.size))
    z = signs @ values / np.linalg.norm(values)
    for t in (1.5, 2.5, 3.0):
        assert np.mean(z >= t) <= math.exp(-(t**2) / 2)


def _clean_images() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:512, 0:512] / 512.0
    gradient = np.stack([255 * x, 255 * y, 128 + 0 * x], axis=-1)
    stripes = 128 + 100 * np.sin(2 * np.pi * x * 512 / 128) * np.sin(2 * np.pi * y * 512 / 128)
    return [
        _photo("astronaut", (512, 512)),
        _photo("chelsea", (451, 300)),
        _photo("camera", (1024, 1024)),
        Image.new("RGB", (512, 512), (200, 30, 90)),
        Image.new("RGB", (300, 700), (0, 0, 0)),
        Image.fromarray(np.clip(128 + rng.normal(0, 30, (512, 512, 3)), 0, 255).astype(np.uint8)),
        Image.fromarray(gradient.astype(np.uint8)),
        Image.fromarray(np.repeat(stripes[:, :, None], 3, axis=2).astype(np.uint8)),
        Image.fromarray(np.tile(rng.integers(0, 256, (128, 128, 3)), (4, 4, 1)).astype(np.uint8)),
    ]


@pytest.mark.parametrize(
    "index",
    range(9),
    ids=["photo", "cat", "camera1024", "flat", "black", "noise", "gradient", "stripes128", "tiled-noise128"],
)
def test_clean_images_are_not_detected(scheme, index):
    result = scheme.decode(_clean_images()[index])
    assert not result.detected and result.payload is None
    assert result.confidence < 0.5


def test_version_is_inside_the_mark(scheme, photo, monkeypatch):
    monkeypatch.setattr(ss, "VERSION", 2)
    future = scheme.embed(photo, PAYLOAD)
    monkeypatch.undo()
    result = scheme.decode(future)
    assert result.details["crc_ok"] and result.details["version"] == 2
    assert result.payload is None  # a version we do not know: the payload is not trusted
    assert result.details["z"] > ss.THRESHOLD and result.detected  # the synchronisation alone still finds it


def test_small_images(scheme):
    with pytest.raises(GuardError, match="too small to watermark"):
        scheme.embed(Image.new("RGB", (ss.MIN_SIDE - 1, 400), (90, 90, 90)), PAYLOAD)
    smallest = _photo("chelsea", (ss.MIN_SIDE + 32, ss.MIN_SIDE + 96))
    assert scheme.decode(scheme.embed(smallest, PAYLOAD)).payload == PAYLOAD
    tiny = scheme.decode(Image.new("RGB", (40, 30)))
    assert not tiny.detected and "too small" in tiny.details["reason"]


def test_wrong_payload_size_is_refused(scheme, photo):
    for payload in (b"", b"12345", b"1234567"):
        with pytest.raises(GuardError, match="must be 6 bytes"):
            scheme.embed(photo, payload)


def test_decode_all_reads_ours_first(marked):
    results = decode_all(marked, ("guard",))
    assert results[0].scheme == "guard" and results[0].payload == PAYLOAD


def test_convolutional_code_corrects_noise_and_crc_catches_errors():
    rng = np.random.default_rng(1)
    message = rng.integers(0, 2, ss.INFO_BITS).astype(np.uint8)
    coded = convolutional.encode(message)
    assert coded.size == ss.CODED_BITS
    soft = (2.0 * coded - 1.0) + rng.normal(0, 0.7, coded.size)
    assert np.array_equal(convolutional.viterbi_decode(soft, ss.INFO_BITS), message)
    crc = convolutional.crc8(message)
    for position in (0, 17, message.size - 1):
        flipped = message.copy()
        flipped[position] ^= 1
        assert not np.array_equal(convolutional.crc8(flipped), crc)
