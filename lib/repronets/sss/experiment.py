"""Paper 3's benchmark grid (docs/papers/sss.md §4): datasets × training-set shares × models × widths × repeats,
trained with the original protocol, results in the original pickle's structure (as JSON), and the complexity
measurements of the layer.

Run without Jupyter: ``python -m repronets.sss --profile paper [--export DIR]``.

The protocol, as the original's ``train_model`` (§4.2), every value a field of :class:`Params`: per dataset the
training split is shuffled once and every share takes its first ⌊share·N⌋ samples (so smaller shares are nested in
larger ones); 15 % of those are split off for validation; Adam at lr 1e-3, no weight decay, with batches of 100,000
(full batch on every dataset used: one step per epoch); after each epoch the whole training part (cross-entropy,
accuracy) and the validation part (accuracy) are evaluated, each in one forward (``eval_batch_size`` 100,000);
training stops once more than ``min_epochs`` (200) and 2·patience epochs have run and the best validation accuracy
of the last ``patience`` (20) epochs is below the best before them + ``min_improvement`` (5e-4). The final model,
not the best one, is tested.

Where this departs from the original, by necessity or as an option (stated in the notebook too):
- Seeds everywhere (the original set none): the shuffle per dataset (``split_seed``), the validation split and the
  model initialisation per repeat; the validation split of a repeat is the same for every model (paired).
- ``max_epochs``: a cap the original did not have (its loop could in principle run forever).
- ``losses``: ``double_softmax`` (faithful: softmax outputs into CrossEntropyLoss) and/or ``logits`` (corrected).
- ``inputs``: ``raw`` (faithful: pixels 0–255, features as in the files) or ``scaled`` (pixels in [0, 1], features
  standardised with the training part's mean and standard deviation).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from ..core import data, fileio, train
from ..core.counting import count_macs, count_parameters
from ..core.timing import benchmark_timer
from ..runs.params import CommonParams, param
from ..runs.results import RunResult, RunStore
from . import grouped, models
from .layer import SSSLinear, per_stage_forward
from .trial import HISTORY_KEYS, load_dataset, train_one

CODE_VERSION = 1
COMPLEXITY_VERSION = 2  # 2: counted MACs per sample of the benchmark batch (1: of a batch of one)
LOSSES = ("double_softmax", "logits")
INPUTS = ("raw", "scaled")
DATASETS = data.DATASETS + data.TABULAR_DATASETS


@dataclasses.dataclass(frozen=True)
class Params(CommonParams):
    datasets: list[str] = param(choices=DATASETS)
    training_set_shares: list[float] = param(gt=0.0, le=1.0, doc="fractions of the (shuffled) training split")
    models: list[str] = param(choices=models.HIDDEN_LAYERS.names(), doc="standard_nn, ss_<s>_dim, rank_1")
    widths: list[int] = param(ge=1, doc="hidden width h (the original's nb_neurons_list)")
    repeats: int = param(ge=1, doc="the original's nb_iterations", dry=2)
    losses: list[str] = param(choices=LOSSES, doc="double_softmax (faithful) and/or logits (corrected)")
    inputs: str = param(choices=INPUTS, doc="raw (faithful) or scaled inputs")
    split_seed: int = param(ge=0, doc="seed of the one shuffle per dataset")
    seed: int = param(ge=0, doc="repeat r uses seed + r for its validation split and initialisation")
    validation_fraction: float = param(gt=0.0, lt=1.0, doc="share of each training subset held out for validation")
    optimizer: str = param(
        choices=tuple(train.OPTIMIZERS), doc="adam in the original (torch's default betas and eps, no weight decay)"
    )
    lr: float = param(gt=0.0)
    weight_decay: float = param(ge=0.0, doc="0 in the original")
    batch_size: int = param(ge=1, doc="100000 in the original's benchmark: full batch")
    eval_batch_size: int = param(
        ge=1, doc="batch of the per-epoch and test evaluations; 100000: each split in one forward, as the original"
    )
    min_epochs: int = param(ge=0, dry=1)
    max_epochs: int = param(ge=1, doc="a cap the original did not have", dry=2)
    patience: int = param(ge=1)
    min_improvement: float = param(ge=0.0)
    complexity_sizes: list[int] = param(ge=2, doc="n of the complexity figure (square layers, m = 1)", dry=[64, 128])
    complexity_states: list[int] = param(ge=1)
    complexity_batch: int = param(ge=1)
    complexity_min_time: float = param(gt=0.0, doc="seconds of timing per point", dry=0.01)
    batch_runs: bool = param(doc="train the runs of one model, width and share (repeats, losses) as one batch")

    def __post_init__(self):
        if self.min_epochs >= self.max_epochs:
            raise ValueError(f"min_epochs ({self.min_epochs}) must be below max_epochs ({self.max_epochs})")


def run_spec(p: Params, dataset: str, share: float, key: str, width: int, repeat: int, loss: str) -> dict:
    return {
        "code_version": CODE_VERSION,
        "dataset": dataset,
        "share": share,
        "model": key,
        "width": width,
        "repeat": repeat,
        "seed": p.seed + repeat,
        "loss": loss,
        "inputs": p.inputs,
        "split_seed": p.split_seed,
        "validation_fraction": p.validation_fraction,
        "optimizer": p.optimizer,
        "lr": p.lr,
        "weight_decay": p.weight_decay,
        "batch_size": p.batch_size,
        "eval_batch_size": p.eval_batch_size,
        "min_epochs": p.min_epochs,
        "max_epochs": p.max_epochs,
        "patience": p.patience,
        "min_improvement": p.min_improvement,
    }


def grid(p: Params) -> list[dict]:
    """In the original's loop order: dataset, share, model, width, repeat (then our loss variants)."""
    return [
        run_spec(p, d, share, key, w, r, loss)
        for d in p.datasets
        for share in p.training_set_shares
        for key in p.models
        for w in p.widths
        for r in range(p.repeats)
        for loss in p.losses
    ]


