"""Known watermarks: the vectorised dwtDct decoder against invisible-watermark's, and the SD / SDXL / rivaGan
schemes on marks embedded by invisible-watermark itself, the way Stable Diffusion's scripts and diffusers do."""

from __future__ import annotations

import itertools
import math

import cv2
import matplotlib.cbook
import numpy as np
import pytest
import pywt
import skimage.data
from conftest import SHARED_DIR
from imwatermark import WatermarkDecoder, WatermarkEncoder
from PIL import Image, ImageDraw, ImageOps

from guard.errors import GuardError
from guard.images import load_image
from guard.provenance.watermarks import KNOWN_SCHEMES, decode_all, get_scheme, known_marks
from guard.provenance.watermarks.dwtdct import decode_bits, decode_votes, haar_approximation, tally


def photos() -> dict[str, Image.Image]:
    """Real photos bundled with scikit-image and matplotlib, and two from the shared fixtures."""
    found = {
        name: Image.fromarray(getattr(skimage.data, name)())
        for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
    }
    found["grace_hopper"] = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    for name in ("P1000827.jpg", "earth_apollo17.jpg"):
        try:
            found[name] = load_image(SHARED_DIR / "fixtures" / "formats" / name)
        except Exception:  # the fixtures folder is shared; the skimage photos suffice without it
            continue
    return {name: image.convert("RGB") for name, image in found.items()}


PHOTOS = photos()


def square(image: Image.Image, side: int = 512) -> Image.Image:
    return ImageOps.fit(image, (side, side))


def bgr(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def sd_put_watermark(image: Image.Image, message: bytes) -> Image.Image:
    """CompVis/stable-diffusion scripts/txt2img.py: set_watermark('bytes', ...) and put_watermark, verbatim."""
    encoder = WatermarkEncoder()
    encoder.set_watermark("bytes", message)
    marked = encoder.encode(cv2.cvtColor(np.array(image), cv2.COLOR_RGB2BGR), "dwtDct")
    return Image.fromarray(marked[:, :, ::-1])


def diffusers_sdxl(image: Image.Image) -> Image.Image:
    """diffusers' StableDiffusionXLWatermarker on a [-1, 1] tensor, then VaeImageProcessor's postprocess to PIL."""
    torch = pytest.importorskip("torch")
    from diffusers.image_processor import VaeImageProcessor
    from diffusers.pipelines.stable_diffusion_xl.watermark import StableDiffusionXLWatermarker

    tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    marked = StableDiffusionXLWatermarker().apply_watermark(tensor)
    return VaeImageProcessor().postprocess(marked, output_type="pil")[0]


# --- the vectorised decoder gives invisible-watermark's bits -------------------------------------------------


def test_haar_approximation_is_pywavelets_bit_for_bit():
    rng = np.random.default_rng(5)
    for dtype in (np.uint8, np.float32, np.float64):
        values = rng.integers(0, 256, (66, 90)).astype(dtype)
        if dtype != np.uint8:
            values = values + rng.random(values.shape).astype(dtype)
        expected, _ = pywt.dwt2(values, "haar")
        got = haar_approximation(values)
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_decoder_bits_equal_invisible_watermark_on_photos_and_odd_sizes(name):
    image = PHOTOS[name]
    rng = np.random.default_rng(len(name))
    marked = sd_put_watermark(square(image, 384), b"SDV2")  # a marked image reads varied bits, not all zeros
    cases = [image, marked]
    for _ in range(2):  # odd crops: sizes that are not multiples of 4, 8 or the message length
        width, height = image.size
        w, h = int(rng.integers(257, min(width, 700) + 1)), int(rng.integers(257, min(height, 700) + 1))
        left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        cases.append(image.crop((left, top, left + w, top + h)))
    for case in cases:
        pixels = bgr(case)
        for length in (32, 48, 136, 7):
            expected = np.array(WatermarkDecoder("bits", length).decode(pixels, "dwtDct"), dtype=bool)
            assert np.array_equal(decode_bits(pixels, length), expected), (case.size, length)
            rgb_votes = decode_votes(np.asarray(case.convert("RGB")), length, order="RGB")
            assert np.array_equal(rgb_votes.bits, expected), (case.size, length)


def test_decoder_bits_equal_invisible_watermark_on_float_pixels_and_noise():
    rng = np.random.default_rng(11)
    noise = rng.integers(0, 256, (301, 517, 3), dtype=np.uint8)
    floats = bgr(PHOTOS["astronaut"]).astype(np.float32) * np.float32(0.9) + np.float32(3.3)
    for pixels in (noise, floats):
        for length in (32, 48):
            expected = np.array(WatermarkDecoder("bits", length).decode(pixels, "dwtDct"), dtype=bool)
            assert np.array_equal(decode_bits(pixels, length), expected)
    # noise reads balanced bits, so the comparison above is not between two constant strings
    assert 0.2 < decode_bits(noise, 48).mean() < 0.8
    with pytest.raises(ValueError):
        decode_votes(floats[:, :, ::-1], 48, order="RGB")  # OpenCV's float RGB->YUV differs in the last bit


def test_votes_count_every_block():
    votes = decode_votes(bgr(square(PHOTOS["coffee"], 512)), 48)
    assert votes.blocks.sum() == (256 // 4) ** 2  # a 512x512 image: cA is 256x256, 64x64 blocks
    assert (votes.ones <= votes.blocks).all() and votes.blocks.min() >= (64 * 64) // 48


# --- the calibrated threshold --------------------------------------------------------------------------------


def test_rank_sum_tails_are_the_exact_null_distribution():
    size, ones = 10, 4
    tails = known_marks.rank_sum_tails(size, ones)
    sums = [sum(c) for c in itertools.combinations(range(1, size + 1), ones)]
    for w in range(len(tails)):
        assert tails[w] == pytest.approx(sum(s >= w for s in sums) / len(sums), abs=1e-12)
    # SD v2: 13 ones in 32 bits; the largest sum comes from one choice in C(32, 13)
    v2 = known_marks.rank_sum_tails(32, 13)
    assert v2[sum(range(20, 33))] == pytest.approx(1 / math.comb(32, 13), rel=1e-9)


def test_stratified_tails_are_the_exact_null_distribution():
    message = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 1], dtype=bool)  # strata: bits 0, 2, 4, ... and 1, 3, 5, ...
    tails = known_marks.stratified_tails(message, 2)
    totals = []
    for first in itertools.permutations(range(5)):
        for second in itertools.permutations(range(5)):
            shares = np.empty(10)
            shares[0::2], shares[1::2] = first, second
            totals.append(known_marks.stratified_rank_sum(shares, message, 2))
    for w in range(len(tails)):
        assert tails[w] == pytest.approx(np.mean([t >= w for t in totals]), abs=1e-12)


