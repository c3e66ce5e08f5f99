"""Opt-outs: the machine-readable ways a rights holder says "not for AI training", found per sample.

* **Content Credentials**: a `c2pa.training-mining` (C2PA) or `cawg.training-mining` (CAWG) assertion in
  the active manifest whose entries (`c2pa.ai_training`, `c2pa.ai_generative_training`, `c2pa.data_mining`,
  `c2pa.ai_inference`, or their `cawg.` twins) say `notAllowed` — or `constrained`, whose conditions a
  machine cannot check, unless the policy reads it as allowed. Honoured whatever the manifest's validation
  state (recorded with the evidence): a reservation stays a reservation when the file was edited since.
* **IPTC / PLUS** `plus:DataMining` in the XMP with a `DMI-PROHIBITED…` value.
* **Response headers** recorded in the sample's `.json` (`headers`, `response_headers` or `http_headers`):
  `tdm-reservation: 1` (W3C TDMRep) and `X-Robots-Tag` with `noai` / `noimageai` (for every agent, or for an
  agent the policy names, as img2dataset reads it).
* **User lists** (`--opt-out FILE`): one entry a line — a domain (`example.com` covers its subdomains), a
  URL prefix (`https://example.com/art/`; scheme and host case-insensitive, http and https alike), or
  `artist:Name`, found in captions with the policy's name matching (case, accents, look-alike letters,
  punctuation between the parts of the name).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from guard.errors import GuardError
from policies.schema import DatasetOptOut, Policy

TRAINING_MINING_LABELS = ("c2pa.training-mining", "cawg.training-mining")
HEADER_FIELDS = ("headers", "response_headers", "http_headers")
PLUS_PROHIBITED = "DMI-PROHIBITED"


@dataclass(frozen=True)
class Evidence:
    """One finding: where it was found (`c2pa:c2pa.training-mining`, `header:X-Robots-Tag`, ...) and what it says."""

    source: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "detail": self.detail}


# --- Content Credentials ------------------------------------------------------------------------------------


def training_mining_evidence(
    assertions: Iterable[tuple[str, Any]], rules: DatasetOptOut, state: str | None = None
) -> list[Evidence]:
    """Evidence from training-mining assertions, given as (label, data) pairs of the active manifest."""
    not_allowed = {"notAllowed"} | ({"constrained"} if rules.constrained == "not_allowed" else set())
    wanted = set(rules.training_mining_entries)
    found = []
    for label, data in assertions:
        if label not in TRAINING_MINING_LABELS or not isinstance(data, Mapping):
            continue
        entries = data.get("entries")
        if not isinstance(entries, Mapping):
            continue
        refused = []
        for name, entry in entries.items():
            use = entry.get("use") if isinstance(entry, Mapping) else None
            short = str(name).split(".", 1)[-1]
            if short in wanted and use in not_allowed:
                refused.append(f"{name}: {use}")
        if refused:
            where = f" (manifest {state})" if state else ""
            found.append(Evidence(f"c2pa:{label}", "; ".join(sorted(refused)) + where))
    return found


# --- XMP and response headers ---------------------------------------------------------------------------


def data_mining_evidence(value: str | None, rules: DatasetOptOut) -> list[Evidence]:
    """Evidence from the XMP `plus:DataMining` value (a PLUS vocabulary URI or its last segment)."""
    if not rules.iptc_data_mining or not value:
        return []
    term = value.strip().rstrip("/").rsplit("/", 1)[-1]
    if not term.upper().startswith(PLUS_PROHIBITED):
        return []
    return [Evidence("xmp:plus:DataMining", term)]


def response_headers(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (lower-cased name, value) response headers a sample's metadata records, in order (none: [])."""
    for name in HEADER_FIELDS:
        raw = meta.get(name)
        if raw is None:
            continue
        pairs: list[tuple[str, str]] = []
        if isinstance(raw, Mapping):
            items: Iterable[Any] = raw.items()
        elif isinstance(raw, list):
            items = raw
        else:
            continue
        for item in items:
            if isinstance(item, list | tuple) and len(item) == 2:
                header, value = item
                values = value if isinstance(value, list) else [value]
                pairs.extend((str(header).strip().lower(), str(v)) for v in values)
        return pairs
    return []


