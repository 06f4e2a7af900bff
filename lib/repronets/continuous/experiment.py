"""ContinuousNet experiments: the README table's rows, the manifestation sweep, block convergence.

Run without Jupyter: ``python -m repronets.continuous --profile paper``.

Choices where the original is silent (stated in the notebook too):
- **T of the refined rows**: 1, what ``cli.py`` gives a run started at 1-1-1 without ``--time_epsilon`` (the
  README does not give those commands). Plain d-d-d rows use T = d, so Euler steps are ResNet units.
- **CIFAR-100 schedule**: the CIFAR-10 one (120 epochs, decays after 30/60/90); the original states none.
- **Refinement epochs** scale with the profile's epochs: 25/120 and 30, 50, 70 of 120, rounded.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import torch

from ..core import data, numerics, train, transforms
from ..core.counting import count_parameters
from ..core.transforms import ChannelStats, Preprocess, classification_loss
from ..runs.params import FIRST, CommonParams, param
from ..runs.results import RunResult, RunStore
from .blocks import manifestation, ode_blocks
from .integrators import SCHEMES
from .models import MODELS
from .training import Refinement, lr_milestones

CODE_VERSION = 3  # 2: block convergence in float64; 3: and on smooth fields (convergence_smooth)
PAPER_EPOCHS = 120


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the original README's tables: what to train (the README's numbers are in ``reference.py``)."""

    model: str  # Model column
    arch: str  # the factory in MODELS
    units: str  # Units column
    table: str = "cifar10"  # which table: cifar10 or cifar100
    pieces: int = 0
    scheme: str | None = None
    refine_at: tuple[int, ...] = ()  # epochs of a 120-epoch run
    depth: int = 0
    weight_decay: float | None = None  # a row's own value (the README's RK4 run uses 1e-4)
    schedule: str = "continuousnet"  # whose LR-schedule convention: a name in training.SCHEDULE_CONVENTIONS


ROWS = {
    "resnet20": Row("ResNet-20 (v2)", "resnet_v2", "2-2-2", depth=20, schedule="resnet"),
    "cn2_euler": Row("ContinuousNet", "continuousnet", "2-2-2", pieces=2, scheme="euler"),
    "cn2_rk4": Row("ContinuousNet", "continuousnet", "2-2-2", pieces=2, scheme="rk4_classic", weight_decay=1e-4),
    "cn1to2_rk4": Row(
        "ContinuousNet", "continuousnet", "1-1-1 -> 2-2-2", pieces=1, scheme="rk4_classic", refine_at=(25,)
    ),
    "cn1to2_midpoint": Row(
        "ContinuousNet", "continuousnet", "1-1-1 -> 2-2-2", pieces=1, scheme="midpoint", refine_at=(25,)
    ),
    "resnet56": Row("ResNet-56 (v2)", "resnet_v2", "8-8-8", depth=56, schedule="resnet"),
    "cn8_euler": Row("ContinuousNet", "continuousnet", "8-8-8", pieces=8, scheme="euler"),
    "cn8_rk4": Row("ContinuousNet", "continuousnet", "8-8-8", pieces=8, scheme="rk4_classic"),
    "cn1to8_rk4": Row(
        "ContinuousNet", "continuousnet", "1-1-1 -> 8-8-8", pieces=1, scheme="rk4_classic", refine_at=(30, 50, 70)
    ),
    "wrn58": Row("WideResNet-58", "wide_resnet", "8-8-8", table="cifar100", depth=58, schedule="resnet"),
    "wcn8_euler": Row("WideContinuousNet", "wide_continuousnet", "8-8-8", table="cifar100", pieces=8, scheme="euler"),
}

# The run values each factory of MODELS takes (factory argument: run key); the data give num_classes and in_channels.
_ODE_ARGS = {"pieces": "pieces", "scheme": "scheme", "epsilon": "T", "legacy": "legacy_pieces"}
MODEL_ARGS = {
    "resnet_v2": {"depth": "depth", "alpha": "alpha"},
    "wide_resnet": {"depth": "depth", "widen_factor": "widen_factor"},
    "continuousnet": {"alpha": "alpha", **_ODE_ARGS},
    "wide_continuousnet": {"widen_factor": "widen_factor", **_ODE_ARGS},
}


