"""Datasets by name, held as tensors in memory.

``load("digits", "train")`` returns a :class:`Split`: images as float32 in [0, 1] shaped (N, C, H, W), or for
the UCI tables of paper 3 (read by :mod:`repronets.core.uci`) feature vectors (N, F) with their raw values, and integer
labels. Small datasets live whole in memory (on the GPU when training there) instead of being decoded sample by
sample from PIL images: the τ paper's MNIST runs take 120,000 steps each, and per-sample decoding dominates such a
run (see ``bench/``).

``digits`` is embedded (scikit-learn's ``load_digits``, shipped inside the wheel) and needs no download.
The torchvision sets are read from a data root: the ``data_root`` parameter, else ``$REPRONETS_DATA``,
else ``<project>/data``. Nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.utils.data

from . import fileio, uci

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "cifar100_lt")
TABULAR_DATASETS = tuple(uci.READERS)  # feature vectors (N, F), raw values: paper 3's UCI sets
SPLITS = ("train", "test")
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0


class DatasetNotFound(FileNotFoundError):
    """A dataset is not on disk and downloading is off; the message names the dataset, the root and the way out."""


@dataclasses.dataclass
class Split:
    """One split of a dataset: ``x`` float32, images (N, C, H, W) in [0, 1] or feature vectors (N, F) with the
    table's raw values (``TABULAR_DATASETS``); ``y`` (N,) int64."""

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device) -> "Split":
        return dataclasses.replace(self, x=self.x.to(device), y=self.y.to(device))

    def subset(self, indices) -> "Split":
        indices = torch.as_tensor(indices, dtype=torch.long, device=self.y.device)
        return dataclasses.replace(self, x=self.x[indices], y=self.y[indices])

    def stratified_split(self, fraction: float, seed: int) -> tuple["Split", "Split"]:
        """Split into (rest, part) with ``part`` holding ``fraction`` of the samples, class proportions kept."""
        from sklearn.model_selection import train_test_split

        rest, part = train_test_split(
            np.arange(len(self)), test_size=fraction, random_state=seed, stratify=self.y.cpu().numpy()
        )
        return self.subset(np.sort(rest)), self.subset(np.sort(part))

    def take(self, n: int, seed: int = 0) -> "Split":
        """A stratified subset of ``n`` samples (all of them if ``n`` is 0 or at least the size)."""
        if n <= 0 or n >= len(self):
            return self
        return self.stratified_split(n / len(self), seed)[1]

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False):
        """A DataLoader that yields whole batches by tensor indexing (no per-sample fetch and collate).

        Measured on 2 CPU cores, one epoch of MNIST in batches of 100 (bench/bench_data_loading.py): 1.7 s with
        torchvision's per-sample PIL decoding, 96 ms with torch's BatchSampler (it yields lists of ints,
        converted per batch), 66 ms with this sampler, which yields slices of one index tensor (57 ms for
        bare randperm + indexing).
        """
        from torch.utils.data import DataLoader, TensorDataset

        sampler = _IndexBatches(len(self), batch_size, shuffle, seed, drop_last)
        return DataLoader(TensorDataset(self.x, self.y), sampler=sampler, batch_size=None)


def shuffled_order(n: int, seed: int) -> torch.Tensor:
    """The permutation of ``n`` samples that a shuffled loader with ``seed`` draws (on the CPU, whatever the device):
    batched runs draw each member's order with it, so a member sees the batches of its sequential run."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


class _IndexBatches(torch.utils.data.Sampler):
    """Batches of indices as tensors, from one seeded permutation per iteration."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, drop_last: bool):
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            order = shuffled_order(self.n, self.seed)
        else:
            order = torch.arange(self.n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start : start + self.batch_size]


def data_root(root: str | os.PathLike | None = None) -> Path:
    if root:
        return Path(root).expanduser()
    if os.environ.get("REPRONETS_DATA"):
        return Path(os.environ["REPRONETS_DATA"]).expanduser()
    from .fileio import project_root

    return project_root() / "data"


