"""Producers' own AI fields: which tool and model made an image, and vendor source types, read from the signed
manifest as real producers write them.

The C2PA way to say "made by AI" is an action's `digitalSourceType`; the way to say by what is the action's
`softwareAgent` (a string, or a claim-generator-info object with `name`/`version`). Producers also use fields
of their own, which are signed all the same, so they are evidence of the same strength:

- Adobe Firefly, for images made with partner models, puts the source type in the `c2pa.opened` action's
  parameters (`com.adobe.digitalSourceType`, with `com.adobe.type: remoteProvider.3rdParty`) and names the
  model in `com.adobe.details`, `com.adobe.modelId`, `com.adobe.modelVersion`; its own models carry
  `com.adobe.firefly.version`. Older Firefly manifests have a `com.adobe.generative-ai` assertion.
- Microsoft (Bing Image Creator, Designer) marks `c2pa.created` with the description "AI Generated Image" and no
  source type.
- OpenAI, Amazon, Google and the cameras use the standard fields; the claim generator names the product.

The tables below are that knowledge, as data: add a producer by adding rows, not code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guard.provenance.credentials.source_types import DigitalSourceType as DST

GENAI_SOURCE_TYPES = frozenset({DST.TRAINED_ALGORITHMIC_MEDIA, DST.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA})
"""Source types that say generative AI made (or made part of) the content (`ai_tool` looks for these)."""


@dataclass(frozen=True)
class VendorSourceType:
    """A producer field that carries a digital source type: an action parameter, or an action field whose
    exact value means one."""

    producer: str
    field: str
    """`parameters.<key>` or an action field name (`description`)."""
    value: str | None = None
    """For a marker field: the exact value that means `source_type`; None: the field's value is the URI."""
    source_type: str | None = None


VENDOR_SOURCE_TYPES: tuple[VendorSourceType, ...] = (
    VendorSourceType("Adobe Firefly (partner models)", "parameters.com.adobe.digitalSourceType"),
    VendorSourceType(
        "Microsoft (Bing Image Creator, Designer)",
        "description",
        value="AI Generated Image",
        source_type=DST.TRAINED_ALGORITHMIC_MEDIA.uri,
    ),
)


@dataclass(frozen=True)
class ToolField:
    """Where a part of `ai_tool` (its name, model or version) is written, in order of preference."""

    part: str
    """`name`, `model` or `version`."""
    where: str
    """`parameters.<key>` of the AI action, `softwareAgent.<key>` (a plain string is its name), an assertion
    `<label>.<key>`, or `claim_generator_info.<key>` (the manifest's first generator)."""
    producer: str | None = None
    same_source: bool = False
    """Use it only when the name came from the same place (a generator's version is not a model's)."""


TOOL_FIELDS: tuple[ToolField, ...] = (
    ToolField("name", "parameters.com.adobe.details", "Adobe Firefly (partner models)"),
    ToolField("model", "parameters.com.adobe.modelId", "Adobe Firefly (partner models)"),
    ToolField("version", "parameters.com.adobe.modelVersion", "Adobe Firefly (partner models)"),
    ToolField("name", "softwareAgent.name"),
    ToolField("version", "softwareAgent.version", same_source=True),
    ToolField("version", "parameters.com.adobe.firefly.version", "Adobe Firefly"),
    ToolField("name", "com.adobe.generative-ai.description", "Adobe Firefly (2023)"),
    ToolField("version", "com.adobe.generative-ai.version", "Adobe Firefly (2023)", same_source=True),
    ToolField("name", "claim_generator_info.name"),
    ToolField("version", "claim_generator_info.version", same_source=True),
)

PRODUCERS: tuple[tuple[str, str], ...] = (
    ("adobe_firefly", "Adobe Firefly"),
    ("adobe firefly", "Adobe Firefly"),
    ("adobe", "Adobe"),
    ("chatgpt", "OpenAI"),
    ("openai", "OpenAI"),
    ("sora", "OpenAI"),
    ("microsoft", "Microsoft"),
    ("amazon", "Amazon"),
    ("google", "Google"),
    ("truepic", "Truepic"),
    ("nikon", "Nikon"),
    ("leica", "Leica"),
    ("sony", "Sony"),
    ("samsung", "Samsung"),
    ("encypher", "Encypher"),
)
"""Start of a claim generator's name (lower case) -> the producer it names. First match wins."""

INCEPTION_ACTIONS = ("c2pa.created", "c2pa.opened")
_ACTION_LABELS = ("c2pa.actions.v2", "c2pa.actions")


def producer(manifest: dict[str, Any]) -> str | None:
    """The producer a Reader-JSON manifest's claim generator names (table `PRODUCERS`), or None."""
    infos = manifest.get("claim_generator_info")
    first = infos[0] if isinstance(infos, list) and infos else infos
    name = (first.get("name") if isinstance(first, dict) else None) or manifest.get("claim_generator") or ""
    lowered = str(name).strip().lower()
    return next((who for prefix, who in PRODUCERS if lowered.startswith(prefix)), None)


