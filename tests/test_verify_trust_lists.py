"""The official C2PA trust lists: bundled as package data (with licence, source and date), in force by default,
off with --no-default-trust, replaced by GUARD_TRUST_LIST, added to by anchors; `guard trust show/update`; and
the report naming the list that made a signer Trusted."""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from PIL import Image
from skimage import data as skdata

from guard.cli import cli
from guard.protect import Protector, protect_image
from guard.provenance.credentials.keys import SigningIdentity, init_identity
from guard.provenance.credentials.store import ManifestStore
from guard.verify.trust import VerifyTrust
from guard.verify.trust_lists import KINDS, bundled, default_list, install, installed, parse_bundle

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CONFORMANCE = SHARED / "c2pa-conformance"
C2PA_FIXTURES = SHARED / "fixtures" / "c2pa"


@pytest.fixture(autouse=True)
def fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    for name in ("GUARD_STORE_URL", "GUARD_TRUST_ANCHORS", "GUARD_TRUST_LIST", "GUARD_CONFORMING_PRODUCTS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def guard(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def vendor(tmp_path_factory):
    """Another producer's CA and an AI image it signed (protect), for a CA to put on a list."""
    root = tmp_path_factory.mktemp("vendor")
    init_identity(root / "home", organization="Example Generator Inc.", common_name="Example Media Service")
    with ManifestStore.open(f"sqlite:///{root / 'store.db'}") as store:
        protector = Protector(identity=SigningIdentity.load(root / "home"), store=store)
        result = protect_image(Image.fromarray(skdata.astronaut()), root / "gen.jpg", protector=protector)
    return root / "home" / "keys" / "ca.pem", Path(result.output)


def test_bundled_lists_are_the_official_copies_with_licence_source_and_date():
    folder = resources.files("guard") / "data" / "trust"
    assert "Attribution 4.0 International" in (folder / "LICENSE-CC-BY-4.0.txt").read_text(encoding="utf-8")
    for kind, shared in (("c2pa", "C2PA-TRUST-LIST.pem"), ("tsa", "C2PA-TSA-TRUST-LIST.pem")):
        found = bundled(kind)
        assert found.pem.encode() == (CONFORMANCE / shared).read_bytes()
        assert found.certificates == len(x509.load_pem_x509_certificates((CONFORMANCE / shared).read_bytes()))
        assert found.source.startswith("https://github.com/c2pa-org/conformance-public/") and found.date
        assert found.origin == "bundled" and default_list(kind) == found


def test_default_trust_is_both_lists_plus_anchors_and_the_switches(monkeypatch, tmp_path, vendor):
    ca, _ = vendor
    default = VerifyTrust.default(include_local=False)
    assert [t.kind for t in default.lists] == ["c2pa", "tsa"]
    anchors = default.settings()["trust"]["trust_anchors"]
    assert bundled("c2pa").pem in anchors and bundled("tsa").pem in anchors
    assert VerifyTrust.default(include_local=False, default_lists=False).lists == ()
    assert "trust" not in VerifyTrust.default(include_local=False, default_lists=False).settings()
    monkeypatch.setenv("GUARD_TRUST_LIST", str(ca))
    replaced = VerifyTrust.default(include_local=False)
    assert [t.kind for t in replaced.lists] == ["tsa"]
    assert replaced.settings()["trust"]["trust_anchors"].startswith(ca.read_text())
    monkeypatch.delenv("GUARD_TRUST_LIST")
    added = VerifyTrust.default(anchors=(str(ca),), include_local=False)
    assert [t.kind for t in added.lists] == ["c2pa", "tsa"] and added.settings()["trust"]["user_anchors"]


def test_no_flags_reports_the_lists_in_force():
    report = json.loads(guard("verify", str(C2PA_FIXTURES / "C.jpg"), "--json", "--no-classifier").output)
    assert [(t["name"], t["origin"]) for t in report["trust"]["lists"]] == [
        ("C2PA trust list", "bundled"),
        ("C2PA TSA trust list", "bundled"),
    ]
    assert report["c2pa"]["state"] == "Valid" and report["c2pa"]["trusted_by"] is None
    assert "not on the C2PA trust list" in " ".join(report["verdict"]["reasons"])
    off = json.loads(guard("verify", str(C2PA_FIXTURES / "C.jpg"), "--json", "--no-default-trust").output)
    assert off["trust"]["lists"] == []


def test_a_signer_on_the_installed_list_is_trusted_and_the_report_names_the_list(tmp_path, vendor):
    ca, image = vendor
    before = json.loads(guard("verify", str(image), "--json", "--no-classifier", "--no-local-anchor").output)
    assert before["c2pa"]["state"] == "Valid"
    updated = guard("trust", "update", str(ca), "--json")
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.output)["origin"] == "installed"
    page = tmp_path / "report.html"
    result = guard("verify", str(image), "--json", "--no-classifier", "--no-local-anchor", "--html", str(page))
    report = json.loads(result.output)
    assert report["c2pa"]["state"] == "Trusted"
    by = report["c2pa"]["trusted_by"]
    assert (by["list"], by["origin"], by["source"]) == ("C2PA trust list", "installed", str(ca.resolve()))
    assert (report["verdict"]["origin"], report["verdict"]["strength"]) == ("ai-generated", "strong")
    assert any("trusted through C2PA trust list (installed" in r for r in report["verdict"]["reasons"])
    assert "trusted through" in page.read_text() and "C2PA trust list (installed" in page.read_text()
    terminal = guard("verify", str(image), "--no-classifier", "--no-local-anchor").output
    assert "trusted through" in terminal and "C2PA trust list" in terminal
    off = json.loads(guard("verify", str(image), "--json", "--no-local-anchor", "--no-default-trust").output)
    assert off["c2pa"]["state"] == "Valid"


