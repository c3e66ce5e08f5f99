"""C2PA evidence: a file's Content Credentials (or a recovered manifest store) as the report shows them.

c2pa-python validates (one Reader per file; what it refuses is explained by
`guard.provenance.credentials.c2pa.read_manifest`); this module only reads the result: validation state and every
failure (active manifest and ingredients) in plain words, the signer's certificate, claim generator, signing
time, actions, the ingredient history as a tree, training/mining permissions, CAWG identities, the claim
thumbnail, the rubric signals and integrity levels, and whether the signer is a conforming product.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import c2pa

from guard.provenance.credentials.c2pa import ManifestReading, read_manifest
from guard.verify.conformance import ConformingProducts, conforming_product
from guard.verify.explain import explain_failure, source_type_label
from guard.verify.integrity import integrity_rubric
from guard.verify.producers import ai_tool, manifest_actions, source_type
from guard.verify.signals import history_signals, manifest_signals
from guard.verify.trust import VerifyTrust

MAX_HISTORY_DEPTH = 32
_TRAINING_LABELS = ("c2pa.training-mining", "cawg.training-mining")
_ACTION_LABELS = ("c2pa.actions.v2", "c2pa.actions")


@dataclass
class C2paEvidence:
    """What c2pa found, with the crJSON view (per-manifest certificates, assertions by label) beside it."""

    reading: ManifestReading
    crjson: dict[str, Any] | None = field(default=None, repr=False)
    conformance: dict[str, Any] = field(default_factory=dict)
    signals: list[dict[str, Any]] = field(default_factory=list)
    thumbnail: tuple[str, bytes] | None = field(default=None, repr=False)
    """The active manifest's claim thumbnail (format, bytes): what the signed image looked like."""
    trusted_by: dict[str, Any] | None = None
    """For a `Trusted` signer: the trust list or anchor that made it so (`VerifyTrust.trusted_by`)."""

    @property
    def present(self) -> bool:
        return self.reading.present

    @property
    def state(self) -> str | None:
        return self.reading.state

    @property
    def manifest_id(self) -> str | None:
        return self.reading.manifest_id

    @property
    def failures(self) -> list[dict[str, Any]]:
        """Every failure of the validation: the active manifest's, then each ingredient's (`where` says which)."""
        store = self.reading.store or {}
        results = store.get("validation_results") or {}
        found = [_failure(f, "active manifest") for f in (results.get("activeManifest") or {}).get("failure") or []]
        for delta in results.get("ingredientDeltas") or []:
            where = _ingredient_name(store, delta.get("ingredientAssertionURI", ""))
            found += [_failure(f, where) for f in (delta.get("validationDeltas") or {}).get("failure") or []]
        if not results:
            found = [_failure(f, "manifest store") for f in store.get("validation_status") or []]
        return found

    @property
    def failure_codes(self) -> list[str]:
        return [f["code"] for f in self.failures]

    @property
    def active_failure_codes(self) -> list[str] | None:
        """Failure codes of the active manifest alone (what the integrity rubric reads); None without results."""
        results = ((self.reading.store or {}).get("validation_results") or {}).get("activeManifest")
        if results is None:
            return None
        return [f.get("code", "") for f in results.get("failure") or []]

    @property
    def trusted(self) -> bool:
        return self.reading.state == "Trusted"

    @property
    def digital_source_type(self) -> str | None:
        return self.source_type[0]

    @property
    def source_type(self) -> tuple[str | None, str | None]:
        """(digital source type, field it came from) of the active manifest: the first standard
        `digitalSourceType`, else the first producer field that carries one (`producers.VENDOR_SOURCE_TYPES`)."""
        types = self.reading.digital_source_types
        if types:
            return types[0].strip(), "digitalSourceType"
        for _, _, action in manifest_actions(self.reading.active or {}):
            dst, where = source_type(action)
            if dst:
                return dst, where
        return None, None

    @property
    def ai_tool(self) -> dict[str, Any] | None:
        """The AI tool the active manifest, or the first manifest up its line of parents, names (`producers`)."""
        store = self.reading.store or {}
        manifests = store.get("manifests") or {}
        label, seen = self.reading.manifest_id, set()
        while label in manifests and label not in seen:
            seen.add(label)
            tool = ai_tool(manifests[label])
            if tool is not None:
                return {**tool, "manifest_id": label}
            parents = [i for i in manifests[label].get("ingredients") or [] if i.get("relationship") == "parentOf"]
            label = parents[0].get("active_manifest") if parents else None
        return None

    @property
    def signer(self) -> dict[str, Any] | None:
        """The active manifest's signer (certificate subject, issuer, validity), or None without a manifest."""
        active = self.reading.active
        if active is None:
            return None
        return signer(active, _crjson_manifest(self.crjson, self.reading.manifest_id))

    def history(self) -> dict[str, list[str]]:
        """Rubric signals of the active manifest and everything it reaches through its ingredients."""
        return history_signals(self.signals, self.manifest_id)

    def to_dict(self) -> dict[str, Any]:
        reading = self.reading
        document: dict[str, Any] = {
            "present": reading.present,
            "state": reading.state,
            "manifest_id": reading.manifest_id,
            "failures": self.failures,
            "digital_source_type": self.digital_source_type,
            "digital_source_type_label": source_type_label(self.digital_source_type),
            "digital_source_type_field": self.source_type[1],
            "ai_tool": self.ai_tool,
            "trusted_by": self.trusted_by,
            "remote_url": reading.remote_url,
            "remote_fetched": bool(reading.remote_url and reading.store is not None),
            "error": reading.error,
        }
        active = reading.active
        if active is None:
            return document
        crjson_active = _crjson_manifest(self.crjson, reading.manifest_id)
        document.update(
            {
                "title": active.get("title"),
                "format": active.get("format"),
                "claim_generator": claim_generator(active),
                "signer": self.signer,
                "signing_time": (active.get("signature_info") or {}).get("time"),
                "timestamp_authority": _tsa(crjson_active),
                "conforming_product": self.conformance,
                "rubric_integrity": integrity_rubric(self.active_failure_codes),
                "actions": actions(active),
                "ingredients": ingredient_tree(reading.store or {}, reading.manifest_id),
                "training_mining": training_mining(active),
                "identities": identities(active, self.failure_codes),
                "soft_bindings": reading.soft_bindings,
                "generation": reading.assertion("com.image-guard.generation"),
                "assertions": [a.get("label") for a in active.get("assertions", [])],
                "thumbnail": {"format": self.thumbnail[0], "bytes": len(self.thumbnail[1])} if self.thumbnail else None,
            }
        )
        return document


