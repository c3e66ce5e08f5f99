"""Durable Content Credentials: a protected image, stripped of its metadata, re-encoded and resized, is traced
back to its manifest — through the CLI end to end, and through each recovery path on its own (watermark
payload, fingerprint, a C2PA soft binding resolution service served by a local HTTP server). A clean photo
gets no origin and no false watermark."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from guard.cli import cli
from guard.protect import Protector, protect_image
from guard.provenance.credentials.c2pa import TrustConfig
from guard.provenance.credentials.fingerprint import fingerprints
from guard.provenance.credentials.keys import SigningIdentity, init_identity
from guard.provenance.credentials.manifest import soft_binding_alg
from guard.provenance.credentials.store import ManifestRecord, ManifestStore
from guard.verify import Verifier, verify_file
from guard.verify.resolver import ResolverError, SoftBindingResolver
from guard.verify.trust import VerifyTrust


def strip_and_shrink(source: Path, target: Path, scale: float = 0.75) -> Path:
    """What a platform does to an upload: pixels only, JPEG quality 80, then resized (JPEG 80 again)."""
    buffer = io.BytesIO()
    Image.open(source).convert("RGB").save(buffer, "JPEG", quality=80)
    image = Image.open(io.BytesIO(buffer.getvalue()))
    size = (round(image.width * scale), round(image.height * scale))
    image.resize(size, Image.Resampling.LANCZOS).save(target, "JPEG", quality=80)
    return target


@pytest.fixture(scope="module")
def protected(home, tmp_path_factory):
    """A generated-image stand-in, protected once: (result, stripped copy, the store's record)."""
    folder = tmp_path_factory.mktemp("protected")
    with ManifestStore.open(f"sqlite:///{folder / 'origin.db'}") as store:
        protector = Protector(identity=SigningIdentity.load(home), store=store)
        result = protect_image(
            Image.fromarray(skdata.astronaut()),
            folder / "gen.png",
            generator={"model": "stabilityai/sd-turbo"},
            protector=protector,
        )
        record = store.get(result.manifest_id)
    return result, strip_and_shrink(result.output, folder / "stripped.jpg"), record


def test_durable_round_trip_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GUARD_STORE_URL", raising=False)
    runner = CliRunner()
    assert runner.invoke(cli, ["keys", "init"]).exit_code == 0
    Image.fromarray(skdata.astronaut()).save(tmp_path / "gen.png")
    protect = runner.invoke(cli, ["protect", str(tmp_path / "gen.png"), "-o", str(tmp_path / "out.jpg"), "--json"])
    assert protect.exit_code == 0, protect.output
    manifest_id = json.loads(protect.output)["manifest_id"]
    stripped = strip_and_shrink(tmp_path / "out.jpg", tmp_path / "stripped.jpg")

    result = runner.invoke(cli, ["verify", str(stripped), "--json"])
    assert result.exit_code == 1, result.output  # AI-generated: flagged
    report = json.loads(result.output)
    assert report["c2pa"]["present"] is False
    assert report["recovered"]["manifest_id"] == manifest_id
    assert report["recovered"]["signature_state"] == "Trusted"  # the local CA is trusted by default
    assert report["recovered"]["binding_matches_this_file"] is False
    assert "does not match this file" in report["recovered"]["explanation"]
    assert report["signals"]["source"] == "recovered"
    assert "fullyGenAIMedia" in report["signals"]["inception"]
    verdict = report["verdict"]
    assert (verdict["origin"], verdict["strength"], verdict["integrity"]) == (
        "ai-generated",
        "strong",
        "no credentials",
    )


def test_recovery_by_watermark_payload_alone(protected, trust, tmp_path):
    result, stripped, record = protected
    far = fingerprints(Image.new("RGB", (64, 64), (0, 0, 0)))
    with ManifestStore.open(f"sqlite:///{tmp_path / 'injected.db'}") as store:
        store.add(
            ManifestRecord(
                manifest_id=record.manifest_id,
                payload=record.payload,
                manifest_store=record.manifest_store,
                mime=record.mime,
                fingerprints=far,
                signer=record.signer,
                scheme=record.scheme,
            )
        )
        report = verify_file(stripped, trust=trust, store=store)
    assert report.recovered.via == "watermark"
    assert report.recovered.manifest_id == result.manifest_id
    mark = next(w for w in report.to_dict()["watermarks"] if w["scheme"] == result.scheme)
    assert mark["detected"] is True and mark["payload"] == result.payload.hex()
    assert (report.verdict.origin, report.verdict.strength) == ("ai-generated", "strong")


def test_recovery_by_fingerprint_alone(protected, trust, tmp_path):
    result, stripped, record = protected
    with ManifestStore.open(f"sqlite:///{tmp_path / 'injected.db'}") as store:
        store.add(
            ManifestRecord(
                manifest_id=record.manifest_id,
                payload=b"\x00\x11\x22\x33\x44\x55",
                manifest_store=record.manifest_store,
                mime=record.mime,
                fingerprints=record.fingerprints,
                signer=record.signer,
                scheme=record.scheme,
            )
        )
        report = Verifier(trust=VerifyTrust(trust=trust), store=store, schemes=()).verify_file(stripped)
    recovered = report.to_dict()["recovered"]
    assert recovered["via"] == "fingerprint" and recovered["manifest_id"] == result.manifest_id
    assert recovered["distance"] <= 10
    assert recovered["signature_state"] == "Trusted"
    assert (report.verdict.origin, report.verdict.strength) == ("ai-generated", "strong")


def test_unmarked_original_of_a_protected_picture_is_traced_and_says_so(protected, trust, tmp_path):
    """The fingerprint finds the record although the record's watermark is absent: the report says so."""
    result, _, record = protected
    original = tmp_path / "original.jpg"
    Image.fromarray(skdata.astronaut()).save(original, quality=90)
    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.add(record)
        report = verify_file(original, trust=trust, store=store)
    assert report.recovered.via == "fingerprint" and report.recovered.manifest_id == result.manifest_id
    assert (report.verdict.origin, report.verdict.strength) == ("ai-generated", "strong")
    assert any("watermark was not detected" in reason for reason in report.verdict.reasons)


def test_the_protected_file_itself_is_trusted_and_intact(protected, trust, tmp_path):
    result, _, _ = protected
    report = verify_file(result.output, trust=trust).to_dict()
    assert report["c2pa"]["state"] == "Trusted"
    assert report["c2pa"]["manifest_id"] == result.manifest_id
    assert report["c2pa"]["training_mining"]["c2pa.ai_training"] == "notAllowed"
    assert {k: report["c2pa"]["rubric_integrity"][k] for k in ("well_formed", "valid", "trusted")} == {
        "well_formed": True,
        "valid": True,
        "trusted": True,
    }
    assert report["c2pa"]["soft_bindings"][0]["value"] == result.payload.hex()
    assert report["recovered"] is None
    mark = next(w for w in report["watermarks"] if w["scheme"] == result.scheme)
    assert mark["detected"] and mark["matches_soft_binding"] is True
    verdict = report["verdict"]
    assert (verdict["origin"], verdict["strength"], verdict["integrity"]) == ("ai-generated", "strong", "intact")
    assert any("belong together" in reason for reason in verdict["reasons"])
    untrusted = verify_file(result.output, trust=TrustConfig()).to_dict()["verdict"]
    assert (untrusted["strength"], untrusted["integrity"]) == ("moderate", "intact")


class Resolver:
    """A tiny C2PA soft binding resolution service: bindings and manifests in memory, requests recorded."""

    def __init__(self):
        self.bindings: dict[tuple[str, str], str] = {}
        self.by_content: str | None = None
        self.manifests: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body, mime="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _matches(self, manifest_id):
                matches = [{"manifestId": manifest_id, "similarityScore": 100}] if manifest_id else []
                self._send(200, json.dumps({"matches": matches}).encode())

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                service.requests.append(("GET", url.path))
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/v1/matches/byBinding":
                    self._matches(service.bindings.get((query.get("alg"), query.get("value"))))
                elif url.path.startswith("/v1/manifests/"):
                    manifest = service.manifests.get(urllib.parse.unquote(url.path.rsplit("/", 1)[-1]))
                    if manifest is None:
                        self._send(404, b"{}")
                    else:
                        self._send(200, manifest, "application/c2pa")
                else:
                    self._send(404, b"{}")

            def do_POST(self):
                url = urllib.parse.urlparse(self.path)
                service.requests.append(("POST", url.path))
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if url.path == "/v1/matches/byContent":
                    self._matches(service.by_content)
                else:
                    self._send(404, b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture()
def resolver():
    service = Resolver()
    service.thread.start()
    yield service
    service.server.shutdown()
    service.server.server_close()


def test_recovery_through_a_resolution_service_by_binding(protected, trust, resolver):
    result, stripped, record = protected
    value = base64.b64encode(result.payload).decode()  # the API's encoding of a binding value
    resolver.bindings[(soft_binding_alg(result.scheme), value)] = result.manifest_id
    resolver.manifests[result.manifest_id] = record.manifest_store
    report = verify_file(stripped, trust=trust, resolver=resolver.url).to_dict()
    assert report["recovered"]["via"] == "resolver"
    assert report["recovered"]["source"] == resolver.url
    assert report["recovered"]["manifest_id"] == result.manifest_id
    assert report["recovered"]["signature_state"] == "Trusted"
    assert ("GET", "/v1/matches/byBinding") in resolver.requests
    assert ("POST", "/v1/matches/byContent") not in resolver.requests
    assert (report["verdict"]["origin"], report["verdict"]["strength"]) == ("ai-generated", "strong")


def test_recovery_through_a_resolution_service_by_content(protected, resolver):
    result, stripped, record = protected
    resolver.by_content = result.manifest_id
    resolver.manifests[result.manifest_id] = record.manifest_store
    report = verify_file(stripped, trust=TrustConfig(), resolver=resolver.url).to_dict()
    assert report["recovered"]["manifest_id"] == result.manifest_id
    assert report["recovered"]["by"] == "content"
    assert report["recovered"]["signature_state"] == "Valid"  # no anchor: intact but untrusted
    assert (report["verdict"]["origin"], report["verdict"]["strength"]) == ("ai-generated", "moderate")


def test_resolver_failures_are_reported_not_fatal(protected, resolver):
    _, stripped, _ = protected
    resolver.by_content = "urn:c2pa:missing"
    report = verify_file(stripped, trust=TrustConfig(), resolver=resolver.url).to_dict()
    assert report["recovered"] is None
    assert "HTTP 404" in report["resolver"]["error"]
    with pytest.raises(ResolverError, match="Cannot reach"):
        SoftBindingResolver("http://127.0.0.1:9/v1", timeout=2).by_binding("alg", "00")
    with pytest.raises(ResolverError, match="http"):
        SoftBindingResolver("ftp://example.org")


def test_clean_photo_has_no_origin_and_no_false_watermark(protected, tmp_path, home):
    _, _, record = protected
    photo = tmp_path / "camera.jpg"
    Image.fromarray(skdata.chelsea()).save(photo, quality=90)
    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.add(record)  # a store that knows another image must not match this one
        report = verify_file(photo, trust=TrustConfig(anchors=(home / "keys" / "ca.pem",)), store=store).to_dict()
    assert report["recovered"] is None
    assert report["watermarks"] and not any(w["detected"] for w in report["watermarks"])
    assert all(w["payload"] is None for w in report["watermarks"])
    verdict = report["verdict"]
    assert (verdict["origin"], verdict["strength"], verdict["integrity"]) == ("unknown", "none", "no credentials")
    assert any("not evidence that it is authentic" in reason for reason in verdict["reasons"])


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif", ".avif", ".heic"])
def test_protected_files_in_every_output_format_verify_as_trusted(home, trust, tmp_path, suffix):
    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        protector = Protector(identity=SigningIdentity.load(home), store=store)
        picture = Image.fromarray(skdata.astronaut()).resize((320, 320))
        result = protect_image(picture, tmp_path / f"out{suffix}", protector=protector)
        report = verify_file(result.output, trust=trust, store=store)
    assert (report.c2pa.state, report.c2pa.failure_codes) == ("Trusted", [])
    assert (report.verdict.origin, report.verdict.strength, report.verdict.integrity) == (
        "ai-generated",
        "strong",
        "intact",
    )


def test_credentials_swapped_on_a_protected_image_are_caught(protected, trust, tmp_path):
    """Someone strips a protected AI image and signs it again, claiming a camera capture: the watermark still
    names the original manifest, and the AI claim wins."""
    from guard.provenance.credentials.c2pa import make_signer, sign_asset
    from guard.provenance.credentials.source_types import DigitalSourceType

    result, stripped, record = protected
    forger = tmp_path / "forger"
    init_identity(forger, organization="Forger", common_name="camera app")
    claim = {
        "claim_generator_info": [{"name": "camera app", "version": "1"}],
        "title": "photo.jpg",
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [{"action": "c2pa.created", "digitalSourceType": DigitalSourceType.DIGITAL_CAPTURE.uri}]
                },
            }
        ],
    }
    signed, _ = sign_asset(claim, stripped.read_bytes(), "image/jpeg", make_signer(SigningIdentity.load(forger)))
    forged = tmp_path / "forged.jpg"
    forged.write_bytes(signed)
    both = TrustConfig(anchors=(*trust.anchors, forger / "keys" / "ca.pem"))
    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.add(record)
        report = verify_file(forged, trust=both, store=store).to_dict()
        alone = verify_file(forged, trust=both).to_dict()
    assert report["c2pa"]["state"] == "Trusted" and report["c2pa"]["signer"]["common_name"] == "camera app"
    assert report["recovered"]["manifest_id"] == result.manifest_id and report["recovered"]["via"] == "watermark"
    verdict = report["verdict"]
    assert (verdict["origin"], verdict["strength"], verdict["integrity"]) == ("ai-generated", "strong", "intact")
    assert any("replacing its own" in reason for reason in verdict["reasons"])
    assert any("captured (claimed)" in reason for reason in verdict["reasons"])  # the conflict is named
    assert alone["verdict"]["origin"] == "captured (claimed)"  # without the store, only the forged claim is seen
