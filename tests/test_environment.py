"""environment.yml (conda) and pyproject.toml (pip) must install the same packages."""

import re
import subprocess
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}


def names(requirements):
    return {
        CONDA_TO_PIP.get(n, n)
        for n in (re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].strip().lower() for r in requirements)
    }


def test_environment_yml_and_pyproject_name_the_same_packages():
    pip = names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = names(d for d in env["dependencies"] if isinstance(d, str)) - {"python", "pip"}
    assert conda == pip, f"only in environment.yml: {conda - pip}; only in pyproject.toml: {pip - conda}"
    assert {"pip": ["-e ."]} in env["dependencies"]
    assert "conda-forge" in env["channels"]


def test_user_named_packages_are_dependencies():
    pip = names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert {"torch", "torchvision", "jupyterlab", "papermill", "matplotlib", "seaborn"} <= pip


def test_run_all_script_is_valid_bash_and_executable():
    script = ROOT / "run_all.sh"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)
