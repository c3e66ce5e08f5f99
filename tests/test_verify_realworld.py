"""`guard verify` on the real-world corpus (`tests/data/c2pa-realworld/`): files from Adobe, OpenAI, Microsoft,
Amazon, Truepic, Nikon, Encypher, TrustNXT and the C2PA public test files. For each file, with the default
trust (the bundled C2PA lists): the state is c2pa-rs's own validation_state (or the file is unverifiable for
c2pa's reason), the failure codes are exactly c2pa's, and the verdict's origin and strength are the ones read
from the file's own assertions (recorded in corpus.json, not taken from this verifier).

The files live outside the repository (see SOURCES.md): `$C2PA_REALWORLD_DIR`, else `../shared/c2pa-realworld/`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import c2pa
import pytest
from conftest import SHARED_DIR

from guard.verify import Verifier
from guard.verify.trust import VerifyTrust
from guard.verify.trust_lists import KINDS, bundled

ROOT = Path(__file__).resolve().parents[1]
CORPUS = json.loads((ROOT / "tests" / "data" / "c2pa-realworld" / "corpus.json").read_text(encoding="utf-8"))
FOLDER = Path(os.environ.get("C2PA_REALWORLD_DIR") or SHARED_DIR / "c2pa-realworld")
ABSENT = (
    f"the real-world corpus is not at {FOLDER} ($C2PA_REALWORLD_DIR or ../shared/c2pa-realworld; where to fetch each "
    "file: tests/data/c2pa-realworld/SOURCES.md)"
)
MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
MIME |= {".heic": "image/heic", ".dng": "image/dng"}
UNVERIFIABLE_WORDS = {"remote": "remote", "unknown algorithm": "unknown algorithm", "pre-release": "pre-release"}
ENTRIES = {entry["file"]: entry for entry in CORPUS["files"]}


def default_trust() -> VerifyTrust:
    """What `guard verify` uses with no flags and a fresh GUARD_HOME: the two bundled lists."""
    return VerifyTrust(lists=tuple(bundled(kind) for kind in KINDS))


@pytest.fixture(scope="module")
def verifier():
    return Verifier(trust=default_trust(), classifier=False)


def corpus_file(entry: dict) -> Path:
    path = FOLDER / entry["file"]
    if not path.is_file():
        pytest.fail(f"{path} is missing from the real-world corpus folder ({ABSENT})")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], f"{path} is not the recorded file"
    return path


def c2pa_rs(path: Path) -> tuple[str | None, set[str], str | None]:
    """(validation_state, failure codes, refusal) straight from c2pa-python, with the bundled lists as anchors."""
    anchors = "".join(bundled(kind).pem for kind in KINDS)
    settings = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}, "trust": {"trust_anchors": anchors}}
    try:
        reader = c2pa.Reader(
            MIME[path.suffix.lower()], io.BytesIO(path.read_bytes()), context=c2pa.Context.from_dict(settings)
        )
    except c2pa.C2paError as exc:
        return None, set(), str(exc)
    with reader:
        store = json.loads(reader.json())
    return store.get("validation_state"), {s["code"] for s in store.get("validation_status") or []}, None


def test_corpus_records_are_complete():
    """Every entry names its source, commit, licence and the reason it is in the corpus, and a verdict from the
    verifier's vocabulary; the spread covers Adobe Firefly, OpenAI, Microsoft, Amazon, Truepic, Nikon, Encypher
    and the C2PA public test files, in JPEG, PNG, WebP, HEIC and DNG."""
    for entry in CORPUS["files"]:
        assert entry["repository"].count("/") == 1 and len(entry["commit"]) == 40, entry["file"]
        assert entry["licence"] and entry["why"] and entry["sha256"], entry["file"]
        assert entry["file"] == f"{entry['repository'].replace('/', '+')}/{entry['path']}"
        expected = entry["expected"]
        assert expected["origin"] in ("ai-generated", "ai-edited", "captured (claimed)", "unknown")
        assert (expected["state"] is None) == (expected["unverifiable"] is not None), entry["file"]
    producers = " ".join(entry["producer"] for entry in CORPUS["files"])
    for name in ("Adobe Firefly", "OpenAI", "Microsoft", "Amazon", "Truepic", "Nikon", "Encypher", "C2PA public"):
        assert name in producers
    assert {Path(e["path"]).suffix for e in CORPUS["files"]} >= {".jpg", ".png", ".webp", ".heic", ".dng"}


@pytest.mark.parametrize(
    "name",
    sorted(ENTRIES)
    if FOLDER.is_dir()
    else [pytest.param(None, id="corpus-absent", marks=pytest.mark.skip(reason=ABSENT))],
)
def test_realworld_file(verifier, name):
    entry = ENTRIES[name]
    expected = entry["expected"]
    path = corpus_file(entry)
    report = verifier.verify_file(path).to_dict()
    c2pa_part, verdict = report["c2pa"], report["verdict"]

    state, codes, refusal = c2pa_rs(path)
    assert c2pa_part["state"] == state == expected["state_with_c2pa_lists"]
    if expected["unverifiable"]:
        assert refusal is not None and c2pa_part["present"] is True
        assert UNVERIFIABLE_WORDS[expected["unverifiable"]] in c2pa_part["error"]
        assert verdict["integrity"] == "unverified"
    else:
        assert {f["code"] for f in c2pa_part["failures"]} == codes == set(expected["failures"])
        assert verdict["integrity"] == ("tampered" if state == "Invalid" else "intact")
    assert (verdict["origin"], verdict["strength"]) == (expected["origin"], expected["strength"]), verdict["reasons"]
    tool = c2pa_part.get("ai_tool")
    assert (tool or {}).get("name") == expected["ai_tool"]
    if tool:
        assert tool["field"] and tool["source_type"], tool
