"""The README's generated blocks: its results quote the claims ledgers and tables that the builds write, so that no
number a profile computes is typed into it by hand. A block is

    <!-- generated: ledger figures/quick/03_sss_benchmarks -->
    ... (rewritten) ...
    <!-- end generated -->

``ledger DIR``: the claims ledger in ``DIR/claims.json`` as a table, with the build it comes from;
``table FILE``: a Markdown table that a notebook wrote, as it is; ``summary DIR``: the verdict counts of every
ledger in a figures folder; ``bench FILE``: a benchmark suite's table from ``bench/results/``. ``run_all.sh``
rewrites every block after each build; ``python -m repronets.build.readme --check`` (and the tests) fail when the README
differs from the outputs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ..core import fileio
from ..report.claims import (
    LEDGER_NAME,
    PROFILE_LEDGER,
    VERDICTS,
    ledger_error_note,
    ledger_rows,
    markdown_table,
    rules_warning,
    verdict_tally,
)

NOT_TESTABLE = VERDICTS[3]

BLOCK = re.compile(r"(<!-- generated: (\w+) (\S+) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)


def _provenance(root: Path, output: Path) -> str:
    """'commit abc1234, 2026-11-30, cpu (2 threads)' from the manifest of the figures folder holding ``output``."""
    folder = output.parent.parent if output.is_file() else output.parent
    manifest = folder / "MANIFEST.json"
    key = output.relative_to(folder).as_posix()
    if output.is_dir():
        key = f"{key}/{LEDGER_NAME}.json"
    try:
        entry = json.loads(manifest.read_text(encoding="utf-8"))["outputs"][key]
    except (OSError, KeyError, ValueError):
        return "not in a manifest"
    commit = f"commit {entry['commit'][:7]}" if entry.get("commit") else "outside git"
    dirty = ", uncommitted changes" if entry.get("dirty") else ""
    return f"{commit}{dirty}, {entry['finished'][:10]}, {entry['device']}, {_kernels(entry.get('numerics'))}"


def _kernels(numerics: dict | None) -> str:
    """Which kernels computed an output: pinned (the same on every x86-64 CPU) or the machine's own."""
    if not numerics:
        return "native kernels (built before they were pinned: another CPU may give other numbers)"
    return "pinned kernels" if numerics.get("isa") == "avx2" else f"native kernels ({numerics.get('cpu')})"


def _missing(target: str) -> str:
    return f"*`{target}` has not been built yet.*\n"


def render_ledger(root: Path, target: str) -> str:
    folder = root / target
    rows = ledger_rows(folder)
    if rows is None:
        return _missing(target)
    tested = [r for r in rows if r["verdict"] != NOT_TESTABLE]

    def claim(r) -> str:
        return f"`{r['id']}`: {r['claim']}" + (" *(a timing of the machine that built it)*" if r.get("timing") else "")

    lines = [
        f"*Claims ledger [`{target}/{LEDGER_NAME}.md`]({target}/{LEDGER_NAME}.md) ({_provenance(root, folder)}):*\n\n",
        rules_warning(rows),
        markdown_table(tested, claim_cell=claim),
    ]
    untested = [r["id"] for r in rows if r["verdict"] == NOT_TESTABLE]
    if untested:
        lines.append(f"\nNot testable at this profile: {', '.join(f'`{i}`' for i in untested)}.\n")
    return "".join(lines)


def render_table(root: Path, target: str) -> str:
    path = root / target
    if not path.exists():
        return _missing(target)
    text = path.read_text(encoding="utf-8").strip()
    return f"*[`{target}`]({target}) ({_provenance(root, path)}):* {text}\n"


def render_bench(root: Path, target: str) -> str:
    """A benchmark suite's table (``bench/results/<suite>.md``), as the runner wrote it: its first line names the
    machine, the versions, the date and the command that measured it."""
    path = root / target
    return path.read_text(encoding="utf-8").strip() + "\n" if path.exists() else _missing(target)


def render_summary(root: Path, target: str) -> str:
    """What reproduces, from every notebook ledger under a figures folder: the verdict counts (linking its
    CLAIMS.md, with the ledger's error note), then per notebook the claims reproduced and not reproduced by id, and
    how many are inconclusive or not testable at that profile."""
    paths = sorted((root / target).glob(f"*/{LEDGER_NAME}.json"))
    if not paths:
        return _missing(target)
    every = [r for path in paths for r in ledger_rows(path.parent)]
    page = root / target / PROFILE_LEDGER
    title = page.read_text(encoding="utf-8").splitlines()[0].lstrip("# ") if page.exists() else PROFILE_LEDGER
    lines = [
        f"[{title}]({target}/{PROFILE_LEDGER}): {verdict_tally(every)}. {ledger_error_note(every)}\n\n",
        rules_warning(every),
        "| notebook | reproduced | not reproduced | inconclusive | not testable here |\n|---|---|---|---:|---:|\n",
    ]
    for path in paths:
        rows = ledger_rows(path.parent)

        def ids(verdict: str, rows=rows) -> str:
            return ", ".join(f"`{r['id']}`" for r in rows if r["verdict"] == verdict)

        def count(verdict: str, rows=rows) -> int:
            return sum(r["verdict"] == verdict for r in rows)

        lines.append(
            f"| {path.parent.name} | {ids(VERDICTS[0])} | {ids(VERDICTS[1])} | {count(VERDICTS[2])} | "
            f"{count(VERDICTS[3])} |\n"
        )
    return "".join(lines)


