"""The manifest store on PostgreSQL: same records, same look-ups, through a throwaway local server.

Runs only where PostgreSQL's server binaries and psycopg are installed (CI installs both); the server
(`pg_url` in conftest.py) listens on a Unix socket in a temporary folder and is stopped at the end.
"""

from __future__ import annotations

import pytest
from PIL import Image

from guard.errors import GuardError
from guard.provenance.credentials.fingerprint import fingerprints
from guard.provenance.credentials.store import ManifestRecord, ManifestStore


def _record(image: Image.Image, n: int, payload: bytes) -> ManifestRecord:
    return ManifestRecord(
        manifest_id=f"urn:c2pa:pg-{n}",
        payload=payload,
        manifest_store=b"jumb" + bytes(range(256)),
        mime="image/png",
        fingerprints=fingerprints(image),
        signer="CN=pg",
    )


def test_postgres_store_round_trip_and_lookups(formats_dir, pg_url):
    photo = Image.open(formats_dir / "P1000827.jpg").convert("RGB")
    other = Image.open(formats_dir / "mars.webp").convert("RGB")
    with ManifestStore.open(pg_url) as store:
        store.add(_record(photo, 1, bytes.fromhex("ffffffffffff")))
        store.add(_record(other, 2, bytes.fromhex("000000000001")))
        found = store.find_by_payload(bytes.fromhex("ffffffffffff"))
        assert found.manifest_id == "urn:c2pa:pg-1"
        assert found.manifest_store == b"jumb" + bytes(range(256))
        assert found.fingerprints == fingerprints(photo)
        assert found.created.tzinfo is not None
        smaller = photo.resize((photo.width // 2, photo.height // 2))
        assert [r.manifest_id for r, _ in store.find_by_fingerprint(smaller)] == ["urn:c2pa:pg-1"]
        assert len(store.find_by_fingerprint(smaller, max_distance=128)) == 2
        with pytest.raises(GuardError, match="already holds"):
            store.add(_record(other, 3, bytes.fromhex("000000000001")))
        assert store.count() == 2