@dataclasses.dataclass(frozen=True)
class Params(CommonParams):
    rows: list[str] = param(choices=tuple(ROWS), doc="table rows to train (see ROWS)")
    dataset: str = param(choices=data.DATASETS, doc="data of the CIFAR-10 table's rows")
    wide_dataset: str = param(choices=data.DATASETS, doc="data of the CIFAR-100 table's rows")
    train_limit: int = param(ge=0, dry=256)
    test_limit: int = param(ge=0, doc="stratified subset of the test split; 0 = all of it (the tables)", dry=200)
    alpha: int = param(ge=1, doc="base width (16 in the paper)", dry=4)
    widen_factor: int = param(ge=1, doc="k of the wide models (4)", dry=1)
    epochs: int = param(ge=1, dry=4)  # dry: the rows refined three times (1 → 8 pieces) need four
    batch_size: int = param(ge=1)
    lr: float = param(gt=0.0)
    momentum: float = param(ge=0.0, lt=1.0)
    weight_decay: float = param(ge=0.0, doc="on all parameters, as in the original (rows may override)")
    lr_decay_epochs: list[int] = param(
        ge=0, doc="epochs of a 120-epoch run after which the LR is multiplied by lr_decay_factor"
    )
    lr_decay_factor: float = param(
        gt=0.0, le=1.0, doc="what each LR decay multiplies the LR by (0.1, the original's lr_decay)"
    )
    refined_T: float = param(gt=0.0, doc="depth-time T of the refined rows (not stated by the original)")
    refine_variance: float = param(
        ge=0.0,
        doc="v of the noise factor 1 + v·N(0, 1) on the weights copied at a refinement "
        "(0: exact copies, the default of the original's do_a_train_set)",
    )
    legacy_pieces: bool = param(doc="the original's float32 piece selection instead of exact integers")
    carry_optimizer_state: bool = param(doc="keep momentum through a refinement (the original rebuilds SGD)")
    augment: bool = param(doc="random crops (and flips on CIFAR), as the original")
    manifestation_steps: list[int] = param(ge=1, doc="steps per ODE block in the manifestation sweep", dry=[1, 2])
    manifestation_schemes: list[str] = param(choices=tuple(SCHEMES))
    convergence_doublings: int = param(ge=1, le=8, doc="block-convergence study: steps = pieces·2^j, j < this", dry=2)
    convergence_samples: int = param(
        ge=1,
        doc="test images in the block-convergence batch (its float64 reference grid is most of a run's time)",
        dry=2,  # measured: at 16 the study was 90 s of the paper profile's 151 s dry run (float64 convolutions)
    )
    amp: str = param(choices=("off", "bf16", "fp16"), doc="mixed precision on CUDA")
    channels_last: bool = param(doc="channels-last memory format (faster convolutions on GPUs)")
    compile: bool = param(doc="torch.compile the model")
    seeds: list[int] = param(ge=0, dry=FIRST)


def scaled(epoch: int, total: int) -> int:
    """An epoch of the paper's 120-epoch schedule, scaled to ``total`` epochs (at least 1)."""
    return max(1, round(epoch * total / PAPER_EPOCHS))


def scaled_refinements(epochs: tuple[int, ...], total: int, row_name: str) -> list[int]:
    """Refinement epochs scaled to ``total`` epochs, kept distinct (two refinements never fall on one epoch)."""
    out = []
    for e in epochs:
        out.append(max(scaled(e, total), out[-1] + 1 if out else 1))
    if out and out[-1] >= total:
        raise ValueError(
            f"row {row_name!r} refines {len(epochs)} time(s), which needs more than {out[-1]} epochs; "
            f"the profile has {total}"
        )
    return out


def table_dataset(p: Params, table: str) -> str:
    """The data the rows of one of the README's tables train on: ``wide_dataset`` for CIFAR-100's, else ``dataset``."""
    return p.wide_dataset if table == "cifar100" else p.dataset


