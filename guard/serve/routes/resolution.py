"""The C2PA Soft Binding Resolution API (OpenAPI 1.1.0) over the manifest store, so any C2PA verifier can
recover our manifests: `/matches/byBinding` (GET and POST), `/matches/byContent`, `/manifests/{manifestId}`,
`/services/supportedAlgorithms`. Served under `/v1` (the spec's server URL ends in `/v1`) and, outside the
OpenAPI document, at the root too, so either base URL works. Invalid parameters get 400, as the spec says.
The optional `/matches/byReference` (the service downloading a URL the client names) is not offered."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from guard.errors import ImageError
from guard.serve.auth import Principal, require
from guard.serve.problems import Problem, image_problem
from guard.serve.routes import context
from guard.serve.schemas import SoftBindingAlgList, SoftBindingQuery, SoftBindingQueryResult, problems
from guard.serve.soft_binding import MAX_RESULTS, BindingValueError
from guard.serve.uploads import media_type

TAG = "soft-binding resolution"
C2PA_MIME = "application/c2pa"
MAX_MANIFEST_ID = 255

router = APIRouter(tags=[TAG])
Caller = Annotated[Principal, Depends(require("verify", public_group="resolution"))]
MaxResults = Annotated[int, Query(ge=1, description=f"Most manifest identifiers to return (at most {MAX_RESULTS}).")]


def _matches(matches) -> JSONResponse:
    return JSONResponse({"matches": [match.to_dict() for match in matches]})


def _bad_query(exc: BindingValueError) -> Problem:
    return Problem(400, "invalid-binding-query", str(exc))


@router.get(
    "/matches/byBinding",
    response_model=SoftBindingQueryResult,
    responses=problems(400, 401, 403, 414, 429),
    operation_id="queryByBinding",
    summary="Returns C2PA Manifest identifiers corresponding to a soft binding.",
)
async def query_by_binding(
    request: Request,
    _: Caller,
    value: Annotated[str, Query(description="The soft binding value, base64 (hex is accepted too).")],
    alg: Annotated[str, Query(description="Soft binding algorithm, from /services/supportedAlgorithms.")],
    maxResults: MaxResults = 10,
) -> JSONResponse:
    return await _by_binding(request, alg, value, maxResults)


@router.post(
    "/matches/byBinding",
    response_model=SoftBindingQueryResult,
    responses=problems(400, 401, 403, 413, 429),
    operation_id="queryByLargeBinding",
    summary="Returns C2PA Manifest identifiers corresponding to a large soft binding value.",
)
async def query_by_large_binding(
    request: Request,
    _: Caller,
    query: Annotated[SoftBindingQuery, Body()],
    maxResults: MaxResults = 10,
) -> JSONResponse:
    return await _by_binding(request, query.alg, query.value, maxResults)


async def _by_binding(request: Request, alg: str, value: str, max_results: int) -> JSONResponse:
    ctx = context(request)
    try:
        return _matches(await ctx.pool.run(ctx.services.index.by_binding, alg, value, max_results))
    except BindingValueError as exc:
        raise _bad_query(exc) from None


@router.post(
    "/matches/byContent",
    response_model=SoftBindingQueryResult,
    responses=problems(400, 401, 403, 413, 415, 429),
    operation_id="uploadFile",
    summary="Finds C2PA Manifest identifiers using a digital asset.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The image, as the body.",
            "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def query_by_content(
    request: Request,
    _: Caller,
    alg: Annotated[str | None, Query(description="Soft binding algorithm (default: every one supported).")] = None,
    maxResults: MaxResults = 10,
    hintAlg: Annotated[str | None, Query(description="Another algorithm, with hintValue, to help.")] = None,
    hintValue: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    ctx = context(request)
    if not media_type(request).startswith("image/"):
        raise Problem(415, "unsupported-media-type", "Send the image as the body, with an image/* content type.")
    data = await request.body()
    if not data:
        raise Problem(400, "empty-upload", "The request body is empty; send the image.")
    try:
        matches = await ctx.pool.run(
            ctx.services.index.by_content,
            data,
            alg,
            hint_alg=hintAlg,
            hint_value=hintValue,
            max_results=maxResults,
        )
    except BindingValueError as exc:
        raise _bad_query(exc) from None
    except ImageError as exc:
        raise image_problem(exc, corrupt_status=400) from None
    return _matches(matches)


@router.get(
    "/manifests/{manifestId}",
    responses={
        200: {"description": "The C2PA Manifest Store", "content": {C2PA_MIME: {}}},
        **problems(400, 401, 403, 404, 429),
    },
    operation_id="getManifestById",
    summary="Returns a full C2PA Manifest Store.",
    response_class=Response,
)
async def get_manifest(
    request: Request,
    _: Caller,
    manifestId: str,
    returnActiveManifest: Annotated[
        bool, Query(description="Accepted; the whole store (which holds the active manifest) is always returned.")
    ] = False,
) -> Response:
    ctx = context(request)
    if not manifestId or len(manifestId) > MAX_MANIFEST_ID or not manifestId.isprintable():
        raise Problem(400, "invalid-manifest-id", "That is not a C2PA manifest identifier.")
    store = await ctx.pool.run(ctx.services.index.manifest, manifestId)
    if store is None:
        raise Problem(404, "manifest-not-found", f"No manifest {manifestId} in this store.")
    return Response(store, media_type=C2PA_MIME)


@router.get(
    "/services/supportedAlgorithms",
    response_model=SoftBindingAlgList,
    responses=problems(400, 401, 403, 429),
    operation_id="getSupportedBindings",
    summary="Returns a list of the soft binding algorithms supported by the service.",
)
async def supported_algorithms(request: Request, _: Caller) -> JSONResponse:
    ctx = context(request)
    return JSONResponse(await ctx.pool.run(ctx.services.index.supported))
