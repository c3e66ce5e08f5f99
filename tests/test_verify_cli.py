"""`guard verify` as a command: JSON, HTML (self-contained, everything from the file escaped), many files as
JSON Lines, exit codes, trust options and the conforming-products answer."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin
from skimage import data as skdata

from guard.cli import cli
from guard.protect import Protector, protect_image
from guard.provenance.credentials.keys import SigningIdentity, init_identity
from guard.provenance.credentials.store import ManifestStore

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(autouse=True)
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GUARD_STORE_URL", raising=False)
    monkeypatch.delenv("GUARD_TRUST_ANCHORS", raising=False)
    monkeypatch.delenv("GUARD_CONFORMING_PRODUCTS", raising=False)


def run(*args: str):
    return CliRunner().invoke(cli, ["verify", *args, "--no-classifier"])


@pytest.fixture()
def hostile_png(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"{HOSTILE}\nSteps: 20, Sampler: Euler, Model: {HOSTILE}")
    path = tmp_path / f"{'<b>'}odd.png"
    Image.fromarray(skdata.coffee()).save(path, pnginfo=info)
    return path


def test_json_and_exit_codes(c2pa_dir):
    clean = run(str(c2pa_dir / "C.jpg"), "--json")
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.output)["c2pa"]["state"] == "Valid"
    tampered = run(str(c2pa_dir / "XCA.jpg"), "--json")
    assert tampered.exit_code == 1
    report = json.loads(tampered.output)
    for field in ("path", "c2pa", "watermarks", "recovered", "metadata", "synthetic", "signals", "verdict"):
        assert field in report
    assert set(report["verdict"]) >= {"origin", "strength", "integrity", "reasons"}


def test_terminal_report_names_verdict_and_failures(c2pa_dir):
    result = run(str(c2pa_dir / "E-sig-CA.jpg"))
    assert result.exit_code == 1
    assert "tampered" in result.output and "claimSignature.mismatch" in result.output
    assert "A.jpg" in result.output  # the history tree


def test_html_report_is_self_contained_and_escaped(hostile_png, tmp_path):
    page = tmp_path / "report.html"
    result = run(str(hostile_png), "--html", str(page))
    assert result.exit_code == 1, result.output  # A1111 parameters: AI-generated (weak)
    html = page.read_text()
    assert "data:image/jpeg;base64," in html
    assert "<script" not in html and "onerror=alert(1)>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;odd.png" in html
    assert "ai-generated" in html and "Evidence" in html
    assert "http://" not in html.replace("http://cv.iptc.org", "").split("<pre>")[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.html")]  # no temporary left


def test_many_files_give_json_lines_and_exit_2_when_one_is_unreadable(c2pa_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("A.jpg", "C.jpg"):
        (folder / name).write_bytes((c2pa_dir / name).read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    result = run(str(folder))
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [Path(line["path"]).name for line in lines] == ["A.jpg", "C.jpg", "broken.jpg"]
    assert "error" in lines[2] and "verdict" in lines[0]
    assert result.exit_code == 2
    (folder / "broken.jpg").unlink()
    assert run(str(folder)).exit_code == 0
    (folder / "XCA.jpg").write_bytes((c2pa_dir / "XCA.jpg").read_bytes())
    assert run(str(folder)).exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/x.jpg"], "no such file"),
        (["{c2pa}", "--html", "{c2pa}/C.jpg"], "--html"),
        (["{c2pa}/C.jpg", "--trust-anchors", "/nonexistent.pem"], "trust anchors"),
        (["{c2pa}/C.jpg", "--trust-config", "/nonexistent.cfg"], "trust configuration"),
        (["{c2pa}/C.jpg", "--conforming-products", "/nonexistent.json"], "conforming products"),
        (["{c2pa}/C.jpg", "--resolver", "ftp://x"], "resolver URL"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(c2pa_dir, args, message):
    result = run(*(arg.format(c2pa=c2pa_dir) for arg in args))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


def test_trust_anchor_and_conforming_product(conformance_dir, tmp_path):
    """A signer whose certificate names a conforming product is `yes` only when it chains to a trust anchor."""
    home = tmp_path / "vendor"
    init_identity(home, organization="OpenAI OpCo, LLC", common_name="OpenAI Media Service")
    with ManifestStore.open(f"sqlite:///{tmp_path / 'vendor.db'}") as store:
        protector = Protector(identity=SigningIdentity.load(home), store=store)
        result = protect_image(Image.fromarray(skdata.astronaut()), tmp_path / "gen.jpg", protector=protector)
    anchor = str(home / "keys" / "ca.pem")
    trusted = json.loads(
        run(
            str(result.output),
            "--json",
            "--trust-anchors",
            anchor,
            "--conforming-products",
            str(conformance_dir / "conforming-products-list.json"),
        ).output
    )
    assert trusted["c2pa"]["state"] == "Trusted"
    product = trusted["c2pa"]["conforming_product"]
    assert (product["status"], product["product"], product["applicant"]) == (
        "yes",
        "OpenAI Media Service",
        "OpenAI OpCo, LLC",
    )
    assert trusted["trust"]["anchors"][0] == anchor
    untrusted = json.loads(
        run(
            str(result.output),
            "--json",
            "--conforming-products",
            str(conformance_dir / "conforming-products-list.json"),
        ).output
    )
    assert untrusted["c2pa"]["state"] == "Valid"
    assert untrusted["c2pa"]["conforming_product"]["status"] == "unknown"
    assert "trust anchor" in untrusted["c2pa"]["conforming_product"]["reason"]
    unconfigured = json.loads(run(str(result.output), "--json").output)
    assert unconfigured["c2pa"]["conforming_product"]["status"] == "unknown"


def test_official_trust_list_and_allowed_list_are_accepted(c2pa_dir, shared_dir):
    trust_list = str(shared_dir / "c2pa-conformance" / "C2PA-TRUST-LIST.pem")
    result = run(str(c2pa_dir / "C.jpg"), "--json", "--trust-anchors", trust_list)
    report = json.loads(result.output)
    assert report["c2pa"]["state"] == "Valid"  # the test signer is not under the official list
    assert "signingCredential.untrusted" in {f["code"] for f in report["c2pa"]["failures"]}


def test_verify_never_creates_a_store(c2pa_dir, tmp_path):
    assert run(str(c2pa_dir / "A.jpg"), "--json").exit_code == 0
    assert not (tmp_path / "home").exists()


def test_library_entry_points_for_the_demo(c2pa_dir):
    from guard.verify import render_terminal, verify_file

    report = verify_file(c2pa_dir / "CA.jpg", classifier=False)
    buffer = io.StringIO()
    from rich.console import Console

    render_terminal(report, Console(file=buffer, width=120))
    assert "CA.jpg" in buffer.getvalue() and "parentOf: A.jpg" in buffer.getvalue()


def test_trust_anchors_and_products_list_by_url(conformance_dir, tmp_path):
    """Paths or URLs, as c2patool takes them: served here by a local HTTP server."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    home = tmp_path / "vendor"
    init_identity(home, organization="OpenAI OpCo, LLC", common_name="OpenAI Media Service")
    with ManifestStore.open(f"sqlite:///{tmp_path / 'vendor.db'}") as store:
        protector = Protector(identity=SigningIdentity.load(home), store=store)
        result = protect_image(Image.fromarray(skdata.astronaut()), tmp_path / "gen.jpg", protector=protector)
    served = tmp_path / "served"
    served.mkdir()
    (served / "ca.pem").write_bytes((home / "keys" / "ca.pem").read_bytes())
    (served / "products.json").write_bytes((conformance_dir / "conforming-products-list.json").read_bytes())

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        report = json.loads(
            run(
                str(result.output),
                "--json",
                "--trust-anchors",
                f"{base}/ca.pem",
                "--conforming-products",
                f"{base}/products.json",
            ).output
        )
        missing = run(str(result.output), "--trust-anchors", f"{base}/nothing.pem")
    finally:
        server.shutdown()
        server.server_close()
    assert report["c2pa"]["state"] == "Trusted"
    assert report["c2pa"]["conforming_product"]["status"] == "yes"
    assert missing.exit_code == 2 and missing.output.startswith("error: ")


