"""`guard keys api` (create, list, revoke), `guard audit` and `guard serve`'s own checks: exit codes 0/2, one
`error:` line for a mistake, and a key shown once and never again."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from guard.cli import cli
from guard.provenance.credentials.store import ManifestStore
from guard.serve.audit import AuditEntry, AuditLog
from guard.serve.keys import ApiKeys


@pytest.fixture()
def store_url(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("GUARD_STORE_URL", url)
    return url


def run(*argv: str):
    return CliRunner().invoke(cli, list(argv))


def one_error_line(result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
    assert expected in result.stderr


def test_create_list_revoke(store_url):
    created = run("keys", "api", "create", "--scope", "scan,verify", "--scope", "protect", "--name", "platform")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("gk_") and len(created.stdout.splitlines()) == 1
    assert "only time" in created.stderr
    with ManifestStore.open(store_url) as store:
        record = ApiKeys(store.engine).authenticate(key)
    assert record.scopes == {"scan", "verify", "protect"} and record.name == "platform"

    listed = run("keys", "api", "list", "--json")
    (entry,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert entry["key_id"] == record.key_id and entry["revoked"] is None
    assert key.split("_", 2)[2] not in listed.output and key.split("_", 2)[2] not in run("keys", "api", "list").output

    revoked = run("keys", "api", "revoke", record.key_id)
    assert revoked.exit_code == 0 and record.key_id in revoked.stdout
    assert json.loads(run("keys", "api", "list", "--json").stdout)["revoked"] is not None
    with ManifestStore.open(store_url) as store:
        assert ApiKeys(store.engine).authenticate(key) is None
    as_json = json.loads(run("keys", "api", "create", "--scope", "admin", "--json").stdout)
    assert as_json["key"].startswith(f"gk_{as_json['key_id']}_") and as_json["scopes"] == ["admin"]


def test_key_mistakes_are_one_line(store_url):
    one_error_line(run("keys", "api", "create", "--scope", "everything"), "unknown scope(s) everything")
    one_error_line(run("keys", "api", "revoke", "nosuchkey"), "no API key 'nosuchkey'")
    assert run("keys", "api", "create").exit_code == 2


def test_audit_filters_and_output(store_url):
    with ManifestStore.open(store_url) as store:
        AuditLog(store.engine).record(
            [
                AuditEntry("images.scan", "a" * 64, "allow", {}, [], {"name": "default", "version": "1.0"}, "r1"),
                AuditEntry(
                    "prompts.check",
                    "b" * 64,
                    "block",
                    {"sexual": "block"},
                    [],
                    {"name": "default", "version": "1.0"},
                    "r2",
                    key_id="k",
                ),
            ]
        )
    everything = run("audit")
    assert everything.exit_code == 0 and len(everything.stdout.splitlines()) == 2
    assert "block" in everything.stdout.splitlines()[1] and "sexual:block" in everything.stdout
    blocked = [json.loads(line) for line in run("audit", "--decision", "block", "--json").stdout.splitlines()]
    assert [e["request_id"] for e in blocked] == ["r2"] and blocked[0]["key_id"] == "k"
    assert run("audit", "--since", "1h", "--limit", "1", "--json").stdout.count("\n") == 1
    assert run("audit", "--since", "2000-01-01", "--endpoint", "images.scan").stdout.count("images.scan") == 1
    assert run("audit", "--key", "k", "--json").stdout.count("\n") == 1
    nothing = run("audit", "--since", "2999-01-01")
    assert nothing.exit_code == 0 and nothing.stdout == "" and "no audit entries" in nothing.stderr
    one_error_line(run("audit", "--since", "last week"), "--since 'last week'")


def test_audit_without_a_store_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("GUARD_STORE_URL", raising=False)
    one_error_line(run("audit"), "There is no store at")
    assert not (tmp_path / "empty").exists()


@pytest.fixture()
def restored_environment():
    """`guard serve` writes its options into the environment (for its workers): put it back afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_serve_checks_its_settings_before_starting(store_url, tmp_path, restored_environment):
    one_error_line(run("serve", "--public", "everything"), "unknown endpoint group(s) everything")
    os.environ.pop("GUARD_SERVE_PUBLIC")
    one_error_line(run("serve", "--policy", str(tmp_path / "missing.yaml")), "missing.yaml")
    os.environ.pop("GUARD_POLICY")
    one_error_line(run("serve", "--store", "not a url"), "not a database URL")
    help_text = run("serve", "--help").output
    for option in ("--host", "--port", "--workers", "--public", "--model", "--forwarded-allow-ips"):
        assert option in help_text
