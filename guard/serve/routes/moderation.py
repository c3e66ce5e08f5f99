"""`POST /v1/prompts/check` and `POST /v1/images/scan`: the decisions of `guard check-prompt` and `guard scan`,
under a moderation-client top level, each one written to the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from guard.images import load_image
from guard.scan import assess_images
from guard.serve.audit import redact_prompt_reasons
from guard.serve.auth import Principal, require
from guard.serve.moderation import combine_views, view
from guard.serve.routes import Context, context
from guard.serve.schemas import AUTH_PROBLEMS, IMAGE_UPLOAD, Moderation, PromptCheck, problems
from guard.serve.uploads import read_upload

router = APIRouter(tags=["moderation"])


def _clean(text: str) -> str:
    """Text as UTF-8 can carry it (a lone surrogate from JSON escapes becomes U+FFFD)."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@router.post(
    "/v1/prompts/check",
    response_model=Moderation,
    responses=problems(400, 413, 422, *AUTH_PROBLEMS),
    summary="Check prompts or captions against the policy (guard check-prompt)",
)
async def check_prompts(
    body: PromptCheck, request: Request, _: Annotated[Principal, Depends(require("scan"))]
) -> JSONResponse:
    """Each result is `guard check-prompt --json`'s document (`prompt`, `decision`, `categories` (category ->
    action), `reasons` with spans, `normalized`, `policy`), plus `flagged` and `category_scores`."""
    ctx = context(request)
    texts = [_clean(text) for text in body.texts()]
    results = await ctx.pool.run(_check_prompts, ctx, texts)
    return _moderation(ctx, "prompts.check", results)


def _check_prompts(ctx: Context, texts: list[str]) -> list[dict[str, Any]]:
    services = ctx.services
    results, entries = [], []
    for text, decision in zip(texts, services.prompts.check(texts), strict=True):
        document = {"prompt": text, **decision.to_dict()}
        results.append(document)
        reasons = redact_prompt_reasons(document["reasons"], keep_text=services.settings.audit_prompts)
        entries.append(ctx.audit_entry("prompts.check", text, document, reasons=reasons, prompt=text))
    services.audit.record(entries)
    return results


@router.post(
    "/v1/images/scan",
    response_model=Moderation,
    openapi_extra=IMAGE_UPLOAD,
    responses=problems(400, 413, 415, 422, *AUTH_PROBLEMS),
    summary="Score an image with the policy's detectors and decide (guard scan)",
)
async def scan_image(request: Request, _: Annotated[Principal, Depends(require("scan"))]) -> JSONResponse:
    """The result is `guard scan --json`'s document (`path` = the upload's name, `decision`, `scores`,
    `reasons`, `categories`, `detectors`, `policy`), plus `flagged` and `category_scores`."""
    ctx = context(request)
    upload = await read_upload(request)
    result = await ctx.pool.run(_scan, ctx, upload.data, upload.name)
    return _moderation(ctx, "images.scan", [result])


def _scan(ctx: Context, data: bytes, name: str) -> dict[str, Any]:
    services = ctx.services
    image = load_image(data, name=name)
    assessment = assess_images([image], services.policy, services.detectors)[0]
    document = {"path": name, **assessment.to_dict()}
    document["_scores"] = assessment.scores
    services.audit.record([ctx.audit_entry("images.scan", data, document, image=data)])
    return document


def _moderation(ctx: Context, endpoint: str, results: list[dict[str, Any]]) -> JSONResponse:
    policy = ctx.services.policy
    views = []
    for document in results:
        item = view(policy, document, document.pop("_scores", None))
        document["flagged"] = item["flagged"]
        document["category_scores"] = item["category_scores"]
        views.append(item)
        ctx.services.metrics.observe_decision(endpoint, document["decision"], document["categories"])
    return JSONResponse({"id": ctx.request_id, **combine_views(views), "results": results})
