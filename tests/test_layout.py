"""The house's rules (docs/DESIGN.md, "Layout"): imports go one way, the scripts stay thin."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [
    "train.py",
    "embedder_inference.py",
    "fine_tuning_training.py",
    "webcam_inference.py",
    "evaluate.py",
    "app.py",
]
# What each package may import of the project (besides itself): nothing above it.
ALLOWED = {
    "utils": set(),
    "params": {"utils"},
    "dataset": {"params", "utils"},
    "network": {"params"},
    "metrics": {"dataset", "params", "utils"},
    "loss": {"dataset", "network", "params", "utils"},
    "models": {"dataset", "network", "params", "utils"},
    "runtime": {"dataset", "loss", "params", "utils"},
    "person": {"dataset", "loss", "metrics", "models", "network", "params", "runtime", "utils"},
    "live": {"dataset", "models", "network", "params", "runtime", "utils"},
    "training": {"dataset", "loss", "metrics", "models", "network", "params", "runtime", "utils"},
    "evaluation": {"dataset", "metrics", "models", "params", "person", "runtime", "utils"},
    "webapp": {
        "dataset",
        "evaluation",
        "live",
        "metrics",
        "models",
        "params",
        "person",
        "runtime",
        "utils",
    },
}


def project_imports(path: Path) -> set[str]:
    """Top-level project packages a file imports (at any depth in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found |= {name.split(".")[0] for name in names if name.split(".")[0] in ALLOWED}
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_lies_below_it(package):
    wrong = {
        str(path.relative_to(ROOT)): sorted(project_imports(path) - ALLOWED[package] - {package})
        for path in sorted((ROOT / package).glob("*.py"))
    }
    assert {file: names for file, names in wrong.items() if names} == {}


def test_person_and_live_run_without_the_training_package():
    """Transitively too: importing every module of person/ and live/ loads nothing of
    training/ (the meta-learning package)."""
    modules = [
        f"{package}.{path.stem}"
        for package in ("person", "live", "webapp")
        for path in sorted((ROOT / package).glob("*.py"))
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'training'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=True,
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_scripts_at_the_top_stay_thin(script):
    lines = len((ROOT / script).read_text(encoding="utf-8").splitlines())
    assert lines < 80, f"{script} has {lines} lines: move the work into a package"
