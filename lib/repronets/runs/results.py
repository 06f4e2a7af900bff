"""Runs and their results: a run is named by the hash of its canonical parameters.

``RunStore.run(kind, params, fn)`` returns the stored result when a finished run with the same key exists,
and otherwise calls ``fn(params, checkpoint_path)``, then writes the result atomically. So a sweep that is
killed halfway keeps every finished run, and the next call trains only what is missing (the unfinished run
resumes from its checkpoint when ``fn`` passes it to :func:`repronets.core.train.fit`).

The key covers parameters, not code: each experiment puts a ``code_version`` in its run parameters and bumps
it when a change alters the numbers, so stale runs are not reused. Every result also records the git commit
that made it.

Numerics: every result records the numerics that computed it (:func:`repronets.core.numerics.current`: torch's version,
the kernels' instruction set, ``avx2`` or ``native``, the CPU model, torch's thread count, the device). A stored run
is reused only when the numerics this process would compute it with match on torch's version, the instruction set,
the threads and the device (``cpu``, or ``cuda (<GPU name>)``), and, for native kernels, the CPU model
(:data:`repronets.core.numerics.REUSE_FIELDS`). So a GPU run never serves a CPU build, nor a native-ISA run a pinned
one, nor a run of torch 2.13 a build on 2.14. A run that does not match is computed again; the result it replaces is
kept in ``<run>/superseded/<n>/``, and each not-reused run is counted with its reason (:attr:`RunStore.not_reused`,
and one line per run in ``$REPRONETS_REUSE_LOG``, which ``run_all.sh`` reports once per build). To draw figures
from runs computed elsewhere (a GPU, a cluster) without computing them again, ``REPRONETS_REUSE_NUMERICS=any`` turns
the check off; each output's provenance still names every run's numerics. With an executor that computes runs in
other processes (:mod:`repronets.runs.executors`), the submitting process checks torch's version and the instruction
set; the thread count and device are the workers', checked by the worker that computes the run.

Layout: ``<runs>/<kind>/<key>/result.json`` (params, result, metadata), ``tensors.pt`` (optional), and
``checkpoint.pt`` while the run is in progress. ``result.json`` is written last: its presence means done. It holds
the SHA-256 of its own contents (``checksum``), checked whenever it is read: a result edited by hand is refused,
naming the file, rather than published. ``python -m repronets.runs.results check [ROOT]`` checks a whole store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from ..core import fileio, numerics
from . import executors, provenance


class ResultsError(RuntimeError):
    """A stored result cannot be read; the message names the file."""


def canonical(params: dict) -> str:
    """Parameters as canonical JSON: sorted keys, no spaces, floats by repr; the same dict gives the same text."""

    def default(o):
        if dataclasses.is_dataclass(o):
            return dataclasses.asdict(o)
        if isinstance(o, (tuple, set, frozenset)):
            return list(o)
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"run parameters must be plain data; got {type(o).__name__}: {o!r}")

    for v in _walk(params):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"run parameters must be finite numbers; got {v!r}")
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=default)


def _walk(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _walk(v)
    else:
        yield obj


def _world_size() -> int:
    """The processes of a ``torchrun`` launch (1 otherwise), from its environment: torch is not imported for this."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def run_key(params: dict) -> str:
    return hashlib.sha256(canonical(params).encode()).hexdigest()[:16]


@dataclasses.dataclass
class RunResult:
    key: str
    kind: str
    params: dict
    result: dict
    meta: dict
    path: Path
    cached: bool = False

    def tensors(self, map_location="cpu") -> dict:
        import torch

        file = self.path / "tensors.pt"
        return torch.load(file, map_location=map_location, weights_only=True) if file.exists() else {}


# REPRONETS_REUSE_NUMERICS=any: reuse stored runs whatever numerics computed them (to draw the figures of runs that
# a GPU or another machine computed, without computing them again here); every output still records each run's own.
ANY_NUMERICS_ENV = "REPRONETS_REUSE_NUMERICS"
# A file that each RunStore appends "<kind>/<key>: why not reused" lines to (run_all.sh sets it for every build).
REUSE_LOG_ENV = "REPRONETS_REUSE_LOG"


def _supersede(folder: Path) -> None:
    """Move a stored result that is about to be replaced (other numerics) to ``superseded/<n>/`` of its folder."""
    old = [f for f in (folder / "result.json", folder / "tensors.pt") if f.exists()]
    if not old:
        return
    n = 1 + sum(1 for _ in (folder / "superseded").glob("*")) if (folder / "superseded").is_dir() else 1
    keep = folder / "superseded" / str(n)
    keep.mkdir(parents=True, exist_ok=True)
    for f in sorted(old, key=lambda f: f.name != "result.json"):  # the result first: its absence means not done
        os.replace(f, keep / f.name)


