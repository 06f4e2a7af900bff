"""Parameters: one typed schema per notebook, values in ``params/<profile>/<notebook>.yaml``.

A schema is a frozen dataclass whose fields carry their type and constraints; the values are plain data
in YAML (every key given, none implied), so a profile file says everything a run depends on.
:func:`load` and :func:`from_namespace` run the same validation, so a notebook opened in JupyterLab
checks its parameters cell exactly as ``run_all.sh`` checks the profile file, before any work starts.

Errors name the source (file or notebook cell), the key, what was given and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from ..core import train

PROFILES = ("smoke", "quick", "paper")
# Keys every notebook's parameters cell has that are not training parameters: set by the pipeline.
PIPELINE_KEYS = ("profile", "output_dir", "dry_run")
# Set by run_all.sh for the kernels it starts: every parameter was injected from this params file (session.py).
INJECTED_FROM = "REPRONETS_PARAMS_FILE"

# Which schema validates each notebook. A notebook not listed cannot be built; to add one without editing
# the package (your own experiments, the tests' fixture), set REPRONETS_SCHEMAS="name=module:Class;...".
NOTEBOOK_SCHEMAS = {
    "00_data_and_baselines": "repronets.baselines.experiment:Params",
    "01_tau_speedup": "repronets.tau.experiment:Params",
    "02_continuousnet_tables": "repronets.continuous.experiment:Params",
    "03_sss_benchmarks": "repronets.sss.experiment:Params",
    "04_dynamic_exits": "repronets.jeidnn.experiment:Params",
}


class ParamsError(ValueError):
    """A params file or parameters cell that cannot be used; the message says where and why."""


_NO_DRY_VALUE = object()
# The dry value of a list of seeds: its first seed only. A dry run checks that every run of the grid can be made, and
# the other seeds' runs are the same runs again (measured: the paper profiles' dry runs of 01, 02 and 04 did every
# run three times over).
FIRST = "first value"


def param(*, ge=None, gt=None, le=None, lt=None, choices=None, doc: str = "", dry=_NO_DRY_VALUE):
    """A schema field with constraints (applied to each element of a list). ``dry``: its value in a dry run
    (:func:`dry_run`), for the fields that decide how long training lasts."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "doc": doc}
    if dry is not _NO_DRY_VALUE:
        meta["dry"] = dry
    return dataclasses.field(metadata=meta)


@dataclasses.dataclass(frozen=True)
class CommonParams:
    """Fields every experiment notebook has. ``dry_run`` is no parameter of a params file: :func:`dry_run` sets it,
    so that code which derives settings from the parameters (JEI-DNN's per-dataset settings) keeps the dry values."""

    device: str = param(choices=("auto", "cpu", "cuda"), doc="where to train; auto = cuda if available")
    data_root: str = param(doc="dataset folder; empty = $REPRONETS_DATA, else <project>/data")
    download: bool = param(doc="allow torchvision to download missing datasets")
    dry_run: bool = dataclasses.field(default=False, kw_only=True, metadata={"pipeline": True})


@dataclasses.dataclass(frozen=True)
class OptimizerParams(CommonParams):
    """The optimizer fields (``train.OPTIMIZER_KEYS``) of the notebooks that train on the τ paper's protocol: the
    τ paper's own (01) and the baselines beside it (00)."""

    optimizer: str = param(choices=tuple(train.OPTIMIZERS), doc="sgd: plain SGD in the τ paper's protocol (train.py)")
    lr: float = param(gt=0.0, doc="learning rate, of every parameter (the τ included)")
    momentum: float = param(ge=0.0, lt=1.0, doc="sgd's momentum; 0 in the τ paper's protocol")
    weight_decay: float = param(ge=0.0, doc="on every parameter (the τ included); 0 in the τ paper's protocol")


