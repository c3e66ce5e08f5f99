"""Fixtures every test module may use: where the shared test data lives, a signing identity per module, and
trust in its CA.

The shared data (real files made by other tools, the C2PA trust lists and rubrics, the labelled prompt corpus)
sits beside the repository in `../shared`; `SHARED_DIR` is the one place that says so. Tests take it through
the `shared_dir` fixture (or `formats_dir`, `c2pa_dir`, `conformance_dir` below it); only a parametrisation
that lists files at collection time reads `SHARED_DIR` itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.provenance.credentials.c2pa import TrustConfig
from guard.provenance.credentials.keys import init_identity, local_trust_anchor

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


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
