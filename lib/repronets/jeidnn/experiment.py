"""JEI-DNN experiments: a backbone (transfer-learned from the official checkpoint, or trained from scratch), JEI-DNN's
exits and gates for each λ, and the baselines on the same frozen backbone, all evaluated on the same 10 test folds.

Run without Jupyter: ``python -m repronets.jeidnn --profile paper``.

Defaults for the places where the original's code and the paper differ (each an option, see ``training``):
``ic_loss: code`` and ``cost_term: depth_fraction`` and ``pos_weight: exact`` and ``frozen_features: train`` are the
code that produced the stored results (faithful); evaluation uses the corrected protocol by default — ECE over the
whole test set (``ece_batch: 0``; the original's per-batch ECE with ``ece_batch: 64``), validation without training
augmentation (``val_augmentation: true`` for the original's), conformal q̂ from the same model state, no
temperature scaling (the original's baseline pipeline scaled probabilities as if they were logits), softmax once.
Why faithful training but corrected evaluation: the training options change the method (and keep our runs
comparable with the stored results), while the evaluation flaws only blur what is measured.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from ..core import data, train, transforms
from ..core.counting import count_parameters
from ..core.registry import Registry
from ..core.transforms import ChannelStats, Preprocess, classification_loss
from ..runs.executors import ExecutorConfig
from ..runs.params import FIRST, CommonParams, dry_values, param
from ..runs.results import RunResult, RunStore
from . import cost as cost_mod
from . import metrics, policies
from .dynamic import EXIT_RULES, IC_INITS, POSITIVE_COUNTS, DynamicNet, oracle_exits
from .t2t_vit import VARIANTS, T2TViT, load_pretrained
from .training import (
    EXIT_SCHEDULES,
    IC_LOSSES,
    JOINT_EPOCHS,
    METHODS,
    TRANSFER_RECIPES,
    WARMUP_ENDS,
    BackboneTraining,
    ExitConfig,
    ExitTask,
    Features,
    exit_losses,
)

CODE_VERSION = 2  # 2: every policy records its operating point on validation samples (analysis.matched_level)
BASELINES = tuple(name for name in METHODS.names() if not METHODS.get(name).gated)

# The backbone architectures by name: factory(p, in_chans, num_classes) -> T2TViT.
ARCHITECTURES: Registry = Registry("architecture")
for _name in VARIANTS:
    ARCHITECTURES.register(
        _name,
        lambda p, in_chans, num_classes, name=_name: VARIANTS.create(
            name, num_classes, p.img_size, in_chans=in_chans, drop_path_rate=p.drop_path_rate
        ),
    )


@ARCHITECTURES.register("small")
def _small(p, in_chans: int, num_classes: int) -> T2TViT:
    """Any size: the Params' embed_dim, depth, num_heads, mlp_ratio and token_dim."""
    return T2TViT(
        p.img_size, in_chans, num_classes, p.embed_dim, p.depth, p.num_heads, p.mlp_ratio, p.token_dim, p.drop_path_rate
    )


def _counted(convention: str):
    """c_l: the cumulative cost of exit l in ``convention`` over the full cost."""

    def weights(costs: dict, G: int) -> torch.Tensor:
        table = torch.tensor(costs[convention], dtype=torch.float32)
        return table / table[-1]

    return weights


# The oracle's cost term c_l by name: (the exits' cumulative costs in both conventions, G) -> (G+1,) weights.
COST_TERMS: Registry = Registry("cost term")
COST_TERMS.register("depth_fraction", lambda costs, G: torch.arange(1, G + 2, dtype=torch.float32) / (G + 1))
COST_TERMS.register("original_counter", _counted("original"))
COST_TERMS.register("macs", _counted("macs"))


