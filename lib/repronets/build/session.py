"""What a notebook calls first, after its parameters cell.

    S = session.start("00_data_and_baselines", globals())

validates the parameters (the same check ``run_all.sh`` made on the profile file), picks the output folder
and the device, sets the plotting style, and gives ``S.figure(...)`` / ``S.table(...)``, which save the files
and record each one's provenance (the runs it shows, their seeds, the data, the device) in
``outputs.json`` beside them. The pipeline turns that record into the profile's MANIFEST.json.

Under ``run_all.sh`` the pipeline injects ``profile`` and ``output_dir`` (and ``dry_run`` for ``--dry-run``).
Opened in JupyterLab, the parameters cell's defaults apply and outputs go to
``build/interactive/<profile>/<notebook>/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Iterable, Mapping

from ..core import fileio, numerics
from ..core.train import resolve_device
from ..report import plotting
from ..runs import params as params_mod
from ..runs import provenance
from ..runs.results import RunResult, RunStore


@dataclasses.dataclass
class Session:
    notebook: str
    profile: str
    params: object
    output_dir: Path
    device: str
    store: RunStore

    def figure(
        self, fig, name: str, runs: Iterable[RunResult] = (), data: str | Iterable[str] = (), note: str = ""
    ) -> list[Path]:
        paths = plotting.save_figure(fig, self.output_dir, name)
        self._record(paths, "figure", runs, data, note)
        return paths

    def table(
        self,
        df,
        name: str,
        caption: str = "",
        runs: Iterable[RunResult] = (),
        data: str | Iterable[str] = (),
        precision: int = 4,
    ) -> list[Path]:
        paths = plotting.save_table(df, self.output_dir, name, caption, precision)
        self._record(paths, "table", runs, data, caption)
        return paths

    @staticmethod
    def reading(text: str) -> None:
        """Show a notebook's reading of its results as Markdown, one line per statement: the results site and
        JupyterLab wrap it to the page (a ``print`` is a code block cut off at its right edge)."""
        from IPython.display import Markdown, display

        lines = [line.strip() for line in str(text).splitlines() if line.strip()]
        display(Markdown("\n".join(line if line.startswith(("-", "*", "|", "#")) else f"- {line}" for line in lines)))

    @staticmethod
    def show(frame) -> None:
        """Show a table as its saved version reads: without pandas' index column."""
        from IPython.display import display

        display(frame.style.hide(axis="index"))

    def claims(self, ledger, runs: Iterable[RunResult] = (), data: str | Iterable[str] = ()) -> list[Path]:
        """The notebook's claims ledger (:class:`repronets.report.claims.Ledger`): ``claims.md``/``.csv``/``.tex`` to
        read and ``claims.json`` for the profile's ``CLAIMS.md``, recorded like any output; the claims decided from
        timings (``timing: true``) likewise as ``claims_timing.*``."""
        from ..report import claims as claims_mod

        missing = ledger.unmeasured()
        if missing:  # said where the notebook's reader and the build's log see it, not only in the ledger's notes
            warnings.warn(
                f"claims listed for the {self.profile} profile got no measurement: {missing}; their rows say "
                f"'not testable' (fix the profiles in claims/{self.notebook}.yaml, or the notebook)",
                stacklevel=2,
            )
        every = ledger.rows()
        timed = {cid for cid, c in ledger.claims.items() if c.timing}
        paths = []
        for name, rows, what in (
            (claims_mod.LEDGER_NAME, [r for r in every if r["id"] not in timed], "Claims ledger"),
            (claims_mod.TIMING_LEDGER, [r for r in every if r["id"] in timed], "Claims decided from timings"),
        ):
            if not rows:
                continue
            caption = f"{what} of {self.notebook} at the {self.profile} profile."
            written = plotting.save_table(claims_mod.display_frame(rows), self.output_dir, name, caption)
            written.append(
                fileio.write_json(self.output_dir / f"{name}.json", {"profile": self.profile, "claims": rows})
            )
            self._record(written, "claims", runs, data, caption)
            paths += written
        return paths

    def _record(self, paths, kind, runs, data, note) -> None:
        runs = list(runs)
        record_file = self.output_dir / provenance.OUTPUTS_RECORD
        record = json.loads(record_file.read_text()) if record_file.exists() else {}
        entry = {
            "kind": kind,
            "machine_measurement": any(provenance.is_timing(p.name) for p in paths),
            "notebook": self.notebook,
            "profile": self.profile,
            "note": note,
            "data": [data] if isinstance(data, str) else sorted(set(data)),
            "device": provenance.describe_device(self.device),
            "numerics": numerics.current(self.device),  # of the kernel that drew it; each run's own below
            "runs": [
                {
                    "kind": r.kind,
                    "key": r.key,
                    "seed": r.meta.get("seed"),
                    "wall_time_s": r.meta.get("wall_time_s"),
                    "git": r.meta.get("git"),
                    "numerics": {k: v for k, v in (r.meta.get("numerics") or {}).items() if k != "kernels"},
                }
                for r in runs
            ],
        }
        for p in paths:
            record[p.name] = entry
        fileio.write_json(record_file, record)