def run(p: Params, store: RunStore | None = None) -> list[RunResult]:
    """The grid, dataset by dataset; every dataset is read once up front, so missing data is named before any
    training starts, and once more for its runs (one dataset in memory at a time)."""
    store = store or RunStore()
    for name in p.datasets:
        load_dataset(p, name)
    out = []
    for name in p.datasets:
        runs = [g for g in grid(p) if g["dataset"] == name]
        dataset = None if store.runs_elsewhere else load_dataset(p, name)  # a job elsewhere reads its own
        together = {}
        if p.batch_runs:
            fn_group = functools.partial(grouped.train_members, p, dataset=dataset)
            together = dict(group=grouped.group_key, fn_group=fn_group, max_group=grouped.MAX_MEMBERS)
        out += store.sweep("sss", runs, functools.partial(train_one, p, dataset=dataset), device=p.device, **together)
    return out


# ------------------------------------------------------------------ complexity


def complexity_params(p: Params) -> dict:
    return {
        "code_version": COMPLEXITY_VERSION,
        "sizes": p.complexity_sizes,
        "states": p.complexity_states,
        "batch": p.complexity_batch,
        "min_time": p.complexity_min_time,
        "device": p.device,
        "threads": torch.get_num_threads(),
    }


def counted_macs(module: torch.nn.Module, u: torch.Tensor) -> int:
    """Multiply-adds per sample of one forward pass on the batch ``u``, as counted by torch.utils.flop_counter
    (matrix products only). Per sample of a batch, because the SSS layer's work on its generators (assembling the
    chunk operators) does not depend on the batch and is shared by its samples."""
    return count_macs(module, u) // len(u)


def generator_macs(n: int, s: int) -> int:
    """The minimum for the recursions (m = 1): one multiply-add per generator entry and sample, §1.3."""
    layer = SSSLinear(n, state_dim=s, bias=False, init="zeros")
    return count_parameters(layer, trainable_only=False)


def recursion_macs(layer: SSSLinear) -> int:
    """Multiply-adds per sample of the paper's algorithm on ``layer``: the two stage-by-stage recursions
    (:func:`per_stage_forward`) run on one sample under torch.utils.flop_counter. Counted, not computed from a
    formula, so that the claim of linear cost measures the recursions themselves (the tests check that it equals
    :func:`generator_macs`)."""
    return count_macs(per_stage_forward, layer, torch.zeros(1, layer.in_features))


