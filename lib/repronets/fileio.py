"""Atomic writes: a reader sees the old file or the new one, never half of either.

Every result, checkpoint, manifest and table goes through here, so an interrupted process
cannot leave a truncated file behind (temp file in the same folder, fsync, then rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: mkstemp creates files 0600, renamed files should get the usual permissions


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "w") -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        encoding = {} if "b" in mode else {"encoding": "utf-8"}
        with os.fdopen(fd, mode, **encoding) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, lambda f: json.dump(obj, f, indent=1, sort_keys=True, allow_nan=True))


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), mode="wb")


def check_writable(folder: str | os.PathLike, what: str = "output folder", way_out: str = "") -> Path:
    """Create ``folder`` if needed and prove a file can be written there; raise a clear error if not, naming it as
    ``what`` and suggesting ``way_out`` (default: another folder or its permissions)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        way_out = way_out or "choose another folder or fix its permissions"
        raise PermissionError(f"{what} {folder} is not writable ({e.strerror or e}); {way_out}") from e
    return folder
