"""The installed environment is what pyproject.toml says: every third-party import of houqin is declared,
no package's files were overwritten by another's, and pip finds nothing broken."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import packages_distributions, requires, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("houqin", "collectors", "rules", "api", "grafana", "assembly")


def _name(requirement: str) -> str:
    for stop in ";[<>=!~ ":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower().replace("_", "-")


def test_every_third_party_import_is_declared() -> None:
    imported: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    imported.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    declared = {_name(r) for r in requires("houqin") or [] if "extra ==" not in r}
    distributions = packages_distributions()
    missing = {
        module: where
        for module, where in imported.items()
        if module not in sys.stdlib_module_names
        and module not in PACKAGES
        and not any(_name(d) in declared for d in distributions.get(module, []))
    }
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


@pytest.mark.parametrize("module, distribution", [("urllib3", "urllib3"), ("yaml", "PyYAML"), ("httpx", "httpx")])
def test_what_is_imported_is_the_distribution_pip_installed(module: str, distribution: str) -> None:
    # urllib3-future (brought once by a Grafana client) installed itself as ``urllib3`` over the real one.
    imported = __import__(module)
    assert getattr(imported, "__version__", None) == version(distribution)


def test_pip_check_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