def test_a_pattern_repeating_with_the_message_is_not_a_mark():
    """8x8-pixel blocks of two colours, the colour that reads 1 chosen more often in the block columns where
    "StableDiffusionV1" has more 1-bits (bit n mod 8 follows the column mod 8 at a width of 64 blocks): the
    unstratified rank test gives p = 1.4e-10 here and 101 of 136 majority bits match (a k-of-n bit count at
    the same bound fires at 96); within strata the image shows nothing."""
    message = get_scheme("sd-v1").bits
    share_of_ones = np.array([message[k::8].mean() for k in range(8)])
    ones_colour = np.random.default_rng(0).random((64, 64)) < share_of_ones[np.arange(64) % 8][None, :]
    blocks = np.repeat(np.repeat(ones_colour, 8, axis=0), 8, axis=1)[..., None]
    image = Image.fromarray(np.where(blocks, np.array([120, 120, 140]), np.array([128, 128, 128])).astype(np.uint8))
    votes = tally(known_marks._block_votes(image, "uint8"), len(message))
    unstratified = known_marks.rank_sum_tails(len(message), int(message.sum()))
    assert unstratified[known_marks.rank_sum(votes.ones / votes.blocks, message)] < 1e-6
    for name in ("sd-v1", "sd-v2", "sdxl"):
        result = get_scheme(name).decode(image)
        assert not result.detected and result.details["p_value"] > 1e-3, (name, result.details)


@pytest.mark.parametrize("name", ["sd-v1", "sd-v2", "sdxl"])
def test_threshold_is_the_smallest_rank_sum_with_chance_under_1e6(name):
    scheme = get_scheme(name)
    result = scheme.decode(square(PHOTOS["coffee"]))  # unmarked
    tries = 2 if name == "sdxl" else 1
    tails = known_marks.stratified_tails(scheme.bits, scheme.strata)
    threshold = result.details["rank_sum_threshold"]
    assert tries * tails[threshold] <= 1e-6 < tries * tails[threshold - 1]
    assert result.details["false_positive_bound"] <= 1e-6
    assert not result.detected and result.details["p_value"] > 1e-3


def test_ties_count_against_the_message():
    """A flat or grey image reads every share alike: the message's 1-bits take the lowest ranks."""
    message = get_scheme("sd-v2").bits
    ones = int(message.sum())
    assert known_marks.rank_sum(np.zeros(len(message)), message) == sum(range(1, ones + 1))
    shares = message.astype(float)  # a perfect reading
    assert known_marks.rank_sum(shares, message) == sum(range(len(message) - ones + 1, len(message) + 1))
    for name in ("sd-v1", "sd-v2", "sdxl"):
        for colour in ((128, 128, 128), (255, 255, 255), (10, 200, 30)):
            result = get_scheme(name).decode(Image.new("RGB", (512, 512), colour))
            assert not result.detected and result.details["p_value"] == pytest.approx(1.0), (name, colour)


