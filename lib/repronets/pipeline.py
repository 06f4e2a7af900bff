"""Rebuild notebooks headlessly with papermill: ``python -m repronets.pipeline`` (what ``run_all.sh`` runs).

For each selected notebook at a profile:

1. its parameters are loaded from ``params/<profile>/<notebook>.yaml`` and validated, all before any work;
2. it is skipped when ``figures/<profile>/<notebook>/`` holds the outputs of the same inputs (the hash of the
   notebook's source, the library's source, the params file and the profile);
3. otherwise it runs in its own worker process, into a staging folder ``build/<profile>/<notebook>/``,
   under a wall-clock timeout (a dead kernel can leave papermill waiting for ever);
4. on success the staging folder replaces the published one in one rename, and ``MANIFEST.json`` gets one
   entry per output file; on failure the published outputs are left as they were and the partially
   executed notebook stays in the staging folder, named in the summary.

Kernels: every notebook runs in a kernel started from this very interpreter (not a kernelspec looked up by
name, which may point at another environment), over IPC sockets: the TCP ports that jupyter_client picks
for parallel kernels can collide (papermill's ``-j`` port race); file sockets cannot.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from . import claims, executors, fileio, numerics, provenance, readme
from . import params as params_mod
from .provenance import OUTPUTS_RECORD
from .results import REUSE_LOG_ENV, RunStore

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
        """The results site of a profile (repronets.site): build/site/<profile>/."""
        return self._folder("build/site", profile)

    def site_sources(self, profile: str) -> Path:
        """Where repronets.site writes the site's Sphinx sources and builds it: build/site-src/<profile>/."""
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


# ---------------------------------------------------------------- inputs and caching


def notebook_source(path: Path) -> str:
    """The part of a notebook that determines its results: cell types and sources (not outputs or metadata)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return json.dumps(
        [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"]) for c in nb["cells"]]
    )


def library_files() -> list[Path]:
    package = Path(__file__).resolve().parent
    return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)


def input_hash(project: Project, notebook: str, profile: str) -> str:
    h = hashlib.sha256()
    h.update(f"profile={profile}\n".encode())
    h.update(notebook_source(project.notebooks_dir / f"{notebook}.ipynb").encode())
    h.update(params_mod.params_path(notebook, profile, project.params_dir).read_bytes())
    claim_file = claims.claim_file(notebook, project.root)  # its verdicts are outputs too
    h.update(b"claims\0" + (claim_file.read_bytes() if claim_file.exists() else b""))
    for name, identity in dataset_identities(params_mod.as_dict(params_mod.load(notebook, profile, project.params_dir))):
        h.update(f"data {name}\0{identity}\n".encode())  # other files under a dataset's name: other results
    package = Path(__file__).resolve().parent
    for f in library_files():
        h.update(str(f.relative_to(package)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:20]


def dataset_identities(params: dict) -> list[tuple[str, str]]:
    """(dataset, :func:`repronets.data.identity`) for every dataset a notebook's parameters name (the values of its
    keys that hold ``dataset`` in their name), read from its data root."""
    from . import data

    names = []
    for key, value in params.items():
        if "dataset" in key:
            names += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    root = params.get("data_root") or None
    return [(n, data.identity(n, root)) for n in sorted(set(names)) if n in data.DATASETS + data.TABULAR_DATASETS]


def _reuse_log(project: Project, profile: str) -> Path:
    """The file the kernels' run stores name each stored run they did not reuse in (see repronets.results)."""
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


def up_to_date(job: Job) -> bool:
    stamp = job.published / STAMP
    if not stamp.exists():
        return False
    try:
        record = json.loads(stamp.read_text())
    except json.JSONDecodeError:
        return False
    files = [job.published / f for f in record.get("outputs", [])] + [job.published / f"{job.notebook}.ipynb"]
    return record.get("input_hash") == job.input_hash and all(f.exists() for f in files)


# ---------------------------------------------------------------- execution


def _kernel_manager_class():
    """A kernel manager that starts ``sys.executable``'s ipykernel over IPC sockets in a private folder."""
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec
    from traitlets import CaselessStrEnum

    class EnvironmentKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            folder = os.environ.get("REPRONETS_KERNEL_DIR") or tempfile.mkdtemp(prefix="repronets-kernel-")
            self.ip = os.path.join(folder, "socket")
            # jupyter_client writes the connection file with tempfile.mkstemp (in $TMPDIR) when none is named
            self.connection_file = os.path.join(folder, "kernel.json")

        @property
        def kernel_spec(self):
            return KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name=f"Python ({KERNEL_NAME})",
                language="python",
                name=KERNEL_NAME,
            )

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart)
            if not restart:
                shutil.rmtree(os.path.dirname(self.ip), ignore_errors=True)

    return EnvironmentKernelManager


