"""HTTP routes, one module per area; each is thin: read the request, call the library on a worker thread,
shape the answer. `context(request)` gives a route what the app loaded at startup."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from guard.serve.limits import CpuPool
from guard.serve.services import Services


@dataclass(frozen=True)
class Context:
    """What a route needs: the loaded services, the CPU pool, this request's id and the caller's key id."""

    services: Services
    pool: CpuPool
    request_id: str
    key_id: str | None


def context(request: Request) -> Context:
    principal = getattr(request.state, "principal", None)
    return Context(
        services=request.app.state.services,
        pool=request.app.state.pool,
        request_id=request.scope.get("guard.request_id", ""),
        key_id=getattr(principal, "key_id", None),
    )
