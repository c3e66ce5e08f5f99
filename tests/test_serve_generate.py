"""`POST /v1/generate` on the tiny offline Stable Diffusion pipeline: a delivered image comes back signed and
watermarked, a refused prompt never reaches the model, and the audit log keeps the prompt's hash only."""

from __future__ import annotations

import base64
import hashlib

import pytest
from fastapi.testclient import TestClient
from serve_support import blocked_prompt

from generation.tiny import TINY_SIZE, save_tiny_pipeline
from guard.provenance.credentials.store import ManifestStore
from guard.serve import create_app
from guard.serve.audit import AuditLog
from guard.serve.config import ServeSettings
from guard.serve.keys import ApiKeys


@pytest.fixture(scope="module")
def generating(home, tmp_path_factory):
    folder = tmp_path_factory.mktemp("generate")
    model = save_tiny_pipeline(folder / "tiny-sd")
    store_url = f"sqlite:///{folder / 'store.db'}"
    with ManifestStore.open(store_url) as store:
        keys = ApiKeys(store.engine)
        generate_key, scan_key = keys.create("generate", "g")[1], keys.create("scan,verify", "s")[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GUARD_HOME", str(home))
        patch.delenv("GUARD_STORE_URL", raising=False)
        with TestClient(create_app(ServeSettings(store_url=store_url, model=str(model)))) as client:
            yield client, generate_key, scan_key, store_url


def test_generated_image_is_delivered_signed_and_watermarked(generating):
    client, key, _, _ = generating
    response = client.post(
        "/v1/generate",
        json={"prompt": "a red bicycle", "seed": 7, "steps": 2, "width": TINY_SIZE, "height": TINY_SIZE},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    (record,) = response.json()["results"]
    assert record["stage"] == "image" and record["seed"] == 7 and record["manifest_id"]
    assert record["decision"] in ("allow", "blur")
    image = base64.b64decode(record["image_base64"])
    assert record["mime"] == "image/jpeg" and image[:2] == b"\xff\xd8"

    def verify(with_key):
        headers = {"content-type": "image/jpeg", "Authorization": f"Bearer {with_key}"}
        return client.post("/v1/images/verify", content=image, headers=headers)

    assert verify(key).status_code == 403  # a generate key cannot verify
    report = verify(generating[2]).json()
    assert (report["c2pa"]["state"], report["c2pa"]["manifest_id"]) == ("Trusted", record["manifest_id"])
    assert (report["verdict"]["origin"], report["verdict"]["strength"]) == ("ai-generated", "strong")
    assert "/v1/generate" in client.get("/openapi.json").json()["paths"]


def test_a_refused_prompt_is_not_generated_and_only_its_hash_is_audited(generating):
    client, key, scan_key, store_url = generating
    prompt = blocked_prompt()
    response = client.post(
        "/v1/generate", json={"prompt": prompt, "steps": 2}, headers={"Authorization": f"Bearer {key}"}
    )
    body = response.json()
    (record,) = body["results"]
    assert (record["decision"], record["stage"], record["output"], body["flagged"]) == ("block", "prompt", None, True)
    assert "image_base64" not in record
    with ManifestStore.open(store_url) as store:
        entry = AuditLog(store.engine).query(endpoint="generate")[-1]
    assert entry.input_sha256 == hashlib.sha256(prompt.encode()).hexdigest() and entry.prompt is None
    assert all("evidence" not in reason for reason in entry.reasons)
    denied = client.post("/v1/generate", json={"prompt": "a cat"}, headers={"Authorization": f"Bearer {scan_key}"})
    assert denied.status_code == 403


@pytest.mark.parametrize(
    "body", [{}, {"prompt": ""}, {"prompt": "a cat", "width": 100}, {"prompt": "a cat", "num_images": 9}]
)
def test_invalid_generation_requests_are_422(generating, body):
    client, key, _, _ = generating
    response = client.post("/v1/generate", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
