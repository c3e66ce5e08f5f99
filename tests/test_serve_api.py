"""`guard serve` in process (FastAPI's TestClient): moderation, provenance, auth, limits, audit, metrics.

The decisions over HTTP are the CLI's: each result is compared with what `guard check-prompt --json`,
`guard scan --json` and `guard verify --json` print for the same input. Hostile uploads get 4xx problem
documents, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import threading
import zlib
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image
from serve_support import FORMATS, blocked_prompt, encoded, picture, strip

from guard.cli import cli
from guard.provenance.credentials.store import ManifestStore
from guard.serve import create_app
from guard.serve.config import ServeSettings
from guard.serve.keys import ApiKeys

PROBLEM = "application/problem+json"


def _clean_env(patch: pytest.MonkeyPatch, home) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("GUARD_")]:
        patch.delenv(name)
    patch.setenv("GUARD_HOME", str(home))


@pytest.fixture(scope="module")
def served(home, tmp_path_factory):
    """An app on a fresh SQLite store, with keys of every kind; the client is inside the app's lifespan."""
    folder = tmp_path_factory.mktemp("serve")
    store_url = f"sqlite:///{folder / 'store.db'}"
    with pytest.MonkeyPatch.context() as patch:
        _clean_env(patch, home)
        with ManifestStore.open(store_url) as store:
            keys = ApiKeys(store.engine)
            made = {scope: keys.create(scope, scope)[1] for scope in ("admin", "scan", "verify", "protect")}
            revoked_record, made["revoked"] = keys.create("admin", "gone")
            keys.revoke(revoked_record.key_id)
        app = create_app(ServeSettings(store_url=store_url))
        with TestClient(app) as client:
            yield SimpleNamespace(client=client, keys=made, store_url=store_url, folder=folder, home=home, app=app)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    document = response.json()
    assert document["status"] == status and document["title"] and document["detail"]
    assert document["type"].startswith("https://")
    assert "Traceback" not in document["detail"]
    return document


def _without(document: dict, *keys: str) -> dict:
    return {k: v for k, v in document.items() if k not in keys}


