"""The results site: a profile's executed notebooks, its claims ledger and the README's measured tables as static
HTML that opens from the disk, offline.

    ./run_all.sh site [--profile quick] [--params-dir params/real_mnist]   # -> build/site/<profile>/index.html

Sphinx with myst-nb renders the notebooks the build executed (``figures/<profile>/<notebook>/<notebook>.ipynb``)
without running them again; the landing page is the claims ledger; each notebook page ends with every output the
notebook wrote and its provenance from ``MANIFEST.json`` (commit, parameters file, runs, seeds, wall time, data,
device). The measured tables are the README's generated benchmark blocks, quoted as they are.

Nothing is fetched from the network when a page is read: the theme's fonts and scripts are files of the theme
package, math is not enabled (no MathJax: the notebooks write their formulas in Unicode), and myst-nb's widget
scripts (a CDN) are switched off; explorers show their static figure. The browser tests check every request.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..core import fileio
from ..report.claims import VERDICTS, ledger_error_note, ledger_rows, markdown_table, rules_warning, verdict_tally
from ..report.explore import WIDGET_VIEW
from .project import MANIFEST, BuildError, Project
from .publish import FolderLock, read_manifest
from .readme import BLOCK, LINK, documents


class SiteError(RuntimeError):
    """The site cannot be built from what is there; the message says what to build first."""


def build(project: Project, profile: str, out: Path | None = None, quiet: bool = True) -> Path:
    """Write the Sphinx sources for ``profile`` and build the HTML into ``out`` (default build/site/<profile>);
    returns the path of the landing page. Two builds of one profile's site take turns (a lock in its staging
    folder): they share that folder, and the published site is replaced, never removed first."""
    staging = project.site_sources(profile)
    with FolderLock(staging.parent, f"site build ({staging.name})", wait=True, lock_name=f".{staging.name}.lock"):
        return _build(project, profile, out, quiet, staging)


def _build(project: Project, profile: str, out: Path | None, quiet: bool, staging: Path) -> Path:
    figures = project.figures(profile)
    notebooks = _executed_notebooks(project, profile)
    try:
        manifest = read_manifest(figures / MANIFEST)["outputs"]
    except BuildError as e:
        raise SiteError(str(e)) from e
    # build/site-src/<profile>/: source/ (generated), html/ (Sphinx's output) and jupyter_execute/ (where myst-nb
    # always writes beside the output folder); the finished html/ then replaces the published site in one rename,
    # so a failed build leaves the previous site as it was.
    src, html = staging / "source", staging / "html"
    out = out or project.site(profile)
    if out.exists() and any(out.iterdir()) and not (out / ".buildinfo").exists():  # Sphinx's marker
        raise SiteError(f"{out} holds files that are not a site built here; choose an empty folder")
    if staging.exists():
        shutil.rmtree(staging)
    (src / "notebooks").mkdir(parents=True)
    label = project.label(profile)

    fileio.write_text(src / "conf.py", _conf(label))
    pages = []
    for name, executed in notebooks.items():
        _copy_outputs(figures / name, src / "_outputs" / name)
        nb = json.loads(executed.read_text(encoding="utf-8"))
        nb["cells"].append(_markdown_cell(_provenance_section(name, profile, manifest)))
        fileio.write_json(src / "notebooks" / f"{name}.ipynb", nb)
        pages.append(f"notebooks/{name}")
    for page in documents(project.root)[1:]:  # the docs/ pages, beside the notebooks (the README is the front door)
        fileio.write_text(src / "docs" / page.name, _site_page(page.read_text(encoding="utf-8"), page, project.root))
        pages.append(f"docs/{page.stem}")
    if (project.root / "docs" / "images").is_dir():
        shutil.copytree(project.root / "docs" / "images", src / "docs" / "images")
    measured = _measured_tables(documents(project.root))
    if measured:
        fileio.write_text(src / "measured.md", measured)
        pages.append("measured")
    fileio.write_text(src / "index.md", _landing_page(figures, notebooks, label, pages))

    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-E", str(src), str(html)]
    done = subprocess.run(command + (["-q"] if quiet else []), capture_output=quiet, text=True)
    if done.returncode:
        raise SiteError(f"sphinx-build failed ({' '.join(command)}):\n{(done.stderr or '')[-4000:]}")
    fileio.replace_folder(html, out)  # an earlier site's pages of outputs that are gone go with it
    return out / "index.html"


def _executed_notebooks(project: Project, profile: str) -> dict[str, Path]:
    figures = project.figures(profile)
    hint = f"build the profile first: ./run_all.sh --profile {profile}" + (
        f" --params-dir {project.params_set.relative_to(project.root)}" if project.params_set else ""
    )
    if not (figures / MANIFEST).exists():
        raise SiteError(f"{figures / MANIFEST} does not exist: {hint}")
    found = {n: figures / n / f"{n}.ipynb" for n in project.notebooks_at(profile)}
    found = {n: p for n, p in found.items() if p.exists()}
    if not found:
        raise SiteError(f"no executed notebook under {figures}: {hint}")
    return found


def _conf(label: str) -> str:
    return f"""# Generated by repronets.build.site: the results site's Sphinx configuration.
