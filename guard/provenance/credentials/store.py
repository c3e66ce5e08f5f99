"""The manifest store: every protected image's manifest, watermark payload and fingerprints, in SQL.

SQLite by default (`<GUARD_HOME>/manifests.db`, WAL mode), any SQLAlchemy URL through `GUARD_STORE_URL`
(e.g. `postgresql+psycopg://user@host/guard`). Only portable SQL is used. Fingerprint distance is the
sum of the Hamming distances of the two 64-bit hashes (`phash` + `colorhash`, 0-128), so one hash that
wobbles on a smooth picture is carried by the other. The look-up is a banded index (each hash cut into
eight 8-bit bands, 16 bands in all: a record within 15 bits of the query shares at least one band with
it, by the pigeonhole principle) followed by an exact check in Python; wider searches scan every row.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from PIL import Image

from guard.errors import ConfigError, GuardError
from guard.provenance.credentials.fingerprint import KINDS, fingerprints, hamming
from guard.settings import STORE_URL, guard_home

DEFAULT_MAX_DISTANCE = 14
"""Default threshold on the summed distance: JPEG re-encoding moves it by 0-12 bits, unrelated pictures 40+."""
BANDS_PER_HASH = 8
_BANDED_MAX_DISTANCE = len(KINDS) * BANDS_PER_HASH - 1
_SCAN_CHUNK = 5000

metadata = sa.MetaData()
manifests = sa.Table(
    "manifests",
    metadata,
    sa.Column("manifest_id", sa.String(255), primary_key=True),
    sa.Column("payload", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("scheme", sa.String(64), nullable=False),
    sa.Column("manifest_store", sa.LargeBinary, nullable=False),
    sa.Column("mime", sa.String(64), nullable=False),
    sa.Column("phash", sa.BigInteger, nullable=False),
    sa.Column("colorhash", sa.BigInteger, nullable=False),
    sa.Column("asset_sha256", sa.String(64), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("signer", sa.String(1000), nullable=False),
)
bands = sa.Table(
    "fingerprint_bands",
    metadata,
    sa.Column(
        "manifest_id", sa.String(255), sa.ForeignKey("manifests.manifest_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("band", sa.SmallInteger, primary_key=True),
    sa.Column("value", sa.SmallInteger, nullable=False),
    sa.Index("ix_fingerprint_bands_band_value", "band", "value"),
)


@dataclass
class ManifestRecord:
    """One protected image as the store keeps it."""

    manifest_id: str
    payload: bytes
    manifest_store: bytes = field(repr=False)
    mime: str
    fingerprints: dict[str, int]
    signer: str
    scheme: str = "guard"
    asset_sha256: str = ""
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def to_dict(self) -> dict:
        """JSON-friendly summary (the manifest store bytes are left out; their size is given)."""
        return {
            "manifest_id": self.manifest_id,
            "payload": self.payload.hex(),
            "scheme": self.scheme,
            "mime": self.mime,
            "fingerprints": {k: f"{v:016x}" for k, v in self.fingerprints.items()},
            "asset_sha256": self.asset_sha256,
            "created": self.created.isoformat(),
            "signer": self.signer,
            "manifest_store_bytes": len(self.manifest_store),
        }


def default_url(home: str | Path | None = None) -> str:
    """GUARD_STORE_URL, else a SQLite file under the guard home."""
    explicit = os.environ.get(STORE_URL)
    if explicit:
        return explicit
    folder = Path(home) if home is not None else guard_home()
    return f"sqlite:///{folder / 'manifests.db'}"


def existing_store(url: str | None = None) -> ManifestStore | None:
    """The manifest store to recover from; None when it is the default SQLite file and that does not exist
    (the verifier never creates a store)."""
    url = url or default_url()
    if url.startswith("sqlite:///"):
        database = url.removeprefix("sqlite:///")
        if database and database != ":memory:" and not Path(database).expanduser().exists():
            return None
    return ManifestStore.open(url)


class ManifestStore:
    """Transactional access to the manifest store."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str | None = None) -> ManifestStore:
        """Open (and create if needed) the store at a SQLAlchemy URL; None means `default_url()`."""
        url = url or default_url()
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise ConfigError(f"The manifest store (--store or {STORE_URL}) is not a database URL: {url!r}.") from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                reason = exc.strerror or exc
                raise ConfigError(f"Cannot create the manifest store's folder {folder}: {reason}.") from None
        try:
            engine = sa.create_engine(parsed, future=True)
        except (sa.exc.ArgumentError, ImportError, sa.exc.NoSuchModuleError) as exc:
            raise ConfigError(f"Cannot use the manifest store {parsed.render_as_string()}: {exc}.") from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        try:
            create_tables(metadata, engine)
        except sa.exc.OperationalError as exc:
            reason = " ".join(str(exc.orig).split())
            raise ConfigError(f"Cannot open the manifest store {parsed.render_as_string()}: {reason}.") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ManifestStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    def add(self, record: ManifestRecord, conn: sa.Connection | None = None) -> None:
        """Insert a record (and its fingerprint bands) in one transaction, or in `conn`'s transaction."""
        if conn is None:
            with self.transaction() as own:
                self.add(record, own)
            return
        try:
            conn.execute(
                manifests.insert().values(
                    manifest_id=record.manifest_id,
                    payload=record.payload,
                    scheme=record.scheme,
                    manifest_store=record.manifest_store,
                    mime=record.mime,
                    phash=_signed(record.fingerprints["phash"]),
                    colorhash=_signed(record.fingerprints["colorhash"]),
                    asset_sha256=record.asset_sha256,
                    created=record.created,
                    signer=record.signer,
                )
            )
        except sa.exc.IntegrityError:
            raise GuardError(
                f"The manifest store already holds manifest {record.manifest_id} or payload {record.payload.hex()}."
            ) from None
        conn.execute(
            bands.insert(),
            [
                {"manifest_id": record.manifest_id, "band": band, "value": value}
                for band, value in enumerate(_bands(record.fingerprints))
            ],
        )

    def remove(self, manifest_id: str) -> None:
        """Delete a record (used to undo a protect whose output could not be written)."""
        with self.transaction() as conn:
            conn.execute(bands.delete().where(bands.c.manifest_id == manifest_id))
            conn.execute(manifests.delete().where(manifests.c.manifest_id == manifest_id))

    def get(self, manifest_id: str) -> ManifestRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(manifests.select().where(manifests.c.manifest_id == manifest_id)).first()
        return _record(row) if row is not None else None

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(manifests)).scalar_one()

    def new_payload(self, nbytes: int = 6) -> bytes:
        """A random watermark payload not yet used in the store."""
        for _ in range(32):
            payload = secrets.token_bytes(nbytes)
            if self.find_by_payload(payload) is None:
                return payload
        raise GuardError("Could not draw an unused watermark payload; the store is unexpectedly full.")

    def find_by_payload(self, payload: bytes) -> ManifestRecord | None:
        """The record whose watermark carries exactly this payload."""
        with self.engine.connect() as conn:
            row = conn.execute(manifests.select().where(manifests.c.payload == bytes(payload))).first()
        return _record(row) if row is not None else None

    def find_by_fingerprint(
        self, image: Image.Image | dict[str, int], max_distance: int = DEFAULT_MAX_DISTANCE
    ) -> list[tuple[ManifestRecord, int]]:
        """Records whose fingerprints are within `max_distance` bits of the image's (summed over both hashes).

        Returns (record, distance) pairs, nearest first.
        """
        query = image if isinstance(image, dict) else fingerprints(image)
        matches = []
        for row in self._candidates(query, max_distance):
            found = {"phash": _unsigned(row.phash), "colorhash": _unsigned(row.colorhash)}
            distance = sum(hamming(query[k], found[k]) for k in KINDS)
            if distance <= max_distance:
                matches.append((_record(row), distance))
        matches.sort(key=lambda pair: (pair[1], pair[0].created))
        return matches

    def _candidates(self, query: dict[str, int], max_distance: int) -> Iterator[sa.Row]:
        with self.engine.connect() as conn:
            if max_distance <= _BANDED_MAX_DISTANCE:
                matching = sa.or_(
                    *(sa.and_(bands.c.band == band, bands.c.value == value) for band, value in enumerate(_bands(query)))
                )
                ids = sa.select(bands.c.manifest_id).where(matching).distinct()
                yield from conn.execute(manifests.select().where(manifests.c.manifest_id.in_(ids)))
                return
            result = conn.execution_options(stream_results=True).execute(manifests.select())
            for chunk in result.partitions(_SCAN_CHUNK):
                yield from chunk


