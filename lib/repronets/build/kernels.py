"""Running one notebook: a worker process executes it with papermill in a kernel of this interpreter, under a
timeout, and takes its kernel down with it however it ends.

Kernels: every notebook runs in a kernel started from this very interpreter (not a kernelspec looked up by
name, which may point at another environment), over IPC sockets: the TCP ports that jupyter_client picks
for parallel kernels can collide (papermill's ``-j`` port race); file sockets cannot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..core import fileio
from ..runs import params as params_mod
from ..runs.results import REUSE_LOG_ENV
from .project import KERNEL_NAME, Job, Project, _now
from .publish import reuse_log


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
    """Drop the widget half of outputs that also carry a static image (``repronets.report.explore``): without the
    widget's state, which no headless run has, a reader (JupyterLab, GitHub, the results site) would try the widget
    and show an error or nothing instead of the image."""
    import nbformat

    from ..report.explore import WIDGET_VIEW

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
    env[REUSE_LOG_ENV] = str(reuse_log(project, profile))
    env[params_mod.INJECTED_FROM] = str(job.params_file)  # the kernel's values are that whole file (session.py)
    if threads:  # -j N: share the cores instead of N processes each using all of them
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [
        sys.executable,
        "-m",
        "repronets.build.kernels",
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


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
