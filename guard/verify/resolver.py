"""A client for the C2PA Soft Binding Resolution API: find a manifest by a watermark or fingerprint value.

Routes used (C2PA "Soft Binding Resolution API", decoupled manifests):
- `GET  {base}/matches/byBinding?alg=ALG&value=VALUE&maxResults=N` (VALUE base64) ->
  `{"matches": [{"manifestId", "endpoint"?, "similarityScore"?}]}`
- `POST {base}/matches/byContent?alg=ALG&maxResults=N` with the image bytes as the body -> the same shape
- `GET  {base}/manifests/{manifestId}` -> the manifest store (`application/c2pa`)

A match may name another service in `endpoint`; its manifest is then fetched from there. Only the URL the
user gives is contacted (and any endpoint its answers name); every failure is one `ResolverError` sentence.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from guard.errors import GuardError

C2PA_MANIFEST_MIME = "application/c2pa"
MAX_MANIFEST_BYTES = 32 * 1024 * 1024


class ResolverError(GuardError):
    """The resolution service could not be reached or answered something unusable."""


@dataclass(frozen=True)
class ResolverMatch:
    manifest_id: str
    endpoint: str | None
    similarity: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"manifest_id": self.manifest_id, "endpoint": self.endpoint, "similarity_score": self.similarity}


@dataclass(frozen=True)
class SoftBindingResolver:
    """One resolution service, by its base URL (e.g. `https://resolver.example/v1`)."""

    base_url: str
    timeout: float = 10.0
    max_results: int = 5

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ResolverError(f"The resolver URL must start with http:// or https://, got {self.base_url!r}.")

    def by_binding(self, alg: str, value: str) -> list[ResolverMatch]:
        """Manifests registered under this soft-binding algorithm and value (a watermark payload, a fingerprint)."""
        query = {"alg": alg, "value": value, "maxResults": self.max_results}
        return self._matches(self._json("GET", "/matches/byBinding", query=query))

    def by_content(self, data: bytes, mime: str, alg: str | None = None) -> list[ResolverMatch]:
        """Manifests the service finds for these image bytes (it computes its own watermark/fingerprint reading)."""
        query: dict[str, Any] = {"maxResults": self.max_results}
        if alg:
            query["alg"] = alg
        return self._matches(self._json("POST", "/matches/byContent", query=query, body=data, mime=mime))

    def manifest(self, match: ResolverMatch | str) -> bytes:
        """The manifest store bytes of a match (from the endpoint the match names, else this service)."""
        if isinstance(match, str):
            match = ResolverMatch(match, None, None)
        base = (match.endpoint or self.base_url).rstrip("/")
        url = f"{base}/manifests/{urllib.parse.quote(match.manifest_id, safe='')}"
        _, _, body = self._request("GET", url, accept=C2PA_MANIFEST_MIME)
        if not body:
            raise ResolverError(f"The resolver returned an empty manifest for {match.manifest_id} ({url}).")
        return body

    def _matches(self, body: dict[str, Any]) -> list[ResolverMatch]:
        matches = body.get("matches")
        if not isinstance(matches, list):
            raise ResolverError(f"The resolver {self.base_url} answered without a `matches` list.")
        found = []
        for item in matches:
            if isinstance(item, dict) and isinstance(item.get("manifestId"), str):
                score = item.get("similarityScore")
                found.append(
                    ResolverMatch(
                        item["manifestId"],
                        item.get("endpoint") if isinstance(item.get("endpoint"), str) else None,
                        float(score) if isinstance(score, int | float) else None,
                    )
                )
        return found

    def _json(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: bytes | None = None,
        mime: str | None = None,
    ) -> dict[str, Any]:
        url = self.base_url.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        status, _, raw = self._request(method, url, body=body, mime=mime, accept="application/json")
        if status == 404:
            return {"matches": []}
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise ResolverError(f"The resolver {self.base_url} did not answer JSON for {path}.") from None
        if not isinstance(parsed, dict):
            raise ResolverError(f"The resolver {self.base_url} answered {path} with something other than an object.")
        return parsed

    def _request(
        self, method: str, url: str, *, body: bytes | None = None, mime: str | None = None, accept: str
    ) -> tuple[int, str, bytes]:
        headers = {"Accept": accept}
        if mime:
            headers["Content-Type"] = mime
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read(MAX_MANIFEST_BYTES + 1)
                status, content_type = response.status, response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and "/matches/" in url:
                return 404, "", b""
            raise ResolverError(f"The resolver answered HTTP {exc.code} for {url}.") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ResolverError(f"Cannot reach the resolver at {url}: {reason}.") from None
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ResolverError(f"The resolver's answer for {url} is larger than {MAX_MANIFEST_BYTES} bytes.")
        return status, content_type, raw
