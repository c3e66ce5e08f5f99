"""A crash anywhere in `protect` never leaves a published image without its store record, nor a half file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from guard.errors import GuardError
from guard.protect import Protector, protect_image
from guard.provenance.credentials.keys import SigningIdentity
from guard.provenance.credentials.store import ManifestStore


def _image() -> Image.Image:
    image = Image.effect_mandelbrot((256, 256), (-2, -1.5, 1, 1.5), 100).convert("RGB")
    return image


def _run_killed(home: Path, out_dir: Path, when: str) -> subprocess.CompletedProcess:
    """Protect one image in a child process that SIGKILLs itself `before` or `after` the store commit."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from PIL import Image
        from guard.protect import Protector, protect_image
        from guard.provenance.credentials.keys import SigningIdentity
        from guard.provenance.credentials.store import ManifestStore

        original_add = ManifestStore.add

        def add(self, record, conn=None):
            if {when!r} == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            original_add(self, record, conn)
            if conn is None:  # the outer call: its transaction has committed
                os.kill(os.getpid(), signal.SIGKILL)

        ManifestStore.add = add
        store = ManifestStore.open("sqlite:///{out_dir / "store.db"}")
        protector = Protector(identity=SigningIdentity.load({str(home)!r}), store=store)
        image = Image.effect_mandelbrot((256, 256), (-2, -1.5, 1, 1.5), 100).convert("RGB")
        protect_image(image, {str(out_dir / "out.jpg")!r}, protector=protector)
        """
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and not p.name.startswith("store.db"))


def test_kill_before_the_commit_leaves_no_record_and_no_output(home, tmp_path):
    child = _run_killed(home, tmp_path, "before")
    assert child.returncode == -9, child.stderr
    assert _visible(tmp_path) == []
    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        assert store.count() == 0


def test_kill_between_commit_and_rename_leaves_a_record_but_never_an_unrecorded_file(home, tmp_path):
    child = _run_killed(home, tmp_path, "after")
    assert child.returncode == -9, child.stderr
    assert _visible(tmp_path) == []
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".out.jpg.")]
    assert all(p.suffix == ".tmp" for p in leftovers)
    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        assert store.count() == 1


def test_failed_rename_removes_the_record(home, tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        protector = Protector(identity=SigningIdentity.load(home), store=store)
        monkeypatch.setattr("guard.files.os.replace", refuse)
        with pytest.raises(GuardError, match=r"Cannot write .*out\.jpg: Permission denied"):
            protect_image(_image(), tmp_path / "out.jpg", protector=protector)
        assert store.count() == 0
    assert _visible(tmp_path) == []
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_failed_signing_writes_nothing(home, tmp_path, monkeypatch):
    import guard.protect
    from guard.errors import GuardError

    real_build = guard.protect.build_manifest

    def without_created_action(**options):
        definition = real_build(**options)
        definition["assertions"][0]["data"]["actions"].pop(0)
        return definition

    # c2pa itself refuses the claim: "first action must be created or opened".
    monkeypatch.setattr(guard.protect, "build_manifest", without_created_action)
    with ManifestStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        protector = Protector(identity=SigningIdentity.load(home), store=store)
        with pytest.raises(GuardError, match="c2pa refused the manifest"):
            protect_image(_image(), tmp_path / "out.jpg", protector=protector)
        assert store.count() == 0
    assert _visible(tmp_path) == []
