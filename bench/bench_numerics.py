"""What the AVX2 pin costs: time of the AVX2-pinned kernels (``REPRONETS_CPU_ISA=avx2``, the default; see
``repronets.core.numerics``) against each library's native kernels (``REPRONETS_CPU_ISA=native``) on one workload of
each paper, at 1 and at 2 threads:

- τ-ResNet: one SGD step (forward, backward, update), batch 100 of the digits, the quick profile's trainable-τ
  ResNet (64-100×6-10, T = 1, lr and momentum of the profile);
- ContinuousNet 2-2-2: one SGD step, batch 128 of 32×32×3, with Euler and with classic RK4 (as
  ``bench_continuous.py``);
- SSS layer: forward + backward, batch 256, n = 1024, s = 4, chunked (as ``bench_sss.py``);
- T2T-ViT: a forward pass of the quick profile's backbone (untrained weights) on 64 digits test images at 32×32
  (as ``bench_jeidnn.py``'s full backbone at batch 64).

The libraries choose their kernels once, when they load, so the two modes cannot share a process: every
measurement is made in a child process of this script (``--child WORKLOADS THREADS``) with ``REPRONETS_CPU_ISA`` and
``OMP_NUM_THREADS`` in its environment. A child imports ``repronets`` before torch, times each workload in turn with
``blocked_autorange`` and prints the medians and ``repronets.core.numerics.current()['isa']``, which the parent checks
against the mode asked for. Children run in pairs, one pinned and one native at the same thread count, the order
alternating from pair to pair; 3 pairs per thread count. The ratio pinned / native is the median over the pairs of
the ratio within a pair, which cancels load that other processes put on the machine for longer than a pair. One
child times all five workloads: starting one (importing torch) takes seconds, more than most workloads are timed.

    python bench/bench_numerics.py        # about 3 minutes on 2 cores; or: python bench/runner.py numerics

Writes ``bench/results/numerics.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))
import repronets  # noqa: E402, F401  (pins the kernels, or not, before torch loads)
from repronets.core import fileio, numerics  # noqa: E402
from repronets.core.timing import benchmark_timer  # noqa: E402
from repronets.runs import provenance  # noqa: E402
from runner import Suite  # noqa: E402

NAME = "numerics"
THREADS = (1, 2)
PAIRS = 3
MIN_RUN_TIME = 1.0  # seconds of timed calls per child, after blocked_autorange's own block-size estimate


def _tau_step():
    import torch
    from repronets.core import data
    from repronets.runs import params
    from repronets.tau import experiment as E
    from repronets.tau import trial
    from repronets.tau.training import objective

    p = params.load("01_tau_speedup", "quick")
    split = data.load("digits", "train")
    x, y = split.x[:100], split.y[:100]
    run = E.run_spec(p, "resnet", "digits", 0, p.figure_T, trainable=True)
    model = trial.build_model(run, split.x[0].numel(), split.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    loss_fn = objective(p.figure_T)

    def step():
        loss, _ = loss_fn(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _continuous_step(scheme: str):
    def make():
        import torch
        import torch.nn.functional as F
        from repronets.continuous.models import continuousnet

        torch.manual_seed(0)
        x, y = torch.rand(128, 3, 32, 32), torch.randint(0, 10, (128,))
        model = continuousnet(2, scheme).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

        def step():
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step

    return make


def _sss_pass():
    import torch
    from repronets.sss.experiment import random_sss

    torch.manual_seed(0)
    u = torch.randn(256, 1024, requires_grad=True)
    layer = random_sss(1024, 4)

    def run():
        layer(u).sum().backward()

    return run


def _t2t_forward():
    import torch
    from repronets.jeidnn import experiment as J
    from repronets.runs import params

    quick = params.load("04_dynamic_exits", "quick")
    p = J.setting(quick, quick.datasets[0])
    tr, _, test = J.splits(p)
    torch.manual_seed(0)
    backbone = J.make_backbone(p, tr.input_shape[0], tr.num_classes).eval()
    x = J.original_preprocess(p, tr)(test.x[:64], training=False)

    def forward():
        with torch.no_grad():
            backbone(x)

    return forward


# name: (label, unit, builder of the timed function)
WORKLOADS = {
    "tau_step": ("τ-ResNet SGD step, digits quick, batch 100", "step", _tau_step),
    "continuous_euler": ("ContinuousNet 2-2-2 Euler SGD step, batch 128", "step", _continuous_step("euler")),
    "continuous_rk4": ("ContinuousNet 2-2-2 RK4-classic SGD step, batch 128", "step", _continuous_step("rk4_classic")),
    "sss_n1024": ("SSS s=4 (chunked) forward + backward, n = 1024, batch 256", "pass", _sss_pass),
    "t2t_forward": ("T2T-ViT quick backbone forward, batch 64", "pass", _t2t_forward),
}


def child(workloads: list[str], threads: int, min_run_time: float) -> dict:
    """Time the workloads one after another in this process, with the kernels that ``repronets`` chose when it was
    imported."""
    import torch

    torch.set_num_threads(threads)
    times = {}
    for workload in workloads:
        fn = WORKLOADS[workload][2]()
        timer = benchmark_timer(stmt="fn()", globals={"fn": fn}, label=NAME, description=workload)
        m = timer.blocked_autorange(min_run_time=min_run_time)
        times[workload] = {"median_s": m.median, "iqr_s": m.iqr, "runs": len(m.times)}
        del fn, timer
    now = numerics.current()
    return {
        "threads": now["threads"],
        "requested": os.environ.get(numerics.ENV),
        "isa": now["isa"],
        "kernels": now["kernels"],
        "times": times,
    }


def measure(workloads: list[str], threads: int, mode: str, min_run_time: float) -> dict:
    """One child process of this script: ``workloads`` at ``threads`` with the ``mode`` kernels."""
    env = dict(os.environ)
    numerics.pin(mode, env)  # sets (avx2) or clears (native) the kernel variables this process itself was given
    env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", ",".join(workloads), str(threads)]
    command += ["--min-run-time", str(min_run_time)]
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True, timeout=600)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["isa"] != mode or result["threads"] != threads:
        raise RuntimeError(
            f"a child asked for {mode} kernels at {threads} thread(s) ran {result['isa']} kernels at "
            f"{result['threads']} thread(s): {result['kernels']}"
        )
    return result


def run(pairs: int = PAIRS, min_run_time: float = MIN_RUN_TIME, workloads=None) -> list[dict]:
    """``pairs`` rounds; each runs, per thread count, one pinned and one native child (the order alternates from
    round to round), each child timing every workload."""
    workloads = list(workloads or WORKLOADS)
    got = {t: {numerics.PINNED: [], numerics.NATIVE: []} for t in THREADS}
    start = time.perf_counter()
    for pair in range(pairs):
        order = (numerics.PINNED, numerics.NATIVE) if pair % 2 == 0 else (numerics.NATIVE, numerics.PINNED)
        for threads in THREADS:
            for mode in order:
                got[threads][mode].append(measure(workloads, threads, mode, min_run_time))
            for w in workloads:
                p, n = (got[threads][m][-1]["times"][w]["median_s"] for m in (numerics.PINNED, numerics.NATIVE))
                print(
                    f"  pair {pair + 1}/{pairs}  {threads} thread(s)  {w:<18} pinned {p * 1e3:8.2f} ms  "
                    f"native {n * 1e3:8.2f} ms  ×{p / n:.3f}",
                    flush=True,
                )
            print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    rows = []
    for w in workloads:
        for threads in THREADS:
            pinned, native = ([r["times"][w] for r in got[threads][m]] for m in (numerics.PINNED, numerics.NATIVE))
            label, unit, _ = WORKLOADS[w]
            rows.append(
                {
                    "case": label,
                    "workload": w,
                    "threads": threads,
                    "unit": unit,
                    "pinned_median_s": statistics.median(r["median_s"] for r in pinned),
                    "native_median_s": statistics.median(r["median_s"] for r in native),
                    "ratio_pinned_to_native": statistics.median(
                        a["median_s"] / b["median_s"] for a, b in zip(pinned, native)
                    ),
                    "pinned_s": [r["median_s"] for r in pinned],
                    "native_s": [r["median_s"] for r in native],
                    "runs_per_child": {"pinned": [r["runs"] for r in pinned], "native": [r["runs"] for r in native]},
                    "kernels": {m: got[threads][m][0]["kernels"] for m in (numerics.PINNED, numerics.NATIVE)},
                }
            )
    return rows


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _kernels(k: dict) -> str:
    numpy = "+".join(k["numpy_avx512"]) or "no AVX-512"
    return f"ATen {k['aten']}, numpy {numpy}, OpenBLAS {'/'.join(k['openblas']) or '?'}"


def describe(pairs: int = PAIRS) -> str:
    return (
        f"time with the pinned kernels (AVX2; MKL's vendor-neutral branch) against the native ones, each a child "
        f"process; median of {pairs} pinned/native pairs"
    )


def write(rows: list[dict], folder: Path = HERE / "results", command: str = "python bench/bench_numerics.py") -> Path:
    description = describe(len(rows[0]["pinned_s"]) if rows else PAIRS)
    record = {
        "suite": NAME,
        "description": description,
        "command": command,
        "rows": rows,
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **provenance.record(),
        "device": f"cpu ({numerics.cpu_model()}, {os.cpu_count()} cores, {platform.machine()})",
    }
    fileio.write_json(folder / f"{NAME}.json", record)
    lines = [
        f"**{NAME}**: {description} ({record['device']}, torch {record['versions']['torch']}, "
        f"numpy {record['versions']['numpy']}, {record['measured'][:10]}; `{command}`)",
        "",
        "| workload | threads | pinned (AVX2) | native | pinned / native |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['threads']} | {_fmt(r['pinned_median_s'])} | {_fmt(r['native_median_s'])} "
            f"| {r['ratio_pinned_to_native']:.3f} |"
        )
    if rows:
        k = rows[0]["kernels"]
        lines += [
            "",
            f"Pinned: {_kernels(k[numerics.PINNED])}, and (set, not read back) oneDNN "
            f"{numerics.SETTINGS['ONEDNN_MAX_CPU_ISA']}, MKL {numerics.SETTINGS['MKL_CBWR']}. "
            f"Native: {_kernels(k[numerics.NATIVE])}, oneDNN and MKL at their own choice.",
        ]
    return fileio.write_text(folder / f"{NAME}.md", "\n".join(lines) + "\n")


class NumericsSuite(Suite):
    """This benchmark for ``python bench/runner.py``: it runs child processes instead of timing cases here."""

    def run(self) -> list[dict]:
        return run()

    def write(self, rows: list[dict], folder: Path = HERE / "results", command: str = "") -> Path:
        return write(rows, folder, command or "python bench/bench_numerics.py")


def suite() -> Suite:
    return NumericsSuite(NAME, describe(), unit="call")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--child", nargs=2, metavar=("WORKLOADS", "THREADS"), help="time workloads (comma-separated) in this process"
    )
    parser.add_argument("--min-run-time", type=float, default=MIN_RUN_TIME)
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), help="a subset (default: all)")
    args = parser.parse_args(argv)
    if args.child:
        workloads, threads = args.child
        print(json.dumps(child(workloads.split(","), int(threads), args.min_run_time)), flush=True)
        return 0
    print(f"{NAME}: {describe(args.pairs)}", flush=True)
    path = write(run(args.pairs, args.min_run_time, args.workloads), command="python bench/bench_numerics.py")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
