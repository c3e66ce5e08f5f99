"""The audit log: one row per moderation decision the service makes, in the manifest store's database.

A row holds who asked (API key id), when, which endpoint, the SHA-256 of the input (the prompt's UTF-8 bytes
or the uploaded file), the decision, its categories and reasons, and the policy's name and version. Prompt
text and image bytes are kept only when the operator turns that on (`GUARD_AUDIT_PROMPTS`,
`GUARD_AUDIT_IMAGES`); otherwise the reasons of a prompt decision lose their `evidence` (a piece of the
prompt) and keep only the rule, the category and the character span. `guard audit` reads the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from guard.errors import GuardError
from guard.provenance.credentials.store import as_utc, create_tables

metadata = sa.MetaData()
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=True),
    sa.Column("endpoint", sa.String(100), nullable=False),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False, index=True),
    sa.Column("categories", sa.Text, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("policy_name", sa.String(200), nullable=True),
    sa.Column("policy_version", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("prompt", sa.Text, nullable=True),
    sa.Column("image", sa.LargeBinary, nullable=True),
)

PROMPT_REASON_KEYS = ("evidence", "spans")
"""Reason fields that quote the prompt; dropped unless prompt text is kept."""


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


@dataclass
class AuditEntry:
    """One decision as the audit log keeps it."""

    endpoint: str
    input_sha256: str
    decision: str
    categories: dict[str, str]
    reasons: list[dict[str, Any]]
    policy: dict[str, Any]
    request_id: str
    key_id: str | None = None
    detail: dict[str, Any] | None = None
    prompt: str | None = None
    image: bytes | None = field(default=None, repr=False)
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        document = {
            "id": self.id,
            "time": self.created.isoformat(),
            "request_id": self.request_id,
            "key_id": self.key_id,
            "endpoint": self.endpoint,
            "input_sha256": self.input_sha256,
            "decision": self.decision,
            "categories": self.categories,
            "reasons": self.reasons,
            "policy": self.policy,
            "detail": self.detail,
        }
        if self.prompt is not None:
            document["prompt"] = self.prompt
        if self.image is not None:
            document["image_bytes"] = len(self.image)
        return document


def redact_prompt_reasons(reasons: Iterable[dict[str, Any]], *, keep_text: bool) -> list[dict[str, Any]]:
    """Reasons of a prompt decision as the log keeps them: without the quoted prompt unless `keep_text`."""
    if keep_text:
        return [dict(reason) for reason in reasons]
    return [{k: v for k, v in reason.items() if k not in PROMPT_REASON_KEYS} for reason in reasons]


class AuditLog:
    """The `audit_log` table of a store database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine)

    def record(self, entries: Sequence[AuditEntry]) -> None:
        """Insert entries in one transaction."""
        if not entries:
            return
        rows = [
            {
                "created": entry.created,
                "request_id": entry.request_id,
                "key_id": entry.key_id,
                "endpoint": entry.endpoint,
                "input_sha256": entry.input_sha256,
                "decision": entry.decision,
                "categories": json.dumps(entry.categories, sort_keys=True),
                "reasons": json.dumps(entry.reasons, ensure_ascii=False, default=str),
                "policy_name": (entry.policy or {}).get("name"),
                "policy_version": (entry.policy or {}).get("version"),
                "detail": json.dumps(entry.detail, default=str) if entry.detail is not None else None,
                "prompt": entry.prompt,
                "image": entry.image,
            }
            for entry in entries
        ]
        with self.engine.begin() as conn:
            conn.execute(audit_log.insert(), rows)

    def query(
        self,
        *,
        since: dt.datetime | None = None,
        decisions: Iterable[str] = (),
        endpoint: str | None = None,
        key_id: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, oldest first; `limit` keeps the most recent ones."""
        statement = audit_log.select()
        if since is not None:
            statement = statement.where(audit_log.c.created >= since)
        decisions = [d for d in decisions if d]
        if decisions:
            statement = statement.where(audit_log.c.decision.in_(decisions))
        if endpoint:
            statement = statement.where(audit_log.c.endpoint == endpoint)
        if key_id:
            statement = statement.where(audit_log.c.key_id == key_id)
        statement = statement.order_by(audit_log.c.id.desc())
        if limit is not None:
            statement = statement.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(statement).all()
        return [_entry(row) for row in reversed(rows)]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()


_RELATIVE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """`24h`, `7d`, `30m` (that long ago), or an ISO 8601 date or time (UTC when it has no zone)."""
    now = now or dt.datetime.now(dt.UTC)
    relative = _RELATIVE.match(text)
    if relative:
        return now - dt.timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise GuardError(
            f"--since {text!r} is neither a duration (30m, 24h, 7d, 2w) nor an ISO date or time (2025-01-31)."
        ) from None
    return as_utc(moment)


def _entry(row: sa.Row) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        created=as_utc(row.created),
        request_id=row.request_id,
        key_id=row.key_id,
        endpoint=row.endpoint,
        input_sha256=row.input_sha256,
        decision=row.decision,
        categories=json.loads(row.categories),
        reasons=json.loads(row.reasons),
        policy={"name": row.policy_name, "version": row.policy_version},
        detail=json.loads(row.detail) if row.detail is not None else None,
        prompt=row.prompt,
        image=bytes(row.image) if row.image is not None else None,
    )