def render_headline(root: Path, target: str) -> str:
    """The papers' own claims (kind ``paper`` in the claim files) across every committed set of outputs under
    ``target`` (figures/: quick, real_mnist/quick, …; smoke left out): one row per claim that some set tests, one
    column per set, each cell that set's verdict (and n), linking the set's CLAIMS.md."""
    from ..report.claims import RULES_VERSION, claim_file, load_claims

    sets = sorted(
        {path.parent.parent for path in (root / target).glob(f"**/{LEDGER_NAME}.json")} - {root / target / "smoke"},
        key=lambda folder: (folder.relative_to(root / target).parts[-1] != "quick", str(folder)),
    )
    if not sets:
        return _missing(target)
    verdicts: dict[str, dict[Path, dict]] = {}
    for folder in sets:
        for ledger in sorted(folder.glob(f"*/{LEDGER_NAME}.json")):
            for row in ledger_rows(ledger.parent):
                verdicts.setdefault(row["id"], {})[folder] = row
    kinds, texts, order = {}, {}, []
    for ledger in sorted((root / "claims").glob("*.yaml")):
        for c in load_claims(claim_file(ledger.stem, root)):
            kinds[c.id], texts[c.id] = c.kind, c.claim
            order.append(c.id)
    rows = [
        cid
        for cid in order
        if kinds.get(cid) == "paper" and any(r["verdict"] != NOT_TESTABLE for r in verdicts.get(cid, {}).values())
    ]
    short = {VERDICTS[0]: "reproduced", VERDICTS[1]: "**not reproduced**", VERDICTS[2]: "inconclusive"}

    def cell(row: dict | None) -> str:
        if row is None or row["verdict"] == NOT_TESTABLE:
            return "·"
        earlier = "" if row.get("rules") == RULES_VERSION else " †"
        return short[row["verdict"]] + (f" ({row['n']})" if row.get("n") else "") + earlier

    names = [folder.relative_to(root / target).as_posix() for folder in sets]
    links = [f"[{n}]({target}/{n}/{PROFILE_LEDGER})" for n in names]
    lines = [
        f"| claim (the paper's own words) | {' | '.join(links)} |\n",
        "|---|" + "---|" * len(sets) + "\n",
    ]
    for cid in rows:
        lines.append(f"| `{cid}`: {texts[cid]} | {' | '.join(cell(verdicts[cid].get(f)) for f in sets)} |\n")
    return "".join(lines) + (
        "\n(n): the units behind a verdict; ·: not tested in that set; †: decided by an earlier version of the "
        "ledger's rules (before the trained model was the unit, the minimum of 3 units and the resolution floor): "
        "that set has not been rebuilt since.\n"
    )


RENDERERS = {
    "ledger": render_ledger,
    "table": render_table,
    "summary": render_summary,
    "bench": render_bench,
    "headline": render_headline,
}


def documents(root: Path) -> list[Path]:
    """The pages with generated blocks: the README and the pages under docs/ (not the papers' reference notes)."""
    return [p for p in [Path(root) / "README.md", *sorted((Path(root) / "docs").glob("*.md"))] if p.exists()]


LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")


def _relink(text: str, prefix: str) -> str:
    """Links written relative to the project's root, made relative to a page ``prefix`` deep (``../`` for docs/)."""
    if not prefix:
        return text

    def fix(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"(https?:|#|mailto:|\.\./|/)", target):
            return m.group(0)
        return f"{m.group(1)}({prefix}{target})"

    return LINK.sub(fix, text)


def regenerate(text: str, root: Path, only: Path | None = None, page: Path | None = None) -> str:
    """``text`` with every generated block rewritten from the outputs under ``root``; with ``only`` (a folder), just
    the blocks that quote something under it (a build of one profile leaves the others' blocks as they are): those
    whose target lies in it, and those whose target holds it (the headline table quotes every set of figures/).
    ``page``: the file the text is (default the README), whose folder the blocks' links are made relative to."""
    depth = len((page or Path(root) / "README.md").resolve().relative_to(Path(root).resolve()).parts) - 1

    def block(m: re.Match) -> str:
        kind, target = m.group(2), m.group(3)
        if only is not None and not ((root / target).is_relative_to(only) or Path(only).is_relative_to(root / target)):
            return m.group(0)
        if kind not in RENDERERS:
            raise ValueError(
                f"generated block {m.group(1).strip()!r}: unknown kind {kind!r}, choose one of {list(RENDERERS)}"
            )
        return m.group(1) + _relink(RENDERERS[kind](root, target), "../" * depth) + m.group(5)

    return BLOCK.sub(block, text)


def update(root: Path, only: Path | None = None) -> bool:
    """Rewrite the generated blocks of the README and the docs/ pages from the outputs (only those under the folder
    ``only``, if given); True if any changed."""
    changed = False
    for page in documents(root):
        text = page.read_text(encoding="utf-8")
        new = regenerate(text, Path(root), only, page)
        if new != text:
            fileio.write_text(page, new)
            changed = True
    return changed


def stale(root: Path) -> list[Path]:
    """The pages whose generated blocks differ from the outputs they quote."""
    return [
        p
        for p in documents(root)
        if regenerate(p.read_text(encoding="utf-8"), Path(root), page=p) != p.read_text(encoding="utf-8")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Rewrite (or --check) the generated blocks of README.md and docs/*.md from the outputs they quote."
    )
    parser.add_argument("--check", action="store_true", help="only report whether the pages are current")
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args(argv)
    from ..core.fileio import project_root

    root = (args.root or project_root()).resolve()
    if args.check:
        behind = stale(root)
        for page in behind:
            print(f"{page} differs from the outputs it quotes: run python -m repronets.build.readme", file=sys.stderr)
        return 1 if behind else 0
    print("generated blocks " + ("rewritten" if update(root) else "unchanged"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
