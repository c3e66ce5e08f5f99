"""The dataset filter's parts on their own: near-duplicate pass, opt-out evidence and lists, decisions from
recorded evidence (stub scores stand in for NSFW images, which the repository never holds), the caption seam."""

from __future__ import annotations

import io
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from guard.check_prompt import PromptChecker
from guard.dataset.captions import CaptionChecker, caption_check_name, classifier_scores
from guard.dataset.decisions import Duplicate, decide_record
from guard.dataset.dedup import HashedSample, near_duplicates
from guard.dataset.optout import (
    OptOutList,
    data_mining_evidence,
    header_evidence,
    response_headers,
    training_mining_evidence,
)
from guard.dataset.readers import split_member
from guard.errors import GuardError
from guard.verify.metadata import read_metadata
from policies import Decision, load_policy
from policies.schema import DatasetOptOut

# --- near-duplicates --------------------------------------------------------------------------------------


def _brute_force(samples: list[HashedSample], max_distance: int) -> dict:
    representatives: list[HashedSample] = []
    found = {}
    for sample in sorted(samples, key=lambda s: s.order):
        match = next((r for r in representatives if (r.value ^ sample.value).bit_count() <= max_distance), None)
        if match is None:
            representatives.append(sample)
        else:
            found[sample.ident] = (match.ident, (match.value ^ sample.value).bit_count())
    return found


def _flip(value: int, bits: list[int]) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=12),
    st.lists(st.tuples(st.integers(0, 11), st.lists(st.integers(0, 63), max_size=8)), max_size=30),
    st.integers(0, 8),
    st.randoms(use_true_random=False),
)
def test_multi_index_search_finds_what_brute_force_finds(bases, copies, max_distance, rng):
    values = list(bases) + [_flip(bases[i % len(bases)], bits) for i, bits in copies]
    rng.shuffle(values)
    samples = [HashedSample(order=(f"{i:04d}",), ident=(0, i), value=v) for i, v in enumerate(values)]
    assert near_duplicates(samples, max_distance) == _brute_force(samples, max_distance)


def test_first_in_key_order_is_kept_whatever_order_samples_come_in():
    base = random.Random(3).getrandbits(64)
    samples = [
        HashedSample(order=("b", 0, 0), ident=(0, 0), value=_flip(base, [1])),
        HashedSample(order=("a", 1, 0), ident=(1, 0), value=base),
        HashedSample(order=("c", 0, 1), ident=(0, 1), value=_flip(base, [5, 9])),
    ]
    found = near_duplicates(samples, 4)
    assert found == {(0, 0): ((1, 0), 1), (0, 1): ((1, 0), 2)}
    assert near_duplicates(list(reversed(samples)), 4) == found
    assert near_duplicates(samples, 0) == {}


def test_chains_do_not_grow_clusters():
    base = 0
    a, b, c = base, _flip(base, [0, 1, 2]), _flip(base, [0, 1, 2, 3, 4, 5])
    samples = [HashedSample((str(i),), (0, i), v) for i, v in enumerate([a, b, c])]
    assert near_duplicates(samples, 3) == {(0, 1): ((0, 0), 3)}  # c is 6 from a: its own picture


# --- opt-outs ----------------------------------------------------------------------------------------------


def test_opt_out_list_entries_and_matching(tmp_path):
    listed = tmp_path / "optout.txt"
    listed.write_text(
        "# comments and blank lines are ignored\n\nExample.COM\n*.cdn.example.net\nhttps://art.example.org/gallery/\n"
        "artist: Halvard Quenneville\n",
        encoding="utf-8",
    )
    found = OptOutList.load([listed])
    assert found.domains == {"example.com", "cdn.example.net"}
    assert [e.detail for e in found.url_evidence("https://img.example.com/a.jpg")] == ["example.com"]
    assert found.url_evidence("https://notexample.com/a.jpg") == []
    assert [e.source for e in found.url_evidence("http://ART.example.org/gallery/x.png")] == ["list:url-prefix"]
    assert found.url_evidence("https://art.example.org/other/x.png") == []
    assert found.url_evidence("not a url") == [] and found.url_evidence(None) == []
    for caption in ("by halvard quenneville", "Halvard_Quenneville, oil", "HALVARD QUENNEVILLE's style"):
        assert [e.source for e in found.caption_evidence(caption)] == ["list:artist"], caption
    assert found.caption_evidence("by quenneville alone") == []
    assert len(found.digest) == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a domain\n", "line 1: 'not a domain' is not a domain"),
        ("example.com\nftp://example.com/x\n", "line 2: 'ftp://example.com/x' is not an http(s) URL prefix"),
        ("artist:\n", "line 1: `artist:` needs a name"),
    ],
)
def test_bad_opt_out_lines_name_the_file_and_line(tmp_path, text, message):
    listed = tmp_path / "optout.txt"
    listed.write_text(text, encoding="utf-8")
    with pytest.raises(GuardError, match=re.escape(message)):
        OptOutList.load([listed])


