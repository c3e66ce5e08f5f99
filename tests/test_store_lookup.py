"""The manifest store: records by payload and by perceptual fingerprint, transactional writes, SQLite WAL."""

from __future__ import annotations

import io
import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance

from guard.errors import ConfigError, GuardError
from guard.images import load_image
from guard.provenance.credentials.fingerprint import fingerprints, hamming
from guard.provenance.credentials.store import ManifestRecord, ManifestStore, default_url

PHOTOS = ["P1000827.jpg", "earth_apollo17.jpg", "mars.webp", "sample1.png", "TUSCANY.TIF"]


@pytest.fixture(scope="module")
def photos(formats_dir):
    return {name: load_image(formats_dir / name) for name in PHOTOS}


@pytest.fixture()
def store(tmp_path):
    with ManifestStore.open(f"sqlite:///{tmp_path / 'manifests.db'}") as store:
        yield store


def _record(image: Image.Image, n: int, payload: bytes | None = None) -> ManifestRecord:
    return ManifestRecord(
        manifest_id=f"urn:c2pa:test-{n}",
        payload=payload or bytes([n]) * 6,
        manifest_store=b"jumb" + bytes([n]) * 16,
        mime="image/jpeg",
        fingerprints=fingerprints(image),
        signer="CN=test signer",
        scheme="guard",
    )


def _reencode(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_record_round_trips_and_is_found_by_payload(store, photos):
    record = _record(photos["P1000827.jpg"], 1, payload=bytes.fromhex("ffeeddccbbaa"))
    store.add(record)
    found = store.find_by_payload(bytes.fromhex("ffeeddccbbaa"))
    assert found is not None
    assert found.manifest_id == record.manifest_id
    assert found.manifest_store == record.manifest_store
    assert found.fingerprints == record.fingerprints
    assert found.created.tzinfo is not None
    assert abs((found.created - record.created).total_seconds()) < 1
    assert store.find_by_payload(bytes(6)) is None
    assert found.to_dict()["payload"] == "ffeeddccbbaa"


def test_found_by_fingerprint_after_jpeg_reencoding_and_metadata_stripping(store, photos):
    for n, name in enumerate(PHOTOS):
        store.add(_record(photos[name], n))
    for n, name in enumerate(PHOTOS):
        # Re-encoding through Pillow without exif= drops all metadata, then JPEG loses detail.
        copy = _reencode(photos[name].resize((photos[name].width * 3 // 4, photos[name].height * 3 // 4)), 70)
        matches = store.find_by_fingerprint(copy)
        assert [record.manifest_id for record, _ in matches] == [f"urn:c2pa:test-{n}"], name
        assert matches[0][1] <= 14


def test_colour_edits_still_match(store, photos):
    image = photos["P1000827.jpg"]
    store.add(_record(image, 1))
    graded = ImageEnhance.Color(ImageEnhance.Brightness(image).enhance(1.2)).enhance(0.6)
    assert [r.manifest_id for r, _ in store.find_by_fingerprint(graded)] == ["urn:c2pa:test-1"]
    gray = image.convert("L").convert("RGB")
    assert [r.manifest_id for r, _ in store.find_by_fingerprint(gray)] == ["urn:c2pa:test-1"]


def test_unrelated_image_is_not_matched(store, photos):
    store.add(_record(photos["P1000827.jpg"], 1))
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 255, (400, 600, 3), dtype=np.uint8))
    assert store.find_by_fingerprint(noise) == []
    assert store.find_by_fingerprint(photos["mars.webp"]) == []


def test_wide_search_scans_and_agrees_with_the_banded_index(store, photos):
    for n, name in enumerate(PHOTOS):
        store.add(_record(photos[name], n))
    query = _reencode(photos["earth_apollo17.jpg"], 60)
    banded = store.find_by_fingerprint(query, max_distance=15)
    scanned = store.find_by_fingerprint(query, max_distance=24)
    assert banded[0][0].manifest_id == scanned[0][0].manifest_id == "urn:c2pa:test-1"
    everything = store.find_by_fingerprint(query, max_distance=128)
    assert len(everything) == len(PHOTOS)
    assert [d for _, d in everything] == sorted(d for _, d in everything)


def test_fingerprints_are_unsigned_64_bit_and_survive_the_signed_column(store):
    image = Image.new("RGB", (64, 64))
    image.paste((255, 255, 255), (0, 0, 32, 64))
    record = _record(image, 9)
    record.fingerprints = {"phash": (1 << 64) - 1, "colorhash": 1 << 63}
    store.add(record)
    assert store.get("urn:c2pa:test-9").fingerprints == {"phash": (1 << 64) - 1, "colorhash": 1 << 63}
    assert hamming((1 << 64) - 1, 0) == 64


def test_duplicate_payload_is_refused_and_nothing_half_written(store, photos):
    store.add(_record(photos["P1000827.jpg"], 1, payload=b"samepl"))
    with pytest.raises(GuardError, match="already holds"):
        store.add(_record(photos["mars.webp"], 2, payload=b"samepl"))
    assert store.count() == 1
    assert store.get("urn:c2pa:test-2") is None


def test_transaction_rolls_back_when_the_block_fails(store, photos):
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.add(_record(photos["P1000827.jpg"], 1), conn)
        raise RuntimeError("crash before commit")
    assert store.count() == 0
    assert store.find_by_fingerprint(photos["P1000827.jpg"]) == []


def test_new_payloads_are_unused(store, photos):
    taken = {store.new_payload() for _ in range(50)}
    assert len(taken) == 50 and all(len(p) == 6 for p in taken)


def test_default_store_is_sqlite_in_wal_mode_under_guard_home(tmp_path, monkeypatch):
    monkeypatch.delenv("GUARD_STORE_URL", raising=False)
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path / 'home' / 'manifests.db'}"
    with ManifestStore.open() as store:
        store.add(_record(Image.new("RGB", (32, 32), "red"), 1))
    with sqlite3.connect(tmp_path / "home" / "manifests.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_url_from_environment_and_bad_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_STORE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with ManifestStore.open() as store:
        assert store.count() == 0
    assert (tmp_path / "elsewhere.db").exists()
    with pytest.raises(ConfigError, match="not a database URL"):
        ManifestStore.open("not a url")
    with pytest.raises(ConfigError):
        ManifestStore.open("nosuchdialect://host/db")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    phash=st.integers(0, (1 << 64) - 1),
    colorhash=st.integers(0, (1 << 64) - 1),
    flips=st.lists(st.integers(0, 127), max_size=15, unique=True),
)
def test_banded_index_finds_every_record_within_15_bits(store, phash, colorhash, flips):
    """The pigeonhole promise: 16 bands, at most 15 differing bits, so one band is untouched."""
    record = ManifestRecord(
        manifest_id=f"urn:c2pa:{phash:016x}{colorhash:016x}",
        payload=store.new_payload(),
        manifest_store=b"jumb",
        mime="image/png",
        fingerprints={"phash": phash, "colorhash": colorhash},
        signer="CN=test",
    )
    store.add(record)
    query = {"phash": phash, "colorhash": colorhash}
    for bit in flips:
        kind = "phash" if bit < 64 else "colorhash"
        query[kind] ^= 1 << (bit % 64)
    found = {r.manifest_id: d for r, d in store.find_by_fingerprint(query, max_distance=15)}
    assert found[record.manifest_id] == len(flips)
    store.remove(record.manifest_id)


def test_store_under_a_file_is_one_config_error(tmp_path):
    from guard.errors import ConfigError
    from guard.provenance.credentials.store import ManifestStore

    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"x")
    with pytest.raises(ConfigError, match="Cannot create the manifest store's folder"):
        ManifestStore.open(f"sqlite:///{blocker / 'sub' / 'store.db'}")