def execute_notebook(source: Path, output: Path, parameters: dict, cwd: Path) -> None:
    """Run one notebook with papermill in this process (the worker side of :func:`_run_job`)."""
    import papermill

    papermill.execute_notebook(
        str(source),
        str(output),
        parameters=parameters,
        kernel_name=KERNEL_NAME,
        kernel_manager_class=_kernel_manager_class(),
        cwd=str(cwd),
        progress_bar=False,
        log_output=True,
        request_save_on_cell_execute=True,
        # No front end draws widgets here: their state would only weigh on the saved notebook.
        store_widget_state=False,
    )
    _keep_static_views(output)


def _keep_static_views(notebook: Path) -> None:
    """Drop the widget half of outputs that also carry a static image (``repronets.explore``): without the widget's
    state, which no headless run has, a reader (JupyterLab, GitHub, the results site) would try the widget and show
    an error or nothing instead of the image."""
    import nbformat

    from .explore import WIDGET_VIEW

    nb = nbformat.read(notebook, as_version=4)
    changed = False
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data and "image/png" in data:
                del data[WIDGET_VIEW]
                changed = True
    if changed:
        fileio.atomic_write(notebook, lambda f: nbformat.write(nb, f))


def _worker(argv: list[str]) -> int:
    import logging

    # papermill reports each cell and, with log_output, the cells' output through logging: into the job's log.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    source, output, parameters_file, cwd = argv
    _die_with_parent()
    error_file = Path(output).parent / "error.json"
    try:
        execute_notebook(Path(source), Path(output), json.loads(Path(parameters_file).read_text()), Path(cwd))
    except Exception as e:  # the worker reports any failure of the notebook to the pipeline, then exits 1
        ename, evalue = getattr(e, "ename", type(e).__name__), getattr(e, "evalue", str(e))
        fileio.write_json(error_file, {"ename": ename, "evalue": evalue.splitlines()[0] if evalue else ""})
        print(f"notebook failed: {ename}: {evalue}", file=sys.stderr)
        return 1
    return 0


class _Running:
    """The worker processes in flight, so an interrupt can stop them with their kernels."""

    def __init__(self):
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen] = set()
        self.stopping = False

    def kill_all(self) -> None:
        with self.lock:
            self.stopping = True
            for p in self.procs:
                _kill_tree(p.pid)


def _kill_tree(pid: int) -> None:
    """Kill a process and all its descendants.

    Not ``killpg``: jupyter_client starts each kernel in a session of its own, so killing the worker's process
    group would leave its kernel running. psutil (a dependency of ipykernel) finds the descendants by parentage.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def _die_with_parent() -> None:
    """In a worker: if the pipeline process dies (even by SIGKILL), take this worker and its kernel down too."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        _kill_tree(os.getpid())

    threading.Thread(target=watch, daemon=True).start()