def source_type(action: dict[str, Any]) -> tuple[str | None, str | None]:
    """(digital source type, the field it came from) of an action: the standard field first, then the
    producers' own fields; (None, None) when it has none."""
    standard = action.get("digitalSourceType")
    if isinstance(standard, str) and standard.strip():
        return standard.strip(), "digitalSourceType"
    for vendor in VENDOR_SOURCE_TYPES:
        value = _field(action, vendor.field)
        if not isinstance(value, str) or not value.strip():
            continue
        if vendor.value is None:
            return value.strip(), vendor.field
        if value.strip() == vendor.value:
            return vendor.source_type, vendor.field
    return None, None


def manifest_actions(manifest: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    """(assertion label, index, action) for every action of a Reader-JSON manifest."""
    found = []
    for assertion in manifest.get("assertions") or []:
        label = str(assertion.get("label", ""))
        if label.split("__")[0] not in _ACTION_LABELS:
            continue
        for index, action in enumerate((assertion.get("data") or {}).get("actions") or []):
            if isinstance(action, dict):
                found.append((label, index, action))
    return found


def ai_tool(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """`{name, model, version, field, producer, action, source_type, source_type_field}` for the first AI
    action of a Reader-JSON manifest (one whose source type, standard or vendor, is generative AI), or for
    a legacy Adobe generative-AI assertion; None when the manifest records no AI tool."""
    legacy = _assertion(manifest, "com.adobe.generative-ai")
    found = [
        tool
        for label, index, action in manifest_actions(manifest)
        if DST.from_uri((dst := source_type(action))[0]) in GENAI_SOURCE_TYPES
        and (tool := _tool(manifest, action, f"{label}.actions[{index}]", *dst)) is not None
    ]
    # An AI action that names its tool beats one that only has the manifest's claim generator to go by.
    named = [t for t in found if not t["field"].startswith("claim_generator")]
    if named or found:
        return (named or found)[0]
    if isinstance(legacy, dict):
        return _tool(manifest, {}, "com.adobe.generative-ai", None, None)
    return None


def _tool(
    manifest: dict[str, Any], action: dict[str, Any], where: str, dst: str | None, dst_field: str | None
) -> dict[str, Any] | None:
    found: dict[str, Any] = {"name": None, "model": None, "version": None}
    fields: dict[str, str] = {}
    named_by = None
    for spec in TOOL_FIELDS:
        if found[spec.part] is not None:
            continue
        if spec.same_source and fields.get("name", "").rsplit(".", 1)[0] != where_of(spec, where).rsplit(".", 1)[0]:
            continue
        value = _tool_value(manifest, action, spec.where)
        if value is None:
            continue
        found[spec.part] = value
        fields[spec.part] = where_of(spec, where)
        named_by = named_by or spec.producer
    if found["name"] is None:
        return None
    return {
        **found,
        "field": fields["name"],
        "fields": fields,
        "producer": named_by or producer(manifest),
        "action": action.get("action"),
        "source_type": dst,
        "source_type_field": dst_field,
    }


def where_of(spec: ToolField, action_path: str) -> str:
    """The full path of a tool field: action fields under the action's own path."""
    return spec.where if spec.where.startswith(("claim_generator", "com.")) else f"{action_path}.{spec.where}"


def _tool_value(manifest: dict[str, Any], action: dict[str, Any], where: str) -> str | None:
    head, _, key = where.partition(".")
    if head == "parameters":
        value = (action.get("parameters") or {}).get(key)
    elif head == "softwareAgent":
        agent = action.get("softwareAgent")
        value = (agent if key == "name" else None) if isinstance(agent, str) else (agent or {}).get(key)
    elif head == "claim_generator_info":
        infos = manifest.get("claim_generator_info")
        first = infos[0] if isinstance(infos, list) and infos else infos
        value = first.get(key) if isinstance(first, dict) else None
        if value is None and key == "name":
            value = manifest.get("claim_generator")
    else:
        label, _, key = where.rpartition(".")
        value = (_assertion(manifest, label) or {}).get(key)
    return str(value).strip() if isinstance(value, str | int | float) and str(value).strip() else None


def _field(action: dict[str, Any], path: str) -> Any:
    head, _, key = path.partition(".")
    if head == "parameters" and key:
        return (action.get("parameters") or {}).get(key)
    return action.get(path)


def _assertion(manifest: dict[str, Any], label: str) -> Any:
    for assertion in manifest.get("assertions") or []:
        if str(assertion.get("label", "")).split("__")[0] == label:
            return assertion.get("data")
    return None
