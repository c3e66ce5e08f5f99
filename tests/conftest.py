"""Fixtures shared by the provenance tests: a signing identity per test module, and trust in its CA."""

from __future__ import annotations

import pytest

from guard.provenance.credentials.c2pa import TrustConfig
from guard.provenance.credentials.keys import init_identity, local_trust_anchor


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