def _run_job(job: Job, profile: str, timeout_s: float, threads: int | None, running: _Running, project: Project) -> Job:
    shutil.rmtree(job.staging, ignore_errors=True)
    job.staging.mkdir(parents=True)
    parameters = {**job.params, "profile": profile, "output_dir": str(job.staging)}
    if project.dry_run:
        parameters["dry_run"] = True
    parameters_file = job.staging.parent / f".{job.notebook}.parameters.json"
    fileio.write_json(parameters_file, parameters)
    # The kernel's sockets and connection file live in a folder of this job, removed when its worker ends, however
    # it ends: a worker killed by an interrupt or a timeout cannot clean up after its kernel.
    kernel_dir = tempfile.mkdtemp(prefix="repronets-kernel-")
    env = dict(os.environ, PYTHONUNBUFFERED="1", REPRONETS_HEADLESS="1")
    env.update(REPRONETS_KERNEL_DIR=kernel_dir, REPRONETS_RUNS=str(project.runs.root))
    env[REUSE_LOG_ENV] = str(_reuse_log(project, profile))
    env[params_mod.INJECTED_FROM] = str(job.params_file)  # the kernel's values are that whole file (session.py)
    if threads:  # -j N: share the cores instead of N processes each using all of them
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [
        sys.executable,
        "-m",
        "repronets.pipeline",
        "_worker",
        str(job.source),
        str(job.staging / f"{job.notebook}.ipynb"),
        str(parameters_file),
        str(job.source.parent),
    ]
    job.started = _now()
    t0 = time.perf_counter()
    with open(job.log, "w") as log:
        with running.lock:
            if running.stopping:
                job.status = "interrupted"
                shutil.rmtree(kernel_dir, ignore_errors=True)
                return job
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            running.procs.add(proc)
        try:
            rc = proc.wait(timeout=timeout_s or None)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait()
            rc = None
        finally:
            with running.lock:
                running.procs.discard(proc)
            shutil.rmtree(kernel_dir, ignore_errors=True)
    job.duration_s = round(time.perf_counter() - t0, 2)
    job.finished = _now()
    if running.stopping:
        job.status, job.error = "interrupted", "stopped by an interrupt"
    elif rc is None:
        job.status, job.error = "timeout", f"no result after {timeout_s:.0f} s (per-notebook timeout); killed"
    elif rc != 0:
        job.status = "failed"
        err = job.staging / "error.json"
        info = json.loads(err.read_text()) if err.exists() else {"ename": f"exit {rc}", "evalue": "see the log"}
        job.error = f"{info['ename']}: {info['evalue']}"
        for folder in (job.log.parent, job.staging):  # a full disk cuts the log short too: say so here
            full = fileio.disk_nearly_full(folder)
            if full:
                job.error += f" (the disk is full: {full}; free space and build again)"
                break
    else:
        job.status = "ok"
    return job


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
    job.published.parent.mkdir(parents=True, exist_ok=True)
    old = job.published.with_name(f".{job.published.name}.old-{os.getpid()}")
    if job.published.exists():
        os.replace(job.published, old)
    shutil.move(str(job.staging), str(job.published))
    shutil.rmtree(old, ignore_errors=True)
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


# ---------------------------------------------------------------- the command


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


def plan(project: Project, profile: str, names: list[str]) -> list[Job]:
    """Validate everything the build depends on, and return one job per notebook; raises BuildError."""
    if profile not in params_mod.PROFILES:
        raise BuildError(f"unknown profile {profile!r}: choose one of {list(params_mod.PROFILES)}")
    known = project.notebooks()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BuildError(f"unknown notebook(s) {unknown}: the notebooks are {known}")
    problems, jobs = [], []
    selected = list(dict.fromkeys(names)) or project.notebooks_at(profile)  # a notebook named twice runs once
    if not selected:
        raise BuildError(f"{project.params_dir} has no parameters for profile {profile!r}")
    for nb in selected:
        try:
            p = params_mod.load(nb, profile, project.params_dir)
            claim_file = claims.claim_file(nb, project.root)
            if claim_file.exists():  # a bad claim file would stop the notebook at its end
                claims.load_claims(claim_file)
        except ValueError as e:  # ParamsError, and a claim file's problems
            problems.append(str(e))
            continue
        jobs.append(
            Job(
                nb,
                project.notebooks_dir / f"{nb}.ipynb",
                params_mod.params_path(nb, profile, project.params_dir),
                params_mod.as_dict(p),
                input_hash(project, nb, profile) + ("-dry-run" if project.dry_run else ""),
                project.build(profile) / nb,
                project.figures(profile) / nb,
                project.build(profile) / f"{nb}.log",
            )
        )
    if problems:
        raise BuildError("bad parameters, nothing was run:\n" + "\n".join(problems))
    return jobs


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under Slurm or taskset), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_parallel(notebooks: int) -> int:
    """Notebooks run at once by default: one more than the usable cores (at most the number to run), each with one
    thread (even a notebook built alone).

    Measured on the 2-core machine (README, "Build time"): an OpenMP thread that shares its core with another
    process stalls its partner at every parallel region (notebook 02's smoke profile 13× slower with one core kept
    busy by another process); one thread per notebook has no partner to wait for. One notebook more than cores: the
    scheduler shares the CPU per process, so beside a busy process three notebooks get 3/4 of two cores where two
    get 2/3 (full quick rebuild with one core busy: 1.43× its idle time with three, 1.55× with two); idle, the two
    took the same time within 2 %."""
    return max(1, min(usable_cores() + 1, notebooks))


