"""Where the missing runs of a sweep are computed: in this process, in a pool of processes, or on a Slurm cluster.

    store = RunStore(executor=ExecutorConfig("slurm", partition="gpu", time_min=600, gpus=1))
    tau.experiment.run(p, store)       # submits the missing runs as one job array, waits, returns every run

Executors (:data:`EXECUTORS`):

- ``inline``: one run after another in this process (the default).
- ``local``: a pool of ``workers`` processes on this machine, the cores split between them.
- ``slurm``: one job per missing run (or batched group) through submitit, as a job array; partition, time limit,
  GPUs, CPUs, memory and account from :class:`ExecutorConfig` (flags or a YAML file); submitit's logs and pickles in
  ``<runs>/_jobs/<kind>/``. A job that reaches its time limit or is preempted gets SIGUSR2 from Slurm (submitit asks
  for it ``signal_delay_s`` before the limit), is requeued by submitit and runs the same task again, which resumes
  the run from the store's ``checkpoint.pt``.
- ``submitit_local``: submitit's local executor (the same job files and requeue path, without Slurm).

Each task writes its result into the store itself (the submitting process only waits), so a second submission, or
another user's, skips what is done; a run whose lock another worker holds is not submitted again but waited for.
Locks are ``flock`` on ``<run>/.lock``: the run store must be on a filesystem whose ``flock`` works across the
nodes that share it (a local disk, NFSv4, Lustre mounted with ``-o flock``, GPFS, BeeGFS); where it does not the
store says so before any work starts.

A task is pickled with cloudpickle (submitit's own serialiser) so that closures and partial functions travel; the
experiments pass dataset names rather than tensors to tasks that run elsewhere, so a job reads its data itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

EXECUTORS = ("inline", "local", "slurm", "submitit_local")
ENV = "REPRONETS_EXECUTOR"  # the executor of the run stores a build's kernels open: ExecutorConfig as JSON
EXECUTED_BY = "REPRONETS_EXECUTED_BY"  # set in a worker: which executor runs it (recorded in each result's meta)


def worker_record() -> dict:
    """Where a run was computed, for its result's metadata: the executor, and the Slurm job (whose logs are in
    ``<runs>/_jobs/<kind>/``, named by job id)."""
    record = {"executor": os.environ.get(EXECUTED_BY, "inline")}
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        record["slurm_job"] = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    elif os.environ.get("SLURM_JOB_ID"):
        record["slurm_job"] = os.environ["SLURM_JOB_ID"]
    return record


class ExecutorError(RuntimeError):
    """Runs that failed on the executor; the message names each and where its log is."""


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    name: str = "inline"
    workers: int = 0  # local: processes (0: one per usable core); slurm: array jobs at once (0: Slurm's limit)
    partition: str = ""
    account: str = ""
    time_min: int = 240  # a job's time limit; a run that needs longer is requeued and resumes from its checkpoint
    gpus: int = 0  # per job
    cpus: int = 4  # per job
    mem_gb: float = 16.0  # per job
    signal_delay_s: int = 120  # SIGUSR2 this long before the time limit: submitit requeues the job then (the run
    # resumes from its last checkpoint: the work since, at most one epoch, is done again)
    max_requeues: int = 10  # submitit's timeout countdown
    wait_timeout_s: float = 0.0  # give up waiting after this long (0: as long as the jobs take)
    extra: dict = dataclasses.field(default_factory=dict)  # more submitit parameters, e.g. {"slurm_qos": "high"}

    def __post_init__(self):
        if self.name not in EXECUTORS:
            raise ValueError(f"unknown executor {self.name!r}: choose one of {list(EXECUTORS)}")
        for key in ("workers", "time_min", "gpus", "cpus", "signal_delay_s", "max_requeues"):
            value = getattr(self, key)
            least = 1 if key in ("time_min", "cpus") else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"executor setting {key!r}: expected an integer >= {least}, got {value!r}")
        if (
            isinstance(self.wait_timeout_s, bool)
            or not isinstance(self.wait_timeout_s, (int, float))
            or not (self.wait_timeout_s >= 0)
        ):
            raise ValueError(f"executor setting 'wait_timeout_s': expected seconds >= 0, got {self.wait_timeout_s!r}")
        if self.name in ("slurm", "submitit_local"):
            _require_submitit()

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides) -> "ExecutorConfig":
        """Settings from a YAML file (keys as the fields), then ``overrides`` (flags given)."""
        try:
            values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as e:
            raise ValueError(f"--executor-config {path}: cannot be read ({e.strerror or e})") from e
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"--executor-config {path}: not valid YAML ({e})") from e
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of executor settings")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"{path}: unknown executor settings {unknown}; allowed: {sorted(fields)}")
        return cls(**{**values, **overrides})

    @classmethod
    def from_env(cls) -> "ExecutorConfig":
        """The executor run_all.sh hands its kernels (``$REPRONETS_EXECUTOR``: this class as JSON)."""
        text = os.environ.get(ENV)
        if not text:
            return cls()
        try:
            values = json.loads(text)
            if not isinstance(values, dict):
                raise TypeError(f"expected a JSON object, got {type(values).__name__}")
            return cls(**values)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"{ENV}={text!r}: {e}; it is set by run_all.sh --executor (unset it, or use --executor there)"
            ) from e

    def check_available(self) -> None:
        """Raise ValueError now if this machine cannot submit to the executor (before any notebook starts)."""
        if self.name != "slurm":
            return
        way_out = "run on a Slurm login node, or use --executor local (processes here)"
        missing = [tool for tool in ("sbatch", "srun", "sinfo") if shutil.which(tool) is None]
        if missing:
            raise ValueError(
                f"--executor slurm: this machine has no Slurm ({', '.join(missing)} not on PATH); {way_out}"
            )
        try:  # the tools without a controller to answer them: every job would fail after its notebook started
            done = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=20)
            error = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
        except subprocess.TimeoutExpired:
            error = "no answer within 20 s"
        if error:
            raise ValueError(f"--executor slurm: Slurm does not answer here (sinfo: {error}); {way_out}")

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))


def _require_submitit():
    try:
        import submitit  # noqa: F401
    except ImportError as e:
        raise ValueError("the slurm and submitit_local executors need submitit: pip install 'repronets[slurm]'") from e


# ---------------------------------------------------------------- executors


def execute(config: ExecutorConfig, tasks: list, jobs_folder: Path) -> None:
    """Run every task on the executor of ``config``; raise :class:`ExecutorError` naming the failed ones. A task is a
    picklable callable with ``describe()`` (its name in errors) and, for Slurm requeues, ``checkpoint()``: the run
    store's :class:`repronets.runs.results.RunTask`."""
    if not tasks:
        return
    if config.name == "inline":
        for task in tasks:
            task()
        return
    failures = _local_pool(config, tasks) if config.name == "local" else _submitit(config, tasks, jobs_folder)
    if failures:
        lines = "\n".join(f"  {task.describe()}: {why}" for task, why in failures)
        raise ExecutorError(f"{len(failures)} of {len(tasks)} task(s) failed on the {config.name} executor:\n{lines}")


