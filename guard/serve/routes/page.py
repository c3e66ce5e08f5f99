"""`GET /`: the verification page, one self-contained document (its CSS and JavaScript inline, no external
asset, no CDN), under a Content-Security-Policy that lets it run only its own inline code and talk only to
this service."""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["page"])


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def build_page(*, verify_public: bool, max_upload_bytes: int) -> tuple[str, str]:
    """(the page, its Content-Security-Policy)."""
    folder = resources.files("guard.serve") / "page"
    style = (folder / "page.css").read_text(encoding="utf-8")
    script = (folder / "page.js").read_text(encoding="utf-8")
    config = json.dumps({"verify_public": verify_public, "max_upload_bytes": max_upload_bytes})
    page = (
        (folder / "index.html")
        .read_text(encoding="utf-8")
        .replace("{{STYLE}}", style)
        .replace("{{SCRIPT}}", script)
        .replace("{{CONFIG}}", config.replace("<", "\\u003c"))
    )
    policy = (
        f"default-src 'none'; script-src {_hash(script)}; style-src {_hash(style)}; img-src blob: data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return page, policy


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    html, policy = request.app.state.page
    return HTMLResponse(html, headers={"Content-Security-Policy": policy, "Cache-Control": "no-cache"})