def test_remote_manifest_is_fetched_only_when_asked(tmp_path):
    """A manifest that lives at a URL: named and left alone offline; fetched and validated with --fetch-remote."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import c2pa

    from guard.provenance.credentials.c2pa import c2pa_context, make_signer
    from guard.provenance.credentials.manifest import build_manifest

    home = tmp_path / "signer"
    init_identity(home)
    served = tmp_path / "served"
    served.mkdir()
    requests: list[str] = []

    class Recording(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Recording, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/manifest.c2pa"
    source = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(source, "JPEG")
    definition = build_manifest(
        title="remote.jpg", source_type="trainedAlgorithmicMedia", watermark_scheme="guard", payload=bytes(6)
    )
    builder = c2pa.Builder(definition, context=c2pa_context(signing=True))
    builder.set_no_embed()
    builder.set_remote_url(url)
    signed = io.BytesIO()
    manifest = builder.sign(
        make_signer(SigningIdentity.load(home)), "image/jpeg", io.BytesIO(source.getvalue()), signed
    )
    builder.close()
    (served / "manifest.c2pa").write_bytes(manifest)
    asset = tmp_path / "remote.jpg"
    asset.write_bytes(signed.getvalue())
    anchor = str(home / "keys" / "ca.pem")
    try:
        offline = json.loads(run(str(asset), "--json", "--trust-anchors", anchor).output)
        assert requests == []
        fetched = json.loads(run(str(asset), "--json", "--trust-anchors", anchor, "--fetch-remote").output)
        assert requests and all(path == "/manifest.c2pa" for path in requests)
    finally:
        server.shutdown()
        server.server_close()
    assert (offline["c2pa"]["remote_url"], offline["c2pa"]["remote_fetched"]) == (url, False)
    assert offline["verdict"]["integrity"] == "unverified"
    assert fetched["c2pa"]["state"] == "Trusted" and fetched["c2pa"]["remote_fetched"] is True
    assert fetched["trust"]["remote_manifests"] == "fetched"
    verdict = fetched["verdict"]
    assert (verdict["origin"], verdict["strength"], verdict["integrity"]) == ("ai-generated", "strong", "intact")


def test_html_shows_the_signed_thumbnail_beside_the_file(c2pa_dir, tmp_path):
    """XCA.jpg's pixels changed after signing: the page puts the manifest's own thumbnail next to the file."""
    page = tmp_path / "xca.html"
    result = run(str(c2pa_dir / "XCA.jpg"), "--json", "--html", str(page))
    assert json.loads(result.output)["c2pa"]["thumbnail"] == {"format": "image/jpeg", "bytes": 49690}
    html = page.read_text()
    assert html.count("<figure") == 2 and "thumbnail in the signed manifest" in html
    assert html.count("data:image/jpeg;base64,") == 2


def test_html_pages_for_a_folder(c2pa_dir, tmp_path):
    folder = tmp_path / "in"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    for sub in ("a", "b"):
        (folder / sub / "C.jpg").write_bytes((c2pa_dir / "C.jpg").read_bytes())
    pages = tmp_path / "pages"
    result = run(str(folder), "--html", str(pages))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [Path(line["html"]).name for line in lines] == ["C.jpg.html", "C.jpg-2.html"]
    assert all("data:image/jpeg;base64," in Path(line["html"]).read_text() for line in lines)


def test_folder_without_images_is_one_line_and_exit_2(tmp_path):
    result = run(str(tmp_path))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: no image files found in {tmp_path}."]


def test_html_report_never_overwrites_the_image_it_verifies(c2pa_dir, tmp_path):
    image = tmp_path / "C.jpg"
    image.write_bytes((c2pa_dir / "C.jpg").read_bytes())
    result = run(str(image), "--html", str(image))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --html {image} is the image being verified; give another file for the report."
    ]
    assert image.read_bytes() == (c2pa_dir / "C.jpg").read_bytes()


def test_python_api_gives_what_the_command_prints(c2pa_dir, tmp_path):
    """`Verifier.from_env` + `verify_paths` is what `guard verify DIR --json` runs: same records, in order."""
    from guard.verify import Verifier, verify_paths

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("C.jpg", "XCA.jpg"):
        (folder / name).write_bytes((c2pa_dir / name).read_bytes())
    (folder / "broken.png").write_text("not an image")
    printed = [json.loads(line) for line in run(str(folder), "--json").output.splitlines() if line.strip()]
    with Verifier.from_env(classifier=False) as verifier:
        library = [outcome.to_dict() for outcome in verify_paths([folder], verifier)]
    assert json.loads(json.dumps(library, default=str)) == printed
    assert [Path(r["path"]).name for r in library] == ["C.jpg", "XCA.jpg", "broken.png"]
    assert "error" in library[2]