def previous_durations(project: Project, profile: str) -> dict[str, float]:
    """Each notebook's cost in the last build of this profile (from its manifest), for longest-first order: its
    duration, or the wall time of the runs its outputs show where that is more (a build that found its runs cached
    was short; a fresh one trains them)."""
    path = project.figures(profile) / MANIFEST
    try:
        outputs = json.loads(path.read_text())["outputs"]
    except (OSError, json.JSONDecodeError, KeyError):
        return {}
    durations: dict[str, float] = {}
    runs: dict[str, dict[str, float]] = {}
    for entry in outputs.values():
        name = entry.get("notebook")
        if name is None:
            continue
        durations[name] = max(durations.get(name, 0.0), float(entry.get("duration_s") or 0.0))
        for run in entry.get("runs") or []:
            runs.setdefault(name, {})[f"{run.get('kind')}/{run.get('key')}"] = float(run.get("wall_time_s") or 0.0)
    return {name: max(d, sum(runs.get(name, {}).values())) for name, d in durations.items()}


def build(
    project: Project,
    profile: str,
    names: list[str],
    jobs_in_parallel: int | None = None,
    force: bool = False,
    timeout_s: float | None = None,
    out=sys.stdout,
) -> int:
    jobs = plan(project, profile, names)
    if (project.figures(profile) / MANIFEST).exists():  # read before any work: it is written after each notebook
        read_manifest(project.figures(profile) / MANIFEST)
    for folder in (project.figures(profile), project.build(profile)):
        fileio.check_writable(folder)
    if not project.runs.check_usable():  # found here, not after a kernel has started
        print(
            f"note: the run store {project.runs.root} is read-only: the notebooks use its finished runs, and one "
            f"that needs a missing run fails naming it",
            file=out,
        )
    timeout_s = DEFAULT_TIMEOUT_S[profile] if timeout_s is None else timeout_s
    manifest_lock, running = threading.Lock(), _Running()
    with FolderLock(project.figures(profile)):
        _reuse_log(project, profile).unlink(missing_ok=True)
        todo = []
        for job in jobs:
            if not force and up_to_date(job):
                job.status = "skipped"
                print(
                    f"skip {job.notebook}: up to date (inputs {job.input_hash} unchanged; --force to rebuild)",
                    file=out,
                    flush=True,
                )
            else:
                todo.append(job)
        # Longest first (by the last build's durations), so the last notebook to start is a short one.
        durations = previous_durations(project, profile)
        todo.sort(key=lambda job: -durations.get(job.notebook, 0.0))
        if jobs_in_parallel is None:  # the default: one thread per notebook, one notebook more than cores
            jobs_in_parallel, threads = default_parallel(len(todo)), 1
        else:  # -j N: the cores shared between N notebooks; -j 1: one notebook on every core
            threads = max(1, usable_cores() // jobs_in_parallel) if jobs_in_parallel > 1 else None

        def run_one(job: Job) -> Job:
            print(f"run  {job.notebook} [{profile}] -> {job.published} (log: {job.log})", file=out, flush=True)
            try:
                _run_job(job, profile, timeout_s, threads, running, project)
                if job.status == "ok":
                    _update_manifest(project, profile, job, _publish(job), manifest_lock)
            except Exception as e:  # one broken job must not end the build before the others and the summary
                job.status, job.error = "failed", f"pipeline error: {type(e).__name__}: {e}"
            print(
                f"{job.status:<4} {job.notebook} in {job.duration_s:.1f} s" + (f": {job.error}" if job.error else ""),
                file=out,
                flush=True,
            )
            return job

        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main_thread else None
        previous_int = signal.getsignal(signal.SIGINT) if in_main_thread else None
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs_in_parallel))
        try:
            futures = [pool.submit(run_one, job) for job in todo]
            for f in futures:
                f.result()
        except KeyboardInterrupt:
            if in_main_thread:  # a second Ctrl-C must not cut the cleanup and the summary short (with a traceback)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            running.kill_all()
            pool.shutdown(wait=True, cancel_futures=True)
            for job in todo:
                if job.status == "pending":
                    job.status, job.error = "interrupted", "not started"
            _summary(jobs, project, out)
            print(
                "interrupted: finished notebooks were published; run the same command again to build the rest", file=out
            )
            return 130
        finally:
            pool.shutdown(wait=True)
            if in_main_thread:
                signal.signal(signal.SIGINT, previous_int)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        report_not_reused(_reuse_log(project, profile), out)
        with_claims = [n for n in project.notebooks_at(profile) if claims.claim_file(n, project.root).exists()]
        claims.write_profile_ledger(project.figures(profile), with_claims, project.label(profile))
        lost = [j for j in todo if j.status == "ok" and not up_to_date(j)]
        for job in lost:  # e.g. figures/ removed while the build ran: nothing is reported built that is not there
            job.status = "lost"
            job.error = f"its published outputs are gone from {job.published} (removed during the build?); build again"
        if project.scratch is None and readme.update(project.root, only=project.figures(profile)):
            print("README.md: its generated blocks were rewritten from the new outputs", file=out)
    return _summary(jobs, project, out)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _summary(jobs: list[Job], project: Project, out) -> int:
    rows = [(j.notebook, j.status, f"{j.duration_s:.1f} s", os.path.relpath(j.executed, project.root)) for j in jobs]
    widths = [max(len(r[i]) for r in rows + [("notebook", "status", "duration", "output")]) for i in range(4)]
    line = "  ".join("{:<%d}" % w for w in widths)
    print("\n" + line.format("notebook", "status", "duration", "output"), file=out)
    for r in rows:
        print(line.format(*r), file=out)
    bad = [j for j in jobs if j.status not in ("ok", "skipped")]
    for j in bad:
        where = [f"partial notebook: {j.executed}"] if j.executed.exists() else []  # none if it never started
        where += [f"log: {j.log}"] if j.log.exists() else []
        print(f"FAILED {j.notebook} ({j.status}): {j.error}" + "".join(f"\n  {w}" for w in where), file=out)
    if bad:
        print(f"{len(bad)} of {len(jobs)} notebook(s) failed: {', '.join(j.notebook for j in bad)}", file=out)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        return _worker(argv[1:])
    parser = argparse.ArgumentParser(
        prog="run_all.sh",
        description=(
            "Rebuild the notebooks' figures and tables with papermill. Outputs: figures/<profile>/<notebook>/ "
            "and figures/<profile>/MANIFEST.json; logs and failed runs: build/<profile>/. "
            "'run_all.sh test' runs the test suite instead."
        ),
    )
    parser.add_argument("notebooks", nargs="*", help="notebook names (default: all), e.g. 00_data_and_baselines")
    parser.add_argument("--profile", default="quick", help="smoke | quick (default) | paper")
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help="notebooks to run in parallel, each with cores / N threads (default: usable cores + 1 notebooks, "
        "one thread each)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when the outputs are up to date")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"seconds per notebook, 0 for none (default by profile: {DEFAULT_TIMEOUT_S})",
    )
    parser.add_argument(
        "--params-dir",
        type=Path,
        default=None,
        help="another parameter set: a folder of <profile>/<notebook>.yaml (e.g. params/real_mnist); "
        "outputs go to figures/<its name>/<profile>/",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="every run of the profile with its training cut to a step or two (epochs, training-set size and the "
        "evaluation sweeps at each parameter's dry value): checks that the profile runs end to end on the data it "
        "is given; outputs under build/dry-run/, runs in build/dry-run/runs",
    )
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")
    executors.add_arguments(parser)
    numerics.add_argument(parser)
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = (args.root or provenance.project_root()).resolve()
    try:
        project = Project.from_arguments(root, args.params_dir, args.dry_run)
    except ValueError as e:
        parser.error(str(e))
    try:
        executor = executors.from_arguments(args)
        numerics.check_argument(args)
    except ValueError as e:
        parser.error(str(e))
    if executor is not None:  # the kernels' run stores dispatch their missing runs there (RunStore's default)
        os.environ[executors.ENV] = executor.to_env()
    if args.list:
        print("\n".join(project.notebooks()))
        return 0
    if args.jobs is not None and args.jobs < 1:
        parser.error("-j must be at least 1")
    if args.timeout is not None and args.timeout < 0:
        parser.error(f"--timeout {args.timeout:g}: give seconds per notebook, or 0 for no limit")
    try:
        return build(
            project,
            args.profile,
            [n.removesuffix(".ipynb") for n in args.notebooks],
            args.jobs,
            args.force,
            args.timeout,
        )
    except BuildError as e:
        print(f"run_all.sh: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable or full folder found before the notebooks run
        print(f"run_all.sh: error: {fileio.describe_os_error(e) if e.filename else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
