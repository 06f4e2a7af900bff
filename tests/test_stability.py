"""The stability check's comparison of verdicts (repronets.build.stability); the rebuild itself is verify's, tested
there."""

import json

import pytest
from repronets.build import stability


def ledger(*rows):
    return json.dumps({"claims": [dict(id=i, verdict=v, mean=m) for i, v, m in rows]}).encode()


def test_a_flip_is_a_decided_verdict_turning_into_the_other():
    assert stability.change("reproduced", "not reproduced") == "flip"
    assert stability.change("not reproduced", "reproduced") == "flip"
    assert stability.change("reproduced", "inconclusive") == "changed"
    assert stability.change("inconclusive", "not reproduced") == "changed"
    assert stability.change("inconclusive", "inconclusive") == "same"


def test_verdicts_are_read_from_the_notebooks_ledgers_only():
    files = {
        "01_a/claims.json": ledger(("a.x", "reproduced", 1.0)),
        "01_a/claims_timing.json": ledger(("a.t", "reproduced", 0.5)),  # a timing: the machine, not the method
        "CLAIMS.md": b"# a page",
    }
    assert set(stability.verdicts(files)) == {"a.x"} and stability.verdicts(files)["a.x"]["notebook"] == "01_a"


def test_the_report_names_every_flip_and_change():
    published = stability.verdicts(
        {
            "01_a/claims.json": ledger(
                ("a.flips", "reproduced", 0.02),
                ("a.moves", "reproduced", 0.05),
                ("a.stays", "not reproduced", -1.0),
                ("a.later", "not testable at this profile", None),
            )
        }
    )
    rebuilt = stability.verdicts(
        {
            "01_a/claims.json": ledger(
                ("a.flips", "not reproduced", -0.01),
                ("a.moves", "inconclusive", 0.01),
                ("a.stays", "not reproduced", -0.9),
                ("a.later", "not testable at this profile", None),
            )
        }
    )
    rows = stability.compare(published, rebuilt)
    assert [(r["id"], r["change"]) for r in rows] == [("a.flips", "flip"), ("a.moves", "changed"), ("a.stays", "same")]
    text = stability.report(rows, published, rebuilt, "quick profile", "native kernels", "git HEAD")
    assert "3 tested claims: 3 decided in the published ledger; 1 flip, 1 change category, 1 unchanged." in text
    assert "| 01_a | `a.flips` | reproduced | 0.02 | not reproduced | -0.01 | **FLIP** |" in text


def test_a_perturbation_must_be_given(capsys):
    with pytest.raises(SystemExit) as e:
        stability.main(["--profile", "quick"])
    assert e.value.code == 2 and "give a perturbation" in capsys.readouterr().err
