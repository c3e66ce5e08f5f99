"""The report of a folder run as one HTML page: a sortable row per file (thumbnail, verdict, strength,
integrity, key evidence), each row opening that file's full report.

Two layouts, one table: `embedded` (one self-contained file: each full report sits, collapsed, under its row)
and `linked` (the `index.html` of a folder of per-file pages: each row links to its sibling page). Everything
taken from a file is HTML-escaped; the page loads nothing, and the only script it runs is the sorter below,
allowed by its hash in the Content-Security-Policy.
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.parse
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from guard.files import write_atomic
from guard.verify.html import PAGE_STYLE, page_head, report_body, thumbnail_base64
from guard.verify.render import ai_tool_line
from guard.verify.report import VerifyReport

ROW_THUMBNAIL_SIDE = 96
KEY_EVIDENCE_CHARS = 240

ORDER: dict[str, dict[str, int]] = {
    "verdict": {"ai-generated": 0, "ai-edited": 1, "captured (claimed)": 2, "unknown": 3, "error": 4},
    "strength": {"strong": 0, "moderate": 1, "weak": 2, "none": 3, "-": 4},
    "integrity": {"tampered": 0, "unverified": 1, "intact": 2, "no credentials": 3, "-": 4},
}
"""Sort rank of each column's values: what needs a reader's attention first."""

_SORTER = """
document.querySelectorAll('table.batch th[data-col]').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), col = th.dataset.col, up = th.dataset.dir !== 'asc';
    table.tHead.querySelectorAll('th[data-col]').forEach(function (o) { delete o.dataset.dir; });
    th.dataset.dir = up ? 'asc' : 'desc';
    var groups = Array.prototype.slice.call(table.tBodies);  // its own rows, not the embedded reports'
    groups.sort(function (a, b) {
      var x = a.dataset[col], y = b.dataset[col];
      var nx = Number(x), ny = Number(y);
      var d = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return up ? d : -d;
    });
    groups.forEach(function (g) { table.appendChild(g); });
  });
});
"""
_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_SORTER.encode()).digest()).decode()
_BATCH_STYLE = (
    PAGE_STYLE.replace("max-width:60em", "max-width:90em")
    + """
