"""The layers are one-way: `policies`, `detectors` and `generation` never import `guard`."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOWER = ("policies", "detectors", "generation")


def _modules(package: str) -> list[str]:
    folder = ROOT / package
    return [package] + [f"{package}.{info.name}" for info in pkgutil.walk_packages([str(folder)])]


@pytest.mark.parametrize("package", LOWER)
def test_no_source_line_imports_guard(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "guard"]
    assert offenders == []


@pytest.mark.parametrize("package", LOWER)
def test_importing_every_module_loads_no_guard_module(package):
    modules = _modules(package)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'guard' or m.startswith('guard.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_user_errors_of_every_layer_map_to_exit_code_2():
    from detectors.errors import DetectorError
    from generation.errors import GenerationError, ModelLoadError
    from guard.errors import GuardError, user_errors
    from policies.errors import PolicyError

    assert set(user_errors()) == {GuardError, PolicyError, DetectorError, ModelLoadError, GenerationError}
