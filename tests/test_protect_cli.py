"""`guard protect` on the command line: JSON fields, and one-line errors with exit code 2."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import cli
from guard.provenance.credentials.c2pa import read_manifest
from guard.provenance.credentials.keys import init_identity
from guard.provenance.watermarks import get_scheme


@pytest.fixture()
def cli_home(home, tmp_path, monkeypatch):
    for name in ("GUARD_SIGN_CERT", "GUARD_SIGN_KEY", "GUARD_SIGN_KEY_PASSWORD", "GUARD_TSA_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GUARD_HOME", str(home))
    monkeypatch.setenv("GUARD_STORE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    return home


def test_cli_protect_json_fields(formats_dir, cli_home, tmp_path):
    out = tmp_path / "out.jpg"
    result = CliRunner().invoke(
        cli, ["protect", str(formats_dir / "earth_apollo17.jpg"), "-o", str(out), "--model", "sd-turbo", "--json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["output"] == str(out)
    assert document["manifest_id"].startswith("urn:c2pa:")
    assert set(document["watermark"]) == {"scheme", "payload"}
    assert len(bytes.fromhex(document["watermark"]["payload"])) == 6
    assert read_manifest(out).manifest_id == document["manifest_id"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{fixtures}/sample1.png", "-o", "{tmp}/out.gif"], "must end in one of"),
        (["{tmp}/not-an-image.jpg", "-o", "{tmp}/out.jpg"], "not-an-image.jpg"),
        (["{fixtures}/sample1.png"], "output path"),
    ],
)
def test_cli_bad_inputs_exit_2_with_one_line(formats_dir, cli_home, tmp_path, args, message):
    (tmp_path / "not-an-image.jpg").write_text("hello")
    argv = ["protect", *(a.format(fixtures=formats_dir, tmp=tmp_path) for a in args)]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_cli_expired_certificate_and_wrong_password_exit_2(formats_dir, tmp_path, monkeypatch):
    expired = tmp_path / "expired"
    init_identity(expired, days=1, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=10))
    locked = tmp_path / "locked"
    init_identity(locked, password="right")
    monkeypatch.setenv("GUARD_STORE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    argv = ["protect", str(formats_dir / "sample1.png"), "-o", str(tmp_path / "out.png")]
    for home, env, message in [
        (expired, {}, "expired"),
        (locked, {"GUARD_SIGN_KEY_PASSWORD": "wrong"}, "Wrong password"),
        (tmp_path / "empty", {}, "guard keys init"),
    ]:
        result = runner.invoke(cli, argv, env={"GUARD_HOME": str(home), **env})
        assert result.exit_code == 2, result.output
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


def test_cli_output_is_trusted_ai_made_and_found_after_metadata_stripping(formats_dir, cli_home, tmp_path):
    from PIL import Image

    from guard.provenance.credentials.c2pa import TrustConfig
    from guard.provenance.credentials.source_types import DigitalSourceType
    from guard.provenance.credentials.store import ManifestStore

    out = tmp_path / "out.png"
    result = CliRunner().invoke(cli, ["protect", str(formats_dir / "P1000827.jpg"), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    reading = read_manifest(out, trust=TrustConfig(anchors=(cli_home / "keys" / "ca.pem",)))
    assert reading.state == "Trusted"
    assert reading.digital_source_types == [DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA.uri]
    stripped = tmp_path / "stripped.jpg"
    Image.open(out).convert("RGB").save(stripped, "JPEG", quality=85)
    assert read_manifest(stripped).present is False
    image = Image.open(stripped).convert("RGB")
    with ManifestStore.open() as store:
        (match, _), *_ = store.find_by_fingerprint(image)
        assert match.manifest_id == document["manifest_id"]
        payload = get_scheme(document["watermark"]["scheme"]).decode(image).payload
        assert store.find_by_payload(payload).manifest_id == document["manifest_id"]


def test_cli_several_inputs_need_a_folder_or_in_place(formats_dir, cli_home, tmp_path):
    runner = CliRunner()
    inputs = [str(formats_dir / "sample1.png"), str(formats_dir / "mars.webp")]
    for extra, message in [([], "output folder"), (["-o", str(tmp_path / "x.jpg")], "-d DIR")]:
        result = runner.invoke(cli, ["protect", *inputs, *extra])
        assert result.exit_code == 2
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_cli_folder_gives_one_json_line_per_image_and_exit_2_when_one_fails(formats_dir, cli_home, tmp_path):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(formats_dir / "P1000827.jpg", folder / "a.jpg")
    shutil.copy(formats_dir / "TUSCANY.TIF", folder / "b.tif")
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["protect", str(folder), "-d", str(out), "--json"])
    assert result.exit_code == 2, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["path"]).name for line in lines] == ["a.jpg", "b.tif", "broken.png"]
    assert "error" in lines[2] and "manifest_id" not in lines[2]
    for line in lines[:2]:
        assert read_manifest(line["output"]).manifest_id == line["manifest_id"]
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.tif"]


def test_cli_tiny_image_is_protected_or_refused_in_one_line(formats_dir, cli_home, tmp_path):
    """A 91x69 image: whether the watermark scheme can carry 48 bits in it is the scheme's call, but the
    answer is never a traceback."""
    result = CliRunner().invoke(cli, ["protect", str(formats_dir / "libpng-test.png"), "-o", str(tmp_path / "o.png")])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if result.exit_code == 0:
        assert read_manifest(tmp_path / "o.png").state == "Valid"
    else:
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "o.png").exists()


def test_cli_signs_with_the_users_own_chain_and_key(formats_dir, cli_home, tmp_path):
    from guard.provenance.credentials.c2pa import TrustConfig

    own = init_identity(tmp_path / "newsroom", organization="Newsroom")
    out = tmp_path / "out.jpg"
    argv = ["protect", str(formats_dir / "P1000827.jpg"), "-o", str(out), "--source-type", "edit"]
    argv += ["--cert", str(own / "signer.pem"), "--key", str(own / "signer.key"), "--json"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    assert "O=Newsroom" in json.loads(result.stdout)["signer"]
    assert read_manifest(out, trust=TrustConfig(anchors=(own / "ca.pem",))).state == "Trusted"
    assert read_manifest(out, trust=TrustConfig(anchors=(cli_home / "keys" / "ca.pem",))).state == "Valid"


def test_cli_folder_without_images_and_unwritable_output_exit_2_with_one_line(formats_dir, cli_home, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["protect", str(empty), "-d", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: no image files found in {empty}."]
    assert not (tmp_path / "out").exists()

    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"x")
    result = CliRunner().invoke(cli, ["protect", str(formats_dir / "earth_apollo17.jpg"), "-o", str(blocker / "o.jpg")])
    assert result.exit_code == 2, result.output
    expected = f"error: Cannot write {blocker / 'o.jpg'}: {blocker} is a file, not a folder."
    assert result.stderr.splitlines() == [expected]


def test_cli_icon_below_the_watermark_floor_is_signed_without_a_watermark(formats_dir, cli_home, tmp_path):
    from PIL import Image

    from guard.provenance.credentials.store import ManifestStore

    icon = tmp_path / "icon.png"
    Image.open(formats_dir / "earth_apollo17.jpg").convert("RGB").resize((64, 64)).save(icon)
    out = tmp_path / "icon-signed.png"
    result = CliRunner().invoke(cli, ["protect", str(icon), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["watermark"] is None
    assert "64x64 is below the guard watermark's 128x128 floor" in document["watermark_reason"]
    reading = read_manifest(out)
    assert reading.manifest_id == document["manifest_id"]
    assert reading.state == "Valid"
    assert reading.assertion("c2pa.soft-binding") is None
    with ManifestStore.open() as store:
        record = store.get(document["manifest_id"])
    assert record is not None and record.scheme == "none"

    plain = CliRunner().invoke(cli, ["protect", str(icon), "-o", str(tmp_path / "plain.png")])
    assert plain.exit_code == 0 and "no watermark: 64x64 is below" in plain.stdout

    refused = CliRunner().invoke(
        cli, ["protect", str(icon), "-o", str(tmp_path / "refused.png"), "--require-watermark"]
    )
    assert refused.exit_code == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "--require-watermark" in refused.stderr
    assert not (tmp_path / "refused.png").exists()


def test_library_loop_gives_the_cli_results(formats_dir, cli_home, tmp_path):
    """`protect_paths` is what `guard protect` runs: one result per file, errors as values, same fields."""
    from guard.protect import protect_paths

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((formats_dir / "earth_apollo17.jpg").read_bytes())
    (folder / "broken.jpg").write_text("not an image")
    results = list(protect_paths([folder], output_dir=tmp_path / "out"))
    assert [r.path.name for r in results] == ["a.jpg", "broken.jpg"]
    assert results[0].ok and results[0].value.output == tmp_path / "out" / "a.jpg"
    assert set(results[0].to_dict()) >= {"path", "output", "manifest_id", "watermark"}
    assert not results[1].ok and "broken.jpg" in results[1].error
    assert results[1].to_dict() == {"path": str(folder / "broken.jpg"), "error": results[1].error}