def _local_pool(config: ExecutorConfig, tasks: list) -> list:
    import concurrent.futures
    import multiprocessing

    import cloudpickle

    from ..core.numerics import usable_cores

    workers = min(config.workers or usable_cores(), len(tasks))
    threads = max(1, usable_cores() // workers)
    # spawn, not fork: a forked child of a process whose torch has started its thread pools can deadlock.
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_set_threads, initargs=(threads,)
    ) as pool:
        futures = {pool.submit(_run_pickled, cloudpickle.dumps(task)): task for task in tasks}
        failures = []
        try:
            for future in concurrent.futures.as_completed(futures, timeout=config.wait_timeout_s or None):
                if future.exception() is not None:
                    e = future.exception()
                    failures.append((futures[future], f"{type(e).__name__}: {e}"))
        except concurrent.futures.TimeoutError:
            unfinished = [f for f in futures if not f.done()]
            for f in unfinished:  # those not started are dropped; the ones running finish into the store
                f.cancel()
            raise ExecutorError(
                f"gave up after {config.wait_timeout_s:g} s (wait_timeout_s) with {len(unfinished)} of {len(tasks)} "
                f"local task(s) unfinished; the finished runs are in the store, so running again computes only "
                f"the rest (raise --wait-timeout, or 0 to wait as long as they take)"
            ) from None
    return failures


