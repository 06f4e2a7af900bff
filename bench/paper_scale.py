"""How long the paper profiles take: one training step of each paper-profile model at its paper batch and input size,
measured on this machine, times the steps the profile trains. Not a ratio benchmark: an estimate for planning, so
the table says what was measured (seconds per step, here) and what was computed from it (hours).

    python bench/paper_scale.py            # writes bench/results/paper_scale.{json,md}; the README quotes the .md

Left out of the steps: evaluation passes, ContinuousNet's manifestation sweep and convergence study, JEI-DNN's exit
phases (on a frozen backbone: a fraction of one transfer epoch each) and the SSS stopping rule's extra epochs beyond
the 201 the protocol requires; so each figure is a lower bound of the training time on this device.
"""

from __future__ import annotations

import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from repronets.continuous import experiment as continuous  # noqa: E402
from repronets.core import fileio
from repronets.jeidnn import experiment as jeidnn  # noqa: E402
from repronets.runs import params, provenance  # noqa: E402
from repronets.sss import models as sss_models  # noqa: E402

HERE = Path(__file__).resolve().parent
# Training-set sizes of the real datasets (after JEI-DNN's validation split where it holds one out).
TRAIN = {"cifar10": 50_000, "cifar100": 50_000, "mnist": 60_000, "pendigits": 7_494, "hand_postures": 62_476}
JEIDNN_TRAIN = {"cifar10": 45_000, "cifar100": 40_000, "svhn": 68_257, "cifar100_lt": 9_847}


def seconds_per_step(model, x, y, repeats: int = 2) -> float:
    """Median-free and short on purpose (steps of seconds): one warm-up step, then the mean of ``repeats``."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def continuous_rows(p) -> list[dict]:
    out = []
    for row in p.rows:
        run = continuous.run_spec(p, row, 0)
        classes = 100 if run["dataset"] == "cifar100" else 10
        torch.manual_seed(0)
        model = continuous.build_model({**run, "pieces": run["pieces"] * 2 ** len(run["refine_at"])}, 3, classes)
        s = seconds_per_step(model, torch.rand(p.batch_size, 3, 32, 32), torch.randint(0, classes, (p.batch_size,)))
        steps = math.ceil(TRAIN[run["dataset"]] / p.batch_size) * p.epochs
        out.append(_row("02", f"{row} ({run['dataset']})", f"batch {p.batch_size}, 32 px", s, steps))
    return out


def jeidnn_rows(p) -> list[dict]:
    out = []
    for dataset in p.datasets:
        q = jeidnn.setting(p, dataset)
        classes = 100 if dataset.startswith("cifar100") else 10
        torch.manual_seed(0)
        model = jeidnn.make_backbone(q, 3, classes)
        batch = q.backbone_batch_size
        x, y = torch.rand(batch, 3, q.img_size, q.img_size), torch.randint(0, classes, (batch,))
        s = seconds_per_step(model, x, y, repeats=1)
        steps = math.ceil(JEIDNN_TRAIN[dataset] / batch) * q.backbone_epochs
        out.append(_row("04", f"backbone transfer, {dataset}", f"batch {batch}, {q.img_size} px", s, steps))
    return out


def sss_rows(p) -> list[dict]:
    """Full-batch epochs, one step each, of the convolutional models the original used for MNIST and CIFAR-10 (the
    costly datasets of the profile), measured on 2,000 images and scaled to the whole training set (a full batch of
    60,000 images holds several GB of activations); times shares × repeats × 201 epochs, cost ∝ share."""
    out = []
    measured = 2000
    for dataset, shape in (("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))):
        n = TRAIN[dataset]
        for key in ("standard_nn", "ss_5_dim"):
            model = sss_models.build(key, shape, 10, p.widths[0])
            x, y = torch.rand(measured, *shape), torch.randint(0, 10, (measured,))
            s = seconds_per_step(model, x, y, repeats=1) * n / measured
            epochs = (p.min_epochs + 1) * p.repeats * sum(p.training_set_shares)
            what = f"one model ({key}), {dataset}, its {len(p.training_set_shares)} shares × {p.repeats} repeats"
            out.append(_row("03", what, f"full batch ({n:,}; measured on {measured:,})", s, epochs))
    return out


def _row(notebook, what, batch, seconds, steps) -> dict:
    return {
        "notebook": notebook,
        "what": what,
        "batch": batch,
        "s_per_step": seconds,
        "steps": int(steps),
        "hours": seconds * steps / 3600,
    }


def main() -> None:
    rows = []
    rows += continuous_rows(params.load("02_continuousnet_tables", "paper"))
    rows += sss_rows(params.load("03_sss_benchmarks", "paper"))
    rows += jeidnn_rows(params.load("04_dynamic_exits", "paper"))
    totals = {}
    for r in rows:
        totals[r["notebook"]] = totals.get(r["notebook"], 0.0) + r["hours"]
    device = provenance.describe_device("cpu")
    head = (
        f"**paper_scale**: one training step of each paper-profile model, measured; hours computed as s/step × steps "
        f"({device}, torch {torch.__version__}, {datetime.now(timezone.utc).date()})"
    )
    lines = [
        head,
        "",
        "| notebook | what | batch | s/step (measured) | steps | hours (computed) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        cells = [r["notebook"], r["what"], r["batch"], f"{r['s_per_step']:.3g}", f"{r['steps']:,}"]
        cells.append(f"{r['hours']:,.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    models = len(params.load("03_sss_benchmarks", "paper").models)
    lines.append("")
    lines.append(
        f"Sums: 02 {totals['02']:,.0f} h (its 11 rows), 04 {totals['04']:,.0f} h (the four backbones); 03 about "
        f"{totals['03'] / 2 * models:,.1f} h ({models} models on MNIST and CIFAR-10, the mean of the two measured "
        "per model; pendigits and Hand Postures are small tables)."
    )
    (HERE / "results").mkdir(exist_ok=True)
    fileio.write_json(HERE / "results" / "paper_scale.json", {"device": device, "rows": rows})
    fileio.write_text(HERE / "results" / "paper_scale.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