def test_a_table_created_by_another_process_meanwhile_is_not_an_error(tmp_path, monkeypatch):
    """Two workers (or replicas) opening one new database at once: the one that checked for the tables just
    before the other created them gets the database's real 'already exists' error, and must go on."""
    import sqlalchemy as sa

    from guard.provenance.credentials import store as store_module
    from guard.serve.audit import AuditLog
    from guard.serve.keys import ApiKeys

    url = f"sqlite:///{tmp_path / 'race.db'}"
    original = sa.MetaData.create_all
    raced: list[str] = []

    def lose_the_race(self, bind, tables=None, checkfirst=True):
        if not raced:
            raced.append("once")
            original(self, bind)  # "the other process" creates every table first ...
            return original(self, bind, checkfirst=False)  # ... then this one, which had checked before
        return original(self, bind, tables=tables, checkfirst=checkfirst)

    monkeypatch.setattr(sa.MetaData, "create_all", lose_the_race)
    with store_module.ManifestStore.open(url) as store:
        assert raced == ["once"]
        raced.clear()
        ApiKeys(store.engine).create("scan", "race")
        raced.clear()
        AuditLog(store.engine).record([])

    def other_error(self, bind, **_):
        with bind.connect() as connection:
            connection.exec_driver_sql("not sql")

    monkeypatch.setattr(sa.MetaData, "create_all", other_error)
    with pytest.raises(sa.exc.OperationalError, match="syntax error"):  # any other error is still raised
        store_module.create_tables(store_module.metadata, sa.create_engine(url))
