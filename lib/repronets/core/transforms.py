"""Batch transforms on the device, shared by the papers' experiments: resizing, normalisation, and (in training
mode) random crops with zero padding and horizontal flips, applied to whole batches of tensors where the data live
(on the GPU when training there), instead of torchvision's per-sample PIL transforms."""

from __future__ import annotations

from typing import Mapping, NamedTuple

import torch
import torch.nn.functional as F

from .train import cross_entropy


class Preprocess:
    """Resize to ``size`` (bilinear; None: keep), then in training mode random crops (zero padding ``pad``) and
    horizontal flips, then normalisation: the order of torchvision's Resize → RandomCrop → Flip → Normalize, so
    padding is black in pixel space."""

    def __init__(
        self, mean, std, pad: int = 0, flip: bool = False, channels_last: bool = False, size: int | None = None
    ):
        self.mean, self.std, self.pad, self.flip = torch.tensor(mean), torch.tensor(std), pad, flip
        self.channels_last, self.size = channels_last, size

    def __call__(self, x, training: bool):
        if self.size and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if training and self.pad:
            x = random_crop(x, self.pad)
        if training and self.flip:
            flip = torch.rand(len(x), device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        mean, std = self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)
        x = (x - mean[:, None, None]) / std[:, None, None]
        # Batches in the model's memory format, or every convolution converts them.
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def random_crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """torchvision's RandomCrop(size, padding=pad) for a whole batch, each image with its own offset."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    return padded[
        torch.arange(n, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        rows,
        cols,
    ]


class ChannelStats(NamedTuple):
    """Per-channel mean and standard deviation of a dataset's images in [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, x: torch.Tensor) -> ChannelStats:
        """The statistics of a batch of images (N, C, H, W)."""
        return cls(tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3)).tolist()))


def preprocess_for(
    split,
    statistics: Mapping[str, ChannelStats],
    *,
    pad: int = 0,
    flip: bool = False,
    size: int | None = None,
    channels_last: bool = False,
) -> Preprocess:
    """The batch transform of a training split (a :class:`repronets.core.data.Split`): normalised with
    ``statistics[split.name]`` where an original code base publishes them (each paper's own values: ContinuousNet
    and JEI-DNN normalise CIFAR-10 with different standard deviations), else with the split's own statistics."""
    stats = statistics.get(split.name) or ChannelStats.of(split.x)
    return Preprocess(stats.mean, stats.std, pad=pad, flip=flip, channels_last=channels_last, size=size)


def classification_loss(preprocess: Preprocess):
    """train.cross_entropy on preprocessed batches (augmented only while the model is in training mode)."""

    def loss_fn(model, x, y):
        return cross_entropy(model, preprocess(x, model.training), y)

    return loss_fn