def run_spec(p: Params, row_name: str, seed: int) -> dict:
    row = ROWS[row_name]
    refine_at = scaled_refinements(row.refine_at, p.epochs, row_name)
    pieces_final = row.pieces * 2 ** len(refine_at)
    T = p.refined_T if refine_at else float(pieces_final)
    return {
        "code_version": CODE_VERSION,
        "row": row_name,
        "arch": row.arch,
        "seed": seed,
        "dataset": table_dataset(p, row.table),
        "train_limit": p.train_limit,
        **({"test_limit": p.test_limit} if p.test_limit else {}),  # absent when 0: the runs' keys stay as they were
        "alpha": p.alpha,
        "widen_factor": p.widen_factor,
        "pieces": row.pieces,
        "scheme": row.scheme,
        "refine_at": refine_at,
        "T": T if row.pieces else None,
        "depth": row.depth,
        "legacy_pieces": p.legacy_pieces,
        "carry_optimizer_state": p.carry_optimizer_state and bool(refine_at),
        "refine_variance": p.refine_variance if refine_at else 0.0,
        "epochs": p.epochs,
        "batch_size": p.batch_size,
        "lr": p.lr,
        "momentum": p.momentum,
        "weight_decay": row.weight_decay if row.weight_decay is not None else p.weight_decay,
        "milestones": lr_milestones([scaled(e, p.epochs) for e in p.lr_decay_epochs], row.schedule),
        "lr_decay_factor": p.lr_decay_factor,
        "augment": p.augment,
        "amp": p.amp,
        "manifestation_steps": p.manifestation_steps,
        "manifestation_schemes": p.manifestation_schemes,
        "convergence_doublings": p.convergence_doublings,
        "convergence_samples": p.convergence_samples,
    }


def build_model(run: dict, in_channels: int, num_classes: int):
    torch.manual_seed(run["seed"])
    args = {arg: run[key] for arg, key in MODEL_ARGS[run["arch"]].items()}
    return MODELS.create(run["arch"], num_classes=num_classes, in_channels=in_channels, **args)


# The original's Normalize values.
NORMALISATION = {"cifar10": ChannelStats((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))}


