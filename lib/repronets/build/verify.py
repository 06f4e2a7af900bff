"""``./run_all.sh verify``: does this machine reproduce the published figures?

Rebuilds a profile (default quick) from an empty run store of its own, in a scratch folder
(``build/verify/<profile>/``: its own ``figures/``, ``build/`` and ``runs/``; the checkout's are not touched), then
compares every output with the committed one (``git show HEAD:figures/...``; the working tree's files outside git).
It prints each file that differs, is missing or is new, and exits 1 on any. Not compared: the outputs that measure
the machine (``*_timing.*``: README, "Determinism") and the build's records of provenance (``MANIFEST.json``,
``outputs.json``: dates, wall times, hosts), which no two builds share.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..core import fileio, numerics
from ..runs import executors, provenance
from ..runs.provenance import OUTPUTS_RECORD
from .pipeline import build
from .project import MANIFEST, STAMP, BuildError, Project

# provenance records, and the stability check's report (about a perturbed rebuild, not an output of the build)
NOT_COMPARED = {MANIFEST, OUTPUTS_RECORD, STAMP, ".lock", "STABILITY.md"}


def compared(relative: str) -> bool:
    """Whether an output (a path below a profile's figures folder) must be the same on every machine."""
    name = Path(relative).name
    return name not in NOT_COMPARED and not name.endswith(".ipynb") and not provenance.is_timing(name)


def committed_outputs(root: Path, folder: Path, revision: str = "HEAD") -> dict[str, bytes] | None:
    """The files under ``folder`` as ``revision`` holds them (relative path -> bytes); None outside git."""
    relative = folder.relative_to(root).as_posix()
    try:
        listing = subprocess.run(
            ["git", "ls-tree", "-r", "-z", "--name-only", revision, "--", f"{relative}/"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return None
    out = {}
    for path in filter(None, listing.split("\0")):
        blob = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=root, capture_output=True, check=True)
        out[path[len(relative) + 1 :]] = blob.stdout
    return out


def files_below(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def compare(published: dict[str, bytes], rebuilt: dict[str, bytes]) -> dict[str, list[str]]:
    """The compared outputs that differ, that the rebuild lacks, and that only the rebuild has."""
    published = {k: v for k, v in published.items() if compared(k)}
    rebuilt = {k: v for k, v in rebuilt.items() if compared(k)}
    return {
        "identical": sorted(k for k in published if k in rebuilt and published[k] == rebuilt[k]),
        "differ": sorted(k for k in published if k in rebuilt and published[k] != rebuilt[k]),
        "missing": sorted(set(published) - set(rebuilt)),
        "new": sorted(set(rebuilt) - set(published)),
    }


def arguments(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line that ``verify`` and ``stability`` share: which build to redo, and how."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--profile", default="quick", help="smoke | quick (default) | paper")
    parser.add_argument("--params-dir", type=Path, default=None, help="another parameter set (e.g. params/real_mnist)")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="notebooks at once (default as run_all.sh)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per notebook (default by profile)")
    parser.add_argument("--against", default="HEAD", help="the git revision whose figures are compared (HEAD)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder after a rebuild that verified")
    numerics.add_argument(parser)
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


class Rebuild:
    """A profile rebuilt from an empty run store in ``build/<kind>/<set>/<profile>/`` beside the published one."""

    def __init__(self, parser: argparse.ArgumentParser, args, kind: str):
        self.root = (args.root or fileio.project_root()).resolve()
        if args.timeout is not None and args.timeout < 0:
            parser.error(f"--timeout {args.timeout:g}: give seconds per notebook, or 0 for no limit")
        try:
            numerics.check_argument(args)
            project = Project.from_arguments(self.root, args.params_dir)
        except ValueError as e:
            parser.error(str(e))
        self.args = args
        label = f"{project.params_set.name}/{args.profile}" if project.params_set else args.profile
        self.scratch = self.root / "build" / kind / label
        self.project = Project(self.root, project.params_set, scratch=self.scratch)
        self.published_dir = Project(self.root, project.params_set).figures(args.profile)
        self.figures = self.project.figures(args.profile)

    def published(self) -> dict[str, bytes]:
        """The published outputs: as ``--against`` holds them, or the working tree's outside git."""
        out = committed_outputs(self.root, self.published_dir, self.args.against)
        if out is None:
            out = files_below(self.published_dir) if self.published_dir.is_dir() else {}
        return out

    def run(self) -> int:
        """Rebuild; 0 when every notebook built, else the build's status (2: it could not start)."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        os.environ.pop(executors.ENV, None)  # the runs are computed in the kernels, as a plain ./run_all.sh does
        if (self.published_dir / MANIFEST).exists():  # the published build's durations order the notebooks
            self.figures.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.published_dir / MANIFEST, self.figures / MANIFEST)
        print(
            f"{self.project.label(self.args.profile)}: rebuilding from an empty run store in {self.scratch}", flush=True
        )
        try:
            status = build(self.project, self.args.profile, [], self.args.jobs, force=True, timeout_s=self.args.timeout)
        except BuildError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if status != 0:
            print(f"the rebuild failed (logs under {self.project.build(self.args.profile)})")
        return status


def main(argv: list[str] | None = None) -> int:
    parser = arguments(
        "run_all.sh verify",
        "Rebuild a profile from an empty run store in a scratch folder and compare every output with the "
        "committed one (machine measurements, *_timing.*, and provenance records excepted); exit 1 on a difference.",
    )
    args = parser.parse_args(argv)
    rebuild = Rebuild(parser, args, "verify")
    published = rebuild.published()
    if not published:
        print(
            f"run_all.sh verify: error: nothing is published under {rebuild.published_dir} to compare with",
            file=sys.stderr,
        )
        return 2
    status = rebuild.run()
    if status != 0:
        print("verify: nothing was compared")
        return status
    result = compare(published, files_below(rebuild.figures))
    where = rebuild.published_dir.relative_to(rebuild.root).as_posix()
    for what in ("differ", "missing", "new"):
        for name in result[what]:
            print(f"verify: {what:<7} {where}/{name}")
    bad = sum(len(result[k]) for k in ("differ", "missing", "new"))
    print(
        f"verify: {len(result['identical'])} output(s) identical, {len(result['differ'])} differ, "
        f"{len(result['missing'])} missing from the rebuild, {len(result['new'])} not published "
        f"(compared with {args.against}; *_timing outputs and provenance records not compared)"
    )
    if bad:
        print(f"verify: FAILED: the rebuild is kept in {rebuild.figures}")
        return 1
    if not args.keep:
        shutil.rmtree(rebuild.scratch, ignore_errors=True)
    print(f"verify: this machine reproduces {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
