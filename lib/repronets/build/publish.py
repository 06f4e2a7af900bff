"""Publishing a build's outputs: one build per folder at a time (a lock), the staging folder moved into place in one
rename, the profile's MANIFEST.json, and the log of stored runs the kernels did not reuse."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import sys
import threading
from pathlib import Path

from ..core import fileio
from ..runs import provenance
from ..runs.provenance import OUTPUTS_RECORD
from .project import MANIFEST, STAMP, BuildError, Job, Project, _now


class FolderLock:
    """One process at a time in a folder (a build of a profile, a site build): a flock on ``<folder>/.lock``. The
    second process stops with a clear error naming the holder, or with ``wait``, says so and waits its turn."""

    def __init__(
        self, folder: Path, what: str = "build of this profile", wait: bool = False, out=sys.stderr, lock_name=".lock"
    ):
        self.path, self.what, self.wait, self.out = folder / lock_name, what, wait, out

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "unknown"
            if not self.wait:
                self.file.close()
                raise BuildError(
                    f"another {self.what} is running ({holder}); wait for it to finish or stop it (lock: {self.path})"
                ) from None
            print(f"waiting for another {self.what} to finish ({holder}; lock: {self.path})", file=self.out, flush=True)
            fcntl.flock(self.file, fcntl.LOCK_EX)
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()}, started {_now()}")
        self.file.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def reuse_log(project: Project, profile: str) -> Path:
    """The file the kernels' run stores name each stored run they did not reuse in (see repronets.runs.results)."""
    return project.build(profile) / "not_reused.jsonl"


def report_not_reused(log: Path, out) -> None:
    """Once per build: how many stored runs the kernels computed again because other numerics made them, and why."""
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    why = {}
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError, KeyError):
            entry = json.loads(line)
            why[entry["run"]] = entry["why"]
    if not why:
        return
    print(f"{len(why)} stored run(s) were not reused, because other numerics computed them:", file=out)
    for reason, n in collections.Counter(why.values()).most_common():
        print(f"  {n} run(s): {reason}", file=out)


def read_manifest(path: Path) -> dict:
    """A profile's MANIFEST.json; raises BuildError naming the file and the way out when it cannot be read (a merge
    conflict leaves it cut short or with conflict markers)."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest.get("outputs"), dict):
            raise ValueError("it has no 'outputs' record")
    except (ValueError, AttributeError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BuildError(
            f"{path} is not a readable manifest ({e}); restore it (git checkout -- {path.name}, in its folder) "
            f"or delete it and rebuild the profile with --force"
        ) from e
    return manifest


def _publish(job: Job) -> dict:
    """Move the staging folder into place in one rename; returns the notebook's record of its outputs."""
    record_file = job.staging / OUTPUTS_RECORD
    records = json.loads(record_file.read_text()) if record_file.exists() else {}
    fileio.write_json(
        job.staging / STAMP,
        {
            "input_hash": job.input_hash,
            "outputs": sorted(records),
            "finished": job.finished,
            "duration_s": job.duration_s,
        },
    )
    fileio.replace_folder(job.staging, job.published)
    return records


def _update_manifest(project: Project, profile: str, job: Job, records: dict, lock: threading.Lock) -> None:
    common = {
        "notebook": job.notebook,
        # relative to the checkout when it is inside it (a parameter set may live anywhere: --params-dir)
        "params_file": str(
            job.params_file.relative_to(project.root)
            if job.params_file.is_relative_to(project.root)
            else job.params_file
        ),
        "params": job.params,
        "input_hash": job.input_hash,
        **provenance.git_state(project.root),
        "versions": provenance.package_versions(),
        "started": job.started,
        "finished": job.finished,
        "duration_s": job.duration_s,
    }
    with lock:
        path = project.figures(profile) / MANIFEST
        manifest = read_manifest(path) if path.exists() else {"profile": profile, "outputs": {}}
        manifest["outputs"] = {
            k: v
            for k, v in manifest["outputs"].items()
            if v.get("notebook") != job.notebook and (path.parent / k).exists()  # a record of a file, or of nothing
        }
        for name in sorted(records) + [f"{job.notebook}.ipynb"]:
            record = records.get(name, {"kind": "executed notebook", "device": None, "runs": [], "data": []})
            manifest["outputs"][f"{job.notebook}/{name}"] = {
                **common,
                **record,
                "device": record.get("device") or provenance.describe_device(),
            }
        manifest["updated"] = _now()
        fileio.write_json(path, manifest)
