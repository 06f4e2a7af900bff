"""The README's results are generated from the outputs it quotes (repronets.build.readme), never typed by hand."""

import json
from pathlib import Path

import pytest
from repronets.build import readme

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_and_the_docs_pages_quote_the_committed_outputs():
    pages = readme.documents(ROOT)
    assert ROOT / "README.md" in pages and ROOT / "docs" / "paper4_jeidnn.md" in pages
    assert all(readme.BLOCK.search(p.read_text(encoding="utf-8")) for p in pages if p.name != "development.md")
    assert readme.stale(ROOT) == [], "run python -m repronets.build.readme"


def test_the_front_door_is_short_and_says_what_reproduces():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    assert "<!-- generated: headline figures -->" in text and "`sss.beats_rank1.logits`" in text


def test_a_block_in_a_docs_page_links_from_its_folder(tmp_path):
    _ledger(tmp_path / "figures" / "quick" / "01_x", 0.5)
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "paper.md"
    page.write_text("<!-- generated: ledger figures/quick/01_x -->\n<!-- end generated -->\n")
    assert readme.update(tmp_path)
    assert "](../figures/quick/01_x/claims.md)" in page.read_text()


def _ledger(folder: Path, mean: float):
    folder.mkdir(parents=True)
    row = dict(
        id="x.claim", claim="X beats Y.", kind="paper", unit="a trained model (seed)", comparison="> 0", n=3,
        mean=mean, sd=0.01, ci_low=mean - 0.02, ci_high=mean + 0.02, verdict="reproduced", needed=None,
        published=None, rules=2,
    )  # fmt: skip
    untested = dict(row, id="x.later", verdict="not testable at this profile", n=None, mean=None, sd=None,
                    ci_low=None, ci_high=None)  # fmt: skip
    (folder / "claims.json").write_text(json.dumps({"profile": "quick", "claims": [row, untested]}))
    (folder / "table.md").write_text("A caption.\n\n| a |\n|--:|\n| 1 |\n")
    manifest = {"outputs": {f"{folder.name}/claims.json": {"commit": "abcdef123456", "dirty": False,
                "finished": "2026-11-30T08:00:00+00:00", "device": "cpu (2 threads)"}}}  # fmt: skip
    (folder.parent / "MANIFEST.json").write_text(json.dumps(manifest))
    (folder.parent / "CLAIMS.md").write_text("# Claims ledger (quick profile)\n\nrows\n")


def test_blocks_are_rewritten_from_the_ledger_and_tables(tmp_path):
    _ledger(tmp_path / "figures" / "quick" / "nb", 0.25)
    text = (
        "Prose stays.\n<!-- generated: ledger figures/quick/nb -->\nstale 0.99\n<!-- end generated -->\n"
        "<!-- generated: table figures/quick/nb/table.md -->\n<!-- end generated -->\n"
        "<!-- generated: summary figures/quick -->\n<!-- end generated -->\n"
        "<!-- generated: ledger figures/paper/nb -->\n<!-- end generated -->\nMore prose.\n"
    )
    (tmp_path / "README.md").write_text(text)
    assert readme.update(tmp_path)
    out = (tmp_path / "README.md").read_text()
    assert out.startswith("Prose stays.\n") and out.endswith("More prose.\n") and "stale" not in out
    assert (
        "| `x.claim`: X beats Y. | paper | a trained model (seed) | > 0 | 3 | 0.25 | 95% CI [0.23, 0.27] | reproduced |"
        in out
    )
    assert "earlier version of the ledger's rules" not in out
    assert "Not testable at this profile: `x.later`." in out and "commit abcdef1, 2026-11-30" in out
    assert "cpu (2 threads), native kernels (built before they were pinned" in out  # the manifest names no numerics
    assert "| a |\n|--:|\n| 1 |" in out
    assert (
        "[Claims ledger (quick profile)](figures/quick/CLAIMS.md): 1 reproduced, 1 not testable at this profile." in out
    )
    assert "| nb | `x.claim` |  | 0 | 1 |" in out  # the summary: reproduced, not reproduced, inconclusive, untested
    assert "*`figures/paper/nb` has not been built yet.*" in out
    assert not readme.update(tmp_path)  # idempotent
    (tmp_path / "figures" / "quick" / "nb" / "claims.json").write_text(
        (tmp_path / "figures" / "quick" / "nb" / "claims.json").read_text().replace('"mean": 0.25', '"mean": 0.5')
    )
    assert readme.update(tmp_path) and "| 0.5 |" in (tmp_path / "README.md").read_text()
    assert readme.main(["--check", "--root", str(tmp_path)]) == 0
    # a ledger decided by the rules before units and the minimum of units says so
    path = tmp_path / "figures" / "quick" / "nb" / "claims.json"
    path.write_text(path.read_text().replace('"rules": 2', '"rules": 1'))
    assert readme.update(tmp_path) and "earlier version of the ledger's rules" in (tmp_path / "README.md").read_text()


def test_a_profile_s_build_rewrites_the_blocks_that_quote_it_and_the_headline_table_over_every_set(tmp_path):
    _ledger(tmp_path / "figures" / "quick" / "nb", 0.25)
    _ledger(tmp_path / "figures" / "paper" / "nb", 0.25)
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "nb.yaml").write_text(
        "claims:\n- id: x.claim\n  claim: X beats Y.\n  kind: paper\n  source: a paper\n  comparison: above\n"
        "  margin: 0\n  measure: x\n  unit: a trained model (seed)\n  profiles: [quick, paper]\n"
    )
    text = (
        "<!-- generated: headline figures -->\n<!-- end generated -->\n"
        "<!-- generated: ledger figures/quick/nb -->\n<!-- end generated -->\n"
        "<!-- generated: ledger figures/paper/nb -->\nkept\n<!-- end generated -->\n"
    )
    (tmp_path / "README.md").write_text(text)
    assert readme.update(tmp_path, only=tmp_path / "figures" / "quick")
    out = (tmp_path / "README.md").read_text()
    assert "| `x.claim`: X beats Y. | reproduced (3) | reproduced (3) |" in out  # the headline: quick and paper
    assert "| `x.claim`: X beats Y. | paper |" in out and "kept" in out  # quick's ledger; paper's left alone


def test_a_bench_block_quotes_the_suite_s_table(tmp_path):
    table = (
        "**s**: a suite (cpu, 2026-11-30; `python bench/runner.py s`)\n\n| case | time |\n|---|---:|\n| a | 1 ms |\n"
    )
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "s.md").write_text(table)
    text = "<!-- generated: bench bench/results/s.md -->\nold\n<!-- end generated -->\n"
    text += "<!-- generated: bench bench/results/none.md -->\n<!-- end generated -->\n"
    out = readme.regenerate(text, tmp_path)
    assert out.startswith("<!-- generated: bench bench/results/s.md -->\n" + table + "<!-- end generated -->")
    assert "*`bench/results/none.md` has not been built yet.*" in out


def test_an_unknown_block_kind_is_named():
    with pytest.raises(ValueError, match="unknown kind 'chart'"):
        readme.regenerate("<!-- generated: chart x -->\n<!-- end generated -->", ROOT)
