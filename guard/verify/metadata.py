"""Metadata hints: what generation tools, cameras and editors write into a file's text chunks, EXIF, XMP and
IPTC fields. None of it is signed — anyone can write or remove it — so a hint is weak evidence at best.

Known markers: AUTOMATIC1111 / Forge `parameters` (PNG text, or EXIF UserComment in JPEG/WebP), ComfyUI
`prompt` and `workflow` (node graphs), InvokeAI, NovelAI, Fooocus, Draw Things and other tools' own chunks,
the IPTC digital source type in XMP (`Iptc4xmpExt:DigitalSourceType`), and AI product names in EXIF
Software / XMP CreatorTool. The PLUS data-mining permission (`plus:DataMining`) is read too (`xmp.data_mining`):
it is no origin hint, but the dataset filter honours a prohibition.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

from PIL import ExifTags, Image, IptcImagePlugin

from guard.provenance.credentials.source_types import AI_EDITED, CAPTURED, GENERATIVE_AI, DigitalSourceType
from guard.verify.explain import source_type_label

TEXT_LIMIT = 2000
"""Characters of each text chunk kept in the report (workflows can be megabytes)."""


TEXT_CHUNK_TOOLS: dict[str, str] = {
    "parameters": "AUTOMATIC1111 / Forge (Stable Diffusion web UI)",
    "prompt": "ComfyUI",
    "workflow": "ComfyUI",
    "invokeai_metadata": "InvokeAI",
    "invokeai_graph": "InvokeAI",
    "sd-metadata": "InvokeAI",
    "dream": "InvokeAI (dream)",
    "fooocus_scheme": "Fooocus",
    "generation_data": "generation tool (generation_data)",
    "novelai": "NovelAI",
    "drawthings": "Draw Things",
    "sd:parameters": "Stable Diffusion tool",
}
"""Lower-cased text chunk key -> the tool known to write it with generation settings."""

AI_SOFTWARE = re.compile(
    r"midjourney|dall[-·\s]?e|openai|chatgpt|stable[\s-]?diffusion|sdxl|novelai|firefly|imagen|gemini|"
    r"flux\.?1?|black forest labs|leonardo\.?ai|ideogram|comfyui|automatic1111|invokeai|diffusers|"
    r"nightcafe|dreamstudio|runway|krea|playground ?ai|bing image creator|designer \(microsoft\)|grok",
    re.IGNORECASE,
)
"""Product or tool names that make AI images, as they appear in Software / CreatorTool / Description."""

_XMP_DST = re.compile(
    rb"Iptc4xmpExt:DigitalSourceType(?:\s*=\s*[\"']([^\"']+)[\"']|\s*>\s*([^<\s]+)\s*<|[^>]*rdf:resource=[\"']([^\"']+))"
)
_XMP_DATA_MINING = re.compile(
    rb"[\w-]+:DataMining(?:\s*=\s*[\"']([^\"']+)[\"']|\s*>\s*([^<\s]+)\s*<|[^>]*rdf:resource=[\"']([^\"']+))"
)
"""PLUS `plus:DataMining` (IPTC Photo Metadata 2023.1): whether the image may be used for data mining or AI
training, as a PLUS vocabulary URI (`http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING`, ...)."""
_XMP_CREATOR_TOOL = re.compile(rb"xmp:CreatorTool(?:\s*=\s*[\"']([^\"']+)[\"']|\s*>\s*([^<]+?)\s*<)")
_EXIF_FIELDS = ("Software", "Make", "Model", "DateTime", "ImageDescription", "Artist", "HostComputer")
_EXIF_IFD_FIELDS = ("DateTimeOriginal", "UserComment", "LensModel", "BodySerialNumber")
_IPTC_FIELDS = {(2, 65): "originating_program", (2, 70): "program_version", (2, 80): "byline", (2, 110): "credit"}


@dataclass
class MetadataHint:
    """One piece of metadata that says something about origin."""

    source: str
    """Where it was found: `png:parameters`, `exif:Software`, `xmp:DigitalSourceType`, ..."""
    tool: str | None
    origin: str
    """`ai-generated`, `ai-edited` or `captured (claimed)`."""
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "tool": self.tool, "origin": self.origin, "detail": self.detail}


def read_metadata(data: bytes) -> dict[str, Any]:
    """Every origin-relevant metadata field of an (already validated) image file, and the hints drawn from them."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return _read(image)
    except (OSError, ValueError, SyntaxError) as exc:
        return {"error": f"metadata could not be read ({exc})", "hints": []}