def create_tables(tables: sa.MetaData, engine: sa.Engine) -> None:
    """`tables.create_all(engine)`, safe when several processes open one new database at once (the service's
    workers, replicas starting together): the one that loses the race to create a table (an "already exists"
    or a unique-index error, worded by each database in its own language) tries once more, finds the tables
    made and goes on; a real error comes back from that second try."""
    try:
        tables.create_all(engine)
    except sa.exc.DBAPIError:
        tables.create_all(engine)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _bands(fps: dict[str, int]) -> list[int]:
    """Eight 8-bit bands of each hash, in KINDS order (band numbers 0-7 phash, 8-15 colorhash)."""
    return [(fps[kind] >> (8 * i)) & 0xFF for kind in KINDS for i in range(BANDS_PER_HASH)]


def _signed(value: int) -> int:
    """Store an unsigned 64-bit hash in a signed BIGINT column."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A time read from a store table (SQLite keeps no zone; the store always writes UTC), or a time given
    without a zone, as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _record(row: sa.Row) -> ManifestRecord:
    created = as_utc(row.created)
    return ManifestRecord(
        manifest_id=row.manifest_id,
        payload=bytes(row.payload),
        manifest_store=bytes(row.manifest_store),
        mime=row.mime,
        fingerprints={"phash": _unsigned(row.phash), "colorhash": _unsigned(row.colorhash)},
        signer=row.signer,
        scheme=row.scheme,
        asset_sha256=row.asset_sha256,
        created=created,
    )
