"""Atomic output: a target is either the old file or the complete new one, whatever happens in between."""

from __future__ import annotations

import subprocess
import sys

import pytest

from guard.files import atomic_path, write_atomic


def test_write_replaces_target_in_one_step(tmp_path):
    target = tmp_path / "out" / "image.png"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["image.png"]


def test_failure_inside_the_block_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "image.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]


def test_a_killed_process_never_leaves_a_half_written_target(tmp_path):
    target = tmp_path / "image.png"
    target.write_bytes(b"old")
    script = (
        "import os, signal, sys\n"
        "from guard.files import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(target)], check=False)
    assert result.returncode != 0
    assert target.read_bytes() == b"old"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "image.png"]
    assert all(name.startswith(".image.png.") and name.endswith(".tmp") for name in leftovers)


def test_target_under_a_file_is_a_guard_error_naming_it(tmp_path):
    from guard.errors import GuardError

    (tmp_path / "photo.png").write_bytes(b"not a folder")
    with pytest.raises(GuardError, match=r"Cannot write .*photo\.png/out\.png: .*photo\.png is a file, not a folder"):
        write_atomic(tmp_path / "photo.png" / "out.png", b"data")


def test_target_that_is_a_folder_is_a_guard_error_and_leaves_no_temporary(tmp_path):
    from guard.errors import GuardError

    (tmp_path / "out.png").mkdir()
    with pytest.raises(GuardError, match="Cannot write"):
        write_atomic(tmp_path / "out.png", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert list((tmp_path / "out.png").iterdir()) == []


def test_other_os_errors_inside_the_block_pass_through(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.png"):
        (tmp_path / "missing").read_bytes()