project = "repronets"
html_title = {f"repronets: results, {label}"!r}
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_theme_options = {{"show_navbar_depth": 1, "home_page_in_toc": True, "show_toc_level": 2}}
# Without a default mode the theme logs a console error on a first visit from file:// (no stored mode).
html_context = {{"default_mode": "light"}}
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
# The notebooks were executed by the build; the site shows those outputs and never runs them.
nb_execution_mode = "off"
# Offline: no widget scripts from a CDN, and the explorers' static figure instead of their (stateless) widget.
nb_ipywidgets_js = {{}}
nb_mime_priority_overrides = [("html", {WIDGET_VIEW!r}, None)]
# No dollar math (no MathJax download); the notebooks write formulas in Unicode.
myst_enable_extensions = []
myst_heading_anchors = 3
exclude_patterns = ["_build", "_outputs"]  # the notebooks' files, linked for download
"""


def _markdown_cell(text: str) -> dict:
    return {"cell_type": "markdown", "id": "provenance", "metadata": {}, "source": text}


def _copy_outputs(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        if f.suffix in (".png", ".pdf", ".csv", ".md", ".tex", ".json") and f.is_file():
            shutil.copy2(f, target / f.name)


def _short(commit) -> str:
    return f"`{commit[:7]}`" if commit else "outside git"


def _provenance_section(notebook: str, profile: str, manifest: dict) -> str:
    """The notebook page's last section: each output it wrote, with its provenance from the manifest."""
    entries = {k.split("/", 1)[1]: v for k, v in manifest.items() if k.startswith(f"{notebook}/")}
    lines = [
        "## Outputs and their provenance\n",
        f"Every file this notebook wrote at the {profile} profile, as recorded in `MANIFEST.json`. ",
    ]
    run = entries.get(f"{notebook}.ipynb")
    if run:
        lines.append(
            f"The notebook ran at commit {_short(run.get('commit'))}"
            + (" (with uncommitted changes)" if run.get("dirty") else "")
            + f" with `{run.get('params_file', '')}`, on {run.get('device', '?')}, from {run.get('started', '?')} "
            f"for {run.get('duration_s', 0):.1f} s.\n"
        )
    groups: dict[str, list[str]] = {}
    for name in sorted(entries):
        if name != f"{notebook}.ipynb":
            groups.setdefault(name.rsplit(".", 1)[0], []).append(name)
    for stem, files in groups.items():
        entry = entries[files[0]]
        runs = entry.get("runs", [])
        seeds = sorted({r["seed"] for r in runs if r.get("seed") is not None})
        wall = sum(r.get("wall_time_s") or 0 for r in runs)
        commits = sorted({(r.get("git") or {}).get("commit") or "" for r in runs} - {""})
        lines.append(f"\n### {stem} ({entry['kind']})\n")
        if entry.get("note"):
            lines.append(f"\n{entry['note']}\n")
        png = f"{stem}.png"
        if png in files:
            lines.append(f"\n![{stem}](../_outputs/{notebook}/{png})\n")
        links = " · ".join(f"{{download}}`{f.rsplit('.', 1)[1]} <../_outputs/{notebook}/{f}>`" for f in files)
        lines.append(f"\nFiles: {links}\n")
        lines.append("\n| commit | runs | seeds | run wall time | data | device |\n|---|---:|---|---:|---|---|\n")
        lines.append(
            f"| {_short(entry.get('commit'))}{' (uncommitted changes)' if entry.get('dirty') else ''} "
            f"| {len(runs)} | {', '.join(map(str, seeds)) or '–'} | {wall:.1f} s "
            f"| {', '.join(entry.get('data', [])) or '–'} | {entry.get('device', '?')} |\n"
        )
        if commits:
            lines.append(f"\nThe runs were made at commit(s) {', '.join(_short(c) for c in commits)}.\n")
    if run and run.get("params"):
        lines.append("\n### Parameters\n\n| parameter | value |\n|---|---|\n")
        for k, v in run["params"].items():
            lines.append(f"| `{k}` | `{json.dumps(v)}` |\n")
    return "".join(lines)


