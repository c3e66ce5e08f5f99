"""`guard watermark embed` and `guard watermark decode`: fields, exit codes, payloads, bad input, atomic output."""

from __future__ import annotations

import json

import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image, ImageOps

from guard.cli import cli
from guard.provenance import watermarks


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "cat.png"
    ImageOps.fit(Image.fromarray(skimage.data.chelsea()), (512, 512)).save(path)
    return path


def run(*args: str):
    return CliRunner().invoke(cli, ["watermark", *args])


def lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_embed_default_scheme_with_a_random_payload_then_decode(photo, tmp_path):
    out = tmp_path / "marked.png"
    result = run("embed", str(photo), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["output"] == str(out) and out.exists()
    assert record["scheme"] == watermarks.DEFAULT_SCHEME
    assert record["readable"] is True
    assert len(bytes.fromhex(record["payload"])) == watermarks.get_scheme().payload_bytes

    again = json.loads(run("embed", str(photo), "-o", str(tmp_path / "again.png"), "--json").stdout)
    assert again["payload"] != record["payload"]  # os.urandom, not a constant

    decoded = run("decode", str(out), "--json")
    assert decoded.exit_code == 1, decoded.output
    (found,) = lines(decoded)
    assert found["path"] == str(out)
    assert found["detected"] is True
    assert found["scheme"] == watermarks.DEFAULT_SCHEME
    assert found["payload"] == record["payload"]
    assert [mark["scheme"] for mark in found["watermarks"]] == list(watermarks.KNOWN_SCHEMES)


def test_embed_a_given_payload(photo, tmp_path):
    payload = "00112233445566778899aabbccddeeff"[: 2 * watermarks.get_scheme().payload_bytes]
    result = run("embed", str(photo), "-o", str(tmp_path / "m.png"), "--payload", payload, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["payload"] == payload


def test_stable_diffusion_mark_round_trip_and_clean_file(photo, tmp_path):
    out = tmp_path / "sd.png"
    embedded = run("embed", str(photo), "-o", str(out), "--scheme", "sd-v1", "--json")
    assert embedded.exit_code == 0, embedded.output
    assert json.loads(embedded.stdout) == {
        "output": str(out),
        "payload": b"StableDiffusionV1".hex(),
        "scheme": "sd-v1",
        "readable": True,
    }
    decoded = run("decode", str(photo), str(out), "--scheme", "sd-v1", "--scheme", "sdxl", "--json")
    assert decoded.exit_code == 1
    clean, marked = lines(decoded)
    assert clean["detected"] is False and clean["payload"] is None and clean["scheme"] == "sd-v1"
    assert marked["detected"] is True and marked["scheme"] == "sd-v1"
    assert marked["payload"] == b"StableDiffusionV1".hex()
    sd, sdxl = marked["watermarks"]
    assert sd["rank_sum"] >= sd["rank_sum_threshold"] and sd["false_positive_bound"] <= 1e-6
    assert sdxl["scheme"] == "sdxl" and sdxl["detected"] is False


def test_decode_clean_files_exits_0_and_text_output(photo):
    result = run("decode", str(photo))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{photo}: no watermark found ({', '.join(watermarks.KNOWN_SCHEMES)})"


def test_decode_reports_an_unreadable_file_and_goes_on(photo, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    result = run("decode", str(bad), str(photo), "--json")
    assert result.exit_code == 2
    broken, clean = lines(result)
    assert broken["path"] == str(bad) and "not an image" in broken["error"]
    assert clean["path"] == str(photo) and clean["detected"] is False


def test_decode_a_folder(photo, tmp_path):
    run("embed", str(photo), "-o", str(tmp_path / "sd2.png"), "--scheme", "sd-v2")
    result = run("decode", str(tmp_path), "--scheme", "sd-v2", "--json")
    found = {record["path"]: record["detected"] for record in lines(result)}
    assert found == {str(photo): False, str(tmp_path / "sd2.png"): True}
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "{in}"], "is the input"),
        (["-o", "{dir}/out.gif"], "end the output name in one of"),
        (["-o", "{dir}/out.png", "--payload", "xyz"], "not hexadecimal"),
        (["-o", "{dir}/out.png", "--payload", "0102"], "bytes"),
        (["-o", "{dir}/out.png", "--scheme", "sd-v2", "--payload", "01020304"], "always carries"),
        (["-o", "{dir}/out.png", "--scheme", "nope"], "Unknown watermark scheme"),
    ],
)
def test_embed_refuses_bad_input_with_one_line_and_writes_nothing(photo, tmp_path, args, message):
    before = photo.read_bytes()
    filled = [a.format(**{"in": photo, "dir": tmp_path}) for a in args]
    result = run("embed", str(photo), *filled)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert photo.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png"]  # no output, no temporary file


def test_embed_refuses_an_image_the_scheme_cannot_hold(tmp_path):
    small = tmp_path / "small.png"
    Image.new("RGB", (120, 90), (10, 120, 200)).save(small)
    result = run("embed", str(small), "-o", str(tmp_path / "out.png"), "--scheme", "sd-v1")
    assert result.exit_code == 2 and "256x256" in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_embed_missing_input(tmp_path):
    result = run("embed", str(tmp_path / "missing.png"), "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_expect_needs_a_scheme_that_takes_it(photo):
    result = run("decode", str(photo), "--expect", "01020304")
    assert result.exit_code == 2 and "--scheme rivaGan" in result.stderr


def test_embed_warns_when_the_mark_does_not_read_back(tmp_path):
    """dwtDct writes into chroma; on a white image every change is clipped away and nothing reads back."""
    source = tmp_path / "white.png"
    Image.new("RGB", (512, 512), (255, 255, 255)).save(source)
    result = run("embed", str(source), "-o", str(tmp_path / "sd2.png"), "--scheme", "sd-v2", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["readable"] is False
    assert "warning: the sd-v2 mark does not read back" in result.stderr


def test_decode_an_unknown_scheme_fails_before_reading_any_file(photo):
    result = run("decode", str(photo), "--scheme", "nope", "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: Unknown watermark scheme 'nope'")


def test_folder_without_images_and_unwritable_output_exit_2_with_one_line(photo, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("decode", str(empty))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: no image files found in {empty}."]

    result = run("embed", str(photo), "-o", str(photo / "marked.png"))
    assert result.exit_code == 2, result.output
    expected = f"error: Cannot write {photo / 'marked.png'}: {photo} is a file, not a folder."
    assert result.stderr.splitlines() == [expected]
