"""The environment files agree: environment.yml (conda) names what pyproject.toml (pip) names, with the same lower
bounds, and the lock file pins a version of every package within pyproject's ranges, with hashes."""

import re
import subprocess
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}


def pyproject_requirements() -> list[Requirement]:
    """The library's dependencies and every extra's, the project's own extras (repronets[...]) left out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lists = [project["dependencies"], *project["optional-dependencies"].values()]
    return [r for r in map(Requirement, (s for lst in lists for s in lst)) if canonicalize_name(r.name) != "repronets"]


def conda_requirements() -> list[Requirement]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = [d for d in env["dependencies"] if isinstance(d, str) and d.split("=")[0] not in ("python", "pip")]
    return [Requirement(re.sub(r"^([\w-]+)", lambda m: CONDA_TO_PIP.get(m[1], m[1]), s)) for s in specs]


def locked_versions(lock: str = "requirements.lock") -> dict[str, str]:
    text = (ROOT / lock).read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\;]+)", text, re.M)
    return {canonicalize_name(name): version for name, version in pins}


SITE_LOCK = "requirements-site.lock"  # the [site] extra, installed on top of the main lock


def test_environment_yml_names_what_pyproject_names_with_the_same_bounds():
    pip = {canonicalize_name(r.name): str(r.specifier) for r in pyproject_requirements()}
    conda = {canonicalize_name(r.name): str(r.specifier) for r in conda_requirements()}
    assert conda == pip, (
        f"only in environment.yml: {conda.items() - pip.items()}; only in pyproject: {pip.items() - conda.items()}"
    )
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert {"pip": ["-e ."]} in env["dependencies"]
    assert "conda-forge" in env["channels"]


def test_the_library_needs_torch_and_numpy_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {canonicalize_name(Requirement(r).name) for r in project["dependencies"]} == {"torch", "numpy"}


def test_user_named_packages_are_in_the_full_environment():
    names = {canonicalize_name(r.name) for r in pyproject_requirements()}
    assert {"torch", "torchvision", "jupyterlab", "papermill", "matplotlib", "seaborn"} <= names


def test_the_site_lock_keeps_the_main_locks_versions():
    main, site = locked_versions(), locked_versions(SITE_LOCK)
    assert {"sphinx", "myst-nb", "sphinx-book-theme"} <= site.keys()
    moved = {k: (main[k], v) for k, v in site.items() if k in main and main[k] != v}
    assert not moved, f"{SITE_LOCK} moves packages of requirements.lock: {moved}; run ./run_all.sh lock"


def test_lock_satisfies_pyproject_ranges():
    locked = {**locked_versions(SITE_LOCK), **locked_versions()}
    for r in pyproject_requirements():
        name = canonicalize_name(r.name)
        assert name in locked, f"{r.name} is in pyproject.toml but not in requirements.lock: run ./run_all.sh lock"
        assert r.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {r.name}=={locked[name]}, outside pyproject's {r}: run ./run_all.sh lock"
        )


@pytest.mark.parametrize("lock", ["requirements.lock", SITE_LOCK])
def test_every_locked_package_carries_hashes(lock):
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", (ROOT / lock).read_text())
    pinned = [b for b in blocks if re.match(r"[A-Za-z0-9_.-]+==", b)]
    assert len(pinned) == len(locked_versions(lock)) > 100
    unhashed = [b.split()[0] for b in pinned if "--hash=sha256:" not in b]
    assert not unhashed, f"pins without hashes: {unhashed}"


def test_shell_scripts_are_valid_bash_and_executable():
    for script in (ROOT / "run_all.sh", ROOT / ".ci" / "run"):
        assert script.stat().st_mode & 0o111, script
        subprocess.run(["bash", "-n", str(script)], check=True)
