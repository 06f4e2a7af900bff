import json
import math

import pytest
import torch
from repronets.runs import results
from repronets.runs.results import RunStore


def test_run_key_is_canonical():
    a = results.run_key({"lr": 0.1, "model": {"width": 3, "depth": 2}, "seeds": (1, 2)})
    b = results.run_key({"model": {"depth": 2, "width": 3}, "seeds": [1, 2], "lr": 0.1})
    assert a == b and len(a) == 16
    assert results.run_key({"lr": 0.1}) != results.run_key({"lr": 0.10000001})
    assert results.run_key({"x": 1}) != results.run_key({"x": 1.5})
    with pytest.raises(ValueError, match="finite"):
        results.run_key({"lr": math.nan})
    with pytest.raises(TypeError, match="plain data"):
        results.run_key({"f": object()})


def test_a_finished_run_is_loaded_not_recomputed(tmp_path):
    store, calls = RunStore(tmp_path), []

    def fn(params, checkpoint):
        calls.append(params)
        assert checkpoint.parent.exists()
        return {"acc": 0.5 + params["seed"], "curve": [1, 2, 3], "tensors": {"w": torch.arange(4.0)}}

    first = store.run("demo", {"seed": 1, "lr": 0.1}, fn)
    again = store.run("demo", {"lr": 0.1, "seed": 1}, fn)
    assert len(calls) == 1 and not first.cached and again.cached
    assert again.result == {"acc": 1.5, "curve": [1, 2, 3]} and torch.equal(again.tensors()["w"], torch.arange(4.0))
    meta = json.loads((first.path / "result.json").read_text())["meta"]
    for key in ("key", "seed", "git", "versions", "device", "wall_time_s", "started"):
        assert key in meta
    assert meta["seed"] == 1 and meta["versions"]["torch"] == torch.__version__


def test_a_failing_run_writes_nothing_and_harms_nothing(tmp_path):
    store = RunStore(tmp_path)
    done = store.run("demo", {"seed": 0}, lambda p, c: {"acc": 1.0})
    before = (done.path / "result.json").read_bytes()

    def broken(params, checkpoint):
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        store.run("demo", {"seed": 1}, broken)
    assert store.load("demo", {"seed": 1}) is None
    assert (done.path / "result.json").read_bytes() == before
    assert not list(tmp_path.rglob("*.tmp"))
    assert store.run("demo", {"seed": 1}, lambda p, c: {"acc": 0.0}).result == {"acc": 0.0}


def test_a_sweep_killed_halfway_resumes_with_finished_runs_intact(tmp_path):
    store, calls = RunStore(tmp_path), []
    grid = [{"seed": s} for s in range(5)]

    def fn(params, checkpoint):
        calls.append(params["seed"])
        if params["seed"] == 2 and calls.count(2) == 1:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third run
        return {"acc": params["seed"] / 10}

    with pytest.raises(KeyboardInterrupt):
        store.sweep("sweep", grid, fn)
    assert [store.load("sweep", g) is not None for g in grid] == [True, True, False, False, False]
    runs = store.sweep("sweep", grid, fn)
    assert calls == [0, 1, 2, 2, 3, 4] and [r.cached for r in runs] == [True, True, False, False, False]
    frame = store.frame("sweep")
    assert sorted(frame["seed"]) == [0, 1, 2, 3, 4] and set(frame.columns) >= {"seed", "acc", "key", "wall_time_s"}


def test_unreadable_result_names_the_file(tmp_path):
    store = RunStore(tmp_path)
    r = store.run("demo", {"seed": 0}, lambda p, c: {"acc": 1.0})
    (r.path / "result.json").write_text("{not json")
    with pytest.raises(results.ResultsError, match="result.json.*move its run folder away"):
        store.load("demo", {"seed": 0})


def test_long_frame_for_curves(tmp_path):
    store = RunStore(tmp_path)
    runs = [
        store.run(
            "c", {"seed": s}, lambda p, c: {"epochs": {"epoch": [0, 1], "test_acc": [0.1, 0.9 + p["seed"] / 100]}}
        )
        for s in (0, 1)
    ]
    df = results.long_frame(runs, "test_acc", param_keys=["seed"])
    assert len(df) == 4 and list(df.columns) == ["epoch", "test_acc", "seed", "key"]
    assert df[df.seed == 1].test_acc.tolist() == [0.1, 0.91]


def test_store_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRONETS_RUNS", str(tmp_path / "elsewhere"))
    assert RunStore().root == tmp_path / "elsewhere"