def header_evidence(meta: Mapping[str, Any], rules: DatasetOptOut) -> list[Evidence]:
    """Evidence from `tdm-reservation` and `X-Robots-Tag` response headers."""
    found = []
    directives = {d.lower() for d in rules.robots_directives}
    agents = {a.lower() for a in rules.robots_user_agents}
    for name, value in response_headers(meta):
        if name == "tdm-reservation" and rules.tdm_reservation and value.strip() == "1":
            found.append(Evidence("header:tdm-reservation", "1"))
        elif name == "x-robots-tag" and directives:
            agent, _, rest = value.partition(":")
            scoped = bool(rest) and " " not in agent.strip() and "," not in agent
            if scoped and agent.strip().lower() not in agents:
                continue
            listed = {d.strip().lower() for d in (rest if scoped else value).split(",")}
            hit = sorted(listed & directives)
            if hit:
                found.append(Evidence("header:X-Robots-Tag", value.strip()))
    return found


# --- user lists --------------------------------------------------------------------------------------------


@dataclass
class OptOutList:
    """Entries of `--opt-out` files: domains, URL prefixes and artists' names."""

    domains: set[str] = field(default_factory=set)
    prefixes: list[tuple[str, str]] = field(default_factory=list)
    """(host, path prefix) pairs, both as written but the host lower-cased."""
    artists: list[str] = field(default_factory=list)
    digest: str = ""
    _artist_policy: Policy | None = field(default=None, repr=False)

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> OptOutList:
        """Read opt-out files; GuardError naming the file and line for anything unreadable or unrecognised."""
        found = cls()
        hasher = hashlib.sha256()
        for raw in paths:
            path = Path(raw).expanduser()
            try:
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                raise GuardError(f"{path}: an opt-out list must be UTF-8 text.") from None
            except OSError as exc:
                raise GuardError(f"{path}: the opt-out list cannot be read ({exc.strerror or exc}).") from None
            hasher.update(text.encode("utf-8") + b"\0")
            for number, line in enumerate(text.splitlines(), 1):
                found._add(line, path, number)
        found.digest = hasher.hexdigest()
        return found

    def _add(self, line: str, path: Path, number: int) -> None:
        entry = line.split("#", 1)[0].strip() if not line.lstrip().startswith("artist:") else line.strip()
        if not entry:
            return
        if entry.lower().startswith("artist:"):
            name = entry.split(":", 1)[1].strip()
            if not name:
                raise GuardError(f"{path}, line {number}: `artist:` needs a name after it.")
            self.artists.append(name)
            return
        if "://" in entry:
            parts = urlsplit(entry)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise GuardError(f"{path}, line {number}: {entry!r} is not an http(s) URL prefix.")
            self.prefixes.append((parts.hostname.lower(), parts.path or "/"))
            return
        domain = entry.lower().rstrip(".")
        if domain.startswith("*."):
            domain = domain[2:]
        if " " in domain or "/" in domain or "." not in domain or domain.startswith("."):
            raise GuardError(
                f"{path}, line {number}: {entry!r} is not a domain (example.com), a URL prefix "
                "(https://example.com/art/) or artist:Name."
            )
        self.domains.add(domain)

    def url_evidence(self, url: str | None) -> list[Evidence]:
        """Evidence when the sample's URL is on a listed domain (or a subdomain) or under a listed prefix."""
        if not url or not (self.domains or self.prefixes):
            return []
        try:
            parts = urlsplit(url.strip())
            host = (parts.hostname or "").lower().rstrip(".")
        except ValueError:
            return []
        found = []
        labels = host.split(".")
        for i in range(len(labels) - 1):
            candidate = ".".join(labels[i:])
            if candidate in self.domains:
                found.append(Evidence("list:domain", candidate))
                break
        path = parts.path or "/"
        for prefix_host, prefix_path in self.prefixes:
            if host == prefix_host and path.startswith(prefix_path):
                found.append(Evidence("list:url-prefix", f"{prefix_host}{prefix_path}"))
                break
        return found

    def caption_evidence(self, caption: str) -> list[Evidence]:
        """Evidence for each listed artist named in the caption (matched as the policy matches names)."""
        if not self.artists or not caption:
            return []
        from policies import decide_prompt

        decision = decide_prompt(self._artists(), caption)
        return [Evidence("list:artist", reason["evidence"]) for reason in decision.reasons]

    def _artists(self) -> Policy:
        """A one-category policy whose name list is the listed artists, compiled once: the same name
        matching (folding, look-alikes, punctuation between parts) as the prompt rules' name lists."""
        if self._artist_policy is None:
            from policies.matching import Matcher
            from policies.schema import Category, PromptRules

            policy = Policy(
                name="opt-out artists",
                version="1",
                categories={"opt_out": Category(action="block", prompt=PromptRules(name_lists=["artists"]))},
            )
            policy._matcher = Matcher(policy, {"artists": self.artists})
            self._artist_policy = policy
        return self._artist_policy