# Globals of a notebook kernel that are not parameters, though plain data (IPython's input and output history).
_KERNEL_GLOBALS = ("In", "Out")


def profile_values(notebook: str, namespace: Mapping, source: str) -> dict:
    """The parameters a notebook runs with, so that ``profile`` means the same under papermill as under
    ``run_all.sh``. The parameters cell holds the quick profile's values as literals and ``run_all.sh`` injects
    every value of the chosen profile; with ``papermill -p profile smoke`` (or ``profile`` edited by hand) every key
    still at its quick literal takes the named profile's value from its params file, and a key set to anything else
    (``-p epochs 3``, an edit) keeps it. A plain-data global that is no parameter (``-p epoch 3``) is an error."""
    fields = set(params_mod.field_names(params_mod.schema_for(notebook)))
    unknown = [
        k
        for k, v in namespace.items()
        if k not in fields and k not in params_mod.PIPELINE_KEYS and not k.startswith("_") and k not in _KERNEL_GLOBALS
        and isinstance(v, (bool, int, float, str, list))
    ]  # fmt: skip
    if unknown:
        raise params_mod.ParamsError(f"{source}: " + "; ".join(params_mod.unknown_key(k, fields) for k in unknown))
    values = {k: namespace[k] for k in fields if k in namespace}
    profile = namespace.get("profile", "quick")
    if os.environ.get(params_mod.INJECTED_FROM) or profile == "quick" or len(values) < len(fields):
        return values  # run_all.sh injected a whole params file; or quick literals; or missing keys (named later)
    quick = params_mod.as_dict(params_mod.load(notebook, "quick"))
    chosen = params_mod.as_dict(params_mod.load(notebook, profile))
    return {k: (chosen[k] if v == quick[k] else v) for k, v in values.items()}


def start(notebook: str, namespace: Mapping) -> Session:
    profile = namespace.get("profile", "quick")
    source = f"notebook {notebook!r} parameters (profile {profile!r})"
    p = params_mod.from_namespace(notebook, profile_values(notebook, namespace, source), source=source)
    if namespace.get("dry_run"):  # run_all.sh --dry-run: every run cut short (params.dry_run)
        p = params_mod.dry_run(p)
    output_dir = namespace.get("output_dir") or (fileio.project_root() / "build" / "interactive" / profile / notebook)
    output_dir = fileio.check_writable(output_dir)
    device = str(resolve_device(getattr(p, "device", "auto")))
    plotting.use_style()
    store = RunStore()
    store.check_usable()  # a read-only store of finished runs still draws the figures; a missing run is named
    return Session(notebook, profile, p, Path(output_dir), device, store)
