"""Pinned CPU kernels (repronets.core.numerics), the run store's refusal to mix numerics, and run_all.sh verify's
rules."""

import json
import os
import platform
import subprocess
import sys

import pytest
import torch
from repronets.build import verify
from repronets.core import numerics
from repronets.runs.results import REUSE_LOG_ENV, RunStore
from repronets.runs.results import _checksum as results_checksum

x86 = pytest.mark.skipif(platform.machine() != "x86_64", reason="the kernels are pinned on x86-64 only")


def _as_written_by_other_numerics(path, record: dict) -> None:
    """Write a result as another machine's store would have (its checksum recomputed: not an edit by hand)."""
    body = {k: v for k, v in record.items() if k != "checksum"}
    path.write_text(json.dumps({**body, "checksum": results_checksum(body)}))


def _in_subprocess(code: str, **env) -> dict:
    """What a fresh process that runs ``code`` prints as JSON (the pins act before torch and numpy load)."""
    environ = {k: v for k, v in os.environ.items() if k not in numerics.SETTINGS and k != numerics.ENV}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**environ, **env}, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


CURRENT = "import repronets, json; from repronets.core import numerics; print(json.dumps(numerics.current()))"


@x86
def test_importing_the_package_pins_every_library_that_can_tell():
    n = _in_subprocess(CURRENT)
    assert n["isa"] == "avx2"
    assert n["kernels"]["aten"] == "AVX2" and n["kernels"]["numpy_avx512"] == []
    assert set(n["kernels"]["openblas"]) <= {"Haswell"}
    assert n["torch"] == torch.__version__ and n["device"] == "cpu" and n["cpu"]


@x86
def test_native_is_recorded_when_asked_for_or_when_torch_came_first():
    assert _in_subprocess(CURRENT, REPRONETS_CPU_ISA="native")["isa"] == "native"
    # torch (and with it numpy) loaded before the pin: numpy keeps whatever the machine offers, so it cannot be
    # called pinned (on a machine without AVX-512 numpy has nothing more to choose and this stays pinned).
    late = _in_subprocess(
        "import torch, repronets, json; from repronets.core import numerics; print(json.dumps(numerics.current()))"
    )
    early = _in_subprocess(CURRENT, REPRONETS_CPU_ISA="native")
    assert late["isa"] == ("native" if early["kernels"]["numpy_avx512"] else "avx2")


def test_a_bad_mode_names_the_variable():
    with pytest.raises(numerics.NumericsError, match="REPRONETS_CPU_ISA='fast'"):
        numerics.requested({"REPRONETS_CPU_ISA": "fast"}, argv=["x"])
    assert numerics.requested({}, argv=["-m", "--profile", "quick", "--native-kernels"]) == "native"
    assert numerics.requested({}, argv=["prog.py", "--native-kernels"]) == "avx2"  # only python -m reads the flag


def test_opting_out_gives_back_the_users_own_values(monkeypatch):
    env = {"OPENBLAS_CORETYPE": "Haswell", "MKL_CBWR": "AVX2"}
    monkeypatch.setattr(numerics, "_ORIGINAL", {**{k: None for k in numerics.SETTINGS}, "OPENBLAS_CORETYPE": "Zen"})
    numerics.pin("native", env)
    assert env == {"REPRONETS_CPU_ISA": "native", "OPENBLAS_CORETYPE": "Zen"}


@x86
def test_pinned_kernels_are_the_same_numbers_as_an_avx2_machine_would_give():
    """The AVX2 kernels are what a pinned process computes with, whatever the CPU offers beyond: the same sums as
    a process held to AVX2 by the libraries' own variables, and (on an AVX-512 machine) other sums than native."""
    code = (
        "import repronets, json, hashlib, torch, numpy as np\n"
        "torch.manual_seed(0); x = torch.randn(64, 3, 16, 16); c = torch.nn.Conv2d(3, 8, 3)\n"
        "a = np.random.default_rng(0).standard_normal(10001)\n"
        "outs = [c(x), torch.randn(200, 300) @ torch.randn(300, 100), torch.randn(10000).exp().sum()]\n"
        "h = [hashlib.sha256(o.detach().numpy().tobytes()).hexdigest()[:12] for o in outs]\n"
        "h += [hashlib.sha256(f(a).tobytes()).hexdigest()[:12] for f in (np.exp, np.log1p)]\n"
        "print(json.dumps(h))"
    )
    pinned = _in_subprocess(code, OMP_NUM_THREADS="1")
    by_hand = _in_subprocess(code, OMP_NUM_THREADS="1", REPRONETS_CPU_ISA="native", **numerics.SETTINGS)
    assert pinned == by_hand


