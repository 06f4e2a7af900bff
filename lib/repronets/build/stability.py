"""``./run_all.sh stability``: can floating-point noise change a verdict of the ledger?

Rebuilds a profile from an empty run store (as ``verify`` does, in ``build/stability/<profile>/``) under a perturbation
of the arithmetic that leaves the method alone: the CPU's native kernels instead of the pinned ones
(``--native-kernels``: other instruction sets, other summation orders), or another thread count (``-j 1``: one notebook
at a time with every core, so two threads per kernel instead of one). Then it compares every verdict of the rebuilt
ledgers with the published ones and writes a report (``--report``, default ``figures/<set>/<profile>/STABILITY.md``):
each verdict that changes, and each that *flips* (reproduced ↔ not reproduced). A verdict that such noise can flip is
not a verdict. Claims decided from timings are left out (they measure the machine).

Exit status: 0 when no decided verdict flips, 1 when one does, 2 when the rebuild failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..core import fileio
from ..report.claims import LEDGER_NAME, VERDICTS
from .verify import Rebuild, arguments

REPORT = "STABILITY.md"
DECIDED = VERDICTS[:2]  # reproduced, not reproduced


def verdicts(files: dict[str, bytes]) -> dict[str, dict]:
    """Every claim row of the notebooks' ledgers (``<notebook>/claims.json``) among ``files`` (relative path ->
    bytes), by claim id, with its notebook."""
    out = {}
    for name, blob in sorted(files.items()):
        path = Path(name)
        if path.name == f"{LEDGER_NAME}.json" and len(path.parts) == 2:
            for row in json.loads(blob)["claims"]:
                out[row["id"]] = {**row, "notebook": path.parts[0]}
    return out


def change(before: str, after: str) -> str:
    """How a verdict moved: "same", "flip" (one decided verdict to the other) or "changed"."""
    if before == after:
        return "same"
    return "flip" if {before, after} == set(DECIDED) else "changed"


def compare(published: dict[str, dict], rebuilt: dict[str, dict]) -> list[dict]:
    """One row per claim that either side tests: its verdict on both sides and the change."""
    rows = []
    for cid in sorted(set(published) | set(rebuilt), key=lambda c: (published.get(c, rebuilt.get(c))["notebook"], c)):
        a = published.get(cid, {}).get("verdict", "absent")
        b = rebuilt.get(cid, {}).get("verdict", "absent")
        if a == VERDICTS[3] and b == VERDICTS[3]:
            continue
        notebook = (published.get(cid) or rebuilt[cid])["notebook"]
        rows.append({"notebook": notebook, "id": cid, "published": a, "rebuilt": b, "change": change(a, b)})
    return rows


def _mean(row: dict | None) -> str:
    return "" if not row or row.get("mean") is None else f"{row['mean']:.4g}"


def report(rows: list[dict], published: dict, rebuilt: dict, label: str, perturbation: str, against: str) -> str:
    flips = [r for r in rows if r["change"] == "flip"]
    changed = [r for r in rows if r["change"] == "changed"]
    decided = [r for r in rows if r["published"] in DECIDED]
    lines = [
        f"# Stability of the ledger ({label})\n\n",
        f"The {label} rebuilt from an empty run store with {perturbation}, its verdicts compared with the published "
        f"ones ({against}); written by `./run_all.sh stability` (`lib/repronets/build/stability.py`). Timing claims "
        "are left out.\n\n",
        f"**{len(rows)} tested claims: {len(decided)} decided in the published ledger; {len(flips)} flip, "
        f"{len(changed)} change category, {len(rows) - len(flips) - len(changed)} unchanged.**\n\n",
        "| notebook | claim | published | mean | rebuilt | mean | change |\n|---|---|---|---:|---|---:|---|\n",
    ]
    for r in rows:
        mark = {"flip": "**FLIP**", "changed": "changed", "same": ""}[r["change"]]
        lines.append(
            f"| {r['notebook']} | `{r['id']}` | {r['published']} | {_mean(published.get(r['id']))} | {r['rebuilt']} | "
            f"{_mean(rebuilt.get(r['id']))} | {mark} |\n"
        )
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = arguments(
        "run_all.sh stability",
        "Rebuild a profile under perturbed floating-point noise (--native-kernels, or -j 1 for another thread count) "
        "and compare its ledger's verdicts with the published ones; exit 1 when a decided verdict flips.",
    )
    parser.add_argument("--report", type=Path, default=None, help=f"where to write the report (default: {REPORT} "
                        "beside the published ledgers)")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.native_kernels and args.jobs != 1:
        parser.error("give a perturbation: --native-kernels, or -j 1 (two threads per notebook instead of one)")
    rebuild = Rebuild(parser, args, "stability")
    published_files = rebuild.published()
    published = verdicts(published_files)
    if not published:
        print(f"run_all.sh stability: error: no ledger is published under {rebuild.published_dir}", file=sys.stderr)
        return 2
    status = rebuild.run()
    if status != 0:
        return status
    from .verify import files_below

    rebuilt = verdicts(files_below(rebuild.figures))
    rows = compare(published, rebuilt)
    perturbation = " and ".join(
        text
        for text, on in (
            ("the CPU's native kernels instead of the pinned ones", args.native_kernels),
            ("one notebook at a time on every core (two threads per kernel instead of one)", args.jobs == 1),
        )
        if on
    )
    label = rebuild.project.label(args.profile)
    text = report(rows, published, rebuilt, label, perturbation, f"git {args.against}")
    path = args.report or rebuild.published_dir / REPORT
    fileio.write_text(path, text)
    flips = sum(r["change"] == "flip" for r in rows)
    changed = sum(r["change"] == "changed" for r in rows)
    print(
        f"stability: {flips} flip(s), {changed} change(s) of category among {len(rows)} tested claims; report: {path}"
    )
    return 1 if flips else 0


if __name__ == "__main__":
    sys.exit(main())