def gather(
    data: bytes,
    *,
    context: c2pa.Context,
    mime: str | None = None,
    products: ConformingProducts | None = None,
    manifest_store: bytes | None = None,
    trust: VerifyTrust | None = None,
) -> C2paEvidence:
    """Validate the file's own manifest (or `manifest_store` against the file, whose type `mime` names) and
    collect the evidence. `trust`: the settings behind `context`, to name what made a `Trusted` signer so."""
    reading, crjson, thumbnail = _read(data, context, mime, manifest_store)
    evidence = C2paEvidence(reading=reading, crjson=crjson, signals=manifest_signals(crjson), thumbnail=thumbnail)
    if trust is not None and reading.state == "Trusted":
        issuer = (evidence.signer or {}).get("issuer_dn") or {}
        evidence.trusted_by = trust.trusted_by(data, mime, manifest_store, issuer=issuer.get("CN"))
    if reading.active is not None:
        crjson_active = _crjson_manifest(crjson, reading.manifest_id)
        subject = (((crjson_active or {}).get("signature") or {}).get("certificateInfo") or {}).get("subject")
        local = next((s for s in evidence.signals if s["manifest_id"] == reading.manifest_id), None)
        evidence.conformance = conforming_product(
            products,
            subject,
            evidence.trusted,
            [*local["inception"], *local["transformation"]] if local else [],
        )
    return evidence


