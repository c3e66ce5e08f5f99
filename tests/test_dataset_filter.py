"""`guard filter-dataset` end to end on WebDataset shards made from real photos: every case decided right, the
outputs in the input's layout, the same output from the Ray engine, and a SIGKILLed job resumed to the
same bytes. The real models run (NudeNet and open_nsfw on benign photos, their scores recorded)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from itertools import pairwise
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import yaml
from dataset_builder import build_webdataset
from serve_support import free_port

from guard.dataset.readers import tar_groups
from guard.filter_dataset import filter_dataset

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_FILES = ("samples.parquet", "shards", "review")


@pytest.fixture(scope="module")
def dataset(home, tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    items, opt_out = build_webdataset(root / "in", home)
    return root / "in", items, opt_out


@pytest.fixture(scope="module")
def local_run(dataset, tmp_path_factory):
    inputs, _, opt_out = dataset
    out = tmp_path_factory.mktemp("local") / "out"
    summary = filter_dataset([inputs], out, opt_out=[opt_out], workers=2)
    return out, summary


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out / "samples.parquet").to_pylist()


def _files(out: Path) -> dict[str, bytes]:
    """Every output file (not the work folder, not summary.json's timings) by relative path."""
    found = {}
    for name in OUTPUT_FILES:
        target = out / name
        paths = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
        found.update({str(p.relative_to(out)): p.read_bytes() for p in paths})
    return found


def _members(tar_path: Path) -> list[str]:
    with tarfile.open(tar_path) as tar:
        return tar.getnames()


def test_every_sample_gets_the_decision_and_reason_it_should(dataset, local_run):
    _, items, _ = dataset
    out, _ = local_run
    rows = _rows(out)
    assert [row["key"] for row in rows] == sorted(items)  # job order: shard, then position
    for row in rows:
        item = items[row["key"]]
        categories = {reason["category"] for reason in row["reasons"]}
        assert row["decision"] == item.expect, (row["key"], row["reasons"])
        assert item.categories <= categories, (row["key"], row["reasons"])
        if item.expect == "keep":
            assert row["reasons"] == []
        assert row["duplicate_of"] == item.duplicate_of


def test_evidence_is_recorded_per_sample(local_run):
    out, _ = local_run
    rows = {row["key"]: row for row in _rows(out)}
    sources = {key: {e["source"] for e in row["opt_out"] + row["ai_origin"]} for key, row in rows.items()}
    assert sources["000000002"] == {"c2pa:c2pa.training-mining"}
    assert "notAllowed" in rows["000000002"]["opt_out"][0]["detail"]
    assert sources["000000003"] == {"xmp:plus:DataMining"}
    assert sources["000000004"] == {"list:domain"}
    assert sources["000000005"] == {"header:X-Robots-Tag"}
    assert sources["000010000"] == {"watermark:guard"}
    assert "0badc0ffee01" in rows["000010000"]["ai_origin"][0]["detail"]
    assert sources["000010001"] == {"watermark:sd-v1"}
    assert sources["000010002"] == {"c2pa:digitalSourceType"}
    assert sources["000010004"] == {"metadata:text:parameters"}
    assert sources["000010006"] == {"list:artist"}
    assert sources["000010007"] == {"header:tdm-reservation"}
    assert sources["000020003"] == {"c2pa:cawg.training-mining"}
    assert rows["000010003"]["duplicate_distance"] <= 4 and rows["000010003"]["duplicate_of_shard"] == "00000"
    assert "truncated" in rows["000000006"]["error"]


def test_both_models_score_every_readable_image_and_benign_photos_score_low(local_run):
    out, _ = local_run
    for row in _rows(out):
        scores = [row["nudenet_explicit_nudity"], row["nudenet_suggestive"], row["open_nsfw_nsfw"]]
        if row["decision"] == "error":
            assert scores == [None, None, None] and row["phash"] is None
            continue
        assert all(score is not None and 0.0 <= score < 0.2 for score in scores), (row["key"], scores)
        assert len(row["phash"]) == 16 and row["detector_errors"] == []


def test_kept_samples_are_written_in_the_input_layout(dataset, local_run):
    inputs, _, _ = dataset
    out, _ = local_run
    rows = _rows(out)
    for shard in ("00000", "00001", "00002", "00003"):
        kept = [row["key"] for row in rows if row["shard"] == shard and row["decision"] == "keep"]
        members = _members(out / "shards" / f"{shard}.tar")
        assert [name.split(".")[0] for name in members[::3]] == kept
        source = {
            m.name: (m.mtime, m.mode, data) for _, group, _ in tar_groups(inputs / f"{shard}.tar") for m, data in group
        }
        with tarfile.open(out / "shards" / f"{shard}.tar") as written:
            for name in members:  # the members' bytes and headers are copied as they were
                info = written.getmember(name)
                assert (info.mtime, info.mode, written.extractfile(name).read()) == source[name]
        assert pq.read_table(out / "shards" / f"{shard}.parquet").column("key").to_pylist() == kept
    review = _members(out / "review" / "00002.tar")
    assert review == ["000020002.jpg", "000020002.txt", "000020002.json"]
    assert sorted(p.name for p in (out / "review").iterdir()) == ["00002.parquet", "00002.tar"]
    assert oct((out / "shards" / "00000.tar").stat().st_mode & 0o777) != oct(0o600)  # not left private


def test_summary_counts_and_threshold_sweep(dataset, local_run):
    _, items, _ = dataset
    out, summary = local_run
    assert json.loads((out / "summary.json").read_text()) == summary
    expected = {decision: sum(item.expect == decision for item in items.values()) for decision in ("keep", "drop")}
    assert (summary["samples"], summary["kept"], summary["dropped"]) == (len(items), expected["keep"], expected["drop"])
    assert (summary["review"], summary["errors"]) == (1, 3)
    assert summary["by_category"]["opt_out"] == 7 and summary["by_category"]["ai_origin"] == 4
    assert summary["by_category"]["duplicate"] == 1
    sweep = dict(summary["sweep"])
    captions = sweep.pop("caption_score")  # the caption classifier's highest score per caption
    assert captions["policy_thresholds"] == [0.81, 0.89, 0.9]  # hate; sexual; gore and self-harm
    assert summary["caption_check"] == "rules+classifier"
    assert captions["scored"] == summary["samples"]  # a caption is read even when its image is not
    assert set(sweep) == {"nudenet_explicit_nudity", "nudenet_suggestive", "open_nsfw_nsfw"}
    assert sweep["open_nsfw_nsfw"]["policy_thresholds"] == [0.5, 0.8]
    readable = summary["samples"] - summary["errors"]
    for column in sweep.values():
        assert column["scored"] == readable
        counts = [(g["at_or_above"], g["kept_at_or_above"]) for g in column["grid"]]
        assert all(a >= b for a, b in counts) and all(x >= y for x, y in pairwise(counts))
    rows = _rows(out)
    for column, found in sweep.items():  # each count is what the recorded scores say
        for point in found["grid"]:
            over = [row for row in rows if row[column] is not None and row[column] >= point["threshold"]]
            assert point["at_or_above"] == len(over)
            assert point["kept_at_or_above"] == sum(row["decision"] == "keep" for row in over)
    throughput = summary["throughput"]
    assert throughput["samples_scored"] == len(items)
    assert 0 < throughput["first_result_seconds"] <= throughput["scoring_seconds"]
    assert throughput["steady_samples_per_second"] > 0
    assert summary["detectors"]["open_nsfw"]["providers"][-1] == "CPUExecutionProvider"


def test_policy_thresholds_on_real_scores(dataset, local_run, tmp_path):
    """A stricter open_nsfw threshold, set between the recorded scores of the kept samples, drops exactly those
    at or above it — what the sweep predicted."""
    inputs, _, opt_out = dataset
    out, summary = local_run
    kept = sorted(row["open_nsfw_nsfw"] for row in _rows(out) if row["decision"] == "keep")
    threshold = (kept[-1] + kept[-2]) / 2
    policy = tmp_path / "strict.yaml"
    sexual = {
        "image": [
            {"detector": "nudenet", "label": "explicit_nudity", "min_score": 0.35},
            {"detector": "open_nsfw", "label": "nsfw", "min_score": threshold},
        ]
    }
    policy.write_text(yaml.safe_dump({"extends": "dataset", "categories": {"sexual": sexual}}))
    stricter = filter_dataset([inputs], tmp_path / "out", policy=policy, opt_out=[opt_out], workers=0)
    assert stricter["kept"] == summary["kept"] - 1
    before = {row["key"]: row for row in _rows(out)}
    after = {row["key"]: row for row in _rows(tmp_path / "out")}
    newly = [key for key, row in after.items() if before[key]["decision"] == "keep" != row["decision"]]
    assert len(newly) == 1 and after[newly[0]]["open_nsfw_nsfw"] == kept[-1]
    assert any(r["rule"] == f"image:open_nsfw.nsfw>={threshold:g}" for r in after[newly[0]]["reasons"])
    at_or_above = sum(1 for row in before.values() if (row["open_nsfw_nsfw"] or 0) >= threshold)
    assert sum(1 for row in after.values() if any(r["category"] == "sexual" for r in row["reasons"])) >= at_or_above


def test_ray_engine_writes_the_same_output(dataset, local_run, ray_local, tmp_path, capsys):
    inputs, _, opt_out = dataset
    out, summary = local_run
    summary_ray = filter_dataset([inputs], tmp_path / "ray", opt_out=[opt_out], engine="ray", workers=2)
    assert "execution finished" not in capsys.readouterr().err  # Ray Data's own INFO lines stay in its log
    assert _files(tmp_path / "ray") == _files(out)
    assert pq.read_table(tmp_path / "ray" / "samples.parquet").equals(pq.read_table(out / "samples.parquet"))
    assert summary_ray["throughput"]["engine"] == "ray"
    assert {k: summary_ray[k] for k in ("samples", "kept", "by_category", "sweep")} == {
        k: summary[k] for k in ("samples", "kept", "by_category", "sweep")
    }


def test_sigkill_then_resume_gives_the_uninterrupted_output(dataset, local_run, tmp_path):
    inputs, _, opt_out = dataset
    reference, summary = local_run
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from guard.cli import main; main()", "filter-dataset", str(inputs)]
    command += ["-o", str(out), "--opt-out", str(opt_out), "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    scored = out / ".work" / "scored"
    deadline = time.monotonic() + 240
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and child.poll() is None:
        workers = psutil.Process(child.pid).children(recursive=True) or workers
        if scored.is_dir() and any(p.suffix == ".parquet" for p in scored.iterdir()):
            break
        time.sleep(0.05)
    assert child.poll() is None, child.stderr.read().decode()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    done = sorted(p.name for p in scored.iterdir() if p.suffix == ".parquet")
    assert 1 <= len(done) < 4  # killed mid-run: some shards checkpointed, not all
    assert not (out / "samples.parquet").exists() and not (out / "summary.json").exists()
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert alive == []  # the workers noticed and left

    with pytest.raises(Exception, match="already holds a filter job"):
        filter_dataset([inputs], out, opt_out=[opt_out], workers=1)
    resumed = filter_dataset([inputs], out, opt_out=[opt_out], workers=1, resume=True)
    assert resumed["shards"]["resumed"] == len(done)
    assert _files(out) == _files(reference)
    assert {k: resumed[k] for k in ("samples", "kept", "dropped", "by_category", "sweep")} == {
        k: summary[k] for k in ("samples", "kept", "dropped", "by_category", "sweep")
    }
    again = filter_dataset([inputs], out, opt_out=[opt_out], workers=1, resume=True)  # nothing left to score
    assert again["shards"]["scored"] == 0 and _files(out) == _files(reference)


def test_resume_refuses_a_changed_job(dataset, local_run):
    inputs, _, _ = dataset
    out, _ = local_run
    with pytest.raises(Exception, match="other settings \\(opt_out changed\\)"):
        filter_dataset([inputs], out, workers=0, resume=True)


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)


def test_an_engine_that_cannot_start_leaves_no_job_behind(dataset, monkeypatch, tmp_path):
    """Ray unreachable (say) before any shard is scored: one error, and the same command then just runs."""
    import guard.filter_dataset as job
    from guard.errors import GuardError

    class Unreachable:
        name, workers = "ray", 2

        def run(self, *args, **kwargs):
            raise GuardError("cannot start or reach Ray at ray://nowhere:10001: connection refused.")

    inputs, _, opt_out = dataset
    monkeypatch.setattr(job, "make_engine", lambda *args, **kwargs: Unreachable())
    with pytest.raises(GuardError, match="cannot start or reach Ray"):
        filter_dataset([inputs], tmp_path / "out", opt_out=[opt_out], engine="ray")
    assert not (tmp_path / "out" / ".work").exists()
    monkeypatch.undo()
    summary = filter_dataset([inputs], tmp_path / "out", opt_out=[opt_out], workers=0)
    assert summary["samples"] > 0


def test_ray_client_address_runs_the_job_on_a_separate_cluster(dataset, local_run, tmp_path):
    """`--address ray://HOST:PORT` against a Ray head started apart (as on a real cluster): Ray Data cannot be
    driven from a Ray Client, so an actor on the cluster drives it; the outputs are the local engine's."""
    import shutil
    import tempfile

    inputs, _, opt_out = dataset
    reference, _ = local_run
    ray_bin = Path(sys.executable).with_name("ray")
    folder = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))  # Ray's socket paths must stay short
    client_port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    head_command = [str(ray_bin), "start", "--head", "--block", "--num-cpus", "2", "--include-dashboard", "false"]
    head_command += [f"--port={free_port()}", f"--ray-client-server-port={client_port}", f"--temp-dir={folder}"]
    head_command += [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}"]
    head_log = tmp_path / "head.log"
    with head_log.open("wb") as log:
        head = subprocess.Popen(head_command, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        command = [sys.executable, "-c", "from guard.cli import main; main()", "filter-dataset", str(inputs)]
        command += ["-o", str(tmp_path / "out"), "--opt-out", str(opt_out), "--engine", "ray", "--workers", "2"]
        command += ["--address", f"ray://127.0.0.1:{client_port}", "--json"]
        _wait_for_port(client_port, head)  # the head's client server takes a few seconds to listen
        for _ in range(4):  # a just-started client server can still refuse a first client ("Initialization
            # failure from server"); a refused start leaves no job behind, so the same command runs again
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            if done.returncode == 0 or "cannot start or reach Ray" not in done.stderr:
                break
            time.sleep(3)
        assert done.returncode == 0, done.stderr[-2000:] + head_log.read_text(errors="replace")[-2000:]
        assert json.loads(done.stdout)["throughput"]["engine"] == "ray"
        assert _files(tmp_path / "out") == _files(reference)
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