def measure_complexity(params: dict, checkpoint=None) -> dict:
    """Forward + backward time (median, torch.utils.benchmark) and counted multiply-adds per sample of the SSS layer
    (random generators at the initialisation's scale) and of nn.Linear, for each n and s."""
    device = train.resolve_device(params["device"])
    rows = []
    for n in params["sizes"]:
        u = torch.randn(params["batch"], n, device=device, requires_grad=True)
        layers = {"dense": torch.nn.Linear(n, n)}
        for s in params["states"]:
            layers[f"sss_{s}"] = random_sss(n, s)
        for name, layer in layers.items():
            layer = layer.to(device)
            timer = benchmark_timer("layer(u).sum().backward()", globals={"layer": layer, "u": u})
            seconds = timer.blocked_autorange(min_run_time=params["min_time"]).median
            s = None if name == "dense" else int(name.split("_")[1])
            rows.append(
                {
                    "n": n,
                    "layer": name,
                    "state_dim": s,
                    "seconds": seconds,
                    "macs_per_sample": counted_macs(layer, u.detach()),
                    "minimal_macs_per_sample": n * n if s is None else recursion_macs(layer),
                    "chunk": None if s is None else layer.chunk_size(),
                }
            )
    return {"rows": rows, "device": str(device)}


def random_sss(n: int, s: int, seed: int = 0) -> SSSLinear:
    """An SSS layer with generators at the scale of the Hankel-SVD initialisation (orthogonal A_k, entries of B, C, D
    about 0.1) without its O(N·n³) cost. Timing depends on scale only through subnormal floats: with A entries of 0.1
    the products over a chunk underflow to them, which the CPU handled 50× slower (measured)."""
    torch.manual_seed(seed)
    layer = SSSLinear(n, state_dim=s, init="zeros")
    with torch.no_grad():
        for q in layer.parameters():
            q.normal_(0, 0.1)
        for packed in (layer.A, layer.E):
            orthogonal = torch.linalg.qr(torch.randn(layer.stages, s, s)).Q
            packed.values.copy_(orthogonal.reshape(-1)[packed.index])
    return layer


def complexity(p: Params, store: RunStore | None = None) -> RunResult:
    store = store or RunStore()
    return store.run("sss_complexity", complexity_params(p), measure_complexity, device=p.device)


# ------------------------------------------------------------------ the original's results file


# The original's results file: its header's keys, and those of each run's entry (beside them, ours: "provenance").
ORIGINAL_HEADER_KEYS = (
    "dataset_names",
    "nb_iterations",
    "nb_neurons_list",
    "batch_size",
    "min_accuracy_improvement",
    "patience",
    "training_set_shares",
)
ORIGINAL_ENTRY_KEYS = (*HISTORY_KEYS, "test_loss", "test_accuracy", "nb_model_parameters")


def original_results(runs: list[RunResult]) -> dict:
    """The original's ``benchmark_results.p`` structure (docs/papers/sss.md §4.4) as JSON: shares and widths become
    string keys; runs with the corrected loss go under ``"<model>@logits"`` so the faithful keys stay the original's."""
    first = runs[0].params if runs else {}
    out = {
        "dataset_names": sorted({r.params["dataset"] for r in runs}),
        "nb_iterations": 1 + max((r.params["repeat"] for r in runs), default=-1),
        "nb_neurons_list": sorted({r.params["width"] for r in runs}),
        "batch_size": first.get("batch_size"),
        "min_accuracy_improvement": first.get("min_improvement"),
        "patience": first.get("patience"),
        "training_set_shares": sorted({r.params["share"] for r in runs}),
    }
    for r in runs:
        q, res = r.params, r.result
        key = q["model"] if q["loss"] == "double_softmax" else f"{q['model']}@logits"
        entry = {k: res[k] for k in ORIGINAL_ENTRY_KEYS}
        entry["provenance"] = {
            "run": f"{r.kind}/{r.key}",
            "seed": q["seed"],
            **{k: r.meta.get(k) for k in ("git", "wall_time_s")},
        }
        (
            out.setdefault(q["dataset"], {})
            .setdefault(str(q["share"]), {})
            .setdefault(key, {})
            .setdefault(str(q["width"]), {})
        )[str(q["repeat"])] = entry
    return out


def export(runs: list[RunResult], folder: str | Path) -> list[Path]:
    return [fileio.write_json(Path(folder) / "benchmark_results.json", original_results(runs))]
