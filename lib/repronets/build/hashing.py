"""What decides a notebook's outputs: the hash of its inputs (notebook source, library source, params file, claim
file, the datasets' files, profile), and whether its published outputs are those of the same inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..report import claims
from ..runs import params as params_mod
from .project import STAMP, Job, Project


def notebook_source(path: Path) -> str:
    """The part of a notebook that determines its results: cell types and sources (not outputs or metadata)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return json.dumps(
        [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"]) for c in nb["cells"]]
    )


PACKAGE = Path(__file__).resolve().parents[1]  # lib/repronets: every layer's source, not only build/


def library_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def input_hash(project: Project, notebook: str, profile: str, values: dict | None = None) -> str:
    """``values``: the notebook's parameters at ``profile`` when the caller has loaded them (else read here)."""
    h = hashlib.sha256()
    h.update(f"profile={profile}\n".encode())
    h.update(notebook_source(project.notebooks_dir / f"{notebook}.ipynb").encode())
    h.update(params_mod.params_path(notebook, profile, project.params_dir).read_bytes())
    claim_file = claims.claim_file(notebook, project.root)  # its verdicts are outputs too
    h.update(b"claims\0" + (claim_file.read_bytes() if claim_file.exists() else b""))
    values = (
        values if values is not None else params_mod.as_dict(params_mod.load(notebook, profile, project.params_dir))
    )
    for name, identity in dataset_identities(values):
        h.update(f"data {name}\0{identity}\n".encode())  # other files under a dataset's name: other results
    for f in library_files():
        h.update(str(f.relative_to(PACKAGE)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:20]


def dataset_identities(params: dict) -> list[tuple[str, str]]:
    """(dataset, :func:`repronets.core.data.identity`) for every dataset a notebook's parameters name (the values of its
    keys that hold ``dataset`` in their name), read from its data root."""
    from ..core import data

    names = []
    for key, value in params.items():
        if "dataset" in key:
            names += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    root = params.get("data_root") or None
    return [(n, data.identity(n, root)) for n in sorted(set(names)) if n in data.DATASETS + data.TABULAR_DATASETS]


def up_to_date(job: Job) -> bool:
    stamp = job.published / STAMP
    if not stamp.exists():
        return False
    try:
        record = json.loads(stamp.read_text())
    except json.JSONDecodeError:
        return False
    files = [job.published / f for f in record.get("outputs", [])] + [job.published / f"{job.notebook}.ipynb"]
    return record.get("input_hash") == job.input_hash and all(f.exists() for f in files)
