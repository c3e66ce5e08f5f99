"""`POST /v1/images/verify` (guard verify) and `POST /v1/images/protect` (guard protect)."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from guard.images import load_image
from guard.protect import SIGNED_FORMATS
from guard.provenance.credentials.manifest import EDIT
from guard.provenance.credentials.source_types import DigitalSourceType
from guard.serve.auth import Principal, require
from guard.serve.problems import Problem
from guard.serve.routes import Context, context
from guard.serve.schemas import AUTH_PROBLEMS, IMAGE_UPLOAD, PROTECT_UPLOAD, problems
from guard.serve.uploads import read_upload

router = APIRouter(tags=["provenance"])

SOURCE_TYPES = {
    "generated": DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA,
    "composite": DigitalSourceType.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    "edit": EDIT,
}
"""`source_type` names, as `guard protect --source-type` has them."""
OUTPUT_PATTERN = "^(" + "|".join(sorted(suffix.lstrip(".") for suffix in SIGNED_FORMATS)) + ")$"


@router.post(
    "/v1/images/verify",
    openapi_extra=IMAGE_UPLOAD,
    responses={
        200: {
            "description": "`guard verify --json`'s report, plus `flagged` and `summary` (evidence rows and "
            "credential histories, as the terminal and HTML reports show them); or that HTML report",
            "content": {"application/json": {}, "text/html": {}},
        },
        **problems(400, 413, 415, 422, *AUTH_PROBLEMS),
    },
    summary="Where does this image come from? (guard verify)",
)
async def verify_image(
    request: Request,
    _: Annotated[Principal, Depends(require("verify", public_group="verify"))],
    format: Annotated[Literal["json", "html"], Query(description="`html`: the self-contained HTML report.")] = "json",
) -> Response:
    ctx = context(request)
    upload = await read_upload(request)
    report, html = await ctx.pool.run(_verify, ctx, upload.data, upload.name, format == "html")
    verdict = report.verdict
    ctx.services.metrics.verdicts.labels(verdict.origin, verdict.integrity).inc()
    if html is not None:
        return HTMLResponse(html, headers={"Content-Security-Policy": HTML_REPORT_CSP})
    document = report.to_dict()
    document["flagged"] = report.flagged
    document["summary"] = summary(document)
    return JSONResponse(document)


HTML_REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _verify(ctx: Context, data: bytes, name: str, as_html: bool):
    """The report, and its HTML page when asked for."""
    report = ctx.services.verifier.verify_bytes(data, name=name, image=load_image(data, name=name))
    if not as_html:
        return report, None
    from guard.verify.html import render_html

    return report, render_html(report)


def summary(document: dict[str, Any]) -> dict[str, Any]:
    """The report's evidence rows and credential histories, worded as `guard verify` words them."""
    from guard.verify.render import evidence_rows

    histories = []
    recovered = (document.get("recovered") or {}).get("manifest")
    for source, manifest in (("embedded", document["c2pa"]), ("recovered", recovered)):
        if manifest and manifest.get("actions") is not None:
            histories.append({"source": source, **history(manifest)})
    return {
        "evidence": [{"source": source, "finding": finding} for source, finding in evidence_rows(document)],
        "histories": histories,
    }


def history(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest's actions and ingredients as a tree of lines."""
    from guard.verify.render import action_line, ingredient_line

    def node(ingredient: dict[str, Any]) -> dict[str, Any]:
        return {
            "text": ingredient_line(ingredient),
            "children": [node(child) for child in ingredient.get("ingredients") or []],
        }

    signer = (manifest.get("signer") or {}).get("common_name")
    return {
        "title": f"{manifest.get('title')} — signed by {signer} ({manifest.get('claim_generator')})",
        "items": [{"text": action_line(action), "children": []} for action in manifest.get("actions") or []]
        + [node(ingredient) for ingredient in manifest.get("ingredients") or []],
    }


@router.post(
    "/v1/images/protect",
    openapi_extra=PROTECT_UPLOAD,
    responses={
        200: {
            "description": "The protected image (headers `X-Manifest-Id`, `X-Watermark-Scheme`, "
            "`X-Watermark-Payload`), or with `format=json` `guard protect --json`'s fields and the image in base64",
            "content": {"image/*": {}, "application/json": {}},
        },
        **problems(400, 413, 415, 422, *AUTH_PROBLEMS),
    },
    summary="Watermark, sign and record an image (guard protect)",
)
async def protect_image(
    request: Request,
    _: Annotated[Principal, Depends(require("protect"))],
    format: Annotated[
        Literal["image", "json"], Query(description="`json`: metadata and the image in base64.")
    ] = "image",
    output: Annotated[
        str | None,
        Query(
            pattern=OUTPUT_PATTERN,
            description="Output format (default: the input's, when it can carry credentials, else png).",
        ),
    ] = None,
    source_type: Annotated[Literal["generated", "composite", "edit"], Query()] = "generated",
    model: Annotated[str | None, Query(max_length=200, description="Model id that generated the image.")] = None,
    model_version: Annotated[str | None, Query(max_length=200)] = None,
    include_prompt: Annotated[
        bool, Query(description="Write the form's `prompt` itself into the manifest, not only its SHA-256.")
    ] = False,
    training_mining: Annotated[Literal["notAllowed", "allowed", "constrained", "none"], Query()] = "notAllowed",
) -> Response:
    ctx = context(request)
    services = ctx.services
    if services.protector is None:
        raise Problem(503, "no-signing-identity", f"This service cannot sign: {services.protector_error}")
    upload = await read_upload(request, text_fields=("prompt",))
    options = {
        "source_type": SOURCE_TYPES[source_type],
        "generator": {"model": model, "model_version": model_version} if model else None,
        "prompt": upload.fields.get("prompt") or None,
        "include_prompt": include_prompt,
        "training_mining": None if training_mining == "none" else training_mining,
    }
    result, signed = await ctx.pool.run(_protect, ctx, upload.data, upload.name, output, options)
    headers = {"X-Manifest-Id": result.manifest_id}
    if result.scheme is not None and result.payload is not None:
        headers.update({"X-Watermark-Scheme": result.scheme, "X-Watermark-Payload": result.payload.hex()})
    if format == "json":
        document = {**result.to_dict(), "output": result.output.name, "image_base64": base64.b64encode(signed).decode()}
        return JSONResponse(document, headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{result.output.name}"'
    return Response(signed, media_type=result.mime, headers=headers)


def _protect(ctx: Context, data: bytes, name: str, output: str | None, options: dict[str, Any]):
    """Protect through the same `Protector.protect_file` as the CLI, in a private temporary folder."""
    services = ctx.services
    load_image(data, name=name)  # refuse a bad upload with the same sentence as the CLI, before any signing
    stem, suffix = Path(name).stem or "upload", Path(name).suffix.lower()
    if output is not None:
        suffix = f".{output}"
    elif suffix not in SIGNED_FORMATS:
        suffix = ".png"
    with tempfile.TemporaryDirectory(prefix="guard-protect-") as folder:
        source = Path(folder) / "in" / name  # the name a parent ingredient is given
        target = Path(folder) / "out" / f"{stem}{suffix}"
        source.parent.mkdir()
        target.parent.mkdir()
        source.write_bytes(data)
        result = services.protector.protect_file(source, target, **options)
        signed = target.read_bytes()
    detail = {"manifest_id": result.manifest_id, "watermark": result.to_dict()["watermark"]}
    services.audit.record([ctx.audit_entry("images.protect", data, {"decision": "signed"}, detail=detail, image=data)])
    return result, signed