# The original's Normalize values; SVHN: ToTensor only, no normalisation (as the original).
NORMALISATION = {
    "cifar10": ChannelStats((0.4914, 0.4822, 0.4465), (0.24703, 0.24348, 0.26158)),
    "cifar100": ChannelStats((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "cifar100_lt": ChannelStats((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "svhn": ChannelStats((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
# The original's per-dataset settings (docs/papers/jeidnn.md §2.7, §5)
ORIGINAL_SETTINGS = {
    "cifar10": {"img_size": 224, "augment": True, "val_size": 5000, "exit_batch_size": 64},
    "cifar100": {"img_size": 224, "augment": True, "val_size": 10000, "exit_batch_size": 64},
    "cifar100_lt": {"img_size": 224, "augment": True, "val_size": 1000, "exit_batch_size": 64},
    "svhn": {"img_size": 32, "augment": False, "val_size": 5000, "exit_batch_size": 256},
}


@dataclasses.dataclass(frozen=True)
class Params(CommonParams):
    datasets: list[str] = param(choices=data.DATASETS)
    original_dataset_settings: bool = param(
        doc="each dataset with the original's img_size, augmentation, val_size and "
        "exit batch size (CIFAR: 224 px, augmented; SVHN: 32 px, batch 256)"
    )
    train_limit: int = param(ge=0, doc="stratified subset of the training split; 0 = all", dry=256)
    # dry: the format-true CIFAR-100's 10,000 test images (kept so that its long-tailed test subset ends at one image
    # per class, as the real one) were most of the paper profile's dry run
    test_limit: int = param(ge=0, doc="a seeded random subset of the test split of this size; 0 = all", dry=500)
    val_size: int = param(
        ge=1, doc="training images held out for validation (5000 for CIFAR-10 in the original)", dry=64
    )
    val_split_seed: int = param(ge=0, doc="seed of the generator that draws the validation part (42 in the original)")
    img_size: int = param(ge=16, doc="images are resized to this (224 for CIFAR in the original, 32 for SVHN)", dry=32)
    arch: str = param(choices=ARCHITECTURES.names(), doc="t2t_vit_7, t2t_vit_14 or small (the sizes below)")
    embed_dim: int = param(ge=8, doc="small arch only")
    depth: int = param(ge=2, doc="small arch only; G = depth − 1 exits before the head")
    num_heads: int = param(ge=1, doc="small arch only")
    mlp_ratio: float = param(gt=0.0, doc="small arch only")
    token_dim: int = param(ge=4, doc="small arch only")
    drop_path_rate: float = param(ge=0.0, lt=1.0)
    checkpoint: str = param(doc="official T2T-ViT checkpoint for transfer learning; empty: train from scratch")
    augment: bool = param(doc="random crop (padding size/8) and flips while training, as the original on CIFAR")
    backbone_epochs: int = param(ge=0, dry=1)
    backbone_lr: float = param(gt=0.0)
    backbone_lr_scale: float = param(
        gt=0.0, doc="lr of the pretrained part relative to the head (0.01 when transferring)"
    )
    backbone_momentum: float = param(ge=0.0, lt=1.0, doc="SGD momentum of the backbone's training (0.9)")
    backbone_weight_decay: float = param(ge=0.0)
    backbone_batch_size: int = param(ge=1)
    backbone_optimizer: str = param(choices=tuple(train.OPTIMIZERS), doc="sgd in the original")
    backbone_scheduler: str = param(
        choices=tuple(train.SCHEDULERS), doc="cosine (T_max = backbone_epochs) in the original"
    )
    backbone_eta_min: float = param(
        ge=0.0, doc="the cosine schedule's final lr: 2e-4 in the original's transfer recipe, 0 from scratch"
    )
    exit_epochs: int = param(ge=1, doc="num_epoch of the exits' training (15 in the original)", dry=1)
    exit_batch_size: int = param(ge=1)
    exit_lr: float = param(gt=0.0)
    exit_momentum: float = param(ge=0.0, lt=1.0, doc="SGD momentum of every exit-training phase (0.9)")
    exit_weight_decay: float = param(ge=0.0, doc="SGD weight decay of every exit-training phase (5e-4)")
    exit_eta_min: float = param(ge=0.0, doc="final lr of the cosine schedules of the joint phase and baselines (2e-4)")
    max_warmup_epochs: int = param(ge=0, dry=1)
    warmup_patience: int = param(ge=1, doc="warm-up: epochs without a validation gain before an IC is frozen (2)")
    alternate_every: int = param(ge=1, doc="batches per gate/IC phase (200 in the original)")
    tradeoffs: list[float] = param(ge=0.0, doc="the λ (ce_ic_tradeoff) sweep")
    ic_loss: str = param(choices=IC_LOSSES.names())
    cost_term: str = param(choices=COST_TERMS.names())
    pos_weight: str = param(choices=POSITIVE_COUNTS.names())
    frozen_features: str = param(choices=("train", "eval"))
    exit_rule: str = param(
        choices=EXIT_RULES.names(),
        doc="code: the original's (the paper's Eq. 8), g_l read as an exit mass; conditional: g_l read as the "
        "probability of exiting at l once there, which its cumulative targets train",
    )
    ic_init: str = param(choices=IC_INITS, doc="default: nn.Linear's (the original); trunc_normal: N(0, 0.02), bias 0")
    warmup_end: str = param(choices=WARMUP_ENDS, doc="restore_best: unfrozen ICs get their best weights (original)")
    joint_epochs: str = param(
        choices=JOINT_EPOCHS, doc="after_warmup: exit_epochs − warm-up epochs run (original); fixed: − max_warmup"
    )
    exit_schedule: str = param(
        choices=EXIT_SCHEDULES,
        doc="original: cosine T_max = exit_epochs, stepped in joint epochs; remaining: T_max = the joint epochs",
    )
    transfer_recipe: str = param(
        choices=TRANSFER_RECIPES,
        doc="with a checkpoint: original (class token and final norm frozen, all training images) or "
        "held_out (all but the head at lr_scale, validation images held out)",
    )
    val_augmentation: bool = param(doc="validation passes during training see the training augmentation (original)")
    baselines: list[str] = param(choices=BASELINES)
    boosted_reweight: float = param(ge=0.0, doc="BoostNet: r in the ensembles F_s = o_s + r·F_{s−1} (0.5)")
    meta_every: int = param(ge=1, doc="L2W-DEN: batches between meta-steps (100 in the original)")
    meta_p: float = param(gt=0.0, doc="L2W-DEN: the meta-objective's target share of samples per exit ∝ p^l (0.75)")
    meta_lr: float = param(gt=0.0, doc="L2W-DEN: Adam learning rate of the weight net (1e-4)")
    meta_weight_decay: float = param(ge=0.0, doc="L2W-DEN: Adam weight decay of the weight net (1e-4)")
    meta_hidden: int = param(ge=1, doc="L2W-DEN: the weight net's hidden width, MLP(G → this → G) (500)")
    meta_weight_spread: float = param(
        ge=0.0, doc="L2W-DEN: a sample's weights are 1 + this·(w − the batch's mean w), w in (−1, 1) (0.3)"
    )
    budget_levels: int = param(ge=1, doc="k = 1 … this, p = k/budget_divisor (39 and 20 in the original)")
    budget_divisor: float = param(gt=0.0)
    folds: int = param(ge=1)
    ece_bins: int = param(ge=1)
    ece_batch: int = param(ge=0, doc="0: ECE over the whole fold (corrected); > 0: per batch of this size (original)")
    ece_binning: str = param(
        choices=metrics.ECE_BINNINGS, doc="percentile: the original's edges, ties in one bin; equal_count: ties split"
    )
    test_folds: str = param(
        choices=metrics.FOLD_ORDERS, doc="contiguous: consecutive blocks of the test set (original); permuted: seeded"
    )
    conformal_alphas: list[float] = param(gt=0.0, lt=1.0)
    seed: int = param(ge=0)
    exit_seeds: list[int] = param(
        ge=0, doc="seeds of the exits' training: every method is trained once per seed on the one backbone", dry=FIRST
    )

    def __post_init__(self):
        if self.arch == "small" and self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} must be divisible by num_heads {self.num_heads}")
        if self.img_size % 16:
            raise ValueError(
                f"img_size must be a multiple of 16 (the tokens-to-token module's total stride), got {self.img_size}"
            )


@dataclasses.dataclass(frozen=True)
class Setting(Params):
    """The parameters of one dataset's runs: ``Params`` with ``dataset`` set and, with
    ``original_dataset_settings``, that dataset's original settings applied."""

    dataset: str = ""


def setting(p: Params, dataset: str) -> Setting:
    values = dataclasses.asdict(p)
    if p.original_dataset_settings:  # a dry run keeps its own (smaller) values
        keep = dry_values(Params) if p.dry_run else {}
        values.update({k: v for k, v in ORIGINAL_SETTINGS.get(dataset, {}).items() if k not in keep})
    return Setting(**values, dataset=dataset)


def checkpoint_path(p: Params):
    """The checkpoint file: as given when absolute or present, else under the data root."""
    from pathlib import Path

    path = Path(p.checkpoint).expanduser()
    if not path.is_absolute() and not path.is_file():
        path = data.data_root(p.data_root or None) / path
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {p.checkpoint!r} not found (looked at {Path(p.checkpoint).expanduser()} "
            f"and {path}); download the official T2T-ViT-7 ImageNet weights "
            f'(71.7_T2T_ViT_7.pth.tar, T2T-ViT release) and give its path, or set checkpoint: "" '
            f"to train the backbone from scratch"
        )
    return path


# ------------------------------------------------------------------ backbone


def make_backbone(p: Params, in_chans: int, num_classes: int) -> T2TViT:
    return ARCHITECTURES.create(p.arch, p, in_chans, num_classes)


def splits(p: Setting):
    """(train part, validation part, test), the validation part drawn from the training split (``val_split_seed``)."""
    full, test = data.train_test(p.dataset, root=p.data_root or None, download=p.download, train_limit=p.train_limit)
    if p.val_size >= len(full):
        raise ValueError(f"val_size {p.val_size} must be below the training split's {len(full)} images")
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(p.val_split_seed))
    if 0 < p.test_limit < len(test):  # random, not stratified: the long-tailed test set has classes of one image
        test = test.subset(data.shuffled_order(len(test), 0)[: p.test_limit].sort().values)
    return full.subset(order[p.val_size :]), full.subset(order[: p.val_size]), test


def original_preprocess(p: Setting, split: data.Split) -> Preprocess:
    """Resize to img_size, normalise (the original's statistics, else the training split's), and when augmenting
    crop with padding img_size/8 (28 px at 224, as the original) and flip CIFAR images."""
    return transforms.preprocess_for(
        split,
        NORMALISATION,
        pad=p.img_size // 8 if p.augment else 0,
        flip=p.augment and split.name.startswith("cifar"),
        size=p.img_size,
    )


def backbone_params(p: Setting) -> dict:
    keys = (
        "dataset",
        "train_limit",
        "val_size",
        "val_split_seed",
        "img_size",
        "arch",
        "embed_dim",
        "depth",
        "num_heads",
        "mlp_ratio",
        "token_dim",
        "drop_path_rate",
        "checkpoint",
        "augment",
        "backbone_epochs",
        "backbone_lr",
        "backbone_lr_scale",
        "backbone_momentum",
        "backbone_weight_decay",
        "backbone_batch_size",
        "backbone_optimizer",
        "backbone_scheduler",
        "backbone_eta_min",
        "seed",
    )
    out = {"code_version": CODE_VERSION, **{k: getattr(p, k) for k in keys}}
    if p.test_limit:  # absent when 0: the runs' keys stay as they were
        out["test_limit"] = p.test_limit
    if p.checkpoint:  # the recipe acts on transfer learning only; runs from scratch keep their keys
        out["transfer_recipe"] = p.transfer_recipe
    return out


def train_backbone(p: Setting, run: dict, checkpoint=None, data_splits=None) -> dict:
    """Phase 0: the backbone, transfer-learned from ``p.checkpoint`` by ``p.transfer_recipe`` (the original's trains
    on all training images, the validation part included) or trained from scratch on the
    training part. Kept: the last epoch's weights (the original keeps the epoch of best test accuracy, which selects
    on the test labels; not offered)."""
    tr, val, test = data_splits or splits(p)
    original = bool(p.checkpoint) and p.transfer_recipe == "original"
    if original:
        tr = dataclasses.replace(tr, x=torch.cat([tr.x, val.x]), y=torch.cat([tr.y, val.y]))
    torch.manual_seed(run["seed"])
    backbone = make_backbone(p, tr.input_shape[0], tr.num_classes)
    loaded = load_pretrained(backbone, checkpoint_path(p)) if p.checkpoint else None
    preprocess = original_preprocess(p, tr)
    config = train.TrainConfig(
        epochs=p.backbone_epochs,
        batch_size=p.backbone_batch_size,
        optimizer=p.backbone_optimizer,
        lr=p.backbone_lr,
        momentum=p.backbone_momentum,
        weight_decay=p.backbone_weight_decay,
        scheduler=p.backbone_scheduler,
        eta_min=p.backbone_eta_min,
        device=p.device,
        seed=run["seed"],
        log_steps=False,
        name=f"backbone/{p.dataset}",
    )
    model = BackboneTraining(backbone, p.backbone_lr_scale, p.transfer_recipe if p.checkpoint else "held_out")
    history = train.fit(
        model, tr, config, test_data=test, loss_fn=classification_loss(preprocess), checkpoint=checkpoint
    )
    backbone.eval()
    result = {
        "history": history.epochs,
        "loaded": loaded,
        "test_acc": history.epochs["test_acc"][-1] if history.epochs.get("test_acc") else None,
        "parameters": count_parameters(backbone, trainable_only=False),
        "tensors": {k: v.cpu() for k, v in backbone.state_dict().items()},
    }
    return result


def load_backbone(p: Setting, store: RunStore, data_splits=None) -> tuple[T2TViT, RunResult]:
    """The trained backbone (trained first if the store does not hold it). ``data_splits``: :func:`splits` of
    ``p`` when the caller already has them (they are not read again)."""
    given = None if store.runs_elsewhere else data_splits  # a job elsewhere reads its own data

    def fn(r, ckpt):
        return train_backbone(p, r, ckpt, given)

    (run,) = store.sweep("jeidnn_backbone", [backbone_params(p)], fn, device=p.device)
    tr = (data_splits or splits(p))[0]
    backbone = make_backbone(p, tr.input_shape[0], tr.num_classes)
    backbone.load_state_dict(run.tensors())
    return backbone.to(train.resolve_device(p.device)).eval(), run


# ------------------------------------------------------------------ exits (JEI-DNN and the baselines)


def cost_weights(p: Setting, costs: dict, G: int) -> torch.Tensor:
    """The oracle's c_l of each exit, (G+1,), by ``p.cost_term``."""
    return COST_TERMS.create(p.cost_term, costs, G)


# The ExitConfig fields that the Params name otherwise; every other field has its Params field's name. The exits'
# optimiser settings carry an exit_ prefix in the Params, beside the backbone's; BoostNet's r is boosted_reweight.
_PARAMS_NAME = {
    **{k: f"exit_{k}" for k in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "eta_min")},
    "reweight": "boosted_reweight",
}


def exit_config(p: Setting, tradeoff: float, seed: int) -> ExitConfig:
    """The exit-training phases' settings from the Params, λ and the exit seed."""
    given = {"tradeoff": tradeoff, "seed": seed}
    from_params = {
        f.name: getattr(p, _PARAMS_NAME.get(f.name, f.name))
        for f in dataclasses.fields(ExitConfig)
        if f.name not in given
    }
    return ExitConfig(**given, **from_params)


class _SharedEvaluation:
    """The splits on the device and their eval-mode features for the last backbone that exit runs used. The frozen
    backbone's eval-mode features of a split are the same numbers for every exit run on it (every λ, method and exit
    seed: same weights, images and batches), so a dataset's runs compute them once. Measured on the paper profile's
    dry run (4 datasets × 12 exit runs, one thread): recomputing them was 191 s of its 287 s. One backbone is kept,
    as :func:`run` holds one dataset at a time; :meth:`clear` lets it go."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.key, self.source, self.splits, self.features = None, None, None, []

    def get(self, backbone_key: str, data_splits, device) -> tuple[list, list]:
        if (backbone_key, device) != self.key or data_splits is not self.source:
            self.key, self.source, self.features = (backbone_key, device), data_splits, []
            self.splits = [s.to(device) for s in data_splits]
        return self.splits, self.features


_SHARED_EVALUATION = _SharedEvaluation()


def train_exits(p: Setting, run: dict, store: RunStore, checkpoint=None, data_splits=None) -> dict:
    """One method on the frozen backbone: JEI-DNN at λ = run["tradeoff"], or a baseline."""
    data_splits = data_splits or splits(p)
    backbone, backbone_run = load_backbone(p, store, data_splits)
    device = train.resolve_device(p.device)
    (tr, val, test), shared = _SHARED_EVALUATION.get(backbone_run.key, data_splits, device)
    method = METHODS.get(run["method"])
    torch.manual_seed(run["exit_seed"])
    model = DynamicNet(backbone, p.exit_rule, p.ic_init).to(device)
    model.freeze_backbone()
    G = len(model.ics)
    costs = cost_mod.exit_costs(model, (tr.input_shape[0], p.img_size, p.img_size), gates=method.gated)
    feats = Features(
        model,
        original_preprocess(p, tr),
        p.frozen_features,
        p.augment,
        val_augmentation=p.val_augmentation,
        cache=shared,
    )
    c = exit_config(p, run.get("tradeoff") or 0.0, run["exit_seed"])
    task = ExitTask(feats, tr.x, tr.y, val.x, val.y, cost_weights(p, costs, G))
    trained = method.train(model, task, c, checkpoint)
    model.eval()
    with torch.no_grad():
        logits = {name: model.exit_logits(feats.evaluation(s.x)) for name, s in (("val", val), ("test", test))}
    if method.combine is not None:
        logits = {k: method.combine(v, c) for k, v in logits.items()}
    labels = {"val": val.y, "test": test.y}
    protocol = policies.FoldProtocol(
        metrics.folds(len(test), p.folds, run["seed"], p.test_folds),  # the same folds for every exit seed
        p.conformal_alphas,
        p.ece_bins,
        p.ece_batch,
        p.ece_binning,
    )
    result = {
        "history": trained["history"],
        "exit_costs": costs,
        "per_exit_acc": (logits["test"].argmax(-1) == test.y[:, None]).float().mean(0).tolist(),
        "any_exit_acc": float((logits["test"].argmax(-1) == test.y[:, None]).any(1).float().mean()),
        "num_exits": G + 1,
        "test_samples": len(test),
        "device": str(device),
    }
    if method.gated:
        result.update(policies.evaluate_gates(model, logits, labels, costs, protocol))
        oracle = oracle_exits(exit_losses(logits["test"], test.y), cost_weights(p, costs, G).to(device), c.tradeoff)
        result["oracle_exit_distribution"] = policies.exit_distribution(oracle, G + 1)
        result["tensors"] = {"ics": model.ics.state_dict(), "gates": model.gates.state_dict()}
    else:
        probs = {k: v.softmax(-1) for k, v in logits.items()}
        result["levels"] = policies.evaluate_budgets(
            probs, labels, costs, protocol, p.budget_levels, p.budget_divisor, run["exit_seed"]
        )
        result["tensors"] = {"ics": model.ics.state_dict()}
    return result


# The exit runs' keys: every method's, then JEI-DNN's only and the baselines' only (a setting that a method does not
# read stays out of its key, so changing it reruns only the runs it changes).
EXIT_KEYS = (
    "exit_epochs",
    "exit_batch_size",
    "exit_lr",
    "exit_momentum",
    "exit_weight_decay",
    "exit_eta_min",
    "max_warmup_epochs",
    "warmup_patience",
    "warmup_end",
    "ic_init",
    "frozen_features",
    "val_augmentation",
    "folds",
    "ece_bins",
    "ece_batch",
    "ece_binning",
    "test_folds",
    "conformal_alphas",
)
GATED_KEYS = ("alternate_every", "ic_loss", "cost_term", "pos_weight", "exit_rule", "joint_epochs", "exit_schedule")
BASELINE_KEYS = (
    "boosted_reweight",
    "meta_every",
    "meta_p",
    "meta_lr",
    "meta_weight_decay",
    "meta_hidden",
    "meta_weight_spread",
    "budget_levels",
    "budget_divisor",
)


def run_spec(p: Setting, method: str, tradeoff: float | None, exit_seed: int | None = None) -> dict:
    """The key of one exit run: the backbone's, the method, λ, the exit-training seed (the first of
    ``p.exit_seeds`` when None) and the settings the method reads."""
    gated = METHODS.get(method).gated
    keys = EXIT_KEYS + (GATED_KEYS if gated else BASELINE_KEYS)
    out = {**backbone_params(p), "method": method, "tradeoff": tradeoff, **{k: getattr(p, k) for k in keys}}
    out["exit_seed"] = p.exit_seeds[0] if exit_seed is None else exit_seed
    if not gated:
        out["gate_cost"] = "none"  # identity gates, as the original's baselines (results before this key charged them)
    return out


def run(p: Params, store: RunStore | None = None) -> list[RunResult]:
    """Every dataset's backbone, JEI-DNN per λ and baselines; missing data or checkpoint are named before any
    training starts."""
    store = store or RunStore()
    if p.checkpoint:
        checkpoint_path(p)
    settings = [setting(p, d) for d in p.datasets]
    for q in settings:
        splits(q)
    try:
        return _run_settings(settings, store)
    finally:
        _SHARED_EVALUATION.clear()


def _run_settings(settings: list[Setting], store: RunStore) -> list[RunResult]:
    out = []
    for q in settings:  # one dataset in memory at a time, read once for its backbone and all its runs
        data_splits = splits(q)
        load_backbone(q, store, data_splits)
        given = None if store.runs_elsewhere else data_splits  # a job elsewhere reads its own data
        here = RunStore(store.root, ExecutorConfig())  # the store as the run sees it: its backbone is done

        def fn(g, ckpt, q=q, d=given, here=here):
            return train_exits(q, g, here, ckpt, d)

        seeds = q.exit_seeds
        jei = [run_spec(q, "jeidnn", t, s) for s in seeds for t in q.tradeoffs]
        out += store.sweep("jeidnn_jeidnn", jei, fn, device=q.device)
        for b in q.baselines:
            out += store.sweep(f"jeidnn_{b}", [run_spec(q, b, None, s) for s in seeds], fn, device=q.device)
    return out


# ------------------------------------------------------------------ measured inference time


def trained_exits(runs: list[RunResult], backbone: T2TViT) -> dict[float, DynamicNet]:
    """The JEI-DNN models of ``runs`` (one dataset), by λ: the trained ICs and gates on ``backbone``, in eval mode."""
    out = {}
    for r in runs:
        if r.params["method"] != "jeidnn":
            continue
        model = DynamicNet(backbone, r.params["exit_rule"]).eval()
        state = r.tensors()
        model.ics.load_state_dict(state["ics"])
        model.gates.load_state_dict(state["gates"])
        out[r.params["tradeoff"]] = model
    return out


def inference_time_ratios(model: DynamicNet, x: torch.Tensor, batch: int = 64, repeats: int = 10) -> list[float]:
    """Wall time of early-exit inference (:meth:`DynamicNet.infer`: exited samples leave, later blocks run on fewer)
    over ``x`` in batches of ``batch``, divided by the full backbone's on the same batches: one ratio per repeat.
    The two are timed back to back within each repeat (after one warm-up pass each), so a machine whose speed drifts
    slows both alike."""
    chunks = x.split(batch)
    backbone = model.backbone

    def seconds(fn) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            for c in chunks:
                fn(c)
        if x.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    seconds(backbone), seconds(model.infer)
    return [seconds(model.infer) / seconds(backbone) for _ in range(repeats)]


def measure_inference_time(
    p: Params,
    dataset: str,
    runs: list[RunResult],
    store: RunStore,
    samples: int = 256,
    batch: int = 64,
    repeats: int = 10,
) -> dict:
    """Claim ``jeidnn.early_exit.saves_time`` on ``dataset``: :func:`inference_time_ratios` of the JEI-DNN at the
    largest λ of ``runs`` on the first ``samples`` test images, with that model's mean exit and counted cost ratio
    on them (mean multiply-adds per sample / the backbone's), and the threads used."""
    q = setting(p, dataset)
    data_splits = splits(q)
    backbone, _ = load_backbone(q, store, data_splits)
    models = trained_exits([r for r in runs if r.params["dataset"] == dataset], backbone)
    if not models:
        return {}
    tradeoff = max(models)
    tr, test = data_splits[0], data_splits[2]
    x = original_preprocess(q, tr)(test.x[:samples], training=False).to(train.resolve_device(q.device))
    model = models[tradeoff]
    exits = model.infer(x)[1]
    costs = cost_mod.exit_costs(model, tuple(x.shape[1:]))
    return {
        "tradeoff": tradeoff,
        "ratios": inference_time_ratios(model, x, batch, repeats),
        "mean_exit": float(exits.float().mean()),
        "counted_cost_ratio": float(cost_mod.mean_cost(exits, costs["macs"]) / costs["macs"][-1]),
        "threads": torch.get_num_threads(),
        "samples": len(x),
        "batch": batch,
    }
