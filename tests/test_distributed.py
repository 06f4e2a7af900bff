"""``train.fit`` under torchrun: two gloo processes on the CPU train as one process on the same global batches
(within float rounding), rank 0 alone writes, and an interrupted job resumes from its checkpoint."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import FIXTURES

pytestmark = pytest.mark.slow  # launches torchrun

# Measured: after 3 epochs (129 steps) the largest weight difference is 4.8e-7 and of a step loss 7.2e-7.
TOLERANCE = 1e-5


def launch(tmp_path, out, *extra, ranks=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    cmd += [str(FIXTURES / "ddp_fit.py"), str(out), str(tmp_path / "checkpoint.pt"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    sys.path.insert(0, str(FIXTURES))
    import ddp_fit

    out = tmp_path_factory.mktemp("single") / "single.pt"
    threads = torch.get_num_threads()
    try:
        ddp_fit.main(out, None)  # one thread, as each rank
    finally:
        torch.set_num_threads(threads)  # later tests compare with subprocesses at the default count
    return torch.load(out, weights_only=False)


def test_two_ranks_equal_one_process_on_the_global_batch(tmp_path, single):
    done = launch(tmp_path, tmp_path / "ddp.pt")
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=False)
    assert ddp["world"] == 2 and single["world"] == 1
    for name, w in single["state"].items():
        assert torch.allclose(ddp["state"][name], w, atol=TOLERANCE, rtol=0), name
    assert ddp["steps"]["loss"] == pytest.approx(single["steps"]["loss"], abs=TOLERANCE)
    assert ddp["epochs"]["test_acc"] == pytest.approx(single["epochs"]["test_acc"], abs=1e-9)
    assert not (tmp_path / "ddp.pt.rank1").exists()


def test_an_interrupted_job_resumes_from_rank_zeros_checkpoint(tmp_path, single):
    stopped = launch(tmp_path, tmp_path / "ddp.pt", "2")
    assert stopped.returncode != 0 and "interrupted after epoch 2" in stopped.stderr
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] == 1
    resumed = launch(tmp_path, tmp_path / "ddp.pt")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=False)
    for name, w in single["state"].items():
        assert torch.allclose(ddp["state"][name], w, atol=TOLERANCE, rtol=0), name


def test_under_torchrun_rank_zero_stores_the_run_and_every_rank_reads_it(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(FIXTURES / "ddp_fit.py"), "store", str(tmp_path / "runs"), str(tmp_path / "out")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _attempt in range(2):  # the second launch finds the run done: no rank trains
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        ranks = [torch.load(f"{tmp_path / 'out'}.rank{r}", weights_only=False) for r in (0, 1)]
        assert ranks[0]["key"] == ranks[1]["key"] and ranks[0]["meta"] == ranks[1]["meta"]  # the stored result
        assert all(r["cached"] for r in ranks) and ranks[0]["result"] == {"seed": 0}
    assert len(list((tmp_path / "runs" / "ddp").glob("*/result.json"))) == 1
