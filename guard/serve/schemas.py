"""Request bodies, and the shapes the OpenAPI document states for responses and uploads.

Responses are built as plain JSON by the routes (the same documents the CLI's `--json` prints); the models
here describe them in `/openapi.json` and validate requests. Uploads are read by `guard.serve.uploads`, so
their request bodies are declared here by hand (`IMAGE_UPLOAD`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guard.serve.problems import PROBLEM_MIME

MAX_PROMPT_CHARS = 10_000
MAX_PROMPTS = 256


class ProblemDocument(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


PROBLEM_DESCRIPTIONS = {
    400: "Bad request (malformed body or parameters)",
    401: "No API key, or one that is not valid",
    403: "The API key lacks the scope this endpoint needs",
    404: "Not found",
    413: "Body larger than the upload limit, or an image over the pixel cap",
    414: "Request URL too long",
    415: "Not an image this service decodes, or a wrong content type",
    422: "A request the service understood but cannot process (invalid fields, unreadable image)",
    429: "Worker busy: retry after the `Retry-After` seconds",
    500: "Service failure (the details are logged, never sent)",
    503: "Not available right now (a timeout, or not configured): see the detail",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries (problem documents) for these error statuses, and 500."""
    schema = {"schema": ProblemDocument.model_json_schema()}
    return {
        status: {"description": PROBLEM_DESCRIPTIONS[status], "content": {PROBLEM_MIME: schema}}
        for status in (*statuses, 500)
    }


AUTH_PROBLEMS = (401, 403, 429, 503)

_BINARY = {"type": "string", "format": "binary"}
IMAGE_UPLOAD: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The image: a multipart form field `file`, or the raw body with an image content type.",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"], "properties": {"file": _BINARY}}
            },
            "image/*": {"schema": _BINARY},
            "application/octet-stream": {"schema": _BINARY},
        },
    }
}
PROTECT_UPLOAD: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The image (multipart field `file`, or the raw body); in a form, optionally the `prompt` "
        "that made it (only its SHA-256 is written unless include_prompt).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": _BINARY, "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS}},
                }
            },
            "image/*": {"schema": _BINARY},
            "application/octet-stream": {"schema": _BINARY},
        },
    }
}


class PromptCheck(BaseModel):
    """One prompt, or a batch of them."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS, description="One prompt or caption.")
    prompts: list[str] | None = Field(
        default=None, min_length=1, max_length=MAX_PROMPTS, description="A batch, checked in order."
    )

    @model_validator(mode="after")
    def _one_of(self) -> PromptCheck:
        if (self.prompt is None) == (self.prompts is None):
            raise ValueError("give either `prompt` or `prompts`")
        if self.prompts is not None and any(len(p) > MAX_PROMPT_CHARS for p in self.prompts):
            raise ValueError(f"every prompt must be at most {MAX_PROMPT_CHARS} characters")
        return self

    def texts(self) -> list[str]:
        return [self.prompt] if self.prompt is not None else list(self.prompts or [])


class Moderation(BaseModel):
    """The moderation top level, then one CLI `--json` document per input in `results`."""

    model_config = ConfigDict(extra="allow")

    id: str
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    results: list[dict[str, Any]]


class GenerateRequest(BaseModel):
    """`guard generate`'s options (the model is the service's)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    steps: int | None = Field(default=None, ge=1, le=150)
    guidance: float | None = Field(default=None, ge=0, le=50)
    width: int | None = Field(default=None, ge=64, le=2048, multiple_of=8)
    height: int | None = Field(default=None, ge=64, le=2048, multiple_of=8)
    num_images: int = Field(default=1, ge=1, le=4)
    format: str = Field(default="jpg", pattern="^(jpg|png|webp)$")


class SoftBindingQuery(BaseModel):
    """c2pa.softBindingQuery."""

    alg: str = Field(description="Soft binding algorithm (see /services/supportedAlgorithms).")
    value: str = Field(description="The soft binding value, base64 (hex is accepted too).")


class ManifestMatch(BaseModel):
    manifestId: str
    endpoint: str | None = None
    similarityScore: int | None = Field(default=None, ge=0, le=100)


class SoftBindingQueryResult(BaseModel):
    """c2pa.softBindingQueryResult."""

    matches: list[ManifestMatch]


class AlgName(BaseModel):
    alg: str


class SoftBindingAlgList(BaseModel):
    """c2pa.softBindingAlgList."""

    watermarks: list[AlgName]
    fingerprints: list[AlgName]
