"""Schemathesis against `guard serve`'s own OpenAPI document: generated requests to every operation (valid and
invalid parameters and bodies, random upload bytes) never make the service fail (no 5xx), and every status
and content type it answers is one the document declares. Examples per operation are bounded."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from guard.provenance.credentials.store import ManifestStore
from guard.serve import create_app
from guard.serve.config import ServeSettings
from guard.serve.keys import ApiKeys

FOLDER = Path(tempfile.gettempdir()) / f"guard-schema-{os.getpid()}"
"""Created by the fixture (the store opens, and creates it, when the app's lifespan starts)."""
APP = create_app(ServeSettings(store_url=f"sqlite:///{FOLDER / 'store.db'}", max_upload_bytes=2 * 1024 * 1024))
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP  # requests go to the app in process; schemathesis runs its lifespan on the first one
"""The document is read from the app object (no lifespan needed): schemathesis' lazy fixture loading does not
work with this pytest."""


@pytest.fixture(scope="module")
def admin_key(home):
    """An admin key; the app's lifespan (started by the first request) sees this module's signing home."""
    with ManifestStore.open(f"sqlite:///{FOLDER / 'store.db'}") as store:
        key = ApiKeys(store.engine).create("admin", "schemathesis")[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GUARD_HOME", str(home))
        patch.delenv("GUARD_STORE_URL", raising=False)
        yield key
    shutil.rmtree(FOLDER, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors_and_only_declared_answers(case, admin_key):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {admin_key}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance],
    )