def _read(image: Image.Image) -> dict[str, Any]:
    text = _text_chunks(image)
    exif = _exif(image)
    xmp_raw = _xmp_bytes(image, text)
    xmp = _xmp(xmp_raw)
    iptc = _iptc(image)
    hints = [*_text_hints(text, exif), *_xmp_hints(xmp), *_software_hints(exif, xmp, iptc)]
    if exif.get("Make") or exif.get("Model"):
        make, model = exif.get("Make", ""), exif.get("Model", "")
        camera = model if make and model.lower().startswith(make.lower()) else f"{make} {model}".strip()
        hints.append(MetadataHint("exif:Make/Model", camera, "captured (claimed)", f"EXIF names a camera: {camera}"))
    return {
        "format": image.format,
        "size": list(image.size),
        "text": {k: _clip(v) for k, v in text.items() if k != "XML:com.adobe.xmp"},
        "exif": exif,
        "xmp": xmp,
        "iptc": iptc,
        "hints": [h.to_dict() for h in hints],
    }


def _text_chunks(image: Image.Image) -> dict[str, str]:
    chunks = getattr(image, "text", None)
    if chunks is None:
        chunks = {k: v for k, v in image.info.items() if isinstance(v, str)}
    found = {str(k): str(v) for k, v in (chunks or {}).items()}
    comment = image.info.get("comment")
    if isinstance(comment, bytes | str) and "comment" not in found:
        found["comment"] = comment.decode("utf-8", "replace") if isinstance(comment, bytes) else comment
    return found


def _exif(image: Image.Image) -> dict[str, str]:
    try:
        exif = image.getexif()
    except Exception:  # a broken EXIF block is a fact about the file, not a reason to stop
        return {}
    found: dict[str, str] = {}
    for name in _EXIF_FIELDS:
        value = exif.get(ExifTags.Base[name])
        if value:
            found[name] = _clean(value)
    try:
        ifd = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:
        ifd = {}
    for name in _EXIF_IFD_FIELDS:
        value = ifd.get(ExifTags.Base[name])
        if value:
            found[name] = _clean(value)
    return found