def load(name: str, split: str = "train", *, root=None, download: bool = False, device="cpu") -> Split:
    """The ``split`` ("train" or "test") of dataset ``name`` as tensors on ``device``."""
    if name not in DATASETS + TABULAR_DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {list(DATASETS + TABULAR_DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {list(SPLITS)}")
    if name == "digits":
        data = _digits(split)
    elif name in TABULAR_DATASETS:
        data = _table(name, data_root(root), split, download)
    else:
        data = _TORCHVISION[name](data_root(root), split == "train", download)
    return data.to(device)


def train_test(name: str, *, root=None, download: bool = False, train_limit: int = 0) -> tuple[Split, Split]:
    """The training split (a stratified subset of ``train_limit`` samples when > 0) and the whole test split."""
    train = load(name, "train", root=root, download=download).take(train_limit, seed=0)
    return train, load(name, "test", root=root, download=download)


def _digits(split: str) -> Split:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.images.astype(np.float32) / 16.0  # 8x8 pixels with 17 grey levels, 0..16
    train, test = train_test_split(
        np.arange(len(x)), test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=bunch.target
    )
    index = np.sort(train if split == "train" else test)
    return Split(
        "digits",
        split,
        torch.from_numpy(x[index]).unsqueeze(1),
        torch.from_numpy(bunch.target[index]).long(),
        tuple(str(c) for c in range(10)),
    )


def _table(name: str, root: Path, split: str, download: bool) -> Split:
    try:
        table = uci.READERS[name](root, split, download)
    except uci.MissingFile as e:
        raise not_found(name, root, e.expected) from e
    return Split(name, split, table.x, table.y, table.classes)


def _images(array, channels_last: bool) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(array))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif channels_last:
        x = x.permute(0, 3, 1, 2)
    return x.contiguous().float().div_(255.0)


# Where each dataset is read from under its data root: an archive, or the files unpacked from it.
_SOURCES = {
    "digits": (),  # embedded in scikit-learn
    "mnist": ("MNIST/raw",),
    "fashion_mnist": ("FashionMNIST/raw",),
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py"),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python"),
    "cifar100_lt": ("cifar-100-python.tar.gz", "cifar-100-python"),
    "svhn": ("SVHN",),
    "pendigits": ("pendigits",),
    "hand_postures": ("hand_postures",),
}
_DIGESTS: dict[tuple, str] = {}  # (path, size, mtime) -> sha256: a build plans every notebook, once each


