"""environment.yml (conda) and pyproject.toml (pip) must install the same package set."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

# conda-forge spells a few packages differently from PyPI.
CONDA_NAME_FOR = {
    "uvicorn[standard]": "uvicorn-standard",
    "prometheus-client": "prometheus-client",
    "redis": "redis-py",  # conda-forge's "redis" is the server
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi_names(conda_spelling: bool = True) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    names = set()
    for requirement in requirements:
        name = re.match(r"^[A-Za-z0-9._-]+(\[[a-z,]+\])?", requirement).group(0)
        if conda_spelling:
            name = CONDA_NAME_FOR.get(name, name)
        name = re.sub(r"\[.*\]", "", name)
        names.add(canonical(name))
    return names


def conda_names() -> set[str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for entry in environment["dependencies"]:
        # Packages conda-forge lacks are named in the pip section, by their PyPI names.
        for name in [entry] if isinstance(entry, str) else entry.get("pip", []):
            match = re.match(r"^[A-Za-z0-9_][A-Za-z0-9._-]*", name)
            if match:
                names.add(canonical(match.group(0)))
    return names - {"python", "pip"}


def test_conda_and_pip_install_the_same_packages():
    only_pip, only_conda = pypi_names() - conda_names(), conda_names() - pypi_names()
    assert not only_pip, f"in pyproject.toml but not environment.yml: {sorted(only_pip)}"
    assert not only_conda, f"in environment.yml but not pyproject.toml: {sorted(only_conda)}"


def test_conda_environment_uses_conda_forge_python_311_and_installs_the_project():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]
    assert "python=3.11" in environment["dependencies"]
    pip_section = next(e["pip"] for e in environment["dependencies"] if isinstance(e, dict))
    assert '-e ".[dev]"' in pip_section and "-c requirements/lock.txt" in pip_section


def test_lock_file_pins_every_direct_dependency_exactly():
    pins = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line)
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    wanted = pypi_names(conda_spelling=False)
    missing = sorted(wanted - pins.keys())
    assert not missing, f"not pinned in requirements/lock.txt (run make lock): {missing}"
    # A lock that names this machine's wheel folder would fail on every other machine.
    assert "\n--find-links" not in (ROOT / "requirements" / "lock.txt").read_text()
