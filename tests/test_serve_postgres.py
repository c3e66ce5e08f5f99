"""`guard serve` on a PostgreSQL store: API keys and the audit log in the same database as the manifests, and
two app instances (two replicas) sharing it — a key made once works on both, a manifest protected through
one resolves through the other, and `guard audit` reads what both wrote."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from serve_support import blocked_prompt, encoded, picture, strip

from guard.cli import cli
from guard.provenance.credentials.store import ManifestStore
from guard.serve import create_app
from guard.serve.audit import AuditEntry, AuditLog
from guard.serve.config import ServeSettings
from guard.serve.keys import ApiKeys


def test_keys_on_postgres(pg_url):
    with ManifestStore.open(pg_url) as store:
        keys = ApiKeys(store.engine)
        record, key = keys.create("scan,verify", "platform")
        assert keys.authenticate(key).key_id == record.key_id
        assert keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert [k.key_id for k in keys.list()] == [record.key_id]
        revoked = keys.revoke(record.key_id)
        assert revoked.revoked is not None and revoked.revoked.tzinfo is not None
        assert keys.authenticate(key) is None


def test_audit_log_on_postgres(pg_url):
    now = dt.datetime.now(dt.UTC)
    with ManifestStore.open(pg_url) as store:
        log = AuditLog(store.engine)
        log.record(
            [
                AuditEntry(
                    "images.scan",
                    "ab" * 32,
                    "review",
                    {"faces": "review"},
                    [{"rule": "r"}],
                    {"name": "p", "version": "1"},
                    "req-1",
                    created=now - dt.timedelta(days=2),
                ),
                AuditEntry(
                    "prompts.check",
                    "cd" * 32,
                    "block",
                    {"sexual": "block"},
                    [],
                    {"name": "p", "version": "1"},
                    "req-2",
                    key_id="k1",
                ),
            ]
        )
        assert [e.request_id for e in log.query()] == ["req-1", "req-2"]
        assert [e.request_id for e in log.query(since=now - dt.timedelta(hours=1))] == ["req-2"]
        assert [e.request_id for e in log.query(decisions=["review"])] == ["req-1"]
        (entry,) = log.query(key_id="k1")
        assert entry.categories == {"sexual": "block"} and entry.created.tzinfo is not None


@pytest.fixture()
def replicas(pg_url, home, monkeypatch):
    monkeypatch.setenv("GUARD_HOME", str(home))
    monkeypatch.delenv("GUARD_STORE_URL", raising=False)
    with ManifestStore.open(pg_url) as store:
        key = ApiKeys(store.engine).create("admin", "both replicas")[1]
    settings = ServeSettings(store_url=pg_url)
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        for client in (first, second):
            client.headers["Authorization"] = f"Bearer {key}"
        yield first, second


def test_two_replicas_share_one_postgres_store(replicas, pg_url):
    first, second = replicas
    protected = first.post(
        "/v1/images/protect", content=encoded(picture("chelsea", 512)), headers={"content-type": "image/jpeg"}
    )
    assert protected.status_code == 200, protected.text
    manifest_id, payload = protected.headers["x-manifest-id"], protected.headers["x-watermark-payload"]
    found = second.get(
        "/v1/matches/byBinding", params={"alg": "com.image-guard.watermark.guard", "value": payload}
    ).json()["matches"]
    assert found == [{"manifestId": manifest_id, "similarityScore": 100}]
    report = second.post(
        "/v1/images/verify", content=strip(protected.content), headers={"content-type": "image/jpeg"}
    ).json()
    assert report["recovered"]["manifest_id"] == manifest_id
    assert second.get(f"/v1/manifests/{manifest_id}").headers["content-type"] == "application/c2pa"
    checked = first.post("/v1/prompts/check", json={"prompt": blocked_prompt()})
    assert checked.json()["flagged"] is True
    assert second.get("/readyz").json()["checks"]["store"] == "reachable"

    printed = CliRunner().invoke(cli, ["audit", "--store", pg_url, "--json", "--decision", "block"])
    assert printed.exit_code == 0, printed.output
    entries = [json.loads(line) for line in printed.output.splitlines()]
    assert checked.headers["x-request-id"] in {e["request_id"] for e in entries}
    signed = CliRunner().invoke(cli, ["audit", "--store", pg_url, "--json", "--decision", "signed"])
    assert manifest_id in signed.output
