"""What made an output: code version, package versions, device. Recorded beside every result and figure."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

from ..core import fileio

# Each output folder's record of what made each file (written by session, read by the pipeline).
OUTPUTS_RECORD = "outputs.json"
# An output whose file name (before its extension) ends in this measures the machine's speed (times, images/s, time
# ratios): it is written apart from the results, the manifest marks it as a machine measurement, and
# ``run_all.sh verify`` does not compare it. Every other output is the same on any x86-64 machine.
TIMING_SUFFIX = "_timing"


def is_timing(file_name: str) -> bool:
    """Whether an output file (``table_cifar10_timing.md``, ``CLAIMS_timing.md``) is a machine measurement."""
    return Path(file_name).name.split(".", 1)[0].endswith(TIMING_SUFFIX)


PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "pandas", "matplotlib", "seaborn", "papermill")


def git_state(root: Path | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout at ``root``. Changes under ``figures/``
    and to ``README.md`` do not count: they are the build's own outputs (a build publishes one notebook's outputs,
    and rewrites the README's generated blocks, before the next notebook runs, which would otherwise mark every
    later notebook of a clean checkout as dirty; the README feeds no computation)."""
    root = root or fileio.project_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)figures",
                ":(exclude)README.md",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


@functools.cache
def package_versions() -> dict:
    import torch

    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["torch"] = torch.__version__  # with the build tag (+cpu, +cu132), which the metadata lacks
    versions["cuda"] = torch.version.cuda
    return versions


def describe_device(device: str | None = None) -> str:
    """A human-readable name of the device that ran the work, e.g. ``cuda:0 (NVIDIA H100)`` or ``cpu (2 threads)``."""
    import torch

    device = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


def record(device: str | None = None) -> dict:
    """The provenance block stored with results and outputs."""
    return {
        "git": git_state(),
        "versions": package_versions(),
        "device": describe_device(device),
        "host": platform.node(),
    }
