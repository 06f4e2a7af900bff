import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from conftest import FIXTURES
from repronets.core import data, uci

sys.path.insert(0, str(FIXTURES / "format_true"))
from format_true_datasets import md5, write_idx  # noqa: E402  (the files CI's dry run writes, in the same format)

# ---------------------------------------------------------------- embedded digits


def test_digits_split_is_stratified_deterministic_and_complete():
    tr, te = data.load("digits", "train"), data.load("digits", "test")
    assert len(tr) + len(te) == 1797 and len(te) == 450
    assert tr.x.shape[1:] == (1, 8, 8) and tr.x.dtype == torch.float32 and tr.y.dtype == torch.int64
    assert float(tr.x.min()) == 0.0 and float(tr.x.max()) == 1.0
    share_train = torch.bincount(tr.y, minlength=10) / len(tr)
    share_test = torch.bincount(te.y, minlength=10) / len(te)
    assert torch.allclose(share_train, share_test, atol=0.01)
    again = data.load("digits", "train")
    assert torch.equal(again.x, tr.x) and torch.equal(again.y, tr.y)
    # No test image appears in the training split.
    train_rows = {tuple(r) for r in tr.x.flatten(1).tolist()}
    assert sum(tuple(r) in train_rows for r in te.x.flatten(1).tolist()) <= 2  # load_digits has a few duplicates


def test_loader_visits_every_sample_once_in_a_seeded_order():
    tr = data.load("digits", "train")
    batches = list(tr.loader(100, shuffle=True, seed=3))
    assert [len(y) for _, y in batches] == [100] * 13 + [47]
    seen = torch.cat([x for x, _ in batches])
    assert sorted(map(tuple, seen.flatten(1).tolist())) == sorted(map(tuple, tr.x.flatten(1).tolist()))
    same = torch.cat([y for _, y in tr.loader(100, shuffle=True, seed=3)])
    other = torch.cat([y for _, y in tr.loader(100, shuffle=True, seed=4)])
    assert torch.equal(same, torch.cat([y for _, y in batches])) and not torch.equal(same, other)
    assert [len(y) for _, y in tr.loader(100, drop_last=True)] == [100] * 13
    assert torch.equal(torch.cat([y for _, y in tr.loader(500)]), tr.y)


def test_take_and_stratified_split():
    tr = data.load("digits", "train")
    small = tr.take(200, seed=0)
    assert len(small) == 200 and torch.bincount(small.y).min() >= 18
    assert tr.take(0) is tr and tr.take(10**6) is tr
    rest, val = tr.stratified_split(0.15, seed=1)
    assert len(rest) + len(val) == len(tr) and abs(len(val) - 0.15 * len(tr)) < 1


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*digits"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        data.load("digits", "val")


def test_the_uci_readers_do_not_import_the_data_module():
    # one-way dependency: data serves uci's tables as splits, uci knows nothing of splits
    code = "import sys, repronets.core.uci; print('repronets.core.data' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    assert data.TABULAR_DATASETS == tuple(uci.READERS)


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRONETS_DATA", str(tmp_path / "env"))
    assert data.data_root() == tmp_path / "env"
    assert data.data_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("REPRONETS_DATA")
    assert data.data_root().name == "data"


# ---------------------------------------------------------------- missing data


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100", "svhn"])
def test_missing_dataset_with_download_off_names_dataset_root_and_remedy(tmp_path, name):
    with pytest.raises(data.DatasetNotFound) as e:
        data.load(name, "train", root=tmp_path, download=False)
    msg = str(e.value)
    assert repr(name) in msg and str(tmp_path) in msg and "download" in msg and "REPRONETS_DATA" in msg
    assert not any(tmp_path.rglob("*.gz"))  # nothing was fetched


# ---------------------------------------------------------------- tiny files in the real formats


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": (rng.integers(0, 256, (12, 28, 28)), 2051),
        "train-labels-idx1-ubyte": (rng.integers(0, 10, 12), 2049),
        "t10k-images-idx3-ubyte": (rng.integers(0, 256, (5, 28, 28)), 2051),
        "t10k-labels-idx1-ubyte": (rng.integers(0, 10, 5), 2049),
    }
    for name, (array, magic) in arrays.items():
        write_idx(raw / f"{name}.gz", array, magic)
    # The real md5 table stands for the real files; these tiny files get theirs.
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", [(f"{n}.gz", md5(raw / f"{n}.gz")) for n in arrays])
    return tmp_path, {n: a for n, (a, _) in arrays.items()}


def test_mnist_idx_gz_archives_are_verified_and_unpacked_without_download(tiny_mnist):
    root, arrays = tiny_mnist
    tr = data.load("mnist", "train", root=root, download=False)
    te = data.load("mnist", "test", root=root, download=False)
    assert tr.x.shape == (12, 1, 28, 28) and te.x.shape == (5, 1, 28, 28)
    assert torch.allclose(tr.x[:, 0] * 255, torch.as_tensor(arrays["train-images-idx3-ubyte"]).float())
    assert tr.y.tolist() == arrays["train-labels-idx1-ubyte"].tolist() and tr.num_classes == 10