def _set_threads(threads: int) -> None:
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _run_pickled(blob: bytes) -> None:
    import pickle

    pickle.loads(blob)()


def _submitit(config: ExecutorConfig, tasks: list, jobs_folder: Path) -> list:
    import submitit

    jobs_folder.mkdir(parents=True, exist_ok=True)
    cluster = "slurm" if config.name == "slurm" else "local"
    # max_num_timeout: how often a job may be requeued after its time limit (a constructor argument in submitit)
    # One folder for every job's files (submitit names them by job id): a "%j" folder would be created literally.
    executor = submitit.AutoExecutor(
        folder=jobs_folder, cluster=cluster, **{f"{cluster}_max_num_timeout": config.max_requeues}
    )
    parameters = dict(
        name=f"repronets-{tasks[0].kind}",
        timeout_min=config.time_min,
        cpus_per_task=config.cpus,
        gpus_per_node=config.gpus,
        mem_gb=config.mem_gb,
    )
    if config.name == "slurm":
        parameters.update(
            slurm_signal_delay_s=config.signal_delay_s,
            **({"slurm_partition": config.partition} if config.partition else {}),
            **({"slurm_account": config.account} if config.account else {}),
            **({"slurm_array_parallelism": config.workers} if config.workers else {}),
        )
    executor.update_parameters(**parameters, **config.extra)
    with executor.batch():
        jobs = [executor.submit(task) for task in tasks]
    print(f"submitted {len(jobs)} job(s) to {config.name}: {', '.join(j.job_id for j in jobs)}", flush=True)
    deadline = time.monotonic() + config.wait_timeout_s if config.wait_timeout_s else None
    pending = list(jobs)
    while pending:  # without Slurm accounting a job that died unseen is never done: hence the optional deadline
        pending = [j for j in pending if not j.done()]
        if pending and deadline is not None and time.monotonic() > deadline:
            ids = ", ".join(j.job_id for j in pending)
            raise ExecutorError(
                f"gave up after {config.wait_timeout_s:.0f} s waiting for job(s) {ids}; their logs are in "
                f"{jobs_folder}; finished runs are in the store, so submitting again skips them"
            )
        if pending:
            time.sleep(2)
    failures = []
    for task, job in zip(tasks, jobs):
        error = job.exception()
        if error is not None:
            last_line = str(error).strip().splitlines()[-1]
            failures.append((task, f"{last_line} (job {job.job_id}, logs {job.paths.folder})"))
    return failures


# ---------------------------------------------------------------- command line


def add_arguments(parser) -> None:
    """The executor flags of ``python -m repronets.<paper>`` and ``run_all.sh``."""
    group = parser.add_argument_group("executor (where missing runs are computed)")
    group.add_argument("--executor", choices=EXECUTORS, default=None, help="default: inline (this process)")
    group.add_argument("--executor-config", metavar="YAML", help="executor settings (keys of ExecutorConfig)")
    group.add_argument("--workers", type=int, help="local: processes; slurm: array jobs running at once")
    group.add_argument("--partition", help="slurm partition")
    group.add_argument("--account", help="slurm account")
    group.add_argument("--time-min", type=int, help="a job's time limit in minutes (runs resume after a requeue)")
    group.add_argument("--gpus", type=int, help="GPUs per job")
    group.add_argument("--cpus", type=int, help="CPUs per job")
    group.add_argument("--mem-gb", type=float, help="memory per job")
    group.add_argument("--wait-timeout", type=float, dest="wait_timeout_s", help="seconds to wait for the jobs")


def from_arguments(args) -> ExecutorConfig | None:
    """The ExecutorConfig the flags describe (file, then flags), or None when none was given."""
    keys = ("workers", "partition", "account", "time_min", "gpus", "cpus", "mem_gb", "wait_timeout_s")
    given = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if args.executor is None and args.executor_config is None and not given:
        return None
    if args.executor:
        given["name"] = args.executor
    config = (
        ExecutorConfig.from_file(args.executor_config, **given) if args.executor_config else ExecutorConfig(**given)
    )
    config.check_available()
    return config
