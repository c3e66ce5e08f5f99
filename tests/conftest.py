"""Fixtures every test module may use: where the shared test data lives, a signing identity per module,
trust in its CA, and a throwaway PostgreSQL server.

The shared data (real files made by other tools, the C2PA trust lists and rubrics, the labelled prompt corpus)
sits beside the repository in `../shared`; `SHARED_DIR` is the one place that says so. Tests take it through
the `shared_dir` fixture (or `formats_dir`, `c2pa_dir`, `conformance_dir` below it); only a parametrisation
that lists files at collection time reads `SHARED_DIR` itself.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from guard.provenance.credentials.c2pa import TrustConfig
from guard.provenance.credentials.keys import init_identity, local_trust_anchor

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """A model cache for this test session (`GUARD_MODEL_CACHE`), so tests never write to the user's cache:
    the prompt classifier's int8 encoder is built into it once, on first use (a few seconds)."""
    from detectors.settings import MODEL_CACHE

    folder = tmp_path_factory.mktemp("model-cache")
    previous = os.environ.get(MODEL_CACHE)
    os.environ[MODEL_CACHE] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(MODEL_CACHE, None)
    else:
        os.environ[MODEL_CACHE] = previous


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the repository: fixtures, C2PA conformance data, the prompt corpus."""
    return SHARED_DIR


@pytest.fixture(scope="session")
def formats_dir(shared_dir) -> Path:
    """Real images in every format the project reads, made by other tools."""
    return shared_dir / "fixtures" / "formats"


@pytest.fixture(scope="session")
def c2pa_dir(shared_dir) -> Path:
    """Files carrying Content Credentials made by c2pa-python's test suite."""
    return shared_dir / "fixtures" / "c2pa"


@pytest.fixture(scope="session")
def conformance_dir(shared_dir) -> Path:
    """The official C2PA trust lists, conforming products list and Asset Rubrics."""
    return shared_dir / "c2pa-conformance"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A guard home holding a fresh local signing identity (root CA + ES256 signer), one per test module."""
    home = tmp_path_factory.mktemp("home")
    init_identity(home)
    return home


@pytest.fixture(scope="module")
def trust(home):
    """Trust configuration with the identity's CA as anchor, so its manifests validate as Trusted."""
    return TrustConfig(anchors=(local_trust_anchor(home),))


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def pg_url():
    """A SQLAlchemy URL of a PostgreSQL server started for this module (Unix socket in a temporary folder)."""
    pytest.importorskip("psycopg")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # The server refuses to run as root: run it as the `postgres` user when we are root.
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="guard-pg-"))
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, user="postgres")
    folder.chmod(0o700)
    data = folder / "data"
    options = f"-k {folder} -c listen_addresses='' -F"
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "guard", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"cannot start a PostgreSQL server here: {exc.stderr.decode(errors='replace').strip()[:200]}")
    try:
        yield f"postgresql+psycopg://guard@/postgres?host={folder}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (two CPUs, a small object store, no dashboard)."""
    import ray

    ray.init(
        num_cpus=2,
        object_store_memory=128 * 1024 * 1024,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()
