"""The two UCI tables of paper 3 (docs/papers/sss.md §4.1), read from a data root into tensors;
:mod:`repronets.core.data`
serves them by name as splits (this module does not import it: the dependency runs one way, data → uci).

- ``pendigits``: ``<root>/pendigits/pendigits.tra`` and ``pendigits.tes`` (the official split; 16 integer features
  0–100 and the digit, comma-separated).
- ``hand_postures``: ``<root>/hand_postures/Postures.csv`` (or ``Postures.zip`` holding it): header, then one row
  per marker record (Class, User, X0, Y0, Z0, …, X11, Y11, Z11), '?' for missing markers. As the original: the
  first row after the header is skipped (it is a row of zeros), '?' becomes 0, ``User`` is dropped, classes are
  shifted to start at 0, and the split is a random 80/20 one, here seeded (``HAND_POSTURES_SPLIT_SEED``; the
  original's was unseeded, a new split every load).

Features stay raw, as in the original (no scaling); the experiment decides whether to standardise.
``download=True`` fetches the files from the UCI repository with torchvision's download helper; neither source
publishes checksums, so none is checked.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

PENDIGITS_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/pendigits/"
HAND_POSTURES_URL = "https://archive.ics.uci.edu/static/public/391/motion+capture+hand+postures.zip"
HAND_POSTURES_SPLIT_SEED = 0
HAND_POSTURES_TEST_FRACTION = 0.2


class Table(NamedTuple):
    """One split of a table: ``x`` (N, F) float32 feature values as in the file, ``y`` (N,) int64 classes from 0."""

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]


class MissingFile(FileNotFoundError):
    """A table's file is not under the data root (and was not downloaded); ``expected`` says what was looked for."""

    def __init__(self, expected: str):
        super().__init__(f"expected {expected}")
        self.expected = expected


def pendigits(root: Path, split: str, download: bool) -> Table:
    folder = root / "pendigits"
    file = folder / ("pendigits.tra" if split == "train" else "pendigits.tes")
    if not file.is_file() and download:
        from torchvision.datasets.utils import download_url

        download_url(PENDIGITS_URL + file.name, str(folder), file.name)
    if not file.is_file():
        raise MissingFile(str(file))
    table = np.loadtxt(file, delimiter=",", dtype=np.float32, ndmin=2)
    if table.shape[1] != 17:
        raise ValueError(
            f"{file}: expected 17 comma-separated columns (16 features and the class), got {table.shape[1]}"
        )
    return Table(
        torch.from_numpy(table[:, :16].copy()), torch.from_numpy(table[:, 16]).long(), tuple(str(c) for c in range(10))
    )


def _postures_csv(folder: Path, download: bool) -> str:
    csv, archive = folder / "Postures.csv", folder / "Postures.zip"
    if not csv.is_file() and not archive.is_file() and download:
        from torchvision.datasets.utils import download_url

        download_url(HAND_POSTURES_URL, str(folder), "hand_postures.zip")
        archive = folder / "hand_postures.zip"
    if csv.is_file():
        return csv.read_text()
    if archive.is_file():
        return _find_in_zip(zipfile.ZipFile(archive), "Postures.csv", archive)
    raise MissingFile(f"{csv} or {folder / 'Postures.zip'}")


def _find_in_zip(archive: zipfile.ZipFile, name: str, path) -> str:
    """``name`` inside the archive, also inside zips nested in it (the UCI download wraps Postures.zip)."""
    for info in archive.infolist():
        if info.filename.rsplit("/", 1)[-1] == name:
            return archive.read(info).decode()
    for info in archive.infolist():
        if info.filename.endswith(".zip"):
            try:
                return _find_in_zip(zipfile.ZipFile(io.BytesIO(archive.read(info))), name, path)
            except FileNotFoundError:
                continue
    raise FileNotFoundError(f"{path} holds no {name}")


def hand_postures(root: Path, split: str, download: bool) -> Table:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    text = _postures_csv(root / "hand_postures", download)
    frame = pd.read_csv(io.StringIO(text), skiprows=[1], na_values="?").fillna(0)
    for column in ("Class", "User"):
        if column not in frame:
            raise ValueError(f"hand_postures: no {column!r} column in Postures.csv (columns: {list(frame)[:6]}…)")
    y = frame.pop("Class").to_numpy()
    frame.pop("User")
    x = frame.to_numpy(dtype=np.float32)
    y = y - y.min()
    train, test = train_test_split(
        np.arange(len(y)), test_size=HAND_POSTURES_TEST_FRACTION, random_state=HAND_POSTURES_SPLIT_SEED
    )
    index = np.sort(train if split == "train" else test)
    classes = tuple(str(c) for c in range(int(y.max()) + 1))
    return Table(torch.from_numpy(x[index]), torch.from_numpy(y[index]).long(), classes)


READERS = {"pendigits": pendigits, "hand_postures": hand_postures}
