"""Safe image loading: every real fixture format decodes to RGB, every crafted bad file is refused in one line."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from conftest import SHARED_DIR
from PIL import Image

from guard.errors import ImageError
from guard.images import DEFAULT_MAX_PIXELS, iter_image_files, load_image

EXPECTED_SIZES = {
    "P1000827.jpg": (1024, 759),
    "TUSCANY.TIF": (2550, 3300),
    "earth_apollo17.jpg": (375, 375),
    "libpng-test.png": (91, 69),
    "mars.webp": (1053, 600),
    "prerelease.jpg": (2048, 1365),
    "sample1.avif": (1204, 800),
    "sample1.gif": (135, 135),
    "sample1.heic": (1440, 960),
    "sample1.png": (1024, 683),
    "test_lossless.webp": (128, 128),
    "test_xmp.webp": (128, 128),
}


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message.endswith(".")
    return message


@pytest.mark.parametrize("name", sorted(p.name for p in (SHARED_DIR / "fixtures" / "formats").iterdir()))
def test_every_fixture_format_decodes_to_rgb(formats_dir, name):
    image = load_image(formats_dir / name)
    assert image.mode == "RGB"
    assert image.size == EXPECTED_SIZES[name]
    pixels = np.asarray(image)
    assert pixels.dtype == np.uint8 and pixels.std() > 5  # real content, not a blank canvas


def test_bytes_path_and_pil_inputs_agree(formats_dir):
    path = formats_dir / "earth_apollo17.jpg"
    from_path = np.asarray(load_image(path))
    from_str = np.asarray(load_image(str(path)))
    from_bytes = np.asarray(load_image(path.read_bytes()))
    from_pil = np.asarray(load_image(Image.open(path)))
    assert np.array_equal(from_path, from_bytes)
    assert np.array_equal(from_path, from_str)
    assert np.array_equal(from_path, from_pil)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    loaded = load_image(_encode(image, "JPEG", exif=exif.tobytes()))
    assert loaded.size == (20, 40)


def test_alpha_is_flattened_on_white():
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    loaded = np.asarray(load_image(_encode(image, "PNG")))
    assert tuple(loaded[0, 0]) == (255, 0, 0)
    assert tuple(loaded[4, 4]) == (255, 255, 255)


def test_palette_with_transparency_is_flattened():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0
    loaded = np.asarray(load_image(_encode(image, "PNG", transparency=0)))
    assert tuple(loaded[0, 0]) == (255, 255, 255)
    assert tuple(loaded[1, 1]) == (10, 200, 30)


def test_cmyk_jpeg_is_converted():
    loaded = load_image(_encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))
    red, green, blue = np.asarray(loaded)[8, 8]
    assert loaded.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    ramp = (np.arange(256, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)
    loaded = np.asarray(load_image(_encode(Image.fromarray(ramp), "PNG")))
    assert loaded.shape == (16, 16, 3)
    assert loaded[0, 0, 0] == 0 and loaded[15, 15, 0] == 255
    assert len(np.unique(loaded[..., 0])) == 256


@pytest.mark.parametrize("mode", ["L", "LA", "1", "I", "F"])
def test_single_channel_modes_become_rgb(mode):
    base = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    image = base.convert(mode)
    loaded = load_image(image)
    assert loaded.mode == "RGB" and loaded.size == (8, 8)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "WEBP", "GIF"])
def test_common_containers_round_trip(fmt):
    source = Image.fromarray(np.full((24, 32, 3), (20, 120, 220), np.uint8))
    loaded = load_image(_encode(source, fmt))
    assert loaded.size == (32, 24)
    assert np.abs(np.asarray(loaded).astype(int) - (20, 120, 220)).max() < 24


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    red, _, blue = np.asarray(load_image(buffer.getvalue()))[5, 5]
    assert red > 200 and blue < 50


def test_empty_file_is_refused(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty") as exc:
        load_image(empty)
    assert _one_line(exc).startswith(str(empty))


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_text_file_is_not_an_image(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello, this is not a picture\n" * 20)
    with pytest.raises(ImageError, match="not an image") as exc:
        load_image(text)
    _one_line(exc)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_data_is_refused(formats_dir, fmt):
    photo = load_image(formats_dir / "earth_apollo17.jpg")
    data = _encode(photo, fmt)
    with pytest.raises(ImageError) as exc:
        load_image(data[: len(data) // 2])
    assert any(word in str(exc.value) for word in ("truncated", "corrupt", "not a readable", "not an image"))
    _one_line(exc)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size in its header but carries almost no data (a bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageError, match=r"megapixels|decompression bomb") as exc:
        load_image(_png_header_only(20_000, 20_000))
    _one_line(exc)


def test_pixel_cap_is_configurable(monkeypatch):
    image = _encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageError, match="limit"):
        load_image(image, max_pixels=5_000)
    monkeypatch.setenv("GUARD_MAX_PIXELS", "5000")
    with pytest.raises(ImageError, match="GUARD_MAX_PIXELS"):
        load_image(image)
    monkeypatch.setenv("GUARD_MAX_PIXELS", "20000")
    assert load_image(image).size == (100, 100)
    assert DEFAULT_MAX_PIXELS == 64_000_000


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "PDF"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "PostScript"),
        (b"8BPS\x00\x01" + b"\x00" * 40, "Photoshop"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
    ],
)
def test_unsupported_formats_are_named_and_never_decoded(data, named):
    with pytest.raises(ImageError, match="not supported") as exc:
        load_image(data)
    assert named in str(exc.value)
    _one_line(exc)


def test_folder_walk_finds_images_recursively_and_keeps_explicit_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.PNG").write_bytes(b"x")
    (tmp_path / "a" / "b" / "two.jpg").write_bytes(b"x")
    (tmp_path / "a" / "notes.txt").write_text("x")
    explicit = tmp_path / "odd.name"
    explicit.write_bytes(b"x")
    found = list(iter_image_files([tmp_path / "a", explicit]))
    assert found == [tmp_path / "a" / "b" / "two.jpg", tmp_path / "a" / "one.PNG", explicit]
    assert list(iter_image_files([tmp_path / "a"], recursive=False)) == [tmp_path / "a" / "one.PNG"]


def test_writers_share_one_format_table_and_their_outputs_read_back(tmp_path):
    from guard.images import ENCODE_OPTIONS, WRITE_FORMATS, load_image
    from guard.protect import SIGNED_FORMATS as PROTECT_FORMATS
    from guard.provenance.credentials.c2pa import SIGNABLE_MIME
    from guard.watermark import MARKED_FORMATS as WATERMARK_FORMATS

    assert set(PROTECT_FORMATS.items()) <= set(WRITE_FORMATS.items())
    assert set(WATERMARK_FORMATS.items()) <= set(WRITE_FORMATS.items())
    assert set(PROTECT_FORMATS.values()) == set(SIGNABLE_MIME)
    assert {".png", ".jpg", ".webp", ".tif", ".bmp"} <= set(WATERMARK_FORMATS)
    pixels = Image.fromarray(np.full((16, 16, 3), 128, np.uint8))
    for suffix in sorted(WATERMARK_FORMATS):
        fmt = WRITE_FORMATS[suffix]
        path = tmp_path / f"out{suffix}"
        pixels.save(path, fmt, **ENCODE_OPTIONS.get(fmt, {}))
        assert load_image(path).size == (16, 16)


def test_bytes_read_once_are_named_by_their_path_in_errors(tmp_path):
    from guard.images import read_file

    bad = tmp_path / "upload.jpg"
    bad.write_bytes(b"this is not an image at all")
    data = read_file(bad)
    with pytest.raises(ImageError, match=r"^.*upload\.jpg: not an image"):
        load_image(data, name=str(bad))
    with pytest.raises(ImageError, match="no such file"):
        read_file(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        read_file(tmp_path)