def _read(
    data: bytes, context: c2pa.Context, mime: str | None, manifest_store: bytes | None
) -> tuple[ManifestReading, dict[str, Any] | None, tuple[str, bytes] | None]:
    """One c2pa Reader for both views (Reader JSON and crJSON) and the claim thumbnail, so a file is validated —
    and a remote manifest fetched — once. Whatever c2pa refuses goes to `read_manifest`, which owns turning
    refusals into reasons."""
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), manifest_store, context)
    except c2pa.C2paError:
        return read_manifest(data, context=context, mime=mime, manifest_store=manifest_store), None, None
    if reader is None:
        return ManifestReading(present=False), None, None
    with reader:
        store = json.loads(reader.json())
        crjson = json.loads(reader.crjson())
        remote = reader.get_remote_url()
        thumbnail = _thumbnail(reader, store)
    reading = ManifestReading(present=True, state=store.get("validation_state"), store=store, remote_url=remote)
    return reading, crjson, thumbnail


def _thumbnail(reader: c2pa.Reader, store: dict[str, Any]) -> tuple[str, bytes] | None:
    active = (store.get("manifests") or {}).get(store.get("active_manifest")) or {}
    ref = active.get("thumbnail") or {}
    if not ref.get("identifier") or ref.get("format") not in ("image/jpeg", "image/png", "image/webp"):
        return None
    buffer = io.BytesIO()
    try:
        reader.resource_to_stream(ref["identifier"], buffer)
    except c2pa.C2paError:
        return None
    return ref["format"], buffer.getvalue()


def _crjson_manifest(crjson: dict[str, Any] | None, label: str | None) -> dict[str, Any] | None:
    for manifest in (crjson or {}).get("manifests") or []:
        if manifest.get("label") == label:
            return manifest
    return None


def _failure(entry: dict[str, Any], where: str) -> dict[str, Any]:
    code = entry.get("code", "")
    return {
        "code": code,
        "explanation": explain_failure(code, entry.get("explanation")),
        "c2pa_explanation": entry.get("explanation"),
        "where": where,
    }


def _ingredient_name(store: dict[str, Any], uri: str) -> str:
    """`ingredient "A.jpg"` for an ingredient assertion URI (`self#jumbf=/c2pa/<manifest>/c2pa.assertions/<label>`)."""
    path = uri.split("/c2pa/", 1)[-1]
    manifest_label, _, rest = path.partition("/")
    assertion = rest.rsplit("/", 1)[-1]
    for ingredient in (store.get("manifests", {}).get(manifest_label) or {}).get("ingredients", []):
        if ingredient.get("label") == assertion:
            return f'ingredient "{ingredient.get("title")}"'
    return f"ingredient {assertion}"


