"""The other input layouts, in and out: image folders with sidecar captions, Parquet with bytes, paths or
Hugging Face image structs; and what the library refuses before writing anything."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_builder import corrupt_jpeg, jpeg, photo, png

from guard.dataset.readers import discover
from guard.errors import GuardError, user_errors
from guard.filter_dataset import filter_dataset


@pytest.fixture(scope="module")
def photos():
    return {name: photo(name, 256) for name in ("astronaut", "coffee", "chelsea", "rocket")}


def _rows(out):
    return {row["key"]: row for row in pq.read_table(out / "samples.parquet").to_pylist()}


def test_image_folder_with_sidecars(photos, tmp_path):
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "001.jpg").write_bytes(jpeg(photos["astronaut"]))
    (root / "a" / "001.txt").write_text("an astronaut", encoding="utf-8")
    (root / "002.png").write_bytes(png(photos["coffee"]))
    (root / "002.txt").write_text("a cup of coffee", encoding="utf-8")
    (root / "002.json").write_text(json.dumps({"url": "https://example.org/coffee.png"}), encoding="utf-8")
    (root / "003.jpg").write_bytes(corrupt_jpeg(photos["rocket"]))
    (root / "b" / "004.jpg").write_bytes(jpeg(photos["astronaut"].resize((200, 200)), quality=70))
    (root / "005.jpg").write_bytes(jpeg(photos["chelsea"]))
    (root / "005.json").write_text(json.dumps({"headers": {"X-Robots-Tag": "noai"}}), encoding="utf-8")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.jpg").write_bytes(jpeg(photos["rocket"]))
    out = tmp_path / "out"
    summary = filter_dataset([root], out, workers=0, folder_shard_size=2)
    rows = _rows(out)
    assert list(rows) == ["002", "003", "005", "a/001", "b/004"]  # sorted paths, in shards of two
    assert [rows[k]["shard"] for k in rows] == [
        "images-00000",
        "images-00000",
        "images-00001",
        "images-00001",
        "images-00002",
    ]
    assert {k: r["decision"] for k, r in rows.items()} == {
        "002": "keep",
        "003": "error",
        "005": "drop",
        "a/001": "keep",
        "b/004": "drop",
    }
    assert rows["b/004"]["duplicate_of"] == "a/001" and rows["002"]["url"] == "https://example.org/coffee.png"
    written = sorted(p.relative_to(out / "shards").as_posix() for p in (out / "shards").rglob("*") if p.is_file())
    assert written == ["002.json", "002.png", "002.txt", "a/001.jpg", "a/001.txt"]
    assert (out / "shards" / "a" / "001.jpg").read_bytes() == (root / "a" / "001.jpg").read_bytes()
    assert summary["shards"]["total"] == 3


def test_parquet_with_image_bytes_keeps_its_schema(photos, tmp_path):
    root = tmp_path / "pq"
    root.mkdir()
    table = pa.table(
        {
            "key": ["k0", "k1", "k2", "k3"],
            "jpg": [jpeg(photos["astronaut"]), jpeg(photos["coffee"]), b"not an image", jpeg(photos["rocket"])],
            "caption": ["an astronaut", "a nude portrait", "broken", "a rocket"],
            "url": [None, None, None, "https://blocked.example/rocket.jpg"],
            "aesthetic": [5.5, 4.0, 3.0, 6.1],
        }
    )
    pq.write_table(table, root / "part-0.parquet")
    listed = tmp_path / "optout.txt"
    listed.write_text("blocked.example\n", encoding="utf-8")
    out = tmp_path / "out"
    filter_dataset([root], out, opt_out=[listed], workers=0)
    rows = _rows(out)
    assert {k: r["decision"] for k, r in rows.items()} == {"k0": "keep", "k1": "drop", "k2": "error", "k3": "drop"}
    kept = pq.read_table(out / "shards" / "part-0.parquet")
    assert kept.schema == table.schema and kept.column("key").to_pylist() == ["k0"]
    assert kept.column("jpg").to_pylist() == [table.column("jpg")[0].as_py()]


def test_parquet_with_paths_and_with_image_structs(photos, tmp_path):
    root = tmp_path / "pq"
    (root / "img").mkdir(parents=True)
    (root / "img" / "x.jpg").write_bytes(jpeg(photos["chelsea"]))
    pq.write_table(
        pa.table({"file_name": ["img/x.jpg", "img/missing.jpg"], "text": ["a cat", "gone"]}), root / "a.parquet"
    )
    structs = pa.array(
        [{"bytes": jpeg(photos["coffee"]), "path": "coffee.jpg"}],
        type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    pq.write_table(pa.table({"image": structs, "prompt": ["coffee"]}), root / "b.parquet")
    shards = discover([root])
    assert [(s.id, s.columns["path"], s.columns["image"], s.columns["caption"]) for s in shards] == [
        ("a", "file_name", None, "text"),
        ("b", None, "image", "prompt"),
    ]
    out = tmp_path / "out"
    filter_dataset([root], out, workers=0)
    rows = pq.read_table(out / "samples.parquet").to_pylist()
    assert [(r["shard"], r["key"], r["decision"], r["caption"]) for r in rows] == [
        ("a", "000000000", "keep", "a cat"),
        ("a", "000000001", "error", "gone"),
        ("b", "000000000", "keep", "coffee"),
    ]
    assert "missing.jpg cannot be read" in rows[1]["error"]


def test_several_inputs_keep_their_own_output_folders(photos, tmp_path):
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_bytes(jpeg(photos["rocket" if name == "first" else "chelsea"]))
    out = tmp_path / "out"
    filter_dataset([tmp_path / "first", tmp_path / "second"], out, workers=0)
    assert sorted(p.relative_to(out / "shards").as_posix() for p in (out / "shards").rglob("*.jpg")) == [
        "first/x.jpg",
        "second/x.jpg",
    ]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing", "no such file or folder"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no shards found"),
        (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", "not a dataset shard"),
    ],
)
def test_bad_inputs_are_refused_before_anything_is_written(tmp_path, setup, message):
    source = setup(tmp_path)
    with pytest.raises(GuardError, match=message):
        filter_dataset([source], tmp_path / "out", workers=0)
    assert not (tmp_path / "out").exists()


def test_bad_policy_and_output_folders(photos, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.jpg").write_bytes(jpeg(photos["rocket"]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: dataset\ndataset:\n  near_duplicates: {max_distance: -1}\n")
    with pytest.raises(user_errors(), match=r"dataset\.near_duplicates\.max_distance"):
        filter_dataset([tmp_path / "in"], tmp_path / "out", policy=bad, workers=0)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("extends: dataset\ndataset:\n  ai_origin: {watermarks: [nope]}\n")
    with pytest.raises(GuardError, match="unknown scheme"):
        filter_dataset([tmp_path / "in"], tmp_path / "out", policy=unknown, workers=0)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something.txt").write_text("x")
    with pytest.raises(GuardError, match="is not empty"):
        filter_dataset([tmp_path / "in"], tmp_path / "busy", workers=0)
    filter_dataset([tmp_path / "in"], tmp_path / "busy", workers=0, overwrite=True)
    assert (tmp_path / "busy" / "summary.json").is_file()
