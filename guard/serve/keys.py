"""API keys for `guard serve`: created, listed and revoked with `guard keys api ...`, kept hashed in the store.

A key reads `gk_<key id>_<secret>`: the key id (10 base32 characters) names the row, the secret (32 random
bytes, URL-safe base64) is never stored — only its SHA-256, which is enough for a secret of 256 random bits
(no password stretching needed) and is compared in constant time. The table lives in the manifest store's
database (SQLite by default, PostgreSQL by URL), so every replica of the service sees the same keys.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from guard.errors import GuardError
from guard.provenance.credentials.store import as_utc, create_tables

SCOPES = ("scan", "protect", "verify", "generate", "admin")
"""What a key may do: `scan` (prompt checks and image scans), `protect`, `verify`, `generate`, and `admin`
(everything, and the audit log over HTTP)."""
KEY_PREFIX = "gk"

metadata = sa.MetaData()
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("scopes", sa.String(200), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
)


@dataclass(frozen=True)
class ApiKey:
    """One key as stored (never its secret)."""

    key_id: str
    name: str
    scopes: frozenset[str]
    created: dt.datetime
    revoked: dt.datetime | None = None
    secret_sha256: str = ""

    def allows(self, scope: str) -> bool:
        return self.revoked is None and (scope in self.scopes or "admin" in self.scopes)

    def to_dict(self) -> dict:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created": self.created.isoformat(),
            "revoked": self.revoked.isoformat() if self.revoked else None,
        }


def parse_scopes(text: str | list[str] | tuple[str, ...]) -> frozenset[str]:
    """`scan,verify` (or a list of such) -> the scopes; GuardError naming the valid ones otherwise."""
    parts = text.split(",") if isinstance(text, str) else [p for item in text for p in item.split(",")]
    scopes = frozenset(part.strip().lower() for part in parts if part.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        what = f"unknown scope(s) {', '.join(unknown)}" if unknown else "no scope given"
        raise GuardError(f"API key scopes: {what}; use one or more of {', '.join(SCOPES)}.")
    return scopes


def split_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1].isalnum() or len(parts[2]) < 32:
        return None
    return parts[1], parts[2]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class ApiKeys:
    """The `api_keys` table of a store database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine)

    def create(self, scopes: frozenset[str] | str, name: str = "") -> tuple[ApiKey, str]:
        """A new key: its record and the key itself (shown once; only its hash is kept)."""
        scopes = parse_scopes(scopes) if isinstance(scopes, str) else parse_scopes(sorted(scopes))
        key_id = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()[:10]
        secret = secrets.token_urlsafe(32)
        record = ApiKey(
            key_id=key_id,
            name=name.strip() or key_id,
            scopes=scopes,
            created=dt.datetime.now(dt.UTC),
            secret_sha256=_digest(secret),
        )
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=record.key_id,
                    name=record.name,
                    scopes=",".join(sorted(record.scopes)),
                    secret_sha256=record.secret_sha256,
                    created=record.created,
                )
            )
        return record, f"{KEY_PREFIX}_{key_id}_{secret}"

    def get(self, key_id: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(api_keys.select().where(api_keys.c.key_id == key_id)).first()
        return _record(row) if row is not None else None

    def list(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(api_keys.select().order_by(api_keys.c.created, api_keys.c.key_id)).all()
        return [_record(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (it stays listed, marked revoked; revoking twice keeps the first time); GuardError when
        there is no such key."""
        key_id = key_id.strip()
        parsed = split_key(key_id)
        if parsed is not None:  # the whole key was pasted: take its id
            key_id = parsed[0]
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked.is_(None))
                .values(revoked=dt.datetime.now(dt.UTC))
            )
        record = self.get(key_id)
        if record is None:
            raise GuardError(f"There is no API key {key_id!r}; `guard keys api list` shows them.")
        return record

    def authenticate(self, token: str, *, known: ApiKey | None = None) -> ApiKey | None:
        """The key record if `token` is a valid, unrevoked key, else None. `known`: the record of the token's
        key id, when the caller has it cached (then no query is made)."""
        parsed = split_key(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        record = known if known is not None and known.key_id == key_id else self.get(key_id)
        if record is None or record.revoked is not None:
            return None
        return record if hmac.compare_digest(_digest(secret), record.secret_sha256) else None


def _record(row: sa.Row) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        scopes=frozenset(s for s in row.scopes.split(",") if s),
        created=as_utc(row.created),
        revoked=as_utc(row.revoked) if row.revoked is not None else None,
        secret_sha256=row.secret_sha256,
    )