def _xmp_bytes(image: Image.Image, text: dict[str, str]) -> bytes:
    raw = image.info.get("xmp") or text.get("XML:com.adobe.xmp") or b""
    if not raw and hasattr(image, "tag_v2"):
        raw = image.tag_v2.get(700, b"")  # TIFF XMLPacket
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def _xmp(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    found: dict[str, str] = {}
    dst = _XMP_DST.search(raw)
    if dst:
        found["digital_source_type"] = next(g for g in dst.groups() if g).decode("utf-8", "replace").strip()
    mining = _XMP_DATA_MINING.search(raw)
    if mining:
        found["data_mining"] = next(g for g in mining.groups() if g).decode("utf-8", "replace").strip()
    tool = _XMP_CREATOR_TOOL.search(raw)
    if tool:
        found["creator_tool"] = next(g for g in tool.groups() if g).decode("utf-8", "replace").strip()
    return found


def _iptc(image: Image.Image) -> dict[str, str]:
    try:
        info = IptcImagePlugin.getiptcinfo(image) or {}
    except Exception:
        return {}
    found = {}
    for key, name in _IPTC_FIELDS.items():
        value = info.get(key)
        if value:
            found[name] = _clean(value[0] if isinstance(value, list) else value)
    return found


def _text_hints(text: dict[str, str], exif: dict[str, str]) -> list[MetadataHint]:
    hints = []
    for key, value in text.items():
        tool = TEXT_CHUNK_TOOLS.get(key.lower())
        if tool is None:
            continue
        if key.lower() == "prompt" and not _looks_like_comfy(value):
            continue
        hints.append(MetadataHint(f"text:{key}", tool, "ai-generated", _summary(key, value)))
    comment = exif.get("UserComment", "")
    if re.search(r"Steps: \d+.*Sampler:", comment, re.DOTALL):
        hints.append(
            MetadataHint("exif:UserComment", TEXT_CHUNK_TOOLS["parameters"], "ai-generated", _a1111_summary(comment))
        )
    return hints


def _xmp_hints(xmp: dict[str, str]) -> list[MetadataHint]:
    uri = xmp.get("digital_source_type")
    name = DigitalSourceType.from_uri(uri)
    if name in GENERATIVE_AI:
        origin = "ai-generated"
    elif name in AI_EDITED:
        origin = "ai-edited"
    elif name in CAPTURED:
        origin = "captured (claimed)"
    else:
        return []
    return [MetadataHint("xmp:DigitalSourceType", xmp.get("creator_tool"), origin, f"{uri}: {source_type_label(uri)}")]


def _software_hints(exif: dict[str, str], xmp: dict[str, str], iptc: dict[str, str]) -> list[MetadataHint]:
    hints = []
    for source, value in (
        ("exif:Software", exif.get("Software")),
        ("exif:ImageDescription", exif.get("ImageDescription")),
        ("exif:Artist", exif.get("Artist")),
        ("xmp:CreatorTool", xmp.get("creator_tool")),
        ("iptc:OriginatingProgram", iptc.get("originating_program")),
    ):
        match = AI_SOFTWARE.search(value or "")
        if match:
            hints.append(
                MetadataHint(source, match.group(0), "ai-generated", f"names an AI image tool: {_clip(value, 200)}")
            )
    return hints


def _looks_like_comfy(value: str) -> bool:
    try:
        graph = json.loads(value)
    except ValueError:
        return False
    return isinstance(graph, dict) and any(isinstance(n, dict) and "class_type" in n for n in graph.values())


def _summary(key: str, value: str) -> str:
    if key.lower() == "parameters":
        return _a1111_summary(value)
    if key.lower() in ("prompt", "workflow"):
        try:
            graph = json.loads(value)
        except ValueError:
            return "node graph (unparsable JSON)"
        nodes = graph.get("nodes", []) if isinstance(graph, dict) and "nodes" in graph else list(graph.values())
        models = sorted(
            {
                str(v)
                for node in nodes
                if isinstance(node, dict)
                for k, v in (node.get("inputs") if isinstance(node.get("inputs"), dict) else {}).items()
                if k in ("ckpt_name", "unet_name", "model_name")
            }
        )
        return f"node graph with {len(nodes)} nodes" + (f"; models: {', '.join(models)}" if models else "")
    return _clip(value, 200)


def _a1111_summary(value: str) -> str:
    fields = dict(re.findall(r"(Model|Model hash|Steps|Sampler|Seed|Size): ([^,\n]+)", value))
    described = ", ".join(f"{k.lower()} {v}" for k, v in fields.items())
    return f"generation settings ({described})" if described else "generation settings"


def _clean(value: Any) -> str:
    if isinstance(value, bytes):
        if value.startswith((b"ASCII\x00\x00\x00", b"UNICODE\x00")):
            codec = "utf-16" if value.startswith(b"UNICODE") else "ascii"
            value = value[8:].decode(codec, "replace")
        else:
            value = value.decode("utf-8", "replace")
    return _clip(str(value).replace("\x00", "").strip(), 500)


def _clip(value: str | None, limit: int = TEXT_LIMIT) -> str:
    value = value or ""
    return value if len(value) <= limit else value[:limit] + f"… ({len(value)} characters)"
