"""The FastAPI app of `guard serve`: `create_app(settings)` builds it; its lifespan loads the models once per
worker (policy, detectors, prompt checker, verifier, protector, generator) and opens the store.

Middleware, outermost first: `Observe` (request id, metrics, security headers), `RequestLimits` (URL length,
body size, timeout). Routes: `guard.serve.routes.*`. Errors: problem documents (`guard.serve.problems`).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI

from guard import __version__
from guard.serve import problems
from guard.serve.auth import Authenticator
from guard.serve.config import MAX_URL_LENGTH, ServeSettings
from guard.serve.limits import CpuPool, RequestLimits
from guard.serve.metrics import Metrics
from guard.serve.routes import generate, moderation, operations, page, provenance, resolution
from guard.serve.services import Services

log = logging.getLogger("guard.serve")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

DESCRIPTION = """\
Content safety and provenance for images, over HTTP: the same decisions as the `guard` command.

* Moderation: `POST /v1/prompts/check`, `POST /v1/images/scan` (`guard check-prompt`, `guard scan`).
* Provenance: `POST /v1/images/protect`, `POST /v1/images/verify` (`guard protect`, `guard verify`).
* Generation behind the guard: `POST /v1/generate`, when the service has a model.
* The C2PA Soft Binding Resolution API (1.1.0) under `/v1`: any C2PA verifier can recover our manifests.
* Operations: `/healthz`, `/readyz`, `/metrics`; the verification page at `/`.

Send an API key (`guard keys api create`) as `Authorization: Bearer <key>` or `X-API-Key`. Errors are
`application/problem+json` (RFC 9457).
"""


class Observe:
    """Request id (`X-Request-Id`, echoed or made), per-route metrics, and headers every answer carries."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope["guard.request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def tagged_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers += [
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, tagged_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], route, status, time.perf_counter() - start)


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The app; `settings` None: `ServeSettings.from_env()` (what each `guard serve` worker does)."""
    settings = settings or ServeSettings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = Services.load(settings, metrics)
        pool = CpuPool(
            settings.threads,
            settings.max_inflight,
            on_reject=lambda: metrics.rejected.labels("overloaded").inc(),
            on_change=metrics.inflight.set,
        )
        app.state.services = services
        app.state.pool = pool
        app.state.authenticator = Authenticator(services.keys, settings.public)
        app.state.page = page.build_page(
            verify_public=settings.is_public("verify"), max_upload_bytes=settings.max_upload_bytes
        )
        log.info(
            "guard serve ready: policy %s %s, store %s", services.policy.name, services.policy.version, _where(services)
        )
        try:
            yield
        finally:
            pool.shutdown()
            services.close()
            metrics.close()

    app = FastAPI(
        title="image-guard",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "moderation", "description": "Prompt checks and image scans, decided by the policy."},
            {"name": "provenance", "description": "Protect (watermark + signed C2PA manifest) and verify."},
            {"name": "generation", "description": "Guarded generation (when a model is configured)."},
            {
                "name": resolution.TAG,
                "description": "C2PA Soft Binding Resolution API 1.1.0 (also served at the root, without /v1).",
            },
            {"name": "operations", "description": "Health, readiness, metrics and the audit log."},
        ],
    )
    app.state.settings = settings
    app.state.metrics = metrics
    problems.install(app, validation_400_tags=frozenset({resolution.TAG}))
    app.include_router(page.router)
    app.include_router(operations.router)
    app.include_router(moderation.router)
    app.include_router(provenance.router)
    if settings.model:
        app.include_router(generate.router)
    app.include_router(resolution.router, prefix="/v1")
    app.include_router(resolution.router, include_in_schema=False)
    app.add_middleware(
        RequestLimits,
        max_body=settings.max_upload_bytes,
        timeout=settings.timeout,
        max_url=MAX_URL_LENGTH,
        on_timeout=lambda: metrics.rejected.labels("timeout").inc(),
    )
    app.add_middleware(Observe, metrics=metrics)
    return app


def _where(services: Services) -> str:
    return services.store.engine.url.render_as_string(hide_password=True)