def dry_run(p):
    """``p`` as a dry run: every field that decides how long training lasts (epochs, training-set size, repeats,
    the evaluation sweeps' lengths) at its ``dry`` value (or its own, where that is smaller), every other field
    (the grid, the table rows, the baselines, the datasets) as given. So every run of the profile is made and every
    figure, table and claim is drawn from them, in minutes: a check that a profile runs end to end before it is
    given hours, not a result."""
    dry = {
        f.name: _shorter(getattr(p, f.name), f.metadata["dry"], f.name)
        for f in dataclasses.fields(p)
        if "dry" in f.metadata
    }
    if any(f.name == "dry_run" for f in dataclasses.fields(p)):
        dry["dry_run"] = True
    return dataclasses.replace(p, **dry)


def _shorter(value, dry, name: str):
    """The dry value, unless the given one is smaller already (a smoke profile's 2 epochs stay 2); a ``*_limit`` of
    0 means "all" and takes the dry value."""
    if dry == FIRST:
        return list(value[:1])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return dry
    if value == 0 and name.endswith("_limit"):
        return dry
    return min(value, dry)


def dry_values(schema) -> dict:
    """The fields a dry run of ``schema`` changes, with their dry values."""
    return {f.name: f.metadata["dry"] for f in dataclasses.fields(schema) if "dry" in f.metadata}


def schema_for(notebook: str) -> type:
    table = dict(NOTEBOOK_SCHEMAS)
    for item in filter(None, os.environ.get("REPRONETS_SCHEMAS", "").split(";")):
        name, _, target = item.partition("=")
        table[name.strip()] = target.strip()
    if notebook not in table:
        raise ParamsError(f"unknown notebook {notebook!r}: known notebooks are {sorted(table)}")
    module, _, cls = table[notebook].partition(":")
    return getattr(importlib.import_module(module), cls)


def params_path(notebook: str, profile: str, params_dir: str | os.PathLike | None = None) -> Path:
    if profile not in PROFILES:
        raise ParamsError(f"unknown profile {profile!r}: choose one of {list(PROFILES)}")
    from ..core.fileio import project_root

    return Path(params_dir or project_root() / "params") / profile / f"{notebook}.yaml"


def load(notebook: str, profile: str, params_dir: str | os.PathLike | None = None):
    """Read and validate ``params/<profile>/<notebook>.yaml``; returns the schema instance."""
    path = params_path(notebook, profile, params_dir)
    schema = schema_for(notebook)
    if not path.is_file():
        raise ParamsError(
            f"{path}: params file missing for notebook {notebook!r} at profile {profile!r}; "
            f"create it with the keys {field_names(schema)}"
        )
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 (safe loader)
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from e
    except UnicodeDecodeError as e:
        raise ParamsError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from e
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: expected a mapping of key: value, got {type(values).__name__}")
    set_by_pipeline = [k for k in values if k in PIPELINE_KEYS]
    if set_by_pipeline:  # it would be ignored: the pipeline sets them (dry_run: run_all.sh --dry-run)
        raise ParamsError(
            f"{path}: {set_by_pipeline} are set by run_all.sh (--profile, --dry-run), not in a params file"
        )
    return validate(schema, values, source=str(path))


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error (PyYAML keeps the last silently, so
    an edited params file could hold two values of which only one is used)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def from_namespace(notebook: str, namespace: Mapping[str, Any], source: str = "the notebook's parameters cell"):
    """Validate the schema's keys as found in a notebook's globals (its parameters cell)."""
    schema = schema_for(notebook)
    missing = [k for k in field_names(schema) if k not in namespace]
    if missing:
        raise ParamsError(f"{source}: missing keys {missing} for notebook {notebook!r}")
    return validate(schema, {k: namespace[k] for k in field_names(schema)}, source=source)


def field_names(schema) -> list[str]:
    """The schema's parameters: the keys of its params files."""
    return [f.name for f in _parameters(schema)]


def _parameters(schema) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(schema) if not f.metadata.get("pipeline")]


def as_dict(params) -> dict:
    """The parameters' values, as a params file would hold them."""
    return {f.name: copy.deepcopy(getattr(params, f.name)) for f in _parameters(params)}