def test_unreadable_opt_out_files(tmp_path):
    with pytest.raises(GuardError, match="cannot be read"):
        OptOutList.load([tmp_path / "missing.txt"])
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(GuardError, match="must be UTF-8 text"):
        OptOutList.load([binary])


def test_response_headers_in_the_forms_metadata_records_them():
    rules = DatasetOptOut()
    assert response_headers({"headers": {"X-Robots-Tag": ["noindex", "noai"]}}) == [
        ("x-robots-tag", "noindex"),
        ("x-robots-tag", "noai"),
    ]
    assert [e.source for e in header_evidence({"response_headers": [["TDM-Reservation", "1"]]}, rules)] == [
        "header:tdm-reservation"
    ]
    assert header_evidence({"headers": {"tdm-reservation": "0"}}, rules) == []
    assert header_evidence({"headers": {"X-Robots-Tag": "noindex, nofollow"}}, rules) == []
    assert header_evidence({"headers": {"X-Robots-Tag": "otherbot: noai"}}, rules) == []  # scoped to another agent
    assert len(header_evidence({"headers": {"X-Robots-Tag": "img2dataset: noimageai"}}, rules)) == 1
    assert header_evidence({"headers": "garbage"}, rules) == [] and header_evidence({}, rules) == []


def test_training_mining_entries_and_constrained():
    def assertion(use: str, entry: str = "c2pa.ai_training") -> list:
        return [("c2pa.training-mining", {"entries": {entry: {"use": use}}})]

    rules = DatasetOptOut()
    assert training_mining_evidence(assertion("notAllowed"), rules, "Valid")[0].detail == (
        "c2pa.ai_training: notAllowed (manifest Valid)"
    )
    assert len(training_mining_evidence(assertion("constrained"), rules)) == 1
    assert training_mining_evidence(assertion("allowed"), rules) == []
    lenient = DatasetOptOut(constrained="allowed", training_mining_entries=["ai_training"])
    assert training_mining_evidence(assertion("constrained"), lenient) == []
    assert training_mining_evidence(assertion("notAllowed", "cawg.ai_inference"), lenient) == []
    assert (
        len(
            training_mining_evidence(
                [("cawg.training-mining", {"entries": {"cawg.data_mining": {"use": "notAllowed"}}})], rules
            )
        )
        == 1
    )
    assert training_mining_evidence([("c2pa.training-mining", "not a mapping")], rules) == []


def test_plus_data_mining_values():
    rules = DatasetOptOut()
    vocab = "http://ns.useplus.org/ldf/vocab/"
    for value in ("DMI-PROHIBITED", "DMI-PROHIBITED-AIMLTRAINING", "DMI-PROHIBITED-GENAIMLTRAINING"):
        assert [e.detail for e in data_mining_evidence(vocab + value, rules)] == [value]
    for value in ("DMI-ALLOWED", "DMI-UNSPECIFIED", ""):
        assert data_mining_evidence(vocab + value, rules) == []
    assert data_mining_evidence(vocab + "DMI-PROHIBITED", DatasetOptOut(iptc_data_mining=False)) == []


def test_metadata_reads_plus_data_mining_from_xmp():
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"><plus:DataMining '
        'rdf:resource="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-SEECONSTRAINT"/></rdf:Description>'
        "</rdf:RDF></x:xmpmeta>"
    )
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "navy").save(buffer, "JPEG", xmp=packet.encode())
    assert read_metadata(buffer.getvalue())["xmp"]["data_mining"].endswith("DMI-PROHIBITED-SEECONSTRAINT")


# --- decisions from recorded evidence ----------------------------------------------------------------------


def _record(**fields) -> dict:
    clean = {"nudenet": {"explicit_nudity": 0.0, "suggestive": 0.0, "face": 0.0}, "open_nsfw": {"nsfw": 0.01}}
    return {"key": "k", "seq": 0, "error": None, "scores": clean, "unavailable": {}, **fields}


def test_decisions_from_stub_scores():
    policy = load_policy("dataset")
    assert decide_record(_record(), policy).decision == "keep"
    high = _record(scores={"nudenet": {"explicit_nudity": 0.1, "suggestive": 0.0}, "open_nsfw": {"nsfw": 0.93}})
    decided = decide_record(high, policy)
    assert decided.decision == "drop"
    assert {(r["category"], r["action"]) for r in decided.reasons} == {("sexual", "drop"), ("suggestive", "review")}
    missing = decide_record(
        _record(scores={"nudenet": {"explicit_nudity": 0.0}}, unavailable={"open_nsfw": "x"}), policy
    )
    assert missing.decision == "review" and missing.reasons[0]["category"] == "detector_unavailable"
    assert decide_record(_record(error="broken"), policy).decision == "error"