# --- marks embedded as the generators embed them are found --------------------------------------------------

MARKED_SET = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "grace_hopper"]


def test_stable_diffusion_v1_marks_from_the_txt2img_script_are_detected():
    for name in MARKED_SET:
        result = get_scheme("sd-v1").decode(sd_put_watermark(square(PHOTOS[name]), b"StableDiffusionV1"))
        assert result.detected, (name, result.details)
        assert result.payload == b"StableDiffusionV1"
        assert result.details["rank_sum"] >= result.details["rank_sum_threshold"]
        assert result.details["p_value"] <= 1e-6 and result.confidence >= 1 - 1e-6


def test_stable_diffusion_v2_marks_are_detected():
    """32 bits: dwtDct alone flips 3-4 majority bits on some photos (coffee), which a bit count cannot forgive
    at 1e-6; the flipped bits are the narrowly read ones, so the ranks of the vote shares still show the mark."""
    results = {n: get_scheme("sd-v2").decode(sd_put_watermark(square(PHOTOS[n]), b"SDV2")) for n in MARKED_SET}
    assert all(r.detected for r in results.values()), {n: r.details for n, r in results.items()}
    assert results["coffee"].details["matching_bits"] <= 29  # what the bit count needed: 30 of 32


def test_sdxl_marks_from_the_diffusers_watermarker_are_detected():
    results = {name: get_scheme("sdxl").decode(diffusers_sdxl(square(PHOTOS[name]))) for name in MARKED_SET}
    detected = [name for name, result in results.items() if result.detected]
    assert len(detected) == len(MARKED_SET), {n: r.details["p_value"] for n, r in results.items()}
    assert results["astronaut"].payload == known_marks.SDXL_WATERMARK_MESSAGE.to_bytes(6, "big")


def test_our_sdxl_embed_is_the_diffusers_path():
    image = square(PHOTOS["rocket"], 320)
    ours = np.asarray(get_scheme("sdxl").embed(image), dtype=int)
    theirs = np.asarray(diffusers_sdxl(image), dtype=int)
    assert np.abs(ours - theirs).max() <= 1


def test_sd_embed_through_the_scheme_is_the_script_path():
    image = square(PHOTOS["chelsea"], 300)
    assert np.array_equal(np.asarray(get_scheme("sd-v2").embed(image)), np.asarray(sd_put_watermark(image, b"SDV2")))
    with pytest.raises(GuardError, match="always carries"):
        get_scheme("sd-v2").embed(image, b"\x00\x01\x02\x03")


def test_each_scheme_finds_only_its_own_mark():
    image = square(PHOTOS["astronaut"])
    marked = sd_put_watermark(image, b"StableDiffusionV1")
    found = {r.scheme: r.detected for r in decode_all(marked, ("sd-v1", "sd-v2", "sdxl"))}
    assert found == {"sd-v1": True, "sd-v2": False, "sdxl": False}


# --- nothing is found in clean images ------------------------------------------------------------------------


def clean_images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(2024)
    images = {f"photo:{name}": square(image) for name, image in PHOTOS.items()}
    images["photo-1024:coffee"] = square(PHOTOS["coffee"], 1024)
    images.update({f"flip:{name}": ImageOps.mirror(square(image, 400)) for name, image in PHOTOS.items()})
    for colour in [(0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 0), (0, 255, 0), (0, 0, 255), (30, 200, 90)]:
        images[f"flat:{colour}"] = Image.new("RGB", (512, 512), colour)
    x = np.linspace(0, 255, 512)
    ramp = np.broadcast_to(x, (512, 512))
    images["gradient:horizontal"] = Image.fromarray(np.stack([ramp, ramp[::-1], ramp * 0.5], -1).astype(np.uint8))
    images["gradient:vertical"] = Image.fromarray(np.stack([ramp.T, ramp.T * 0.3, 255 - ramp.T], -1).astype(np.uint8))
    images["gradient:diagonal"] = Image.fromarray(np.stack([(ramp + ramp.T) / 2, ramp, ramp.T], -1).astype(np.uint8))
    images["noise:uniform"] = Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))
    images["noise:gaussian"] = Image.fromarray(np.clip(rng.normal(128, 40, (600, 700, 3)), 0, 255).astype(np.uint8))
    text = Image.new("RGB", (640, 480), (250, 248, 240))
    draw = ImageDraw.Draw(text)
    for line in range(24):
        draw.text((10, 10 + 19 * line), "The quick brown fox jumps over the lazy dog 0123456789 " * 2, fill=(20, 20, 9))
    images["text"] = text
    return images


