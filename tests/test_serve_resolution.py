"""The C2PA Soft Binding Resolution API of `guard serve` (OpenAPI 1.1.0): paths, parameters, bodies and the
statuses the spec lists, over a store holding a protected image; a stripped copy is found by its watermark,
by its fingerprint and by its content."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from serve_support import encoded, picture, strip

from guard.images import load_image
from guard.protect import Protector
from guard.provenance.credentials.fingerprint import KINDS, fingerprints
from guard.provenance.credentials.keys import SigningIdentity
from guard.provenance.credentials.store import ManifestStore
from guard.serve import create_app
from guard.serve.config import ServeSettings
from guard.serve.keys import ApiKeys
from guard.serve.soft_binding import FINGERPRINT_ALG

WATERMARK_ALG = "com.image-guard.watermark.guard"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def resolver(home, tmp_path_factory):
    folder = tmp_path_factory.mktemp("resolution")
    store_url = f"sqlite:///{folder / 'store.db'}"
    source = folder / "gen.png"
    picture("astronaut", 512).save(source)
    with ManifestStore.open(store_url) as store:
        protector = Protector(identity=SigningIdentity.load(home), store=store)
        result = protector.protect_file(source, folder / "gen-protected.png")
        record = store.get(result.manifest_id)
        key = ApiKeys(store.engine).create("verify", "c2pa client")[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GUARD_HOME", str(home))
        patch.delenv("GUARD_STORE_URL", raising=False)
        with TestClient(create_app(ServeSettings(store_url=store_url))) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            yield SimpleNamespace(
                client=client,
                result=result,
                record=record,
                stripped=strip(result.output.read_bytes()),
                store_url=store_url,
            )


def matches(response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()["matches"]


def test_supported_algorithms_name_our_soft_binding_and_fingerprint(resolver):
    body = resolver.client.get("/v1/services/supportedAlgorithms").json()
    assert body == {"watermarks": [{"alg": WATERMARK_ALG}], "fingerprints": [{"alg": FINGERPRINT_ALG}]}
    declared = resolver.client.post(
        "/v1/images/verify", files={"file": ("p.png", resolver.result.output.read_bytes(), "image/png")}
    ).json()["c2pa"]["soft_bindings"]
    assert declared[0]["alg"] == WATERMARK_ALG  # what our manifests write is what we resolve


@pytest.mark.parametrize("encoding", ["hex", "base64", "base64url-unpadded"])
def test_by_binding_get_and_post_find_the_manifest(resolver, encoding):
    payload = resolver.result.payload
    value = {
        "hex": payload.hex(),
        "base64": base64.b64encode(payload).decode(),
        "base64url-unpadded": base64.urlsafe_b64encode(payload).decode().rstrip("="),
    }[encoding]
    expected = [{"manifestId": resolver.result.manifest_id, "similarityScore": 100}]
    assert (
        matches(resolver.client.get("/v1/matches/byBinding", params={"alg": WATERMARK_ALG, "value": value})) == expected
    )
    posted = resolver.client.post("/v1/matches/byBinding", json={"alg": WATERMARK_ALG, "value": value})
    assert matches(posted) == expected
    assert matches(resolver.client.get("/matches/byBinding", params={"alg": WATERMARK_ALG, "value": value})) == expected


def test_by_binding_with_the_fingerprint_of_a_stripped_copy(resolver):
    prints = fingerprints(load_image(resolver.stripped))
    value = base64.b64encode(b"".join(prints[kind].to_bytes(8, "big") for kind in KINDS)).decode()
    (match,) = matches(resolver.client.get("/v1/matches/byBinding", params={"alg": FINGERPRINT_ALG, "value": value}))
    assert match["manifestId"] == resolver.result.manifest_id
    assert 85 <= match["similarityScore"] <= 100


def test_an_unknown_value_matches_nothing(resolver):
    assert matches(resolver.client.get("/v1/matches/byBinding", params={"alg": WATERMARK_ALG, "value": "00" * 6})) == []


@pytest.mark.parametrize(
    "params",
    [
        {"alg": "org.example.watermark.1", "value": "AAAAAAAA"},
        {"alg": WATERMARK_ALG, "value": "AAAA"},
        {"alg": WATERMARK_ALG, "value": "not base64 at all!"},
        {"alg": WATERMARK_ALG},
        {"value": "AAAAAAAA"},
        {"alg": WATERMARK_ALG, "value": "AAAAAAAA", "maxResults": "0"},
        {"alg": WATERMARK_ALG, "value": "AAAAAAAA", "maxResults": "many"},
    ],
)
def test_invalid_queries_are_400(resolver, params):
    response = resolver.client.get("/v1/matches/byBinding", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("body", [{}, {"alg": WATERMARK_ALG}, {"alg": 1, "value": 2}, [], "x"])
def test_invalid_post_bodies_are_400(resolver, body):
    assert resolver.client.post("/v1/matches/byBinding", json=body).status_code == 400


def test_a_query_too_long_for_a_url_is_414(resolver):
    response = resolver.client.get("/v1/matches/byBinding", params={"alg": WATERMARK_ALG, "value": "A" * 6000})
    assert response.status_code == 414 and response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("alg", [None, WATERMARK_ALG, FINGERPRINT_ALG])
def test_by_content_finds_a_stripped_copy(resolver, alg):
    params = {"alg": alg} if alg else {}
    response = resolver.client.post(
        "/v1/matches/byContent", params=params, content=resolver.stripped, headers={"content-type": "image/jpeg"}
    )
    (match,) = matches(response)
    assert match["manifestId"] == resolver.result.manifest_id
    assert match["similarityScore"] == (100 if alg != FINGERPRINT_ALG else match["similarityScore"])


def test_by_content_of_an_unrelated_photo_matches_nothing(resolver):
    other = encoded(picture("coffee", 400))
    response = resolver.client.post("/v1/matches/byContent", content=other, headers={"content-type": "image/jpeg"})
    assert matches(response) == []


def test_by_content_hint_adds_a_binding_lookup(resolver):
    other = encoded(picture("coffee", 400))
    params = {"hintAlg": WATERMARK_ALG, "hintValue": resolver.result.payload.hex(), "maxResults": 3}
    response = resolver.client.post(
        "/v1/matches/byContent", params=params, content=other, headers={"content-type": "image/jpeg"}
    )
    assert [m["manifestId"] for m in matches(response)] == [resolver.result.manifest_id]


@pytest.mark.parametrize(
    ("content", "mime", "status"),
    [
        (b"", "image/png", 400),
        (b"not an image", "image/png", 415),
        (b"%PDF-1.7\n", "image/png", 415),
        (None, "image/jpeg", 400),  # truncated
        (None, "application/pdf", 415),
        (None, "text/plain", 415),
    ],
)
def test_by_content_refuses_what_is_not_an_image(resolver, content, mime, status):
    data = resolver.stripped[: len(resolver.stripped) // 3] if content is None else content
    response = resolver.client.post("/v1/matches/byContent", content=data, headers={"content-type": mime})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


def test_by_content_with_an_unsupported_algorithm_is_400(resolver):
    response = resolver.client.post(
        "/v1/matches/byContent",
        params={"alg": "org.example.fingerprint.1"},
        content=resolver.stripped,
        headers={"content-type": "image/jpeg"},
    )
    assert response.status_code == 400


def test_manifests_are_served_as_application_c2pa(resolver):
    manifest_id = resolver.result.manifest_id
    for path in (f"/v1/manifests/{manifest_id}", f"/manifests/{manifest_id}"):
        response = resolver.client.get(path, params={"returnActiveManifest": "false"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/c2pa"
        assert response.content == resolver.record.manifest_store
    missing = resolver.client.get("/v1/manifests/urn:c2pa:00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    assert resolver.client.get("/v1/manifests/" + "x" * 300).status_code == 400
    assert (
        resolver.client.get(f"/v1/manifests/{manifest_id}", params={"returnActiveManifest": "maybe"}).status_code == 400
    )


def test_the_openapi_document_has_the_spec_operations_once(resolver):
    paths = resolver.client.get("/openapi.json").json()["paths"]
    operations = {
        (path, method): spec["operationId"]
        for path, item in paths.items()
        if path.startswith(("/v1/matches", "/v1/manifests", "/v1/services"))
        for method, spec in item.items()
    }
    assert operations == {
        ("/v1/matches/byBinding", "get"): "queryByBinding",
        ("/v1/matches/byBinding", "post"): "queryByLargeBinding",
        ("/v1/matches/byContent", "post"): "uploadFile",
        ("/v1/manifests/{manifestId}", "get"): "getManifestById",
        ("/v1/services/supportedAlgorithms", "get"): "getSupportedBindings",
    }
    assert not any(path.startswith("/matches") for path in paths)
