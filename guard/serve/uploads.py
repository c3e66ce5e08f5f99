"""Reading an uploaded image: a multipart form field `file`, or the raw body with an image content type.

Anything else is refused before decoding: another content type gets 415, an empty upload 400, a form
without a `file` field 422. The bytes are decoded later, on a worker thread, by `guard.images.load_image`
(the same safe decoder as the CLI: hostile files are refused with one sentence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fastapi import Request
from starlette.datastructures import UploadFile

from guard.serve.problems import Problem

RAW_TYPES = ("application/octet-stream",)
SUFFIXES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/tiff": ".tif",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/avif": ".avif",
    "image/heic": ".heic",
    "image/heif": ".heif",
}
"""Content type -> file suffix, to name a raw upload that came without a name."""
MAX_FORM_FIELDS = 16
MAX_FIELD_BYTES = 64 * 1024
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass
class Upload:
    """An uploaded file's bytes, the name to report it by, and the form's text fields (if a form)."""

    data: bytes = field(repr=False)
    name: str
    fields: dict[str, str] = field(default_factory=dict)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def safe_name(name: str | None, default: str = "upload") -> str:
    """A file name fit for reports and manifest titles: no folders, no control or odd characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" .")[:120]
    return cleaned or default


async def read_upload(request: Request, *, text_fields: tuple[str, ...] = ()) -> Upload:
    """The image of a request (see the module docstring); `text_fields`: form fields to keep."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES)
        try:
            part = form.get("file")
            if not isinstance(part, UploadFile):
                raise Problem(422, "missing-file", "Send the image in a multipart form field named `file`.")
            data = await part.read()
            fields = {name: value for name in text_fields if isinstance(value := form.get(name), str)}
            name = safe_name(part.filename)
        finally:
            await form.close()
    elif kind.startswith("image/") or kind in RAW_TYPES:
        data = await request.body()
        fields = {}
        name = safe_name(request.headers.get("x-filename"), default="upload" + SUFFIXES.get(kind, ""))
    else:
        shown = kind or "none"
        raise Problem(
            415,
            "unsupported-media-type",
            f"Content type {shown} is not accepted: send the image as multipart/form-data (field `file`) "
            "or as the body with an image/* content type.",
        )
    if not data:
        raise Problem(400, "empty-upload", "The uploaded image is empty.")
    return Upload(data=data, name=name, fields=fields)