def original_preprocess(split: data.Split, augment: bool, channels_last: bool = False) -> Preprocess:
    """The original's CIFAR-10 normalisation (else the split's own); when augmenting, crops with padding 4 on 32×32
    images (as the original) and flips on CIFAR."""
    return transforms.preprocess_for(
        split,
        NORMALISATION,
        pad=max(1, split.x.shape[-1] // 8) if augment else 0,
        flip=augment and split.name in ("cifar10", "cifar100"),
        channels_last=channels_last,
    )


def train_one(p: Params, run: dict, checkpoint=None) -> dict:
    tr, te = data.train_test(
        run["dataset"], root=p.data_root or None, download=p.download, train_limit=run["train_limit"]
    )
    te = te.take(run.get("test_limit", 0), seed=0)
    device = train.resolve_device(p.device)
    model = build_model(run, tr.input_shape[0], tr.num_classes)
    n_params_initial = count_parameters(model, trainable_only=False)
    channels_last = p.channels_last and numerics.channels_last_safe(device)
    if p.channels_last and not channels_last:
        warnings.warn(
            f"run {run['row']}/{run['dataset']}/seed{run['seed']}: channels_last is not used on the CPU with the "
            "pinned kernels (oneDNN's AVX2 channels-last training corrupts memory: "
            "repronets.core.numerics.channels_last_safe); contiguous instead",
            stacklevel=2,
        )
    if channels_last:  # ordinary convolutions; the rank-5 piecewise weights are sliced per call instead
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.to(memory_format=torch.channels_last)
    preprocess = original_preprocess(tr, run["augment"], channels_last)
    loss_fn = classification_loss(preprocess)
    refinement = Refinement(run["refine_at"], run["refine_variance"], carry_state=run["carry_optimizer_state"])
    callbacks = [refinement] if run["refine_at"] else []
    config = train.TrainConfig(
        epochs=run["epochs"],
        batch_size=run["batch_size"],
        optimizer="sgd",
        lr=run["lr"],
        momentum=run["momentum"],
        weight_decay=run["weight_decay"],
        scheduler="multistep",
        milestones=tuple(run["milestones"]),
        gamma=run["lr_decay_factor"],
        device=str(device),
        amp=run["amp"],
        seed=run["seed"],
        eval_batch_size=1000,
        log_steps=False,
        name=f"{run['row']}/{run['dataset']}/seed{run['seed']}",
    )
    trained = torch.compile(model) if p.compile else model
    history = train.fit(trained, tr, config, test_data=te, loss_fn=loss_fn, callbacks=callbacks, checkpoint=checkpoint)
    model = model.to(device)
    train_time = sum(history.epochs["train_time"])
    result = {
        "epochs": history.epochs,
        "final_test_acc": history.epochs["test_acc"][-1],
        "parameters": count_parameters(model, trainable_only=False),
        "parameters_initial": n_params_initial,
        "train_time_s": train_time,
        "images_per_s": len(tr) * run["epochs"] / train_time,
        "train_samples": len(tr),
        "test_samples": len(te),
        "device": str(device),
    }
    if run["pieces"]:
        result["manifestation"] = manifestation_sweep(
            model, te, loss_fn, run["manifestation_steps"], run["manifestation_schemes"]
        )
        result["convergence"] = block_convergence(
            model, te, preprocess, run["convergence_doublings"], run["convergence_samples"]
        )
        # the same grids with the ReLUs swapped for smooth functions: what the schemes give where the field is smooth
        # (a smaller batch: the order does not depend on it, and the float64 reference grid is a run's largest cost)
        result["convergence_smooth"] = [
            {**row, "activation": name}
            for name in SMOOTH_ACTIVATIONS
            for row in block_convergence(
                model, te, preprocess, run["convergence_doublings"], min(16, run["convergence_samples"]), name
            )
        ]
    return result


def manifestation_sweep(model, test: data.Split, loss_fn, steps: list[int], schemes: list[str]) -> list[dict]:
    """Test accuracy of the trained model evaluated with each (scheme, steps per block); weights untouched."""
    rows = []
    test = test.to(next(model.parameters()).device)
    for scheme in schemes:
        for n in steps:
            with manifestation(model, steps=n, scheme=scheme):
                metrics = train.evaluate(model, test, loss_fn, batch_size=1000)
            rows.append({"scheme": scheme, "steps": n, "test_acc": metrics["acc"], "test_loss": metrics["loss"]})
    return rows


# Smooth stand-ins for the trained field's ReLUs in the convergence study (by name: the result records it).
SMOOTH_ACTIVATIONS = {"tanh": torch.tanh, "softplus": torch.nn.functional.softplus}


@torch.no_grad()
def block_convergence(
    model, test: data.Split, preprocess: Preprocess, doublings: int, samples: int = 256, activation: str = ""
) -> list[dict]:
    """Relative error of the first ODE block's output against a fine-grid reference (classic RK4 with
    pieces·2^(doublings+3) steps), for each scheme at steps = pieces·2^j: the discretisation error of the trained
    block as an integrator (eval mode, a fixed batch of test images, float64). ``activation``: a name of
    :data:`SMOOTH_ACTIVATIONS` to put in place of the block's ReLUs (trained weights kept), so that the field is
    smooth and each scheme can show its full order; empty: the trained block as it is."""
    model.eval()
    device = next(model.parameters()).device
    x = preprocess(test.x[:samples].to(device), training=False)
    block = ode_blocks(model)[0]
    h = x
    for module in [model.stem, *model.stages]:
        if module is block:
            break
        h = module(h)
    # In float64, so that float32 round-off does not blur the observed orders at the finest grids.
    block, h = copy.deepcopy(block).double(), h.double()
    if activation:
        block.fn.activation = SMOOTH_ACTIVATIONS[activation]
    pieces = block.fn.pieces
    with manifestation(block, steps=pieces * 2 ** (doublings + 3), scheme="rk4_classic"):
        reference = block(h)
    rows = []
    for scheme in ("euler", "midpoint", "rk4_classic"):
        for j in range(doublings):
            with manifestation(block, steps=pieces * 2**j, scheme=scheme):
                out = block(h)
            error = float((out - reference).norm() / reference.norm())
            rows.append({"scheme": scheme, "steps": pieces * 2**j, "relative_error": error})
    return rows


def run(p: Params, store: RunStore | None = None) -> list[RunResult]:
    store = store or RunStore()
    grid = [run_spec(p, r, s) for r in p.rows for s in p.seeds]
    return store.sweep("continuous", grid, lambda g, ckpt: train_one(p, g, ckpt), device=p.device)