def test_the_local_ca_and_added_anchors_are_named_too(fresh_home, vendor):
    ca, image = vendor
    report = json.loads(guard("verify", str(image), "--json", "--no-local-anchor", "--trust-anchors", str(ca)).output)
    assert report["c2pa"]["trusted_by"] == {"list": "trust anchors", "source": str(ca)}


def test_trust_show_names_each_list_with_source_and_date(vendor):
    text = guard("trust", "show")
    assert text.exit_code == 0
    assert "C2PA trust list: 30 certificates, bundled, dated 2026-08-21" in text.output
    assert "conformance-public" in text.output
    ca, _ = vendor
    assert guard("trust", "update", "--tsa", str(ca)).exit_code == 0
    shown = json.loads(guard("trust", "show", "--json").output)
    assert [(t["kind"], t["origin"]) for t in shown["lists"]] == [("c2pa", "bundled"), ("tsa", "installed")]


def test_update_from_a_url_and_one_line_errors(tmp_path, fresh_home):
    served = tmp_path / "served"
    served.mkdir()
    (served / "list.pem").write_bytes((CONFORMANCE / "C2PA-TRUST-LIST.pem").read_bytes())

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        fetched = guard("trust", "update", f"{base}/list.pem")
        missing = guard("trust", "update", f"{base}/nothing.pem")
    finally:
        server.shutdown()
        server.server_close()
    assert fetched.exit_code == 0, fetched.output
    assert installed("c2pa", fresh_home).source == f"{base}/list.pem"
    assert missing.exit_code == 2 and "404" in missing.output
    unreachable = guard("trust", "update", f"{base}/list.pem")  # the server is gone: what offline looks like
    assert unreachable.exit_code == 2 and len(unreachable.output.strip().splitlines()) == 1
    assert "offline" in unreachable.output and "guard trust update PATH" in unreachable.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a certificate", "not a PEM bundle"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "PRIVATE KEY"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "cannot be parsed"),
    ],
)
def test_update_refuses_what_is_not_a_list_and_keeps_the_old_copy(tmp_path, fresh_home, vendor, content, message):
    ca, _ = vendor
    install(str(ca), "c2pa", fresh_home)
    before = (fresh_home / "trust" / "C2PA-TRUST-LIST.pem").read_bytes()
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content)
    result = guard("trust", "update", str(bad))
    assert result.exit_code == 2 and message in result.output, result.output
    assert (fresh_home / "trust" / "C2PA-TRUST-LIST.pem").read_bytes() == before
    assert [p.name for p in (fresh_home / "trust").iterdir()] == ["C2PA-TRUST-LIST.pem"]


def test_an_end_entity_certificate_is_not_a_trust_list(fresh_home, vendor):
    ca, _ = vendor
    signer = ca.parent / "signer.pem"
    with pytest.raises(Exception, match="not a CA certificate"):
        parse_bundle(signer.read_bytes(), str(signer))
    assert all(parse_bundle(bundled(kind).pem.encode(), kind) for kind in KINDS)
