"""``train.fit`` under torchrun: two gloo processes on the CPU train as one process on the same global batches
(within float rounding), rank 0 alone writes, and an interrupted job resumes from its checkpoint."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import FIXTURES

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
    ddp_fit.main(out, None)
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