def identity(name: str, root=None) -> str:
    """What a build's input hash holds for dataset ``name``: the SHA-256 of the files it is read from (an archive
    where there is one, not the files unpacked from it, so the first load does not change it), or 'embedded'/'absent'.
    Other files under the same name give other results, so they rebuild the notebooks that read them."""
    if name not in _SOURCES:
        raise ValueError(f"unknown dataset {name!r}: choose one of {list(_SOURCES)}")
    if not _SOURCES[name]:
        return "embedded"
    base = data_root(root)
    lines = []
    for source in _SOURCES[name]:
        path = base / source
        if path.suffix == ".gz" and path.is_file():  # the archive decides; its unpacked folder (next) follows it
            lines.append(f"{source}\0{_digest(path)}")
            break
        for f in sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else []:
            if f.name.startswith(".") or f.with_name(f.name + ".gz").is_file():  # locks; files unpacked from a .gz
                continue
            lines.append(f"{f.relative_to(base)}\0{_digest(f)}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:20] if lines else "absent"


def _digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as f:
            _DIGESTS[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _DIGESTS[key]


def not_found(name: str, root: Path, expected: str, error: Exception | None = None) -> DatasetNotFound:
    """The error for a dataset missing under ``root``: what was expected there and the two ways out."""
    said = f"; torchvision said: {error}" if error is not None else ""
    return DatasetNotFound(
        f"dataset {name!r} not found under data root {root} (expected {expected}{said}). "
        f"Either set download: true in the params file (or download=True), or point data_root "
        f"(or the REPRONETS_DATA environment variable) at a folder that holds it."
    )


def _verified_archives(folder: Path, resources) -> bool:
    """True when every (file, md5) archive torchvision would download is already present and intact.

    torchvision's ``download=True`` then only checks and unpacks them, without touching the network; a file
    that is present but fails its md5 is an error here rather than a silent re-download.
    """
    from torchvision.datasets.utils import check_integrity

    paths = [(folder / filename, md5) for filename, md5 in resources]
    if not all(p.is_file() for p, _ in paths):
        return False
    for p, md5 in paths:
        if not check_integrity(str(p), md5):
            raise DatasetNotFound(f"{p} is present but corrupt (md5 differs from {md5}); delete it and fetch it again")
    return True


def _mnist_like(cls_name: str, name: str):
    def read(root: Path, train: bool, download: bool) -> Split:
        import torchvision

        cls = getattr(torchvision.datasets, cls_name)
        raw = root / cls.__name__ / "raw"
        archives = [(os.path.basename(file), md5) for file, md5 in cls.resources]
        use_download = download or _verified_archives(raw, archives)
        unpacked = all((raw / name.removesuffix(".gz")).is_file() for name, _ in archives)
        unpacking = contextlib.nullcontext()
        if use_download and not unpacked and raw.is_dir() and not _can_write(raw):
            root = _unpacking_cache(root, raw, cls.__name__, archives)
            raw = root / cls.__name__ / "raw"
            unpacking = _locked(raw / ".unpacking.lock")  # workers starting together unpack once, one at a time
        try:
            with unpacking:
                ds = cls(str(root), train=train, download=use_download)
        except (RuntimeError, ValueError, AssertionError) as e:  # torchvision asserts on a file that is not IDX
            for path, problem in _broken_idx_files(raw):
                archive = path.with_name(path.name + ".gz")
                again = f"the intact {archive.name} beside it is unpacked again" if archive.is_file() else "fetch it"
                raise DatasetNotFound(f"{path} {problem}; delete it, and {again} on the next load") from e
            raise not_found(name, root, f"{raw}/*-ubyte[.gz]", e) from e
        return Split(name, "train" if train else "test", _images(ds.data, False), ds.targets.long(), tuple(ds.classes))

    return read


def _can_write(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (tried by :func:`fileio.check_writable`, not inferred from modes:
    root ignores them and a read-only mount refuses even root)."""
    try:
        fileio.check_writable(folder)
    except PermissionError:
        return False
    return True


@contextlib.contextmanager
def _locked(path: Path):
    import fcntl

    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cache_root() -> Path:
    """Where datasets are unpacked when their data root is read-only: $REPRONETS_CACHE, else
    $XDG_CACHE_HOME/repronets (.cache/repronets in the home folder when XDG_CACHE_HOME is unset)."""
    if os.environ.get("REPRONETS_CACHE"):
        return Path(os.environ["REPRONETS_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "repronets"


def _unpacking_cache(root: Path, raw: Path, folder: str, archives) -> Path:
    """A writable root that links to the archives of the read-only ``raw`` (a shared dataset folder holding only the
    ``.gz`` files): torchvision verifies them through the links and unpacks beside the links. One cache folder per
    data root (a hash of its path), so two roots never mix their files."""
    import hashlib

    cache = cache_root() / "datasets" / hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    target = cache / folder / "raw"
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, _ in archives:
            with contextlib.suppress(FileExistsError):  # another worker made it meanwhile
                (target / name).symlink_to((raw / name).resolve())
    except OSError as e:
        raise DatasetNotFound(
            f"{raw} is read-only and holds the {folder} archives only; unpacking them needs a writable folder and "
            f"{target} cannot be written ({e.strerror}): set REPRONETS_CACHE to a writable folder, or unpack the "
            f"archives in {raw} once"
        ) from e
    return cache


# Bytes per element of each IDX data type (the third byte of the magic number), as defined by the MNIST format.
_IDX_ITEMSIZE = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def _broken_idx_files(raw: Path) -> list[tuple[Path, str]]:
    """The unpacked IDX files in ``raw`` that are not IDX files or are shorter than their header says: (path, what is
    wrong). torchvision reads such a file only to fail on an assertion or a reshape, naming no file."""
    out = []
    for path in sorted(raw.glob("*-ubyte")) if raw.is_dir() else []:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(4)
            if len(header) < 4:
                out.append((path, f"is truncated ({size:,} of the 4 bytes of an IDX header)"))
                continue
            if header[:2] != b"\0\0" or header[2] not in _IDX_ITEMSIZE or not 1 <= header[3] <= 4:
                out.append((path, f"is not an IDX file (it starts with {header!r}, not an IDX header)"))
                continue
            dims = f.read(4 * header[3])
        if len(dims) < 4 * header[3]:
            out.append((path, f"is truncated ({size:,} of the {4 + 4 * header[3]:,} bytes of its header)"))
            continue
        count = math.prod(int.from_bytes(dims[i : i + 4], "big") for i in range(0, len(dims), 4))
        expected = 4 + len(dims) + count * _IDX_ITEMSIZE[header[2]]
        if size < expected:
            out.append((path, f"is truncated ({size:,} of the {expected:,} bytes its header announces)"))
    return out


def _cifar(cls_name: str, name: str):
    def read(root: Path, train: bool, download: bool) -> Split:
        import torchvision

        cls = getattr(torchvision.datasets, cls_name)
        use_download = download or _verified_archives(root, [(cls.filename, cls.tgz_md5)])
        try:
            ds = cls(str(root), train=train, download=use_download)
        except RuntimeError as e:
            raise not_found(name, root, f"{root / cls.base_folder} or {root / cls.filename}", e) from e
        return Split(
            name,
            "train" if train else "test",
            _images(ds.data, True),
            torch.as_tensor(ds.targets).long(),
            tuple(ds.classes),
        )

    return read


def _svhn(root: Path, train: bool, download: bool) -> Split:
    import torchvision

    folder = root / "SVHN"  # torchvision keeps SVHN's .mat files directly in the root it is given
    try:
        ds = torchvision.datasets.SVHN(str(folder), split="train" if train else "test", download=download)
    except RuntimeError as e:
        raise not_found("svhn", root, f"{folder}/{'train' if train else 'test'}_32x32.mat", e) from e
    return Split(
        "svhn",
        "train" if train else "test",
        _images(ds.data, False),
        torch.as_tensor(ds.labels).long(),
        tuple(str(c) for c in range(10)),
    )


def long_tailed(split: Split, imbalance: float, seed: int = 0) -> Split:
    """An exponentially long-tailed subset, as the LDAM-style class JEI-DNN uses (docs/papers/jeidnn.md §5):
    class c keeps ⌊n_max·(1/imbalance)^(c/(C−1))⌋ of its samples, classes in their natural order, each class's
    samples shuffled by one NumPy RandomState(seed) in class order before taking the first ones."""
    labels = split.y.cpu().numpy()
    classes = split.num_classes
    n_max = int(np.bincount(labels, minlength=classes).max())
    rng = np.random.RandomState(seed)
    keep = []
    for c in range(classes):
        index = np.where(labels == c)[0]
        rng.shuffle(index)
        keep.append(index[: int(n_max * (1.0 / imbalance) ** (c / (classes - 1)))])
    return dataclasses.replace(split.subset(np.concatenate(keep)), name=f"{split.name}_lt")


def _cifar100_lt(root: Path, train: bool, download: bool) -> Split:
    """CIFAR-100-LT with imbalance 100: 10,847 training images (500 … 5 per class) and, as in the original, a test
    set made long-tailed the same way (100 … 1 per class, 2,131 images)."""
    return long_tailed(_TORCHVISION["cifar100"](root, train, download), imbalance=100, seed=0)


_TORCHVISION = {
    "mnist": _mnist_like("MNIST", "mnist"),
    "fashion_mnist": _mnist_like("FashionMNIST", "fashion_mnist"),
    "cifar10": _cifar("CIFAR10", "cifar10"),
    "cifar100": _cifar("CIFAR100", "cifar100"),
    "svhn": _svhn,
    "cifar100_lt": _cifar100_lt,
}