def test_no_known_scheme_fires_on_clean_images():
    for name, image in clean_images().items():
        for result in decode_all(image, KNOWN_SCHEMES):
            assert not result.detected, (name, result.scheme, result.details)
            assert result.payload is None


@pytest.mark.parametrize("size", [(70000, 1), (3, 30000), (20000, 7), (7, 20000), (8, 9000), (9000, 9)])
def test_thin_images_read_without_failing(size):
    image = Image.new("RGB", size, (100, 150, 200))
    for name in ("sd-v1", "sd-v2", "sdxl"):
        result = get_scheme(name).decode(image)
        assert not result.detected
        # under 8 pixels across, no 4x4 block of the half-size cA fits; 8 or more hold one column of blocks
        assert ("too narrow" in result.details.get("note", "")) == (min(size) < 8)


def test_small_images_hold_no_mark_and_cannot_be_marked():
    small = square(PHOTOS["coffee"], 200)
    for name in ("sd-v1", "sd-v2", "sdxl", "rivaGan"):
        result = get_scheme(name).decode(small)
        assert not result.detected and "note" in result.details
    with pytest.raises(GuardError, match="256x256"):
        get_scheme("sd-v1").embed(small)


# --- rivaGan -------------------------------------------------------------------------------------------------


RIVA_PAYLOAD = bytes.fromhex("a5c3017e")


@pytest.fixture(scope="module")
def riva_marked(tmp_path_factory):
    """One 256x256 photo and its rivaGan-marked copy (the encoder takes seconds: made once)."""
    image = square(PHOTOS["chelsea"], 256)
    marked = get_scheme("rivaGan").embed(image, RIVA_PAYLOAD)
    folder = tmp_path_factory.mktemp("riva")
    marked.save(folder / "riva.png")
    return image, marked, folder / "riva.png"


def test_rivagan_reads_invisible_watermarks_bits_and_tests_an_expected_payload(riva_marked):
    image, marked, _ = riva_marked
    riva = get_scheme("rivaGan")
    WatermarkDecoder.loadModel()
    expected = np.packbits(WatermarkDecoder("bits", 32).decode(bgr(marked), "rivaGan")).tobytes()

    plain = riva.decode(marked)
    assert not plain.detected and plain.details["decidable"] is False
    assert plain.details["bits_read"] == expected.hex() == RIVA_PAYLOAD.hex()

    found = riva.decode_expecting(marked, RIVA_PAYLOAD)
    assert found.detected and found.payload == RIVA_PAYLOAD
    assert found.details["threshold_bits"] == 30 and found.details["false_positive_bound"] <= 1e-6
    assert not riva.decode_expecting(image, RIVA_PAYLOAD).detected
    flat_like = riva.decode_expecting(marked, bytes(4))  # all zeros: what a flat image reads
    assert not flat_like.detected and flat_like.details["threshold_bits"] == 33
    assert flat_like.details["false_positive_bound"] == 0.0 and "flat image" in flat_like.details["note"]
    with pytest.raises(GuardError, match="4 bytes"):
        riva.decode_expecting(marked, b"\x01")


def test_rivagan_through_the_cli_needs_the_payload_to_decide(riva_marked):
    import json

    from click.testing import CliRunner

    from guard.cli import cli

    path = str(riva_marked[2])
    plain = CliRunner().invoke(cli, ["watermark", "decode", path, "--scheme", "rivaGan"])
    assert plain.exit_code == 0
    assert f"rivaGan read {RIVA_PAYLOAD.hex()}, which says nothing without --expect" in plain.stdout
    expecting = CliRunner().invoke(
        cli, ["watermark", "decode", path, "--scheme", "rivaGan", "--expect", RIVA_PAYLOAD.hex(), "--json"]
    )
    assert expecting.exit_code == 1
    record = json.loads(expecting.stdout)
    assert record["detected"] is True and record["payload"] == RIVA_PAYLOAD.hex()
    assert record["watermarks"][0]["false_positive_bound"] <= 1e-6


def test_decoders_reading_one_image_share_the_block_votes_and_read_the_same(monkeypatch):
    image = sd_put_watermark(square(PHOTOS["coffee"], 512), b"StableDiffusionV1")
    alone = {name: get_scheme(name).decode(image).to_dict() for name in ("sd-v1", "sd-v2", "sdxl")}
    calls = []
    real = known_marks._block_votes
    monkeypatch.setattr(known_marks, "_block_votes", lambda img, domain: calls.append(domain) or real(img, domain))
    together = {r.scheme: r.to_dict() for r in decode_all(image, ("sd-v1", "sd-v2", "sdxl"))}
    assert together == alone
    assert together["sd-v1"]["detected"] is True
    assert sorted(calls) == ["float", "uint8"], "each pixel domain's votes are computed once for all three"
