"""Atomic writes: a reader sees the old file or the new one, never half of either.

Every result, checkpoint, manifest and table goes through here, so an interrupted process
cannot leave a truncated file behind (temp file in the same folder, fsync, then rename).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
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
    except BaseException as e:
        full = _out_of_space(e, path.parent)  # asked before the temporary file is removed and frees its space
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if full:
            raise OSError(errno.ENOSPC, f"no space left to write it ({full})", str(path)) from e
        raise
    return path


def _out_of_space(error: BaseException, folder: Path) -> str:
    """'' unless ``error`` came from a full disk: then what the disk has left. torch.save on a full disk raises a
    RuntimeError ('unexpected pos ...') rather than an OSError, so the disk itself is asked."""
    if getattr(error, "errno", None) == errno.ENOSPC:
        return disk_nearly_full(folder) or f"the disk of {folder} is full"
    return disk_nearly_full(folder) if isinstance(error, (OSError, RuntimeError)) else ""


def disk_nearly_full(folder: str | os.PathLike) -> str:
    """'' unless the disk holding ``folder`` has less than DISK_NEARLY_FULL free: then how much it has."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f"{free:,} bytes free on the disk of {folder}" if free < DISK_NEARLY_FULL else ""


# A write that fails with less than this left on its disk is reported as a full disk.
DISK_NEARLY_FULL = 1 << 20


def describe_os_error(e: OSError) -> str:
    """An OSError as a sentence naming the file and the way out (read-only folder, full disk)."""
    where = e.filename or "a file"
    if e.errno == errno.ENOSPC:
        return f"{where}: the disk is full ({e.strerror}); free space there, or point the output elsewhere"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: cannot be written ({e.strerror}); make it writable"
    return f"{where}: {e.strerror or e}"


def replace_folder(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Put the folder ``source`` at ``target``: the old ``target`` is renamed aside, ``source`` moved in (a rename on
    one filesystem), then the old one removed; a reader finds the old folder or the new one, never none or a mix."""
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    shutil.move(str(source), str(target))
    shutil.rmtree(old, ignore_errors=True)
    return target


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, lambda f: json.dump(obj, f, indent=1, sort_keys=True, allow_nan=True))


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), mode="wb")


def project_root() -> Path:
    """The checkout that holds this package (lib/repronets/core -> ../../..), else the current folder."""
    here = Path(__file__).resolve().parents[3]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


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