def test_caption_classifier_reasons_and_tags(tmp_path):
    policy = load_policy("dataset")
    stopped = _record(
        caption_reasons=[{"category": "sexual", "rule": "classifier:sexual", "evidence": "a span"}],
        caption_categories={"sexual": "block"},
        caption_score=0.95,
        caption_score_category="sexual",
    )
    decided = decide_record(stopped, policy)
    assert decided.decision == "drop" and decided.reasons[0]["rule"] == "caption:classifier:sexual"
    # a score alone decides nothing: the prompt policy's thresholds already gave their reasons
    assert decide_record(_record(caption_score=0.95, caption_score_category="sexual"), policy).decision == "keep"
    tagging = tmp_path / "tag.yaml"
    tagging.write_text("extends: dataset\ndataset:\n  ai_origin: {action: tag}\n  near_duplicates: {action: review}\n")
    lenient = load_policy(tagging)
    ai = _record(ai_origin=[{"source": "watermark:sd-v1", "detail": "payload ..."}])
    assert (decide_record(ai, lenient).decision, decide_record(ai, lenient).tags) == ("keep", ["ai_origin"])
    assert decide_record(ai, policy).decision == "drop"
    copy = decide_record(_record(), lenient, Duplicate(key="a", shard="00000", distance=2))
    assert copy.decision == "review" and copy.reasons[0]["evidence"] == "2 bits from a (00000)"


def test_caption_check_keeps_the_classifier_scores():
    def decision(classifier):
        return Decision("allow", [], {}, "dataset", "1", classifier=classifier)

    ok = decision({"status": "ok", "model": "m", "scores": {"sexual": 0.91, "gore": 0.02}})
    assert classifier_scores(ok) == {"sexual": 0.91, "gore": 0.02}
    assert classifier_scores(decision({"status": "unavailable", "reason": "x", "when_unavailable": "review"})) == {}
    assert classifier_scores(decision(None)) == {}


def test_caption_check_is_the_prompt_checker():
    policy = load_policy("dataset")
    checker = CaptionChecker(policy)
    assert caption_check_name(policy) == "rules+classifier"
    texts = ["a bowl of fruit on a wooden table", "a nude portrait"]
    verdicts = checker.check(texts)
    assert [v.decision.to_dict() for v in verdicts] == [d.to_dict() for d in PromptChecker(policy).check(texts)]
    assert [v.decision.decision for v in verdicts] == ["allow", "block"]
    assert verdicts[0].score is not None and verdicts[0].score < 0.5
    assert verdicts[0].top_category in checker.checker.classifier.labels


def test_webdataset_keys_split_at_the_first_dot():
    assert split_member("000001.jpg") == ("000001", "jpg")
    assert split_member("part/a.b/000001.seg.PNG") == ("part/a.b/000001", "seg.png")


def test_write_shard_splits_a_parquet_shard_between_folders_in_one_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from guard.dataset.samples import Shard
    from guard.dataset.writers import write_shard

    rows = 150  # more than one read batch
    source = tmp_path / "in" / "part.parquet"
    source.parent.mkdir()
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(rows)], "caption": [f"c{i}" for i in range(rows)]}), source)
    shard = Shard(index=0, id="part", layout="parquet", root=str(source.parent), path=str(source), output="part")
    kept = {i: f"k{i}" for i in range(0, rows, 3)}
    review = {i: f"k{i}" for i in (1, 70, 149)}
    write_shard(shard, {tmp_path / "shards": kept, tmp_path / "review": review})
    assert pq.read_table(tmp_path / "shards" / "part.parquet")["key"].to_pylist() == list(kept.values())
    assert pq.read_table(tmp_path / "review" / "part.parquet")["key"].to_pylist() == list(review.values())
    assert pq.read_table(tmp_path / "review" / "part.parquet").schema == pq.read_table(source).schema


def test_ray_init_errors_are_one_sentence_and_name_token_auth_for_ray_client(monkeypatch):
    from guard.dataset.engines.ray import _init_error

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    local = _init_error(None, RuntimeError("no CPUs."))
    assert local == "cannot start or reach Ray at a local instance: no CPUs."
    client = _init_error("ray://head:10001", ConnectionError("ray client connection timeout."))
    assert client.startswith("cannot start or reach Ray at ray://head:10001: ray client connection timeout. ")
    assert "RAY_AUTH_MODE=token" in client and ".." not in client
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert "RAY_AUTH_MODE" not in _init_error("ray://head:10001", ConnectionError("refused"))