th[data-col]{cursor:pointer;user-select:none}th[data-col]::after{content:' \\2195';color:#aaa}
th[data-dir=asc]::after{content:' \\2191';color:#222}th[data-dir=desc]::after{content:' \\2193';color:#222}
td.thumb img{max-width:96px;max-height:96px;display:block}
tr.detail>td{background:#fcfcfc}details>summary{cursor:pointer;color:#0645ad}
.v-ai-generated{color:#b00020;font-weight:bold}.v-ai-edited{color:#b26a00;font-weight:bold}
.v-captured{color:#00695c;font-weight:bold}.v-error{color:#b00020}.i-tampered{color:#b00020;font-weight:bold}
"""
)


@dataclass
class BatchPage:
    """Rows gathered while a folder is verified; `render` makes the page. With `base` (the folder the page
    is written to), rows link to the per-file pages given to `add`; without, each full report is embedded."""

    title: str
    base: Path | None = None
    rows: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, report: VerifyReport, page: Path | None = None, document: dict[str, Any] | None = None) -> None:
        document = document or report.to_dict()
        verdict = document["verdict"]
        thumb = (
            f"<img alt='' src='data:image/jpeg;base64,{thumbnail_base64(report.image, ROW_THUMBNAIL_SIDE)}'>"
            if report.image is not None
            else "<span class='note'>not decoded</span>"
        )
        if self.base is not None and page is not None:
            opener = f"<br><a href='{escape(_relative(page, self.base), quote=True)}'>full report</a>"
            detail = ""
        else:
            opener = ""
            detail = (
                "<tr class='detail'><td colspan='6'><details><summary>full report</summary>"
                + report_body(report, document)
                + "</details></td></tr>"
            )
        self._row(
            document["path"],
            verdict["origin"],
            verdict["strength"],
            verdict["integrity"],
            key_evidence(document),
            thumb,
            opener,
            detail,
        )

    def add_error(self, path: str, message: str) -> None:
        self._row(path, "error", "-", "-", message, "", "", "")

    def _row(
        self, path: str, origin: str, strength: str, integrity: str, evidence: str, thumb: str, opener: str, detail: str
    ) -> None:
        self.counts[origin] = self.counts.get(origin, 0) + 1
        keys = {
            "path": escape(path, quote=True),
            "verdict": str(ORDER["verdict"].get(origin, 9)),
            "strength": str(ORDER["strength"].get(strength, 9)),
            "integrity": str(ORDER["integrity"].get(integrity, 9)),
        }
        data = " ".join(f"data-{k}='{v}'" for k, v in keys.items())
        css = "v-" + origin.split(" ")[0]
        self.rows.append(
            f"<tbody {data}><tr><td class='thumb'>{thumb}</td><td>{escape(path)}{opener}</td>"
            f"<td class='{escape(css)}'>{escape(origin)}</td><td>{escape(strength)}</td>"
            f"<td class='i-{escape(integrity.split(' ')[0])}'>{escape(integrity)}</td>"
            f"<td>{escape(evidence)}</td></tr>{detail}</tbody>"
        )

    def render(self) -> str:
        summary = ", ".join(f"{n} {origin}" for origin, n in sorted(self.counts.items(), key=lambda kv: _rank(kv[0])))
        header = "".join(
            f"<th data-col='{col}'>{label}</th>" if col else f"<th>{label}</th>"
            for col, label in (
                ("", "image"),
                ("path", "file"),
                ("verdict", "verdict"),
                ("strength", "strength"),
                ("integrity", "integrity"),
                ("", "key evidence"),
            )
        )
        return (
            page_head(self.title, _BATCH_STYLE, _SCRIPT_HASH)
            + f"<h1>{escape(self.title)}</h1><p>{len(self.rows)} files: {escape(summary)}. "
            "Click a column to sort; open a row's full report for every piece of evidence.</p>"
            + f"<table class='batch'><thead><tr>{header}</tr></thead>{''.join(self.rows)}</table>"
            + "<p class='note'>Generated by guard verify. Absence of evidence is not evidence of authenticity.</p>"
            + f"<script>{_SORTER}</script></body></html>"
        )

    def write(self, output: str | Path) -> Path:
        return write_atomic(output, self.render().encode("utf-8"))


def key_evidence(document: dict[str, Any]) -> str:
    """One line a reader scans in the table: the credentials' state and signer, the AI tool, the top reason."""
    c2pa = document["c2pa"]
    parts = []
    if c2pa.get("state"):
        signer = (c2pa.get("signer") or {}).get("common_name") or "unknown signer"
        trusted = (c2pa.get("trusted_by") or {}).get("list")
        parts.append(f"C2PA {c2pa['state']}, {signer}" + (f", trusted through {trusted}" if trusted else ""))
    elif c2pa.get("present"):
        parts.append(f"C2PA not verified: {c2pa.get('error')}")
    else:
        parts.append("no Content Credentials")
    if c2pa.get("ai_tool"):
        parts.append(f"AI tool: {ai_tool_line(c2pa['ai_tool'], with_field=False)}")
    reasons = document["verdict"].get("reasons") or []
    if reasons:
        parts.append(reasons[0])
    line = "; ".join(parts)
    return line if len(line) <= KEY_EVIDENCE_CHARS else line[: KEY_EVIDENCE_CHARS - 1] + "…"


def _rank(origin: str) -> int:
    return ORDER["verdict"].get(origin, 9)


def _relative(page: Path, base: Path) -> str:
    return urllib.parse.quote(Path(os.path.relpath(page, base)).as_posix())
