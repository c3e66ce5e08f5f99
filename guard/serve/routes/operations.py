"""What operators use: `GET /healthz` (alive), `GET /readyz` (models loaded, store reachable), `GET /metrics`
(Prometheus text) and `GET /v1/audit` (the audit log, `admin` scope)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from guard.serve.audit import parse_since
from guard.serve.auth import Principal, require
from guard.serve.routes import context
from guard.serve.schemas import AUTH_PROBLEMS, problems

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Models loaded and the store reachable: ready for traffic",
    responses={503: {"description": "Not ready (the store cannot be reached): see `checks`"}},
)
async def readyz(request: Request) -> JSONResponse:
    ctx = context(request)
    services = ctx.services
    store_error = await run_in_threadpool(services.store_reachable)  # not the CPU pool: a busy worker is ready
    checks = {
        "models": "loaded",
        "store": store_error or "reachable",
        "signing": "ready" if services.protector is not None else f"unavailable: {services.protector_error}",
        "generation": "ready" if services.generator is not None else "not configured",
    }
    ready = store_error is None
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    responses={200: {"content": {"text/plain": {}}}, **problems(*AUTH_PROBLEMS)},
    response_class=Response,
)
async def metrics(request: Request, _: Annotated[Principal, Depends(require("admin", public_group="metrics"))]):
    rendered = request.app.state.metrics
    return Response(rendered.render(), media_type=rendered.content_type)


@router.get(
    "/v1/audit",
    tags=["operations"],
    summary="Query the audit log (guard audit)",
    responses=problems(400, 422, *AUTH_PROBLEMS),
)
async def audit(
    request: Request,
    _: Annotated[Principal, Depends(require("admin"))],
    since: Annotated[str | None, Query(max_length=64, description="`24h`, `7d`, or an ISO date/time.")] = None,
    decision: Annotated[list[Literal["allow", "blur", "review", "block", "signed"]] | None, Query()] = None,
    endpoint: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> JSONResponse:
    ctx = context(request)
    moment = parse_since(since) if since else None
    entries = await ctx.pool.run(
        ctx.services.audit.query, since=moment, decisions=decision or (), endpoint=endpoint, limit=limit
    )
    return JSONResponse({"entries": [entry.to_dict() for entry in entries]})
