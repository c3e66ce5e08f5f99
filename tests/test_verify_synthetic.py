"""The synthetic-image classifier in the verifier: used when its weights are configured, reported as not run
otherwise, and never a crash when the detectors package or its model is missing."""

from __future__ import annotations

import builtins

import pytest

from guard.verify import Verifier
from guard.verify import synthetic_evidence as syn
from guard.verify.trust import VerifyTrust


class FixedScore:
    """A detector with the detectors protocol whose score is set by the test."""

    name = "synthetic"

    def __init__(self, score: float, reason: str | None = None):
        self._score = score
        self.unavailable_reason = reason

    def score(self, images):
        return [{"synthetic": self._score} for _ in images]


@pytest.fixture
def verify_with(formats_dir):
    """Verify a real photo with the given synthetic-image detector (no watermark schemes: only the classifier)."""

    def verify(detector) -> dict:
        photo = formats_dir / "earth_apollo17.jpg"
        return Verifier(trust=VerifyTrust(), schemes=(), detector=detector).verify_file(photo).to_dict()

    return verify


def test_high_score_is_a_weak_ai_claim(verify_with):
    report = verify_with(FixedScore(0.93))
    assert report["synthetic"]["status"] == "ran" and report["synthetic"]["score"] == 0.93
    assert (report["verdict"]["origin"], report["verdict"]["strength"]) == ("ai-generated", "weak")


def test_low_score_clears_nothing(verify_with):
    report = verify_with(FixedScore(0.05))
    assert (report["verdict"]["origin"], report["verdict"]["strength"]) == ("unknown", "none")
    assert any("clears nothing" in reason for reason in report["verdict"]["reasons"])


def test_unavailable_detector_is_not_run_with_its_reason(verify_with):
    report = verify_with(FixedScore(0.9, reason="no probe weights configured"))
    assert report["synthetic"] == {
        "status": "not run",
        "reason": "not run (no weights configured): no probe weights configured",
    }
    assert report["verdict"]["origin"] == "unknown"


def test_missing_detectors_package_is_not_a_crash(formats_dir, monkeypatch):
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name.startswith("detectors"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    monkeypatch.setattr(syn.importlib, "import_module", lambda name: refuse(name))
    assert syn.load_synthetic_detector() is None
    report = Verifier(trust=VerifyTrust(), schemes=()).verify_file(formats_dir / "earth_apollo17.jpg").to_dict()
    assert report["synthetic"] == {"status": "not run", "reason": syn.NOT_RUN}


def test_default_without_weights_reports_why(formats_dir, monkeypatch):
    monkeypatch.delenv("GUARD_SYNTHETIC_WEIGHTS", raising=False)
    report = Verifier(trust=VerifyTrust(), schemes=()).verify_file(formats_dir / "earth_apollo17.jpg").to_dict()
    assert report["synthetic"]["status"] == "not run"
    assert report["synthetic"]["reason"].startswith(syn.NOT_RUN)
