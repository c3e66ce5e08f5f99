"""The manifest store on PostgreSQL: same records, same look-ups, through a throwaway local server.

Runs only where PostgreSQL's server binaries and psycopg are installed (CI installs both); the server
listens on a Unix socket in a temporary folder and is stopped at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from guard.errors import GuardError
from guard.provenance.credentials.fingerprint import fingerprints
from guard.provenance.credentials.store import ManifestRecord, ManifestStore


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("psycopg")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # The server refuses to run as root: run it as the `postgres` user when we are root.
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="guard-pg-"))
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, user="postgres")
    folder.chmod(0o700)
    data = folder / "data"
    options = f"-k {folder} -c listen_addresses='' -F"
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "guard", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"cannot start a PostgreSQL server here: {exc.stderr.decode(errors='replace').strip()[:200]}")
    try:
        yield f"postgresql+psycopg://guard@/postgres?host={folder}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


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
