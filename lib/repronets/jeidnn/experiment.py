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

import torch

from .. import data, train, transforms
from ..counting import count_parameters
from ..params import CommonParams, param
from ..results import RunResult, RunStore
from ..transforms import ChannelStats, Preprocess, classification_loss
from . import cost as cost_mod
from . import metrics
from .dynamic import DynamicNet, exit_scores, first_exit, oracle_exits
from .t2t_vit import VARIANTS, T2TViT, load_pretrained
from .training import (
    BackboneTraining,
    ExitConfig,
    Features,
    boosted_logits,
    budget_thresholds,
    exit_losses,
    threshold_exits,
    train_boosted,
    train_confidence_ics,
    train_jeidnn,
    train_l2w,
)

CODE_VERSION = 1
ARCHITECTURES = (*VARIANTS, "small")
BASELINES = ("confidence", "boosted", "l2w")
# The original's Normalize values; SVHN: ToTensor only, no normalisation (as the original).
NORMALISATION = {
    "cifar10": ChannelStats((0.4914, 0.4822, 0.4465), (0.24703, 0.24348, 0.26158)),
    "cifar100": ChannelStats((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "cifar100_lt": ChannelStats((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "svhn": ChannelStats((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
# The original's per-dataset settings (shared/papers/jeidnn.md §2.7, §5)
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
    train_limit: int = param(ge=0, doc="stratified subset of the training split; 0 = all")
    val_size: int = param(ge=1, doc="training images held out for validation (5000 for CIFAR-10 in the original)")
    img_size: int = param(ge=16, doc="images are resized to this (224 for CIFAR in the original, 32 for SVHN)")
    arch: str = param(choices=ARCHITECTURES, doc="t2t_vit_7, t2t_vit_14 or small (the sizes below)")
    embed_dim: int = param(ge=8, doc="small arch only")
    depth: int = param(ge=2, doc="small arch only; G = depth − 1 exits before the head")
    num_heads: int = param(ge=1, doc="small arch only")
    mlp_ratio: float = param(gt=0.0, doc="small arch only")
    token_dim: int = param(ge=4, doc="small arch only")
    drop_path_rate: float = param(ge=0.0, lt=1.0)
    checkpoint: str = param(doc="official T2T-ViT checkpoint for transfer learning; empty: train from scratch")
    augment: bool = param(doc="random crop (padding size/8) and flips while training, as the original on CIFAR")
    backbone_epochs: int = param(ge=0)
    backbone_lr: float = param(gt=0.0)
    backbone_lr_scale: float = param(
        gt=0.0, doc="lr of the pretrained part relative to the head (0.01 when transferring)"
    )
    backbone_weight_decay: float = param(ge=0.0)
    backbone_batch_size: int = param(ge=1)
    exit_epochs: int = param(ge=1, doc="num_epoch of the exits' training (15 in the original)")
    exit_batch_size: int = param(ge=1)
    exit_lr: float = param(gt=0.0)
    max_warmup_epochs: int = param(ge=0)
    alternate_every: int = param(ge=1, doc="batches per gate/IC phase (200 in the original)")
    tradeoffs: list[float] = param(ge=0.0, doc="the λ (ce_ic_tradeoff) sweep")
    ic_loss: str = param(choices=("code", "exit_weighted"))
    cost_term: str = param(choices=("depth_fraction", "original_counter", "macs"))
    pos_weight: str = param(choices=("exact", "positives"))
    frozen_features: str = param(choices=("train", "eval"))
    val_augmentation: bool = param(doc="validation passes during training see the training augmentation (original)")
    baselines: list[str] = param(choices=BASELINES)
    meta_every: int = param(ge=1, doc="L2W-DEN: batches between meta-steps (100 in the original)")
    budget_levels: int = param(ge=1, doc="k = 1 … this, p = k/budget_divisor (39 and 20 in the original)")
    budget_divisor: float = param(gt=0.0)
    folds: int = param(ge=1)
    ece_bins: int = param(ge=1)
    ece_batch: int = param(ge=0, doc="0: ECE over the whole fold (corrected); > 0: per batch of this size (original)")
    conformal_alphas: list[float] = param(gt=0.0, lt=1.0)
    seed: int = param(ge=0)

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
    if p.original_dataset_settings:
        values.update(ORIGINAL_SETTINGS.get(dataset, {}))
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
    if p.arch == "small":
        return T2TViT(
            p.img_size,
            in_chans,
            num_classes,
            p.embed_dim,
            p.depth,
            p.num_heads,
            p.mlp_ratio,
            p.token_dim,
            p.drop_path_rate,
        )
    return VARIANTS[p.arch](num_classes, p.img_size, in_chans=in_chans, drop_path_rate=p.drop_path_rate)


def splits(p: Setting):
    """(train part, validation part, test), the validation part held out from the training split with seed 42."""
    full, test = data.train_test(p.dataset, root=p.data_root or None, download=p.download, train_limit=p.train_limit)
    if p.val_size >= len(full):
        raise ValueError(f"val_size {p.val_size} must be below the training split's {len(full)} images")
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(42))
    return full.subset(order[p.val_size :]), full.subset(order[: p.val_size]), test


def preprocess_for(p: Setting, split: data.Split) -> Preprocess:
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
        "backbone_weight_decay",
        "backbone_batch_size",
        "seed",
    )
    return {"code_version": CODE_VERSION, **{k: getattr(p, k) for k in keys}}


def train_backbone(p: Setting, run: dict, checkpoint=None, data_splits=None) -> dict:
    tr, val, test = data_splits or splits(p)
    torch.manual_seed(run["seed"])
    backbone = make_backbone(p, tr.input_shape[0], tr.num_classes)
    loaded = load_pretrained(backbone, checkpoint_path(p)) if p.checkpoint else None
    preprocess = preprocess_for(p, tr)
    config = train.TrainConfig(
        epochs=p.backbone_epochs,
        batch_size=p.backbone_batch_size,
        optimizer="sgd",
        lr=p.backbone_lr,
        momentum=0.9,
        weight_decay=p.backbone_weight_decay,
        scheduler="cosine",
        device=p.device,
        seed=run["seed"],
        log_steps=False,
        name=f"backbone/{p.dataset}",
    )
    model = BackboneTraining(backbone, p.backbone_lr_scale)
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
    data_splits = data_splits or splits(p)
    run = store.run(
        "jeidnn_backbone", backbone_params(p), lambda r, ckpt: train_backbone(p, r, ckpt, data_splits), device=p.device
    )
    tr = data_splits[0]
    backbone = make_backbone(p, tr.input_shape[0], tr.num_classes)
    backbone.load_state_dict(run.tensors())
    return backbone.to(train.resolve_device(p.device)).eval(), run


# ------------------------------------------------------------------ evaluation


def fold_metrics(
    probs, labels, exits, costs: dict, val: dict, alphas, folds, ece_bins, ece_batch, val_exit_probs=None
) -> dict:
    """Accuracy, mean cost (both conventions), ECE and conformal sets per test fold, summarised (mean, sd, values)."""
    rows = []
    for fold in folds:
        f = torch.as_tensor(fold)
        row = {
            "acc": float((probs[f].argmax(1) == labels[f]).float().mean()),
            **{f"cost_{k}": cost_mod.mean_cost(exits[f], v) for k, v in costs.items()},
            "ece": metrics.ece(probs[f], labels[f], ece_bins, ece_batch or None),
        }
        for alpha in alphas:
            sets = metrics.conformal(
                val["probs"], val["labels"], val["exits"], probs[f], labels[f], exits[f], alpha, val_exit_probs
            )
            for variant, v in sets.items():
                row[f"{variant}_size@{alpha:g}"] = v["size"]
                row[f"{variant}_miscoverage@{alpha:g}"] = v["miscoverage"]
        rows.append(row)
    return {k: metrics.fold_summary([r[k] for r in rows]) for k in rows[0]}


def exit_distribution(exits: torch.Tensor, count: int) -> list[float]:
    return torch.bincount(exits.cpu(), minlength=count).double().div(len(exits)).tolist()


def cost_weights(p: Setting, costs: dict, G: int) -> torch.Tensor:
    if p.cost_term == "depth_fraction":
        return torch.arange(1, G + 2, dtype=torch.float32) / (G + 1)
    table = torch.tensor(costs["original" if p.cost_term == "original_counter" else "macs"], dtype=torch.float32)
    return table / table[-1]


def run_exits(p: Setting, run: dict, store: RunStore, checkpoint=None, data_splits=None) -> dict:
    """One method on the frozen backbone: JEI-DNN at λ = run["tradeoff"], or a baseline."""
    data_splits = data_splits or splits(p)
    backbone, _ = load_backbone(p, store, data_splits)
    device = train.resolve_device(p.device)
    tr, val, test = [s.to(device) for s in data_splits]
    torch.manual_seed(run["seed"])
    model = DynamicNet(backbone).to(device)
    model.freeze_backbone()
    G = len(model.ics)
    costs = cost_mod.exit_costs(model, (tr.input_shape[0], p.img_size, p.img_size), gates=run["method"] == "jeidnn")
    feats = Features(model, preprocess_for(p, tr), p.frozen_features, p.augment, val_augmentation=p.val_augmentation)
    c = ExitConfig(
        epochs=p.exit_epochs,
        batch_size=p.exit_batch_size,
        lr=p.exit_lr,
        max_warmup_epochs=p.max_warmup_epochs,
        alternate_every=p.alternate_every,
        tradeoff=run.get("tradeoff") or 0.0,
        ic_loss=p.ic_loss,
        pos_weight=p.pos_weight,
        seed=run["seed"],
    )
    method = run["method"]
    if method == "jeidnn":
        trained = train_jeidnn(model, feats, tr.x, tr.y, val.x, val.y, cost_weights(p, costs, G), c, checkpoint)
    elif method == "boosted":
        trained = train_boosted(model, feats, tr.x, tr.y, val.x, val.y, c, checkpoint=checkpoint)
    elif method == "l2w":
        trained = train_l2w(model, feats, tr.x, tr.y, val.x, val.y, c, meta_every=p.meta_every, checkpoint=checkpoint)
    else:
        trained = train_confidence_ics(model, feats, tr.x, tr.y, val.x, val.y, c, checkpoint)
    model.eval()
    with torch.no_grad():
        logits = {name: model.exit_logits(feats.evaluation(s.x)) for name, s in (("val", val), ("test", test))}
    if method == "boosted":
        logits = {k: boosted_logits(v) for k, v in logits.items()}
    labels = {"val": val.y, "test": test.y}
    probs = {k: v.softmax(-1) for k, v in logits.items()}
    test_folds = metrics.folds(len(test), p.folds, seed=run["seed"])
    per_exit_acc = (logits["test"].argmax(-1) == test.y[:, None]).float().mean(0).tolist()
    result = {
        "history": trained["history"],
        "exit_costs": costs,
        "per_exit_acc": per_exit_acc,
        "any_exit_acc": float((logits["test"].argmax(-1) == test.y[:, None]).any(1).float().mean()),
        "num_exits": G + 1,
        "test_samples": len(test),
        "device": str(device),
    }
    if method == "jeidnn":
        exits = {k: first_exit(exit_scores(model.gate_values(logits[k]))) for k in logits}
        gated = {k: probs[k][torch.arange(len(labels[k]), device=device), exits[k]] for k in probs}
        val_pack = {"probs": gated["val"], "labels": val.y, "exits": exits["val"]}
        result["metrics"] = fold_metrics(
            gated["test"],
            test.y,
            exits["test"],
            costs,
            val_pack,
            p.conformal_alphas,
            test_folds,
            p.ece_bins,
            p.ece_batch,
            probs["val"],
        )
        result["exit_distribution"] = exit_distribution(exits["test"], G + 1)
        oracle = oracle_exits(exit_losses(logits["test"], test.y), cost_weights(p, costs, G).to(device), c.tradeoff)
        result["oracle_exit_distribution"] = exit_distribution(oracle, G + 1)
        chosen = exits["test"]
        result["per_exit_gated_acc"] = [
            float((probs["test"][chosen == l, l].argmax(1) == test.y[chosen == l]).float().mean())
            if (chosen == l).any()
            else None
            for l in range(G + 1)
        ]
        result["tensors"] = {"ics": model.ics.state_dict(), "gates": model.gates.state_dict()}
        return result
    # Baselines: budgeted thresholds from one validation half, conformal q̂ from the other.
    gen = torch.Generator().manual_seed(run["seed"])
    half = torch.randperm(len(val), generator=gen).to(device)
    h1, h2 = half[: len(val) // 2], half[len(val) // 2 :]
    confidence = {k: v.max(-1).values for k, v in probs.items()}
    levels = []
    for k in range(1, p.budget_levels + 1):
        budget = k / p.budget_divisor
        thresholds = budget_thresholds(confidence["val"][h1].cpu(), budget)
        exits = {s: threshold_exits(confidence[s], thresholds) for s in ("val", "test")}
        chosen = {s: probs[s][torch.arange(len(labels[s]), device=device), exits[s]] for s in exits}
        val_pack = {"probs": chosen["val"][h2], "labels": val.y[h2], "exits": exits["val"][h2]}
        m = fold_metrics(
            chosen["test"],
            test.y,
            exits["test"],
            costs,
            val_pack,
            p.conformal_alphas,
            test_folds,
            p.ece_bins,
            p.ece_batch,
            probs["val"][h2],
        )
        levels.append({"budget_p": budget, "metrics": m, "exit_distribution": exit_distribution(exits["test"], G + 1)})
    result["levels"] = levels
    result["tensors"] = {"ics": model.ics.state_dict()}
    return result


def run_params(p: Setting, method: str, tradeoff: float | None) -> dict:
    keys = (
        "exit_epochs",
        "exit_batch_size",
        "exit_lr",
        "max_warmup_epochs",
        "alternate_every",
        "ic_loss",
        "cost_term",
        "pos_weight",
        "frozen_features",
        "val_augmentation",
        "meta_every",
        "budget_levels",
        "budget_divisor",
        "folds",
        "ece_bins",
        "ece_batch",
        "conformal_alphas",
    )
    out = {**backbone_params(p), "method": method, "tradeoff": tradeoff, **{k: getattr(p, k) for k in keys}}
    if method != "jeidnn":
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
    out = []
    for q in settings:  # one dataset in memory at a time, read once for its backbone and all its runs
        data_splits = splits(q)
        load_backbone(q, store, data_splits)
        grid = [run_params(q, "jeidnn", t) for t in q.tradeoffs] + [run_params(q, b, None) for b in q.baselines]
        out += [
            store.run(
                f"jeidnn_{g['method']}",
                g,
                lambda g, ckpt, q=q, d=data_splits: run_exits(q, g, store, ckpt, d),
                device=q.device,
            )
            for g in grid
        ]
    return out