def default_root() -> Path:
    return Path(os.environ.get("REPRONETS_RUNS") or fileio.project_root() / "runs")


class RunStore:
    """Runs under ``root`` (default: $REPRONETS_RUNS, else <project>/runs). ``executor``: where :meth:`sweep` computes
    missing runs (:mod:`repronets.runs.executors`; default: $REPRONETS_EXECUTOR, else this process)."""

    def __init__(self, root: str | os.PathLike | None = None, executor=None):
        self.root = Path(root) if root else default_root()
        self.executor = executor or executors.ExecutorConfig.from_env()
        self.not_reused: dict[str, str] = {}  # "<kind>/<key>" -> why its stored result was not reused
        self._numerics: dict[str, dict] = {}

    def numerics(self, params: dict) -> dict:
        """The numerics this process computes a run of ``params`` with (its device: ``params["device"]``, resolved)."""
        import torch

        from ..core.train import resolve_device

        asked = str(params.get("device") or "auto")
        try:
            device = str(resolve_device(asked))
        except RuntimeError:  # a CUDA run read where there is no GPU: it can only match a stored GPU run's record
            device = asked
        slot = f"{device}/{torch.get_num_threads()}"
        if slot not in self._numerics:
            self._numerics[slot] = numerics.current(device)
        return self._numerics[slot]

    def _reusable(self, found: RunResult) -> bool:
        if os.environ.get(ANY_NUMERICS_ENV) == "any":
            return True
        fields = numerics.REUSE_FIELDS if not self.runs_elsewhere else ("torch", "isa")
        why = numerics.mismatch(found.meta.get("numerics"), self.numerics(found.params), fields)
        if why:
            name = f"{found.kind}/{found.key}"
            if name not in self.not_reused:
                self.not_reused[name] = why
                log = os.environ.get(REUSE_LOG_ENV)
                if log:
                    with open(log, "a", encoding="utf-8") as f:  # one short line: O_APPEND keeps lines whole
                        f.write(json.dumps({"run": name, "why": why}) + "\n")
        return not why

    @property
    def runs_elsewhere(self) -> bool:
        """True when sweeps run in other processes: callers then hand over names, not loaded data."""
        return self.executor.name != "inline"

    def check_writable(self) -> Path:
        """Raise a clear error now if runs cannot be written or locked here (before any training starts)."""
        root = fileio.check_writable(
            self.root, "run store", "set REPRONETS_RUNS to a writable folder, or fix this one's permissions"
        )
        with _exclusive(root / ".lock-probe"):
            pass
        return root

    def check_usable(self) -> bool:
        """Like :meth:`check_writable`, but a read-only store that holds finished runs is usable to draw figures from:
        False then (a run missing from it stops with :class:`ResultsError`, naming it), True when writable."""
        try:
            self.check_writable()
            return True
        except PermissionError:
            if self.root.is_dir() and next(self.root.glob("*/*/result.json"), None) is not None:
                return False
            raise

    def _require_writable(self, kind: str, keys: list[str]) -> None:
        """Before computing runs: a read-only store names the runs it lacks instead of failing on a mkdir."""
        try:
            self.check_writable()
        except PermissionError as e:
            shown = ", ".join(f"{kind}/{k}" for k in keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            raise ResultsError(
                f"{len(keys)} run(s) are missing from the read-only run store {self.root} ({shown}): make it "
                f"writable, or set REPRONETS_RUNS to a writable copy of it"
            ) from e

    def folder(self, kind: str, params: dict) -> Path:
        return self.root / kind / run_key(params)

    def load(self, kind: str, params: dict) -> RunResult | None:
        """The stored result of this run, if there is one computed with this process's numerics (see above)."""
        found = self.stored(kind, params)
        return found if found is not None and self._reusable(found) else None

    def stored(self, kind: str, params: dict) -> RunResult | None:
        """The stored result of this run, whatever numerics computed it."""
        return self._read(self.folder(kind, params) / "result.json", cached=True)

    def run(self, kind: str, params: dict, fn: Callable[[dict, Path], dict], *, device: str | None = None) -> RunResult:
        """The result of ``fn(params, checkpoint_path)``, computed once per distinct ``params``.

        ``fn`` returns a JSON-able dict; a value under the key ``"tensors"`` (a dict of tensors) is stored
        in ``tensors.pt`` instead. ``params["seed"]`` is recorded as the run's seed when present.
        """
        if _world_size() > 1:
            return self._run_distributed(kind, params, fn, device)
        folder = self.folder(kind, params)
        found = self.load(kind, params)
        if found is not None:
            return found
        self._require_writable(kind, [run_key(params)])
        folder.mkdir(parents=True, exist_ok=True)
        with _exclusive(folder / ".lock"):
            found = self.load(kind, params)  # another process may have finished it while we waited
            if found is not None:
                return found
            started = datetime.now(timezone.utc)
            t0 = time.perf_counter()
            result = fn(params, folder / "checkpoint.pt")
            return self._write(kind, params, result, started, time.perf_counter() - t0, device)

    def _run_distributed(self, kind, params, fn, device) -> RunResult:
        """A run under ``torchrun``: every rank computes it (``train.fit`` shares out the batches). Rank 0 takes its
        lock, decides (done or not, after the lock: another worker may have finished it) and tells the others; it
        writes the result, and every rank returns the stored result once it is written (a barrier), so no rank
        reads a result that is still being written."""
        import torch.distributed as dist

        from ..core.train import distributed

        rank, _ = distributed()
        folder = self.folder(kind, params)
        if rank == 0:
            folder.mkdir(parents=True, exist_ok=True)
        with _exclusive(folder / ".lock") if rank == 0 else contextlib.nullcontext():
            done = [self.load(kind, params) is not None if rank == 0 else None]
            dist.broadcast_object_list(done, src=0)
            if not done[0]:
                started = datetime.now(timezone.utc)
                t0 = time.perf_counter()
                result = fn(params, folder / "checkpoint.pt")
                if rank == 0:
                    self._write(kind, params, result, started, time.perf_counter() - t0, device)
        dist.barrier()
        return self.load(kind, params)

    def run_group(self, kind: str, members: list[dict], fn, *, device: str | None = None) -> None:
        """Compute the missing runs among ``members`` together: ``fn(missing_params, checkpoint_path)`` returns their
        results in order, and each is stored under its own key, as :meth:`run` would store it (so caching and
        readers do not care how a run was computed). Every member's lock is held meanwhile, in key order, so two
        processes never compute one run. The group's checkpoint lives in ``<kind>/_groups/<hash of the missing
        keys>/``: an interrupted group resumes when the same runs are missing again. Each result records the
        group's size and wall time; its ``wall_time_s`` is its share (the group's time / members)."""
        folders = sorted({self.folder(kind, p) for p in members})
        absent = [run_key(p) for p in members if self.load(kind, p) is None]
        if absent:
            self._require_writable(kind, absent)
        with contextlib.ExitStack() as locks:
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
                locks.enter_context(_exclusive(folder / ".lock"))
            missing = [p for p in members if self.load(kind, p) is None]
            if not missing:
                return
            keys = ",".join(sorted(run_key(p) for p in missing))
            group = self.root / kind / "_groups" / hashlib.sha256(keys.encode()).hexdigest()[:16]
            group.mkdir(parents=True, exist_ok=True)
            started = datetime.now(timezone.utc)
            t0 = time.perf_counter()
            results = list(fn(missing, group / "checkpoint.pt"))
            wall = time.perf_counter() - t0
            if len(results) != len(missing):
                raise RuntimeError(f"{kind}: a group of {len(missing)} runs returned {len(results)} results")
            batch = {"members": len(missing), "group_wall_time_s": round(wall, 3), "group": group.name}
            for params, result in zip(missing, results):
                self._write(kind, params, result, started, wall / len(missing), device, batch=batch)
            (group / "checkpoint.pt").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                group.rmdir()

    def _write(self, kind, params, result, started, wall, device, **extra) -> RunResult:
        folder = self.folder(kind, params)
        _supersede(folder)
        result = dict(result)
        tensors = result.pop("tensors", None)
        if tensors:
            fileio.save_torch(folder / "tensors.pt", tensors)
        meta = {
            "key": run_key(params),
            "kind": kind,
            "seed": params.get("seed"),
            "started": started.isoformat(timespec="seconds"),
            "wall_time_s": round(wall, 3),
            **executors.worker_record(),
            **extra,
            **provenance.record(device or params.get("device")),
            "numerics": self.numerics({**params, "device": device or params.get("device")}),
        }
        body = {"params": params, "result": result, "meta": meta}
        fileio.write_json(folder / "result.json", {**body, "checksum": _checksum(body)})
        (folder / "checkpoint.pt").unlink(missing_ok=True)
        return RunResult(meta["key"], kind, params, result, meta, folder, cached=False)

    def sweep(
        self, kind: str, grid: Iterable[dict], fn, *, group=None, fn_group=None, max_group: int = 64, **kw
    ) -> list[RunResult]:
        """Every run of ``grid``, computed where missing. With ``group`` (params → a key, or None for a run that
        trains alone) and ``fn_group`` (see :meth:`run_group`), missing runs with the same key are computed together
        first, at most ``max_group`` at a time."""
        grid = list(grid)
        if _world_size() > 1:  # under torchrun each run is shared out over the ranks: no batches, no executor
            return [self.run(kind, params, fn, **kw) for params in grid]
        elsewhere = self.runs_elsewhere
        # Another worker's run (its lock held) is neither submitted again nor computed here: the last line waits for it.
        missing = [p for p in grid if self.load(kind, p) is None and not (elsewhere and self._held(kind, p))]
        missing = list({run_key(p): p for p in missing}.values())
        if missing:
            self._require_writable(kind, [run_key(p) for p in missing])
        tasks, grouped = [], set()
        if group is not None:
            buckets: dict = {}
            for params in missing:
                key = group(params)
                if key is not None:
                    buckets.setdefault(key, []).append(params)
            for members in buckets.values():
                for chunk in (members[i : i + max_group] for i in range(0, len(members), max_group)):
                    if len(chunk) > 1:
                        group_task = GroupTask(str(self.root), kind, chunk, fn_group, **kw)
                        tasks.append(dataclasses.replace(group_task, executor=self.executor.name))
                        grouped.update(run_key(p) for p in chunk)
        if elsewhere:
            alone = [p for p in missing if run_key(p) not in grouped]
            tasks += [RunTask(str(self.root), kind, p, fn, executor=self.executor.name, **kw) for p in alone]
        config = self.executor if elsewhere else executors.ExecutorConfig()
        executors.execute(config, tasks, self.root / "_jobs" / kind)
        computed = {run_key(p) for p in missing}  # reported as computed now, not cached, however they were computed
        if not elsewhere:
            out = [self.run(kind, params, fn, **kw) for params in grid]
            return [dataclasses.replace(r, cached=False) if r.key in computed else r for r in out]
        # Runs elsewhere are read, never computed here (this may be a login node): a run another worker held is
        # waited for (its lock), and one that nobody finished is an error.
        out, lost = [], []
        for params in grid:
            found = self.load(kind, params) or self._after_lock(kind, params)
            (out if found is not None else lost).append(found if found is not None else params)
        if lost:
            keys = ", ".join(f"{kind}/{run_key(p)}" for p in lost)
            raise executors.ExecutorError(
                f"{len(lost)} run(s) have no result after their workers ended: {keys}; a worker that held a run died "
                "(its checkpoint is kept): submit again to go on"
            )
        return [dataclasses.replace(r, cached=False) if r.key in computed else r for r in out]

    def _after_lock(self, kind: str, params: dict) -> RunResult | None:
        """The run's result once no process holds its lock (None if it still has none)."""
        folder = self.folder(kind, params)
        if not folder.is_dir():
            return None
        with _exclusive(folder / ".lock"):
            return self.load(kind, params)

    def _held(self, kind: str, params: dict) -> bool:
        """True when another process holds the run's lock (it is computing the run)."""
        lock = self.folder(kind, params) / ".lock"
        if not lock.exists():
            return False
        with open(lock, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        return False

    def results(self, kind: str) -> list[RunResult]:
        return [r for f in sorted((self.root / kind).glob("*/result.json")) if (r := self._read(f, True))]

    def frame(self, kind: str, runs: Iterable[RunResult] | None = None):
        """One row per run: its parameters and every scalar of its result (lists left out), plus key and wall time."""
        import pandas as pd

        rows = []
        for r in self.results(kind) if runs is None else runs:
            scalars = {k: v for k, v in r.result.items() if isinstance(v, (int, float, str, bool)) or v is None}
            rows.append({**_flatten(r.params), **scalars, "key": r.key, "wall_time_s": r.meta.get("wall_time_s")})
        return pd.DataFrame(rows)

    def _read(self, file: Path, cached: bool) -> RunResult | None:
        if not file.exists():
            return None
        return read_result(file, cached)

    def check(self) -> tuple[int, list[str]]:
        """Read every stored result of the store: (how many were read, the problems found, one line each)."""
        problems, good = [], 0
        for file in sorted(self.root.glob("*/*/result.json")):
            try:
                read_result(file)
                good += 1
            except ResultsError as e:
                problems.append(str(e))
        return good, problems


# ---------------------------------------------------------------- tasks: what one worker computes


@dataclasses.dataclass
class RunTask:
    """One run into the store at ``root`` (``RunStore.run`` in the worker)."""

    root: str
    kind: str
    params: dict
    fn: object
    device: str | None = None
    executor: str = "inline"  # recorded with the results (RunStore._write reads it from the worker's environment)

    def __call__(self) -> None:
        self._mark_worker()
        RunStore(self.root, executors.ExecutorConfig()).run(self.kind, self.params, self.fn, device=self.device)

    def _mark_worker(self) -> None:
        if self.executor != "inline":  # a process of its own (pool worker, job): its environment is the task's
            os.environ[executors.EXECUTED_BY] = self.executor

    def checkpoint(self, *args, **kwargs):
        """submitit calls this on SIGUSR2 (time limit, preemption): the same task again, after a requeue, resumes
        from the run's checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def describe(self) -> str:
        return f"{self.kind}/{run_key(self.params)}"


@dataclasses.dataclass
class GroupTask(RunTask):
    """Runs computed together (``RunStore.run_group`` in the worker); ``params`` is their list."""

    def __call__(self) -> None:
        self._mark_worker()
        RunStore(self.root, executors.ExecutorConfig()).run_group(self.kind, self.params, self.fn, device=self.device)

    def describe(self) -> str:
        return f"{self.kind}: a group of {len(self.params)} runs"


def _checksum(body: dict) -> str:
    """SHA-256 of a result's contents as they read back from its JSON (tuples are lists there)."""
    normal = json.loads(json.dumps(body, allow_nan=True))
    text = json.dumps(normal, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def read_result(file: Path, cached: bool = True) -> RunResult:
    """A stored ``result.json``; raises ResultsError naming it when it cannot be read or its checksum differs."""
    away = "move its run folder away to compute the run again"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        written = data.pop("checksum", None)
        if written is not None and written != _checksum(data):
            raise ResultsError(f"{file}: its contents differ from the checksum written with them (edited?); {away}")
        key = run_key(data["params"])  # results written before checksums: their parameters must still be theirs
        if not file.parent.name == data["meta"]["key"] == key:
            raise ResultsError(
                f"{file}: its parameters hash to {key}, its record says {data['meta']['key']} and its folder "
                f"{file.parent.name} (edited or moved?); {away}"
            )
        return RunResult(
            data["meta"]["key"], data["meta"]["kind"], data["params"], data["result"], data["meta"], file.parent, cached
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # JSON and encoding errors are ValueErrors
        raise ResultsError(f"{file}: stored result cannot be read ({e}); {away}") from e


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m repronets.runs.results", description="Check a run store.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="read every stored result; exit 1 naming each that is damaged or edited")
    check.add_argument("root", nargs="?", type=Path, default=None, help="the store (default: $REPRONETS_RUNS or runs/)")
    args = parser.parse_args(argv)
    root = args.root or default_root()
    if not root.is_dir():
        parser.error(f"{root}: no such run store")
    good, problems = RunStore(root).check()
    for line in problems:
        print(line, file=sys.stderr)
    print(f"{root}: {good} result(s) read intact, {len(problems)} damaged or edited")
    return 1 if problems else 0


def long_frame(runs: Iterable[RunResult], series: str, index: str = "epoch", param_keys: Iterable[str] = ()):
    """A long DataFrame of one per-epoch series (e.g. ``test_acc``) of several runs, for line plots with seed bands."""
    import pandas as pd

    frames = []
    for r in runs:
        epochs = r.result["epochs"]
        df = pd.DataFrame({index: epochs[index], series: epochs[series]})
        for k in param_keys:
            df[k] = r.params[k]
        df["key"] = r.key
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v if not isinstance(v, list) else json.dumps(v)
    return out


# What flock(2) answers on a filesystem that cannot lock (some NFS mounts without a lock daemon, FUSE filesystems).
_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    with open(lock_path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError as e:
            if e.errno not in _NO_LOCKING:
                raise
            raise ResultsError(
                f"{lock_path}: this filesystem does not support flock ({e.strerror}); the run store's locks keep two "
                "workers from computing one run, so put the store (REPRONETS_RUNS) on a filesystem whose flock works "
                "across the machines that share it: a local disk, NFSv4, Lustre mounted with -o flock, GPFS, BeeGFS"
            ) from e
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


if __name__ == "__main__":
    raise SystemExit(main())
