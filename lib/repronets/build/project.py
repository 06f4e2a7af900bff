"""The project a build works in: its folders (notebooks, parameters, figures, build, site), one notebook's job in
them, and the error a build reports before any work."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

from ..runs import params as params_mod
from ..runs.results import RunStore

KERNEL_NAME = "repronets"
DEFAULT_TIMEOUT_S = {"smoke": 600, "quick": 1800, "paper": 0}  # 0: no limit
STAMP = ".build.json"
MANIFEST = "MANIFEST.json"


@dataclasses.dataclass(frozen=True)
class Project:
    """The checkout, and the parameter set a build reads: ``params/`` (the profiles' own), or another folder of
    ``<profile>/<notebook>.yaml`` files, e.g. ``params/real_mnist`` (the README's runs on the papers' datasets),
    whose outputs go to ``figures/<set>/<profile>/`` so they never replace a profile's own."""

    root: Path
    params_set: Path | None = None
    dry_run: bool = False  # --dry-run: outputs under build/dry-run/, runs in build/dry-run/runs (own keys anyway)
    # run_all.sh verify: figures/, build/ and runs/ under this folder instead (the checkout's are left alone)
    scratch: Path | None = None

    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def params_dir(self) -> Path:
        return self.params_set or self.root / "params"

    def _folder(self, kind: str, profile: str) -> Path:
        base = self.scratch or self.root
        where = base / "build" / "dry-run" / kind if self.dry_run else base / kind
        return where / (f"{self.params_set.name}/{profile}" if self.params_set else profile)

    @property
    def runs(self) -> RunStore:
        """The kernels' run store: $REPRONETS_RUNS or runs/; a dry run's own folder; a scratch project's own."""
        if self.dry_run:
            return RunStore((self.scratch or self.root) / "build" / "dry-run" / "runs")
        return RunStore(self.scratch / "runs") if self.scratch else RunStore()

    def figures(self, profile: str) -> Path:
        return self._folder("figures", profile)

    def label(self, profile: str) -> str:
        label = f"{profile} profile" + (f", parameters {self.params_set.name}" if self.params_set else "")
        return label + (", dry run (training cut short: no result)" if self.dry_run else "")

    def build(self, profile: str) -> Path:
        return self._folder("build", profile)

    def site(self, profile: str) -> Path:
        """The results site of a profile (repronets.build.site): build/site/<profile>/."""
        return self._folder("build/site", profile)

    def site_sources(self, profile: str) -> Path:
        """Where repronets.build.site writes the site's Sphinx sources and builds it: build/site-src/<profile>/."""
        return self._folder("build/site-src", profile)

    @classmethod
    def from_arguments(cls, root: Path, params_dir: Path | None, dry_run: bool = False) -> Project:
        """The project of a command line's ``--params-dir`` (None, or params/ itself: the profiles' own files).
        Raises ValueError, naming the option, when the folder does not exist."""
        params_set = params_dir.resolve() if params_dir else None
        if params_set == root / "params":
            params_set = None
        elif params_set is not None and not params_set.is_dir():
            raise ValueError(f"--params-dir {params_dir}: no such folder")
        return cls(root, params_set, dry_run)

    def notebooks(self) -> list[str]:
        return sorted(p.stem for p in self.notebooks_dir.glob("*.ipynb"))

    def notebooks_at(self, profile: str) -> list[str]:
        """The notebooks a build of ``profile`` runs by default: all of them, or those a parameter set has files
        for (``params/real_mnist`` gives only some notebooks some profiles)."""
        if self.params_set is None:
            return self.notebooks()
        return [n for n in self.notebooks() if params_mod.params_path(n, profile, self.params_dir).exists()]


@dataclasses.dataclass
class Job:
    notebook: str
    source: Path
    params_file: Path
    params: dict
    input_hash: str
    staging: Path
    published: Path
    log: Path
    status: str = "pending"  # ok | skipped | failed | timeout | interrupted
    error: str = ""
    started: str = ""
    finished: str = ""
    duration_s: float = 0.0

    @property
    def executed(self) -> Path:
        return (self.published if self.status in ("ok", "skipped") else self.staging) / f"{self.notebook}.ipynb"


class BuildError(RuntimeError):
    """Bad arguments or parameters, found before any notebook runs."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