def claim_generator(manifest: dict[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info") or []
    if infos:
        return ", ".join(
            " ".join(str(i[k]) for k in ("name", "version") if i.get(k)) for i in infos if isinstance(i, dict)
        )
    return manifest.get("claim_generator")


def signer(manifest: dict[str, Any], crjson_manifest: dict[str, Any] | None) -> dict[str, Any]:
    info = manifest.get("signature_info") or {}
    cert = ((crjson_manifest or {}).get("signature") or {}).get("certificateInfo") or {}
    subject = cert.get("subject") or {}
    issuer = cert.get("issuer") or {}
    validity = cert.get("validity") or {}
    return {
        "common_name": subject.get("CN") or info.get("common_name"),
        "organization": subject.get("O") or info.get("issuer"),
        "subject": subject or None,
        "issuer": ", ".join(v for v in (issuer.get("CN"), issuer.get("O")) if v) or None,
        "issuer_dn": issuer or None,
        "serial_number": cert.get("serialNumber") or info.get("cert_serial_number"),
        "algorithm": info.get("alg"),
        "not_before": validity.get("notBefore"),
        "not_after": validity.get("notAfter"),
    }


def _tsa(crjson_manifest: dict[str, Any] | None) -> str | None:
    tsa = (((crjson_manifest or {}).get("signature") or {}).get("timeStampInfo") or {}).get("certificateInfo") or {}
    subject = tsa.get("subject") or {}
    return subject.get("CN") or subject.get("O")


def actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).split("__")[0] not in _ACTION_LABELS:
            continue
        for action in (assertion.get("data") or {}).get("actions", []):
            dst, where = source_type(action)
            found.append(
                {
                    "action": action.get("action"),
                    "digital_source_type": dst,
                    "digital_source_type_label": source_type_label(dst),
                    "digital_source_type_field": where,
                    "software_agent": _agent(action.get("softwareAgent")),
                    "when": action.get("when"),
                    "description": (action.get("parameters") or {}).get("description") or action.get("description"),
                }
            )
    return found


def _agent(agent: Any) -> str | None:
    if isinstance(agent, dict):
        return " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k)) or None
    return str(agent) if agent else None


def identities(manifest: dict[str, Any], failure_codes: list[str]) -> list[dict[str, Any]]:
    """CAWG identity assertions: who (beyond the claim signer) vouches for which assertions."""
    untrusted = any(code.startswith("cawg.") and code.endswith(".untrusted") for code in failure_codes)
    found = []
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).split("__")[0] != "cawg.identity":
            continue
        data = assertion.get("data") or {}
        payload = data.get("signer_payload") or {}
        info = data.get("signature_info") or {}
        found.append(
            {
                "sig_type": payload.get("sig_type"),
                "common_name": info.get("common_name"),
                "organization": info.get("issuer"),
                "referenced_assertions": [
                    str(ref.get("url", "")).rsplit("/", 1)[-1] for ref in payload.get("referenced_assertions") or []
                ],
                "trusted": not untrusted,
            }
        )
    return found


def training_mining(manifest: dict[str, Any]) -> dict[str, str] | None:
    for assertion in manifest.get("assertions", []):
        if assertion.get("label") in _TRAINING_LABELS:
            entries = (assertion.get("data") or {}).get("entries") or {}
            return {name: (entry or {}).get("use") for name, entry in entries.items()}
    return None


def ingredient_tree(store: dict[str, Any], label: str | None, depth: int = 0) -> list[dict[str, Any]]:
    """The ingredients of manifest `label`, each with its own manifest's summary and ingredients, recursively."""
    manifests = store.get("manifests") or {}
    manifest = manifests.get(label) or {}
    tree = []
    for ingredient in manifest.get("ingredients", []):
        child_label = ingredient.get("active_manifest")
        child = manifests.get(child_label) if child_label else None
        node: dict[str, Any] = {
            "title": ingredient.get("title"),
            "relationship": ingredient.get("relationship"),
            "format": ingredient.get("format"),
            "manifest_id": child_label,
        }
        if child is not None:
            child_actions = actions(child)
            dst = next((a["digital_source_type"] for a in child_actions if a["digital_source_type"]), None)
            node.update(
                {
                    "signer": (child.get("signature_info") or {}).get("common_name"),
                    "claim_generator": claim_generator(child),
                    "signing_time": (child.get("signature_info") or {}).get("time"),
                    "digital_source_type": dst,
                    "actions": [a["action"] for a in child_actions],
                    "ingredients": ingredient_tree(store, child_label, depth + 1) if depth < MAX_HISTORY_DEPTH else [],
                }
            )
        else:
            node["note"] = "no Content Credentials: provenance unknown before this point"
        tree.append(node)
    return tree
