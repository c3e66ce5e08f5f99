"""HTTP routes, one module per area; each is thin: read the request, call the library on a worker thread,
shape the answer. `context(request)` gives a route what the app loaded at startup."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from guard.serve.audit import AuditEntry, sha256_hex
from guard.serve.limits import CpuPool
from guard.serve.services import Services


@dataclass(frozen=True)
class Context:
    """What a route needs: the loaded services, the CPU pool, this request's id and the caller's key id."""

    services: Services
    pool: CpuPool
    request_id: str
    key_id: str | None

    def audit_entry(
        self,
        endpoint: str,
        subject: bytes | str,
        document: Mapping[str, Any],
        *,
        reasons: list[dict[str, Any]] | None = None,
        detail: dict[str, Any] | None = None,
        image: bytes | None = None,
        prompt: str | None = None,
    ) -> AuditEntry:
        """The audit entry of one decision of this request: `subject`'s SHA-256, the caller, the decision,
        categories, reasons (`reasons` when given, e.g. redacted) and policy from `document`; the image
        bytes and prompt text only when the operator keeps them."""
        settings = self.services.settings
        return AuditEntry(
            endpoint=endpoint,
            input_sha256=sha256_hex(subject),
            decision=document["decision"],
            categories=dict(document.get("categories") or {}),
            reasons=list(document.get("reasons") or []) if reasons is None else reasons,
            policy=dict(document.get("policy") or {}),
            request_id=self.request_id,
            key_id=self.key_id,
            detail=detail,
            image=image if settings.audit_images else None,
            prompt=prompt if settings.audit_prompts else None,
        )


def context(request: Request) -> Context:
    principal = getattr(request.state, "principal", None)
    return Context(
        services=request.app.state.services,
        pool=request.app.state.pool,
        request_id=request.scope.get("guard.request_id", ""),
        key_id=getattr(principal, "key_id", None),
    )