def validate(schema, values: Mapping[str, Any], source: str):
    """Check every key of ``values`` against ``schema``; raise one ParamsError listing every problem."""
    fields = {f.name: f for f in _parameters(schema)}
    hints = typing.get_type_hints(schema)
    problems = []
    for key in values:
        if key in PIPELINE_KEYS:
            continue
        if key not in fields:
            problems.append(unknown_key(key, fields))
    for key in fields:
        if key not in values:
            problems.append(f"missing key {key!r} ({_describe(hints[key], fields[key].metadata)})")
    clean = {}
    for key, f in fields.items():
        if key not in values:
            continue
        value, error = _check(values[key], hints[key], f.metadata)
        if error:
            problems.append(f"key {key!r}: {error}; allowed: {_describe(hints[key], f.metadata)}")
        clean[key] = value
    if problems:
        raise ParamsError(f"{source}: " + ("\n  ".join([""] + problems) if len(problems) > 1 else problems[0]))
    try:
        return schema(**clean)
    except ValueError as e:  # a schema's own check across keys (its __post_init__)
        raise ParamsError(f"{source}: {e}") from e


def unknown_key(key, allowed) -> str:
    """The problem of a key that is no parameter: it, the closest allowed key if one is close, and all of them."""
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; allowed keys: {sorted(allowed)}"


def _check(value, hint, meta) -> tuple[Any, str | None]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None, None
        inner = [a for a in args if a is not type(None)]
        return _check(value, inner[0], meta)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            return value, f"expected a list, got {value!r} ({type(value).__name__})"
        if not value:
            return value, "expected a non-empty list"
        out = []
        for i, item in enumerate(value):
            item, error = _check(item, args[0], meta)
            if error:
                return value, f"element {i}: {error}"
            out.append(item)
        repeated = sorted({repr(v) for i, v in enumerate(out) if v in out[:i]})
        if repeated:  # each element is a seed, a grid point or a row: a repeat would be counted as another one
            return value, f"{', '.join(repeated)} given more than once (each value would count as another run)"
        return out, None
    if origin is Literal:
        return (value, None) if value in args else (value, f"got {value!r}")
    if hint is bool:
        if not isinstance(value, bool):
            return value, f"expected true or false, got {value!r} ({type(value).__name__})"
        return value, None
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return value, f"expected an integer, got {value!r} ({type(value).__name__})"
    elif hint is float:
        if isinstance(value, str) and _is_number(value):
            return value, (
                f"expected a number, got the string {value!r}: YAML reads an exponent without a decimal point as text;"
                f" write {float(value)!r}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, f"expected a number, got {value!r} ({type(value).__name__})"
        value = float(value)
        if not math.isfinite(value):
            return value, f"got {value!r}, not a finite number"
    elif hint is str:
        if not isinstance(value, str):
            return value, f"expected a string, got {value!r} ({type(value).__name__})"
    else:
        raise TypeError(f"unsupported schema type {hint!r}")
    return value, _check_bounds(value, meta)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_bounds(value, meta) -> str | None:
    if meta.get("choices") is not None and value not in meta["choices"]:
        return f"got {value!r}"
    for name, ok in (
        ("ge", lambda v, b: v >= b),
        ("gt", lambda v, b: v > b),
        ("le", lambda v, b: v <= b),
        ("lt", lambda v, b: v < b),
    ):
        bound = meta.get(name)
        if bound is not None and not ok(value, bound):
            return f"got {value!r}, out of range"
    return None


def _describe(hint, meta) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return "a non-empty list, each " + _describe(args[0], meta)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if meta.get("choices") is not None:
        return "one of " + ", ".join(map(repr, meta["choices"]))
    name = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
    bounds = [
        f"{sym} {meta[k]}"
        for k, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
        if meta.get(k) is not None
    ]
    return name + (" " + " and ".join(bounds) if bounds else "")