def _claim_cell(r: dict) -> str:
    timing = " (a timing of the machine that built it)" if r.get("timing") else ""
    return f"**{r['id']}**: {r['claim']}{timing}"


def _landing_page(figures: Path, notebooks: dict[str, Path], label: str, pages: list[str]) -> str:
    parts = [
        f"# Claims ledger: {label}\n\n",
        "Every claim of the four papers that this companion tests, with the verdict its runs support here: a 95 % "
        "interval over the claim's units (mostly trained models), decided by the rules of `repronets.report.claims` "
        "(claims and their measures: `claims/<notebook>.yaml`). Each notebook's page shows the runs, figures and "
        "tables behind its verdicts, with their provenance.\n",
    ]
    every = []
    for name in notebooks:
        rows = ledger_rows(figures / name)
        if rows is None:
            continue
        rows.sort(key=lambda r: r["verdict"] == VERDICTS[3])  # what this profile tests first, in the file's order
        every += rows
        parts.append(f"\n## {name}\n\nFrom [{name}](notebooks/{name}.ipynb).\n\n")
        parts.append(rules_warning(rows) + markdown_table(rows, claim_cell=_claim_cell))
    parts.insert(2, f"\n**{verdict_tally(every) or 'no claims yet'}.** {ledger_error_note(every)}\n")
    parts.append("\n```{toctree}\n:maxdepth: 1\n:caption: Pages\n:hidden:\n\n" + "\n".join(pages) + "\n```\n")
    return "".join(parts)


def _site_page(text: str, page: Path, root: Path) -> str:
    """A docs/ page as the site shows it: links to other docs pages and images under docs/images stay; a link to a
    file the site does not hold (a ledger under figures/, a module) keeps its words, without the link."""

    def fix(m: re.Match) -> str:
        label, target = m.group(1), m.group(2)
        if re.match(r"(https?:|mailto:|#)", target):
            return m.group(0)
        path = (page.parent / target.split("#", 1)[0]).resolve()
        kept = path.parent == (root / "docs").resolve() and path.suffix == ".md" and path.exists()
        if kept or path.is_relative_to((root / "docs" / "images").resolve()):
            return m.group(0)
        return label[1:-1] if not label.startswith("!") else ""

    return LINK.sub(fix, text)


def _measured_tables(pages: list[Path]) -> str:
    """The benchmark blocks of the README and the docs pages, each under the heading it sits in."""
    blocks = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            if m.group(2) != "bench":
                continue
            headings = re.findall(r"^#{1,4} (.+)$", text[: m.start()], flags=re.MULTILINE)
            blocks.append((headings[-1] if headings else "", m.group(4).strip()))
    if not blocks:
        return ""
    parts = [
        "# Measured performance\n\n",
        "The benchmark tables (`bench/`) quoted by the documentation, as measured: ratios against a baseline timed in "
        "the same run, on the machine named in each table's caption, with the command that made it.\n",
    ]
    section = None
    for heading, body in blocks:
        if heading != section:
            parts.append(f"\n## {heading}\n")
            section = heading
        parts.append(f"\n{body}\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_all.sh site", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", help="the built profile to publish (default: quick)")
    parser.add_argument("--params-dir", type=Path, default=None, help="a parameter set's outputs (as run_all.sh)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: build/site/<profile>)")
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = (args.root or fileio.project_root()).resolve()
    try:
        project = Project.from_arguments(root, args.params_dir)
    except ValueError as e:
        parser.error(str(e))
    try:
        index = build(project, args.profile, args.out)
    except (SiteError, BuildError) as e:
        print(f"run_all.sh site: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full build/ folder: the file and the way out, not a traceback
        print(
            f"run_all.sh site: error: {fileio.describe_os_error(e)}; or choose another folder with --out",
            file=sys.stderr,
        )
        return 2
    print(f"site: {index}\nopen it in a browser (file://{index}), or serve it: python -m http.server -d {index.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
