"""Folder runs of `guard verify`: JSON Lines, camera RAW (.dng) picked up and verified even when its pixels
cannot be decoded, and the folder report — one self-contained sortable page (`--html X.html`) or a folder of
pages with an index (`--html DIR`), a row per file, each opening that file's full report."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import struct
from pathlib import Path
from urllib.parse import unquote

import c2pa
import pytest
from click.testing import CliRunner
from PIL import Image

from guard.cli import cli
from guard.provenance.credentials.c2pa import c2pa_context, make_signer
from guard.provenance.credentials.keys import SigningIdentity, init_identity
from guard.provenance.credentials.source_types import IPTC_NAMESPACE as IPTC

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
C2PA_FIXTURES = SHARED / "fixtures" / "c2pa"
HOSTILE = "<img src=x onerror=alert(1)>"
COMPRESSION_TAG = 259
LOSSY_DNG_COMPRESSION = 34892
"""DNG's lossy-JPEG compression: valid in a DNG, not something Pillow decodes."""


@pytest.fixture(autouse=True)
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    for name in ("GUARD_STORE_URL", "GUARD_TRUST_ANCHORS", "GUARD_TRUST_LIST"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str):
    return CliRunner().invoke(cli, ["verify", *args, "--no-classifier"])


def signed_dng(home: Path, *, decodable: bool) -> bytes:
    """A small DNG-structured TIFF signed as `image/dng` with a camera-capture manifest; with
    `decodable=False` its IFD says lossy-JPEG DNG compression, so only its credentials can be read."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 200)).save(buffer, "TIFF")
    raw = bytearray(buffer.getvalue())
    if not decodable:
        ifd = struct.unpack("<I", raw[4:8])[0]
        for entry in range(struct.unpack("<H", raw[ifd : ifd + 2])[0]):
            at = ifd + 2 + 12 * entry
            if struct.unpack("<H", raw[at : at + 2])[0] == COMPRESSION_TAG:
                raw[at + 8 : at + 10] = struct.pack("<H", LOSSY_DNG_COMPRESSION)
    manifest = {
        "claim_generator_info": [{"name": "Example Camera", "version": "1.0"}],
        "title": "capture.dng",
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": IPTC + "digitalCapture"}]},
            }
        ],
    }
    builder = c2pa.Builder(manifest, context=c2pa_context(signing=True))
    out = io.BytesIO()
    builder.sign(make_signer(SigningIdentity.load(home)), "image/dng", io.BytesIO(bytes(raw)), out)
    builder.close()
    return out.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A batch as a fact-checker gets it: signed, tampered, unsigned, RAW (decodable and not), one bad file,
    one file with a hostile name, in nested folders."""
    root = tmp_path_factory.mktemp("batch")
    home = root / "camera"
    init_identity(home, organization="Example Camera Co", common_name="Example Camera")
    images = root / "in"
    (images / "raw").mkdir(parents=True)
    for name in ("C.jpg", "XCA.jpg", "A.jpg"):
        shutil.copy(C2PA_FIXTURES / name, images / name)
    shutil.copy(C2PA_FIXTURES / "C.jpg", images / f"{HOSTILE}.jpg")
    (images / "raw" / "capture.dng").write_bytes(signed_dng(home, decodable=True))
    (images / "raw" / "lossy.DNG").write_bytes(signed_dng(home, decodable=False))
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (images / "notes.txt").write_text("not an image")
    return images


def lines(output: str) -> dict[str, dict]:
    return {Path(doc["path"]).name: doc for doc in map(json.loads, output.strip().splitlines())}


def test_folder_run_takes_dng_files_and_reads_raw_credentials(folder):
    result = run(str(folder))
    assert result.exit_code == 2  # broken.jpg is unreadable
    docs = lines(result.output)
    assert sorted(docs) == sorted(
        ["A.jpg", "C.jpg", "XCA.jpg", f"{HOSTILE}.jpg", "capture.dng", "lossy.DNG", "broken.jpg"]
    )
    assert "error" in docs["broken.jpg"]
    for name in ("capture.dng", "lossy.DNG"):
        doc = docs[name]
        assert doc["c2pa"]["state"] == "Valid", name
        assert (doc["verdict"]["origin"], doc["verdict"]["strength"]) == ("captured (claimed)", "moderate")
    assert docs["capture.dng"]["watermarks"] and "pixels" not in docs["capture.dng"]["metadata"]
    lossy = docs["lossy.DNG"]
    assert lossy["watermarks"] == [] and lossy["synthetic"]["status"] == "not run"
    assert "not decoded" in lossy["metadata"]["pixels"]
    assert any("only the Content Credentials and metadata" in r for r in lossy["verdict"]["reasons"])


def test_a_single_undecodable_dng_is_verified_and_other_undecodable_files_still_refused(folder, tmp_path):
    report = json.loads(run(str(folder / "raw" / "lossy.DNG"), "--json").output)
    assert report["c2pa"]["state"] == "Valid"
    fake = tmp_path / "fake.png"
    fake.write_bytes((folder / "raw" / "lossy.DNG").read_bytes())  # same bytes, not a RAW name
    refused = run(str(fake), "--json")
    assert refused.exit_code == 2 and refused.output.startswith("error: ")


def test_one_page_for_the_batch(folder, tmp_path):
    page = tmp_path / "report.html"
    result = run(str(folder), "--html", str(page))
    assert result.exit_code == 2
    assert "html" not in next(iter(lines(result.output).values()))  # stdout stays plain JSON Lines
    html = page.read_text(encoding="utf-8")
    rows = re.findall(r"<tbody ([^>]*)>", html)
    assert len(rows) == 7
    assert html.count("<details>") == 6  # every readable file's full report, embedded; the bad one has its error
    assert "not an image" in html
    # self-contained: nothing loaded, and the only script allowed is the sorter, by its hash
    csp = re.search(r"Content-Security-Policy' content=\"([^\"]+)\"", html).group(1)
    assert "default-src 'none'" in csp
    script = re.search(r"<script>(.*?)</script>", html, re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert html.count("<script") == 1 and "src=x" not in html.replace("src=x onerror", "")
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert not re.search(r"<(link|iframe|object)\b", html) and "http://" not in csp
    # sortable columns, with data keys on every row
    assert all(f"data-{key}=" in row for row in rows for key in ("path", "verdict", "strength", "integrity"))
    assert {"verdict", "strength", "integrity", "path"} <= set(re.findall(r"<th data-col='(\w+)'", html))
    # the tampered file and the RAW capture read as they should in their rows
    assert re.search(r"XCA\.jpg.*?tampered", html, re.DOTALL)
    assert "captured (claimed)" in html and html.count("data:image/jpeg;base64,") >= 6


def test_folder_of_pages_gets_an_index(folder, tmp_path):
    pages = tmp_path / "pages"
    result = run(str(folder), "--html", str(pages))
    docs = lines(result.output)
    index = (pages / "index.html").read_text(encoding="utf-8")
    links = [unquote(link) for link in re.findall(r"<a href='([^']+)'>full report</a>", index)]
    assert len(links) == 6 and all((pages / link).is_file() for link in links)
    assert sorted(Path(d["html"]).name for d in docs.values() if "html" in d) == sorted(links)
    assert "<details>" not in index


def test_html_file_for_a_batch_must_not_be_another_kind_of_file(folder, tmp_path):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    result = run(str(folder), "--html", str(existing))
    assert result.exit_code == 2 and ".html file" in result.output
    assert existing.read_text() == "keep me"
