"""`POST /v1/generate`: guarded generation with the service's model (guard generate); only when a model is
configured (`GUARD_SERVE_MODEL`)."""

from __future__ import annotations

import base64
import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from guard.serve.audit import redact_prompt_reasons
from guard.serve.auth import Principal, require
from guard.serve.routes import Context, context
from guard.serve.schemas import AUTH_PROBLEMS, GenerateRequest, problems

router = APIRouter(tags=["generation"])
MIME = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@router.post(
    "/v1/generate",
    responses={
        200: {
            "description": "One `guard generate --json` record per requested image (`decision`, `stage`, "
            "`reasons`, `manifest_id`, ...); a delivered image is in `image_base64` with its `mime`"
        },
        **problems(400, 413, 422, *AUTH_PROBLEMS),
    },
    summary="Generate images behind the guard (guard generate)",
)
async def generate(
    body: GenerateRequest, request: Request, _: Annotated[Principal, Depends(require("generate"))]
) -> JSONResponse:
    ctx = context(request)
    records = await ctx.pool.run(_generate, ctx, body)
    for record in records:
        ctx.services.metrics.observe_decision("generate", record["decision"], record["categories"])
    return JSONResponse(
        {"id": ctx.request_id, "flagged": any(r["decision"] != "allow" for r in records), "results": records}
    )


def _generate(ctx: Context, body: GenerateRequest) -> list[dict[str, Any]]:
    services = ctx.services
    keep_prompt = services.settings.audit_prompts
    with services.generate_lock, tempfile.TemporaryDirectory(prefix="guard-generate-") as folder:
        # one pipeline per worker: diffusers pipelines keep per-call state (the scheduler's timesteps)
        services.generator.output_format = body.format
        records = services.generator.generate(
            body.prompt,
            model=services.pipeline,
            output_dir=folder,
            negative_prompt=body.negative_prompt,
            seed=body.seed,
            steps=body.steps,
            guidance=body.guidance,
            width=body.width,
            height=body.height,
            num_images=body.num_images,
        )
        documents = []
        for record in records:
            document = record.to_dict()
            if record.output is not None:
                document["image_base64"] = base64.b64encode(record.output.read_bytes()).decode("ascii")
                document["mime"] = MIME[body.format]
                document["output"] = record.output.name
            documents.append(document)
    services.audit.record(
        [
            ctx.audit_entry(
                "generate",
                body.prompt,
                document,
                reasons=[
                    reason
                    if reason.get("stage") != "prompt"
                    else redact_prompt_reasons([reason], keep_text=keep_prompt)[0]
                    for reason in document["reasons"]
                ],
                detail={"index": document["index"], "stage": document["stage"], "manifest_id": document["manifest_id"]},
                prompt=body.prompt,
            )
            for document in documents
        ]
    )
    return documents