def test_prompt_checks_are_the_cli_decisions_under_a_moderation_top_level(served):
    unsafe = blocked_prompt()
    response = served.client.post(
        "/v1/prompts/check", json={"prompts": ["a red bicycle", unsafe]}, headers=auth(served.keys["scan"])
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["flagged"] is True
    assert body["categories"]["sexual"] is True and body["category_scores"]["sexual"] == 1.0
    assert set(body["categories"]) == set(body["category_scores"])
    allowed, blocked = body["results"]
    assert (allowed["decision"], allowed["flagged"], blocked["decision"], blocked["flagged"]) == (
        "allow",
        False,
        "block",
        True,
    )
    assert not any(allowed["category_scores"].values())
    for prompt, result in (("a red bicycle", allowed), (unsafe, blocked)):
        printed = CliRunner().invoke(cli, ["check-prompt", "--json", prompt])
        assert _without(result, "flagged", "category_scores") == json.loads(printed.output)
    single = served.client.post("/v1/prompts/check", json={"prompt": unsafe}, headers=auth(served.keys["scan"]))
    assert single.json()["results"][0]["decision"] == "block"


@pytest.mark.parametrize(
    "body",
    [{}, {"prompt": "a", "prompts": ["b"]}, {"prompts": []}, {"prompt": 3}, {"prompt": "x" * 10_001}, {"other": "x"}],
)
def test_invalid_prompt_requests_are_422_problems(served, body):
    response = served.client.post("/v1/prompts/check", json=body, headers=auth(served.keys["scan"]))
    assert assert_problem(response, 422)["errors"]


def test_scan_is_the_cli_scan_for_multipart_and_raw_uploads(served, tmp_path):
    photo = FORMATS / "P1000827.jpg"
    printed = CliRunner().invoke(cli, ["scan", "--json", str(photo)])
    expected = _without(json.loads(printed.output), "path")
    data = photo.read_bytes()
    for kwargs in (
        {"files": {"file": ("P1000827.jpg", data, "image/jpeg")}},
        {"content": data, "headers": {"content-type": "image/jpeg", "x-filename": "P1000827.jpg"}},
    ):
        headers = {**auth(served.keys["scan"]), **kwargs.pop("headers", {})}
        response = served.client.post("/v1/images/scan", headers=headers, **kwargs)
        assert response.status_code == 200, response.text
        body = response.json()
        (result,) = body["results"]
        assert result["path"] == "P1000827.jpg"
        assert _without(result, "path", "flagged", "category_scores") == expected
        assert body["flagged"] is (expected["decision"] != "allow")
        assert set(body["categories"]) == set(body["category_scores"])


def test_an_image_category_is_flagged_and_scored_from_detector_scores(served, tmp_path):
    """A policy that sends any face to review: a portrait is flagged, its score is the detector's."""
    policy = tmp_path / "faces.yaml"
    policy.write_text(
        "name: faces\nversion: '1'\nextends: default\ncategories:\n"
        "  faces:\n    action: review\n    image:\n      - {detector: nudenet, label: face, min_score: 0.3}\n"
    )
    app = create_app(ServeSettings(store_url=served.store_url, policy=str(policy)))
    with TestClient(app) as client:
        response = client.post(
            "/v1/images/scan",
            files={"file": ("astronaut.png", encoded(picture("astronaut", 512), "PNG"), "image/png")},
            headers=auth(served.keys["scan"]),
        )
        metrics = client.get("/metrics", headers=auth(served.keys["admin"])).text
    body = response.json()
    (result,) = body["results"]
    face = result["scores"]["nudenet"]["face"]
    assert face >= 0.3
    assert (result["decision"], body["flagged"], body["categories"]["faces"]) == ("review", True, True)
    assert body["category_scores"]["faces"] == pytest.approx(face, abs=1e-6)
    assert body["categories"]["sexual"] is False
    assert 'guard_decision_categories_total{action="review",category="faces",endpoint="images.scan"} 1.0' in metrics


def test_protect_then_verify_the_file_and_a_stripped_copy(served):
    source = encoded(picture("chelsea", 384), "PNG")
    response = served.client.post(
        "/v1/images/protect?model=stabilityai/sd-turbo",
        files={"file": ("cat.png", source, "image/png")},
        headers=auth(served.keys["protect"]),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    manifest_id = response.headers["x-manifest-id"]
    payload = response.headers["x-watermark-payload"]
    assert manifest_id.startswith("urn:c2pa:") and len(payload) == 12
    protected = response.content
    verified = served.client.post(
        "/v1/images/verify", files={"file": ("cat.png", protected, "image/png")}, headers=auth(served.keys["verify"])
    )
    report = verified.json()
    assert report["c2pa"]["state"] == "Trusted" and report["c2pa"]["manifest_id"] == manifest_id
    assert (report["verdict"]["origin"], report["verdict"]["strength"]) == ("ai-generated", "strong")
    assert report["flagged"] is True
    assert report["summary"]["evidence"][0]["source"] == "Content Credentials"
    assert report["summary"]["histories"][0]["source"] == "embedded"

    stripped = served.client.post(
        "/v1/images/verify",
        content=strip(protected),
        headers={"content-type": "image/jpeg", **auth(served.keys["verify"])},
    ).json()
    assert stripped["c2pa"]["present"] is False
    assert stripped["recovered"]["manifest_id"] == manifest_id and stripped["recovered"]["via"] == "watermark"
    assert stripped["summary"]["histories"][0]["source"] == "recovered"
    cli_keys = set(json.loads(_cli_verify(served, protected)))
    assert cli_keys <= set(stripped)

    html = served.client.post(
        "/v1/images/verify?format=html",
        files={"file": ("cat.png", protected, "image/png")},
        headers=auth(served.keys["verify"]),
    )
    assert html.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert manifest_id in html.text


def _cli_verify(served, data: bytes) -> str:
    path = served.folder / "cli-verify.png"
    path.write_bytes(data)
    return CliRunner().invoke(cli, ["verify", "--json", "--no-store", str(path)]).output


def test_protect_json_output_format_and_parent_history(served):
    source = encoded(picture("coffee", 320), "JPEG", quality=92)
    response = served.client.post(
        "/v1/images/protect?format=json&output=webp",
        files={"file": ("coffee.jpg", source, "image/jpeg"), "prompt": (None, "a cup of coffee")},
        headers=auth(served.keys["protect"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == "coffee.webp" and body["mime"] == "image/webp"
    assert body["watermark"]["scheme"] == "guard" and body["manifest_id"] == response.headers["x-manifest-id"]
    image = Image.open(io.BytesIO(base64.b64decode(body["image_base64"])))
    assert (image.format, image.size) == ("WEBP", (320, 320))
    manifest = served.client.get(f"/v1/manifests/{body['manifest_id']}", headers=auth(served.keys["verify"]))
    with ManifestStore.open(served.store_url) as store:
        assert manifest.content == store.get(body["manifest_id"]).manifest_store
    again = served.client.post(
        "/v1/images/protect?format=json&source_type=edit",
        files={"file": ("coffee.webp", base64.b64decode(body["image_base64"]), "image/webp")},
        headers=auth(served.keys["protect"]),
    )
    assert again.json()["parent_ingredient"] is True


def test_keys_scopes_and_public_endpoints(served):
    client, keys = served.client, served.keys
    data = encoded(picture("rocket", 256))
    upload = {"files": {"file": ("r.jpg", data, "image/jpeg")}}
    missing = assert_problem(client.post("/v1/images/verify", **upload), 401)
    assert "API key" in missing["detail"]
    assert client.post("/v1/images/verify", **upload).headers["www-authenticate"].startswith("Bearer")
    assert_problem(client.post("/v1/images/verify", headers=auth("gk_nothere00_" + "x" * 43), **upload), 401)
    assert_problem(client.post("/v1/images/verify", headers=auth("not-a-key"), **upload), 401)
    assert_problem(client.post("/v1/images/verify", headers=auth(keys["revoked"]), **upload), 401)
    forbidden = assert_problem(client.post("/v1/images/scan", headers=auth(keys["verify"]), **upload), 403)
    assert "`scan` scope" in forbidden["detail"]
    assert client.post("/v1/images/verify", headers={"X-API-Key": keys["verify"]}, **upload).status_code == 200
    assert client.post("/v1/images/verify", headers=auth(keys["admin"]), **upload).status_code == 200
    # The key's record is cached now: a wrong secret under the same key id is still refused.
    wrong = keys["admin"][:-1] + ("A" if keys["admin"][-1] != "A" else "B")
    assert_problem(client.post("/v1/images/verify", headers=auth(wrong), **upload), 401)
    assert_problem(client.get("/metrics", headers=auth(keys["scan"])), 403)

    public = create_app(ServeSettings(store_url=served.store_url, public=frozenset({"verify", "resolution"})))
    with TestClient(public) as open_client:
        assert open_client.post("/v1/images/verify", **upload).status_code == 200
        assert open_client.get("/v1/services/supportedAlgorithms").status_code == 200
        assert_problem(open_client.post("/v1/images/verify", headers=auth("gk_bad"), **upload), 401)
        assert_problem(open_client.post("/v1/images/scan", **upload), 401)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size but carries almost no data (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


_PHOTO = (FORMATS / "earth_apollo17.jpg").read_bytes()
HOSTILE = [
    ("empty", b"", "image/png", 400),
    ("text", b"just some words", "image/png", 415),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "image/png", 415),
    ("svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", 415),
    ("psd", b"8BPS\x00\x01" + b"\x00" * 40, "image/vnd.adobe.photoshop", 415),
    ("truncated jpeg", _PHOTO[: len(_PHOTO) // 2], "image/jpeg", 422),
    ("bomb", _png_header_only(20_000, 20_000), "image/png", 413),
    ("wrong content type", _PHOTO, "text/plain", 415),
    ("json", b'{"file": "x"}', "application/json", 415),
]


@pytest.mark.parametrize(("what", "data", "mime", "status"), HOSTILE, ids=[h[0] for h in HOSTILE])
@pytest.mark.parametrize("endpoint", ["/v1/images/scan", "/v1/images/verify", "/v1/images/protect"])
def test_hostile_uploads_are_4xx_problems(served, endpoint, what, data, mime, status):
    response = served.client.post(endpoint, content=data, headers={"content-type": mime, **auth(served.keys["admin"])})
    assert_problem(response, status)
    if what not in ("empty", "wrong content type", "json"):  # the same bytes in a form: the same answer
        form = served.client.post(endpoint, files={"file": ("x", data, mime)}, headers=auth(served.keys["admin"]))
        assert_problem(form, status)


def test_malformed_forms_and_missing_files(served):
    headers = auth(served.keys["admin"])
    no_file = served.client.post("/v1/images/scan", files={"image": ("x.png", b"x", "image/png")}, headers=headers)
    assert "`file`" in assert_problem(no_file, 422)["detail"]
    broken = served.client.post(
        "/v1/images/scan",
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
        headers={"content-type": "multipart/form-data; boundary=xyz", **headers},
    )
    assert broken.status_code in (400, 422)
    assert broken.headers["content-type"].startswith(PROBLEM)
    assert_problem(served.client.post("/v1/images/scan", headers={"content-type": "image/png", **headers}), 400)


def test_body_limits_are_enforced_before_and_while_reading(served):
    app = create_app(ServeSettings(store_url=served.store_url, max_upload_bytes=50_000, warm_up=False))
    headers = {"content-type": "image/jpeg", **auth(served.keys["admin"])}
    with TestClient(app) as client:
        declared = client.post("/v1/images/scan", content=_PHOTO, headers=headers)
        assert "larger than 50000 bytes" in assert_problem(declared, 413)["detail"]

        def chunks():
            for start in range(0, len(_PHOTO), 16_384):
                yield _PHOTO[start : start + 16_384]

        streamed = client.post("/v1/images/scan", content=chunks(), headers=headers)
        assert_problem(streamed, 413)
        small = encoded(picture("rocket", 128), quality=80)
        assert len(small) < 50_000
        assert client.post("/v1/images/scan", content=small, headers=headers).status_code == 200


def test_a_too_long_url_is_414(served):
    response = served.client.get(
        "/v1/matches/byBinding", params={"alg": "a", "value": "A" * 5000}, headers=auth(served.keys["admin"])
    )
    assert_problem(response, 414)


def test_a_full_worker_answers_429_with_retry_after(served):
    app = create_app(ServeSettings(store_url=served.store_url, max_inflight=1, warm_up=False))
    upload = {"files": {"file": ("r.jpg", encoded(picture("rocket", 128)), "image/jpeg")}}
    with TestClient(app) as client:
        pool = app.state.pool
        assert pool.try_acquire()  # another request holds the only slot
        try:
            busy = client.post("/v1/images/scan", headers=auth(served.keys["scan"]), **upload)
            assert_problem(busy, 429)
            assert int(busy.headers["retry-after"]) >= 1
        finally:
            pool.release()
        assert client.post("/v1/images/scan", headers=auth(served.keys["scan"]), **upload).status_code == 200
        metrics = client.get("/metrics", headers=auth(served.keys["admin"])).text
    assert 'guard_requests_rejected_total{reason="overloaded"} 1.0' in metrics


def test_a_request_over_the_time_limit_is_503_and_queued_work_is_dropped(served):
    app = create_app(ServeSettings(store_url=served.store_url, threads=1, timeout=0.5, warm_up=False))
    upload = {"files": {"file": ("r.jpg", encoded(picture("rocket", 128)), "image/jpeg")}}
    with TestClient(app) as client:
        pool = app.state.pool
        gate = threading.Event()
        pool.executor.submit(gate.wait, 60)  # the only thread is busy: the request's work cannot start
        try:
            late = client.post("/v1/images/scan", headers=auth(served.keys["scan"]), **upload)
            assert_problem(late, 503)
            assert late.headers["retry-after"]
            assert pool.inflight == 0  # its work never started: cancelled, slot freed
        finally:
            gate.set()
        assert client.post("/v1/images/scan", headers=auth(served.keys["scan"]), **upload).status_code == 200
        metrics = client.get("/metrics", headers=auth(served.keys["admin"])).text
    assert 'guard_requests_rejected_total{reason="timeout"} 1.0' in metrics


def test_work_that_outlives_its_request_keeps_its_slot_until_it_ends():
    import asyncio

    from guard.serve.limits import CpuPool

    pool = CpuPool(threads=1, max_inflight=1)
    gate, started = threading.Event(), threading.Event()

    def work():
        started.set()
        gate.wait(60)

    async def scenario():
        task = asyncio.ensure_future(pool.run(work))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 60)
        task.cancel()  # the request gave up (timeout); its thread is still running
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.inflight == 1 and not pool.try_acquire()

    try:
        asyncio.run(scenario())
    finally:
        gate.set()
        pool.shutdown()
    assert pool.inflight == 0


def test_audit_log_keeps_hashes_not_text_unless_asked(served):
    from guard.serve.audit import AuditLog

    unsafe = blocked_prompt()
    headers = auth(served.keys["scan"])
    checked = served.client.post("/v1/prompts/check", json={"prompt": unsafe}, headers=headers)
    request_id = checked.headers["x-request-id"]
    data = encoded(picture("rocket", 200))
    served.client.post("/v1/images/scan", files={"file": ("r.jpg", data, "image/jpeg")}, headers=headers)
    with ManifestStore.open(served.store_url) as store:
        log = AuditLog(store.engine)
        (entry,) = [e for e in log.query(endpoint="prompts.check") if e.request_id == request_id]
        scanned = log.query(endpoint="images.scan")[-1]
    assert entry.input_sha256 == hashlib.sha256(unsafe.encode()).hexdigest()
    assert entry.key_id == served.keys["scan"].split("_")[1]
    assert (entry.decision, entry.categories, entry.policy) == ("block", {"sexual": "block"}, entry.policy)
    assert entry.policy == {"name": "default", "version": "1.0"}
    assert entry.prompt is None
    assert entry.reasons and all("evidence" not in r and "span" in r for r in entry.reasons)
    assert unsafe not in json.dumps(entry.to_dict())
    assert scanned.input_sha256 == hashlib.sha256(data).hexdigest() and scanned.image is None

    keeping = create_app(ServeSettings(store_url=served.store_url, audit_prompts=True, audit_images=True))
    with TestClient(keeping) as client:
        kept_id = client.post("/v1/prompts/check", json={"prompt": unsafe}, headers=headers).headers["x-request-id"]
        client.post("/v1/images/scan", files={"file": ("r.jpg", data, "image/jpeg")}, headers=headers)
        over_http = client.get(
            "/v1/audit", params={"decision": "block", "limit": 5}, headers=auth(served.keys["admin"])
        )
    with ManifestStore.open(served.store_url) as store:
        log = AuditLog(store.engine)
        (kept,) = [e for e in log.query(endpoint="prompts.check") if e.request_id == kept_id]
        assert log.query(endpoint="images.scan")[-1].image == data
    assert kept.prompt == unsafe and any("evidence" in r for r in kept.reasons)
    entries = over_http.json()["entries"]
    assert entries and all(e["decision"] == "block" for e in entries)


def test_metrics_health_readiness_and_problem_404_405(served):
    client = served.client
    client.post(
        "/v1/images/scan",
        files={"file": ("r.jpg", encoded(picture("rocket", 200)), "image/jpeg")},
        headers=auth(served.keys["scan"]),
    )
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["store"] == "reachable"
    assert_problem(client.get("/metrics"), 401)
    metrics = client.get("/metrics", headers=auth(served.keys["admin"]))
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'guard_http_requests_total{method="POST",route="/v1/images/scan",status="200"}' in text
    assert 'guard_decisions_total{decision="allow",endpoint="images.scan"}' in text
    assert 'guard_detector_duration_seconds_count{detector="nudenet"}' in text
    assert "guard_http_request_duration_seconds_bucket" in text
    assert_problem(client.get("/v1/nothing"), 404)
    assert_problem(client.get("/v1/images/scan"), 405)
    assert client.get("/healthz").headers["x-content-type-options"] == "nosniff"
    assert client.get("/healthz", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    assert "/v1/generate" not in client.get("/openapi.json").json()["paths"]  # no model configured


def test_the_page_is_self_contained(served):
    import re

    response = served.client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    html = response.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script src" not in html and '<link rel="stylesheet"' not in html
    assert 'name="viewport"' in html
    assert json.loads(re.search(r'id="config">(.*?)</script>', html).group(1))["verify_public"] is False


def test_without_a_signing_identity_protect_is_503_and_the_rest_works(served, tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "no-identity"))
    app = create_app(ServeSettings(store_url=served.store_url, warm_up=False))
    data = encoded(picture("rocket", 256))
    with TestClient(app) as client:
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["checks"]["signing"].startswith("unavailable: No signing identity")
        refused = client.post(
            "/v1/images/protect", content=data, headers={"content-type": "image/jpeg", **auth(served.keys["admin"])}
        )
        assert "cannot sign" in assert_problem(refused, 503)["detail"]
        scanned = client.post(
            "/v1/images/scan", content=data, headers={"content-type": "image/jpeg", **auth(served.keys["admin"])}
        )
        assert scanned.status_code == 200
