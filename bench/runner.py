"""A small benchmark runner: every case of a suite is timed in one process and reported as a ratio to the
suite's baseline, so the numbers compare like with like on whatever machine runs them.

    python bench/runner.py                 # every bench/bench_*.py
    python bench/runner.py data_loading    # one suite

Timing uses ``torch.utils.benchmark.Timer`` (warm-up, CUDA synchronisation, median of blocks). Each suite
writes ``bench/results/<suite>.json`` and ``.md``; the README quotes the Markdown tables.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from repronets.core import fileio
from repronets.core.timing import benchmark_timer  # noqa: E402
from repronets.runs import provenance  # noqa: E402

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class Case:
    label: str
    fn: Callable[[], object]
    baseline: bool = False
    note: str = ""
    units: int = 1  # units (see Suite.unit) one call does, e.g. the members of a batch


@dataclasses.dataclass
class Suite:
    name: str
    description: str
    unit: str = "call"  # what one call of a case does, e.g. "epoch", "step"
    min_run_time: float = 1.0
    cases: list[Case] = dataclasses.field(default_factory=list)

    def add(self, label: str, fn: Callable[[], object], baseline: bool = False, note: str = "", units: int = 1) -> None:
        self.cases.append(Case(label, fn, baseline, note, units))

    def run(self) -> list[dict]:
        baselines = [c for c in self.cases if c.baseline]
        if len(baselines) != 1:
            raise ValueError(f"suite {self.name!r} needs exactly one baseline case")
        rows = []
        for case in self.cases:
            m = benchmark_timer(
                stmt="fn()", globals={"fn": case.fn}, label=self.name, description=case.label
            ).blocked_autorange(min_run_time=self.min_run_time)
            rows.append(
                {
                    "case": case.label,
                    "median_s": m.median / case.units,
                    "iqr_s": m.iqr / case.units,
                    "units_per_call": case.units,
                    "runs": len(m.times),
                    "baseline": case.baseline,
                    "note": case.note,
                }
            )
            print(f"  {case.label:<48} {m.median / case.units * 1e3:10.2f} ms/{self.unit}", flush=True)
        base = next(r["median_s"] for r in rows if r["baseline"])
        for r in rows:
            r["ratio_to_baseline"] = r["median_s"] / base
        return rows

    def write(self, rows: list[dict], folder: Path = HERE / "results", command: str = "") -> Path:
        record = {
            "suite": self.name,
            "description": self.description,
            "unit": self.unit,
            "command": command,
            "rows": rows,
            "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **provenance.record(),
        }
        fileio.write_json(folder / f"{self.name}.json", record)
        lines = [
            f"**{self.name}**: {self.description} ({record['device']}, torch {record['versions']['torch']}, "
            f"{record['measured'][:10]}" + (f"; `{command}`" if command else "") + ")",
            "",
            f"| case | time per {self.unit} | × baseline | note |",
            "|---|---:|---:|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['case']}{' (baseline)' if r['baseline'] else ''} | {_fmt(r['median_s'])} "
                f"| {r['ratio_to_baseline']:.3g} | {r['note']} |"
            )
        return fileio.write_text(folder / f"{self.name}.md", "\n".join(lines) + "\n")


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def main(argv: list[str]) -> int:
    files = sorted(HERE.glob("bench_*.py"))
    wanted = set(argv)
    for file in files:
        name = file.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        spec = importlib.util.spec_from_file_location(file.stem, file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for make in getattr(module, "SUITES", None) or [module.suite]:
            suite = make()
            print(f"{suite.name}: {suite.description}")
            path = suite.write(suite.run(), command=f"python bench/runner.py {name}")
            print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
