"""Sweeps on a real single-node Slurm cluster (tests/slurm/cluster.sh: Debian's slurmctld, slurmd and munge),
submitted through submitit: the runs' numbers equal the inline ones, and a job interrupted as at its time limit
(SIGUSR2, which Slurm sends ``signal_delay_s`` before the limit) is requeued and resumes from its checkpoint with
the uninterrupted run's numbers. Skipped, with the commands' output, where the cluster cannot be started (it needs
root and the Debian packages); every wait is bounded."""

import os
import subprocess
import threading
import time

import pytest
from conftest import FIXTURES, ROOT
from repronets.baselines import experiment as baselines
from repronets.runs import params
from repronets.runs.executors import ExecutorConfig
from repronets.runs.results import RunStore

pytestmark = pytest.mark.slow  # installs and starts a Slurm cluster

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
WAIT_S = 240


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SLURM_TEST_DIR": str(folder)}
    try:
        started = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True, timeout=600, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.skip(f"{CLUSTER} start did not finish in 600 s: {e.stdout} {e.stderr}")
    if started.returncode != 0:
        pytest.skip(f"Slurm could not be started ({CLUSTER} start, exit {started.returncode}):\n"
                    f"{started.stdout[-2000:]}\n{started.stderr[-2000:]}")  # fmt: skip
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    try:
        yield folder
    finally:
        subprocess.run([str(CLUSTER), "stop"], capture_output=True, timeout=120, env=env)
        os.environ.pop("SLURM_CONF", None)


@pytest.fixture
def job_env(monkeypatch):
    # Jobs inherit the submitting environment (sbatch --export=ALL): one thread, as the inline reference (this
    # process too; conftest's same_thread_count gives the count back); the fixtures importable for the requeue
    # test's run function.
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(FIXTURES))
    torch.set_num_threads(1)


def config(**kw):
    return ExecutorConfig("slurm", partition="debug", cpus=1, mem_gb=1, time_min=5, wait_timeout_s=WAIT_S, **kw)


def test_a_smoke_sweep_on_slurm_equals_inline(tmp_path, slurm, job_env):
    p = params.load("00_data_and_baselines", "smoke")
    inline = baselines.run(p, RunStore(tmp_path / "inline", ExecutorConfig()))
    runs = baselines.run(p, RunStore(tmp_path / "slurm", config()))
    assert [r.key for r in runs] == [r.key for r in inline]
    assert [r.result["epochs"]["test_acc"] for r in runs] == [r.result["epochs"]["test_acc"] for r in inline]
    assert not any(r.cached for r in runs)  # computed now, by the jobs
    assert all(r.meta["executor"] == "slurm" and r.meta["slurm_job"] for r in runs)
    logs = list((tmp_path / "slurm" / "_jobs" / baselines.KIND).glob("*_log.out"))
    assert logs and not (tmp_path / "slurm" / "_jobs" / baselines.KIND / "%j").exists(), "logs beside the runs"
    again = baselines.run(p, RunStore(tmp_path / "slurm", config()))  # a second submission submits nothing
    assert all(r.cached for r in again)
    assert len(list((tmp_path / "slurm" / "_jobs" / baselines.KIND).glob("*_log.out"))) == len(logs)


def test_an_interrupted_job_is_requeued_and_resumes_from_its_checkpoint(tmp_path, slurm, job_env):
    import slow_fit

    reference = slow_fit.train_run({"seed": 3}, None)
    store = RunStore(tmp_path, config())
    run = {"seed": 3, "slow": True}
    done = {}
    sweep = threading.Thread(target=lambda: done.update(runs=store.sweep("slow", [run], slow_fit.train_run)))
    sweep.start()
    checkpoint = store.folder("slow", run) / "checkpoint.pt"
    deadline = time.monotonic() + WAIT_S
    while not checkpoint.exists() and time.monotonic() < deadline:  # the job has finished at least one epoch
        time.sleep(0.5)
    assert checkpoint.exists(), "the job wrote no checkpoint"
    queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30)
    (job_id,) = queue.stdout.split()
    # What Slurm does signal_delay_s before a job's time limit (and on preemption), now rather than in minutes.
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)
    sweep.join(WAIT_S)
    assert not sweep.is_alive(), f"the sweep did not finish within {WAIT_S} s"
    (result,) = done["runs"]
    assert result.result["resumed_from"] >= 1, "the requeued job started over instead of resuming"
    assert result.result["test_acc"] == reference["test_acc"]
    assert result.result["train_loss"] == reference["train_loss"]
    log = next((tmp_path / "_jobs" / "slow").glob("*_log.out")).read_text()  # submitit's, both runs of the job
    assert "Caught signal SIGUSR2" in log and "Requeued job" in log and log.count("Starting with JobEnvironment") == 2