def _store_with_one_run(tmp_path):
    store = RunStore(tmp_path)
    store.run("demo", {"seed": 0}, lambda p, c: {"acc": 0.5, "tensors": {"w": torch.ones(2)}})
    return store


def test_a_run_of_other_numerics_is_computed_again_and_the_old_one_kept(tmp_path, monkeypatch):
    log = tmp_path / "not_reused.jsonl"
    monkeypatch.setenv(REUSE_LOG_ENV, str(log))
    store = _store_with_one_run(tmp_path)
    record = json.loads((store.folder("demo", {"seed": 0}) / "result.json").read_text())
    assert record["meta"]["numerics"]["threads"] == torch.get_num_threads()
    for field, other in (("torch", "2.13.0+cpu"), ("isa", "native"), ("device", "cuda (NVIDIA H200)")):
        changed = json.loads(json.dumps(record))
        changed["meta"]["numerics"][field] = other
        _as_written_by_other_numerics(store.folder("demo", {"seed": 0}) / "result.json", changed)
        fresh = RunStore(tmp_path)
        again = fresh.run("demo", {"seed": 0}, lambda p, c: {"acc": 0.75})
        assert not again.cached and again.result == {"acc": 0.75}, field
        assert field in fresh.not_reused["demo/" + again.key]
        assert not (again.path / "tensors.pt").exists()  # the old run's tensors went with its result
    kept = sorted((again.path / "superseded").glob("*/result.json"))
    assert len(kept) == 3 and (kept[0].parent / "tensors.pt").exists()
    assert json.loads(kept[0].read_text())["meta"]["numerics"]["torch"] == "2.13.0+cpu"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["run"] for line in lines] == ["demo/" + again.key] * 3 and "torch" in lines[0]["why"]


def test_a_run_of_another_thread_count_or_without_a_record_is_not_reused(tmp_path):
    store = _store_with_one_run(tmp_path)
    folder = store.folder("demo", {"seed": 0})
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)  # conftest's same_thread_count gives it back
    assert RunStore(tmp_path).load("demo", {"seed": 0}) is None
    torch.set_num_threads(threads)
    assert RunStore(tmp_path).load("demo", {"seed": 0}) is not None
    record = json.loads((folder / "result.json").read_text())
    del record["meta"]["numerics"]
    _as_written_by_other_numerics(folder / "result.json", record)
    store = RunStore(tmp_path)
    assert store.load("demo", {"seed": 0}) is None and "records no numerics" in next(iter(store.not_reused.values()))
    assert store.stored("demo", {"seed": 0}) is not None


def test_reuse_any_numerics_when_asked(tmp_path, monkeypatch):
    store = _store_with_one_run(tmp_path)
    folder = store.folder("demo", {"seed": 0})
    record = json.loads((folder / "result.json").read_text())
    record["meta"]["numerics"]["device"] = "cuda (NVIDIA H200)"
    _as_written_by_other_numerics(folder / "result.json", record)
    monkeypatch.setenv("REPRONETS_REUSE_NUMERICS", "any")
    assert RunStore(tmp_path).load("demo", {"seed": 0}).cached


def test_mismatch_compares_the_cpu_only_for_native_kernels():
    now = {"torch": "2.14.1", "isa": "avx2", "threads": 1, "device": "cpu", "cpu": "AMD EPYC"}
    assert numerics.mismatch({**now, "cpu": "Intel Xeon"}, now) == ""
    native = {**now, "isa": "native"}
    assert "cpu 'Intel Xeon'" in numerics.mismatch({**native, "cpu": "Intel Xeon"}, native)


def test_verify_compares_results_not_timings_or_provenance():
    assert verify.compared("01_tau_speedup/speedup.md")
    assert verify.compared("CLAIMS.md")
    for name in (
        "CLAIMS_timing.md",
        "02_x/table_cifar10_timing.csv",
        "03_x/complexity_timing.png",
        "MANIFEST.json",
        "00_x/outputs.json",
        "00_x/00_x.ipynb",
    ):
        assert not verify.compared(name), name
    published = {"a/t.md": b"1", "a/t_timing.md": b"1", "a/gone.md": b"x", "MANIFEST.json": b"{}"}
    rebuilt = {"a/t.md": b"1", "a/t_timing.md": b"2", "a/new.md": b"y", "MANIFEST.json": b"{1}"}
    assert verify.compare(published, rebuilt) == {
        "identical": ["a/t.md"],
        "differ": [],
        "missing": ["a/gone.md"],
        "new": ["a/new.md"],
    }
    assert verify.compare({"a/t.md": b"1"}, {"a/t.md": b"2"})["differ"] == ["a/t.md"]


def test_channels_last_is_refused_only_where_onednn_is_held_to_avx2(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not numerics.channels_last_safe("cpu") and numerics.channels_last_safe("cuda:0")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert numerics.channels_last_safe("cpu")