def test_a_read_only_root_with_archives_only_unpacks_into_the_cache(tiny_mnist, tmp_path, monkeypatch):
    root, arrays = tiny_mnist
    raw = root / "MNIST" / "raw"
    before = sorted(p.name for p in raw.iterdir())
    # A read-only mount refuses even root, who ignores file modes: the probe write is what fails.
    monkeypatch.setattr(data, "_can_write", lambda folder: not str(folder).startswith(str(root)))
    monkeypatch.setenv("REPRONETS_CACHE", str(tmp_path / "cache"))
    tr = data.load("mnist", "train", root=root)
    assert tr.y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert sorted(p.name for p in raw.iterdir()) == before  # nothing written under the data root
    assert list((tmp_path / "cache" / "datasets").glob("*/MNIST/raw/train-images-idx3-ubyte"))
    assert data.load("mnist", "test", root=root).x.shape == (5, 1, 28, 28)
    monkeypatch.setenv("REPRONETS_CACHE", "/proc/no-such-cache")  # neither the root nor the cache writable
    monkeypatch.setattr(data, "_can_write", lambda folder: False)
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "resources", torchvision.datasets.MNIST.resources)
    with pytest.raises(data.DatasetNotFound, match="read-only.*REPRONETS_CACHE"):
        data.load("fashion_mnist", "train", root=_fashion_copy(root))


def _fashion_copy(root):
    """The MNIST archives again as Fashion-MNIST's (same names), for a second dataset under the same root."""
    import shutil

    shutil.copytree(root / "MNIST" / "raw", root / "FashionMNIST" / "raw", ignore=shutil.ignore_patterns("*-ubyte"))
    return root


def test_corrupt_archive_is_an_error_not_a_download(tiny_mnist):
    root, _ = tiny_mnist
    path = root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    with pytest.raises(data.DatasetNotFound, match="corrupt"):
        data.load("mnist", "train", root=root)


def _cifar_batch(rng, n, label_key):
    return {"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), label_key: rng.integers(0, 10, n).tolist()}


@pytest.mark.parametrize(
    "name, cls, label_key, meta_key",
    [
        ("cifar10", torchvision.datasets.CIFAR10, "labels", "label_names"),
        ("cifar100", torchvision.datasets.CIFAR100, "fine_labels", "fine_label_names"),
    ],
)
def test_cifar_python_pickles(tmp_path, monkeypatch, name, cls, label_key, meta_key):
    rng = np.random.default_rng(1)
    folder = tmp_path / cls.base_folder
    folder.mkdir()
    batches = {}
    for entry in cls.train_list + cls.test_list:
        batches[entry[0]] = _cifar_batch(rng, 4, label_key)
        (folder / entry[0]).write_bytes(pickle.dumps(batches[entry[0]]))
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps({meta_key: [f"class{i}" for i in range(10)]}))
    monkeypatch.setattr(cls, "train_list", [[f, md5(folder / f)] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, md5(folder / f)] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})
    tr = data.load(name, "train", root=tmp_path)
    te = data.load(name, "test", root=tmp_path)
    assert tr.x.shape == (4 * len(cls.train_list), 3, 32, 32) and te.x.shape == (4, 3, 32, 32)
    first = batches[cls.train_list[0][0]]
    # The pickle stores each image as 1024 red, then 1024 green, then 1024 blue values, row by row.
    assert torch.allclose(tr.x[0] * 255, torch.as_tensor(first["data"][0].reshape(3, 32, 32)).float())
    assert tr.y[:4].tolist() == first[label_key] and tr.classes[1] == "class1"


def test_svhn_mat_files(tmp_path, monkeypatch):
    import scipy.io

    rng = np.random.default_rng(2)
    folder = tmp_path / "SVHN"
    folder.mkdir()
    images = rng.integers(0, 256, (32, 32, 3, 6)).astype(np.uint8)  # the .mat layout: H, W, C, N
    labels = np.array([[10], [1], [2], [3], [10], [9]], dtype=np.uint8)  # SVHN writes digit 0 as 10
    scipy.io.savemat(folder / "train_32x32.mat", {"X": images, "y": labels})
    split_list = {k: list(v) for k, v in torchvision.datasets.SVHN.split_list.items()}
    split_list["train"][2] = md5(folder / "train_32x32.mat")
    monkeypatch.setattr(torchvision.datasets.SVHN, "split_list", split_list)
    tr = data.load("svhn", "train", root=tmp_path)
    assert tr.x.shape == (6, 3, 32, 32) and tr.y.tolist() == [0, 1, 2, 3, 0, 9]
    assert torch.allclose(tr.x[1] * 255, torch.as_tensor(images[:, :, :, 1]).permute(2, 0, 1).float())


# ---------------------------------------------------------------- the real MNIST, when present


def test_real_mnist_from_a_data_root(mnist_root):
    tr = data.load("mnist", "train", root=mnist_root, download=False)
    te = data.load("mnist", "test", root=mnist_root, download=False)
    assert tr.x.shape == (60000, 1, 28, 28) and te.x.shape == (10000, 1, 28, 28)
    assert tr.y[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first training labels
    assert torch.bincount(te.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert 0.12 < float(tr.x.mean()) < 0.14


def test_a_truncated_unpacked_file_beside_its_archive_is_named(mnist_root):
    data.load("mnist", "test", root=mnist_root, download=False)  # unpacks the archives beside them
    images = mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    full = images.stat().st_size
    with open(images, "r+b") as f:
        f.truncate(full // 2)
    with pytest.raises(data.DatasetNotFound, match=rf"{images} is truncated \({full // 2:,} of the {full:,} bytes.*"
                       r"t10k-images-idx3-ubyte.gz beside it is unpacked again"):  # fmt: skip
        data.load("mnist", "test", root=mnist_root, download=False)
    images.unlink()  # the way out the message gives
    assert data.load("mnist", "test", root=mnist_root, download=False).x.shape == (10000, 1, 28, 28)
