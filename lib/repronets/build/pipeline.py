"""Rebuild notebooks headlessly with papermill: ``python -m repronets.build.pipeline`` (what ``run_all.sh`` runs).

For each selected notebook at a profile:

1. its parameters are loaded from ``params/<profile>/<notebook>.yaml`` and validated, all before any work;
2. it is skipped when ``figures/<profile>/<notebook>/`` holds the outputs of the same inputs (the hash of the
   notebook's source, the library's source, the params file, the claim file, the datasets' files and the profile);
3. otherwise it runs in its own worker process, into a staging folder ``build/<profile>/<notebook>/``,
   under a wall-clock timeout (a dead kernel can leave papermill waiting for ever);
4. on success the staging folder replaces the published one in one rename, and ``MANIFEST.json`` gets one
   entry per output file; on failure the published outputs are left as they were and the partially
   executed notebook stays in the staging folder, named in the summary.

The pieces: :mod:`.project` (folders, jobs), :mod:`.hashing` (step 2), :mod:`.kernels` (step 3), :mod:`.publish`
(step 4, locks, the manifest); this module plans, schedules and reports.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import sys
import threading
from pathlib import Path

from ..core import fileio, numerics
from ..report import claims
from ..runs import executors
from ..runs import params as params_mod
from . import readme
from .hashing import input_hash, up_to_date
from .kernels import _run_job, _Running
from .project import DEFAULT_TIMEOUT_S, MANIFEST, BuildError, Job, Project
from .publish import FolderLock, _publish, _update_manifest, read_manifest, report_not_reused, reuse_log


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
        values = params_mod.as_dict(p)
        jobs.append(
            Job(
                nb,
                project.notebooks_dir / f"{nb}.ipynb",
                params_mod.params_path(nb, profile, project.params_dir),
                values,
                input_hash(project, nb, profile, values) + ("-dry-run" if project.dry_run else ""),
                project.build(profile) / nb,
                project.figures(profile) / nb,
                project.build(profile) / f"{nb}.log",
            )
        )
    if problems:
        raise BuildError("bad parameters, nothing was run:\n" + "\n".join(problems))
    return jobs


def default_parallel(notebooks: int) -> int:
    """Notebooks run at once by default: one more than the usable cores (at most the number to run), each with one
    thread (even a notebook built alone).

    Measured on the 2-core machine (README, "Build time"): an OpenMP thread that shares its core with another
    process stalls its partner at every parallel region (notebook 02's smoke profile 13× slower with one core kept
    busy by another process); one thread per notebook has no partner to wait for. One notebook more than cores: the
    scheduler shares the CPU per process, so beside a busy process three notebooks get 3/4 of two cores where two
    get 2/3 (full quick rebuild with one core busy: 1.43× its idle time with three, 1.55× with two); idle, the two
    took the same time within 2 %."""
    return max(1, min(numerics.usable_cores() + 1, notebooks))


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
        reuse_log(project, profile).unlink(missing_ok=True)
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
            threads = max(1, numerics.usable_cores() // jobs_in_parallel) if jobs_in_parallel > 1 else None

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
        report_not_reused(reuse_log(project, profile), out)
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
    root = (args.root or fileio.project_root()).resolve()
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
