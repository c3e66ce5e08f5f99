"""Errors as RFC 9457 problem documents (`application/problem+json`): every 4xx says what to do, a 500 says
nothing about the internals.

A route raises `Problem`; the handlers installed by `install` also turn FastAPI's validation errors, unknown
routes and methods, and the user errors of the library (`guard.errors.user_errors()`) into problem documents.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from guard.errors import ImageError, ImageTooLargeError, UnsupportedImageError, user_errors

PROBLEM_MIME = "application/problem+json"
TYPE_BASE = "https://image-guard.dev/problems/"
"""Problem types are names under this base (they identify the kind of problem; nothing is served there)."""

TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Content too large",
    414: "URI too long",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}

log = logging.getLogger("guard.serve")


class Problem(Exception):
    """An HTTP error with a problem document: `status`, a short `kind` (the type's last part) and `detail`."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def response(self, instance: str | None = None) -> JSONResponse:
        return problem_response(self.status, self.kind, self.detail, instance, self.headers, **self.extra)


def problem_response(
    status: int,
    kind: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    document = problem_document(status, kind, detail, instance, **extra)
    return JSONResponse(document, status_code=status, headers=headers, media_type=PROBLEM_MIME)


def problem_document(status: int, kind: str, detail: str, instance: str | None = None, **extra: Any) -> dict[str, Any]:
    """The RFC 9457 problem document (`type`, `title`, `status`, `detail`, `instance`, and any extra members)."""
    document: dict[str, Any] = {
        "type": TYPE_BASE + kind,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        document["instance"] = instance
    document.update(extra)
    return document


def image_problem(exc: ImageError, *, corrupt_status: int = 422) -> Problem:
    """The status an unreadable upload deserves: 415 not an image we decode, 413 too many pixels, else
    `corrupt_status` (truncated or corrupt data; the resolution API's statuses call that 400)."""
    detail = " ".join(str(exc).split())
    if isinstance(exc, UnsupportedImageError):
        return Problem(415, "unsupported-image", detail)
    if isinstance(exc, ImageTooLargeError):
        return Problem(413, "image-too-large", detail)
    return Problem(corrupt_status, "unreadable-image", detail)


def user_error_problem(exc: Exception) -> Problem:
    """A library error the user can fix, as a 4xx problem (image errors by kind, anything else 422)."""
    if isinstance(exc, ImageError):
        return image_problem(exc)
    return Problem(422, "invalid-input", " ".join(str(exc).split()))


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        errors.append({"field": where, "message": str(error.get("msg", "invalid"))})
    first = errors[0] if errors else {"field": "request", "message": "invalid"}
    return f"{first['field']}: {first['message']}.", errors


def install(app: FastAPI, *, validation_400_tags: frozenset[str] = frozenset()) -> None:
    """Register the problem handlers on `app`. Routes tagged with one of `validation_400_tags` answer invalid
    parameters with 400 (the resolution API's status) instead of FastAPI's 422."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return exc.response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_detail(exc)
        tags = set(getattr(request.scope.get("route"), "tags", None) or ())
        status = 400 if tags & validation_400_tags else 422
        return problem_response(status, "invalid-request", detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no {request.url.path} here; see /docs for the API."
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(exc.status_code, kind, detail, request.url.path, dict(exc.headers or {}))

    for error_type in user_errors():

        @app.exception_handler(error_type)
        async def _user(request: Request, exc: Exception) -> JSONResponse:
            return user_error_problem(exc).response(request.url.path)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500, "internal-error", "The service failed on this request; it has been logged.", request.url.path
        )
