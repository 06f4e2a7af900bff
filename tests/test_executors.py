"""Executors: the missing runs of a sweep computed in worker processes (a local pool, submitit's local executor)
give the same stored results as inline, skip what is done or held, and fail with the run named."""

import dataclasses
import errno
import fcntl
import json
import subprocess
import sys

import pytest
import torch
from repronets.baselines import experiment as baselines
from repronets.runs import executors, params, results
from repronets.runs.executors import ExecutorConfig
from repronets.runs.results import RunStore


def smoke(**changes):
    p = params.load("00_data_and_baselines", "smoke")
    return dataclasses.replace(p, **{"seeds": [0, 1], "epochs": 2, **changes})


def numbers(runs):
    return {r.key: (r.result["epochs"]["test_acc"], r.result["epochs"]["train_loss"]) for r in runs}


@pytest.fixture(scope="module")
def inline_runs(tmp_path_factory):
    """The reference: each run alone in this process, one thread (the workers' thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for batch in (False, True):
            store = RunStore(tmp_path_factory.mktemp("inline"), ExecutorConfig())
            out[batch] = numbers(baselines.run(smoke(batch_runs=batch), store))
        return out
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow  # worker processes or a subprocess importing torch
@pytest.mark.parametrize("name", ["local", "submitit_local"])
@pytest.mark.parametrize("batch", [False, True], ids=["runs", "groups"])
def test_workers_store_the_inline_numbers(tmp_path, inline_runs, name, batch):
    store = RunStore(tmp_path / "runs", ExecutorConfig(name, workers=2, cpus=1, mem_gb=1, wait_timeout_s=300))
    runs = baselines.run(smoke(batch_runs=batch), store)
    assert len(runs) == 4 and not any(r.cached for r in runs)  # every run computed now (by a worker), not cached
    assert numbers(runs) == inline_runs[batch]
    assert {r.meta["executor"] for r in runs} == {name}  # recorded where each run was computed
    if batch:
        assert all(r.meta["batch"]["members"] == 2 for r in runs)
    if name == "submitit_local":  # submitit's job files and logs beside the runs, named by job id
        jobs = tmp_path / "runs" / "_jobs" / "baselines"
        assert list(jobs.glob("*_log.out")) and not (jobs / "%j").exists()
    assert all(r.cached for r in baselines.run(smoke(batch_runs=batch), store))  # the second time: read back


def test_a_second_submission_skips_done_runs_and_held_runs_are_not_submitted(tmp_path, monkeypatch):
    store = RunStore(tmp_path, ExecutorConfig("local", workers=1))
    p = smoke(batch_runs=False)
    grid = baselines.run_grid(p)
    submitted = []
    monkeypatch.setattr(executors, "execute", lambda config, tasks, folder: submitted.append(tasks))
    # one run done, one held by another worker (its lock taken through another open file description)
    done = grid[0]
    store.run(baselines.KIND, done, lambda params, ckpt: {"final_test_acc": 0.5})
    held = store.folder(baselines.KIND, grid[1])
    held.mkdir(parents=True)
    lock = open(held / ".lock", "a+")
    fcntl.flock(lock, fcntl.LOCK_EX)
    calls = []

    def fake(params, ckpt):
        calls.append(results.run_key(params))
        return {"final_test_acc": 0.25}

    try:
        assert store._held(baselines.KIND, grid[1]) and not store._held(baselines.KIND, grid[2])
        with pytest.raises(TimeoutError):  # the sweep waits for the held run instead of computing it
            _with_alarm(lambda: store.sweep(baselines.KIND, grid, fake), seconds=2)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    submitted_keys = [results.run_key(t.params) for t in submitted[0]]
    assert submitted_keys == [results.run_key(g) for g in grid[2:]]


def _with_alarm(fn, seconds):
    import signal

    def timeout(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _fails(params, ckpt):
    raise RuntimeError(f"diverged at seed {params['seed']}")


@pytest.mark.slow  # worker processes or a subprocess importing torch
def test_a_failed_worker_names_its_run(tmp_path):
    store = RunStore(tmp_path, ExecutorConfig("local", workers=2))
    grid = [{"seed": 0}, {"seed": 1}]
    with pytest.raises(executors.ExecutorError, match=r"(?s)2 of 2 task\(s\) failed.*diverged at seed") as e:
        store.sweep("failing", grid, _fails)
    assert f"failing/{results.run_key(grid[0])}" in str(e.value)


def test_a_filesystem_without_flock_is_named_before_work(tmp_path, monkeypatch):
    def no_flock(f, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.raises(results.ResultsError, match="does not support flock.*REPRONETS_RUNS.*NFSv4"):
        RunStore(tmp_path).check_writable()


def test_executor_settings_are_checked(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown executor 'slrum'"):
        ExecutorConfig("slrum")
    with pytest.raises(ValueError, match="'cpus': expected an integer >= 1"):
        ExecutorConfig("local", cpus=0)
    config = tmp_path / "cluster.yaml"
    config.write_text("name: slurm\npartition: gpu\ngpus: 1\ntime_min: 600\n")
    c = ExecutorConfig.from_file(config, time_min=30)
    assert (c.name, c.partition, c.gpus, c.time_min) == ("slurm", "gpu", 1, 30)
    config.write_text("name: slurm\npartitoin: gpu\n")
    with pytest.raises(ValueError, match=r"unknown executor settings \['partitoin'\]"):
        ExecutorConfig.from_file(config)
    monkeypatch.setenv(executors.ENV, json.dumps({"name": "local", "workers": 3}))
    assert RunStore(tmp_path).executor == ExecutorConfig("local", workers=3)


@pytest.mark.slow  # worker processes or a subprocess importing torch
def test_the_command_line_takes_an_executor(tmp_path):
    cmd = [sys.executable, "-m", "repronets.baselines", "--profile", "smoke", "--runs", str(tmp_path)]
    bad = subprocess.run(cmd + ["--executor", "local", "--cpus", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "error: executor setting 'cpus'" in bad.stderr and "Traceback" not in bad.stderr
    ok = subprocess.run(cmd + ["--executor", "local", "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr
    assert len(RunStore(tmp_path).results(baselines.KIND)) == 2


def test_a_run_its_worker_left_without_a_result_is_an_error_not_computed_here(tmp_path, monkeypatch):
    store = RunStore(tmp_path, ExecutorConfig("local", workers=1))
    monkeypatch.setattr(executors, "execute", lambda config, tasks, folder: None)  # the workers died silently
    with pytest.raises(executors.ExecutorError, match=r"1 run\(s\) have no result.*submit again"):
        store.sweep("lost", [{"seed": 0}], _fails)  # _fails would raise if it were called here
