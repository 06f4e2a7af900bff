"""The ledger's verdict rules on synthetic numbers: every verdict is reached, and the borders between them hold."""

import math

import numpy as np
import pytest
from repronets.report import claims
from repronets.report.claims import decide


def around(mean, spread, n=10):
    """n values with exactly this mean and a fixed shape (a deterministic stand-in for seeds)."""
    shape = np.linspace(-1, 1, n)
    return (mean + spread * shape).tolist()


def test_within_reaches_every_verdict():
    assert decide(around(0.96, 0.002), "within", published=0.96, tolerance=0.01).verdict == "reproduced"
    assert decide(around(0.90, 0.002), "within", published=0.96, tolerance=0.01).verdict == "not reproduced"
    assert decide(around(0.96, 0.05), "within", published=0.96, tolerance=0.01).verdict == "inconclusive"
    assert decide(None, "within", published=0.96).verdict == "not testable at this profile"
    assert decide([], "within", published=0.96, untestable_reason="paper profile").reason == "paper profile"


def test_within_borders_are_the_band_edges():
    # all values equal: the interval is the point itself, so the verdict flips exactly at the band's edge
    edge = 0.96 + 0.01
    assert decide([edge] * 5, "within", published=0.96, tolerance=0.01).verdict == "reproduced"
    assert decide([edge + 1e-9] * 5, "within", published=0.96, tolerance=0.01).verdict == "not reproduced"
    # an interval that touches the band from outside is not "outside"
    d = decide(around(0.972, 0.01, n=8), "within", published=0.96, tolerance=0.01)
    assert d.interval.low < 0.97 < d.interval.high and d.verdict == "inconclusive"


def test_above_and_below_reach_every_verdict_and_mirror():
    assert decide(around(0.05, 0.01), "above").verdict == "reproduced"
    assert decide(around(-0.05, 0.01), "above").verdict == "not reproduced"
    assert decide(around(0.0, 0.05), "above").verdict == "inconclusive"
    assert decide(around(-0.05, 0.01), "below").verdict == "reproduced"
    assert decide(around(0.05, 0.01), "below").verdict == "not reproduced"
    assert decide(around(0.0, 0.05), "below").verdict == "inconclusive"


def test_above_border_is_the_margin():
    assert decide([0.02] * 4, "above", margin=0.02).verdict == "not reproduced"  # equal to the margin: not above
    assert decide([0.02 + 1e-9] * 4, "above", margin=0.02).verdict == "reproduced"
    assert decide([0.02] * 4, "below", margin=0.02).verdict == "not reproduced"


def test_interval_is_the_wider_of_t_and_bootstrap():
    from scipy import stats

    x = [0.95, 0.96, 0.955, 0.97, 0.94]
    ci = claims.confidence_interval(x)
    t = stats.ttest_1samp(x, 0).confidence_interval(0.95)
    assert ci.low <= t.low + 1e-12 and ci.high >= t.high - 1e-12
    # skewed, two-peaked values (a plateau mode): the bootstrap reaches further on the long side than t
    plateau = [0.97] * 20 + [0.80] * 2
    ci = claims.confidence_interval(plateau)
    t = stats.ttest_1samp(plateau, 0).confidence_interval(0.95)
    assert ci.low < t.low


def test_the_interval_is_deterministic():
    x = around(0.9, 0.03, n=12)
    assert claims.confidence_interval(x) == claims.confidence_interval(x)


def test_inconclusive_says_how_many_values_would_decide():
    d = decide(around(0.03, 0.08, n=6), "above")
    assert d.verdict == "inconclusive" and d.needed > 6
    # the estimate is about right: that many values with the same mean and spread decide it
    assert decide(around(0.03, 0.08, n=d.needed * 2), "above").verdict == "reproduced"


@pytest.mark.parametrize("sd, distance", [(1.0, 1.5), (1.0, 1.0), (1.0, 0.4), (0.3, 0.05)])
def test_units_needed_decides_with_its_stated_probability(sd, distance):
    """Simulated: units scattering with ``sd`` around a mean ``distance`` above the border; at units_needed(…) units
    the t interval excludes the border in about POWER of the repeats (an overstated N would decide almost always),
    at half as many units clearly less often."""
    from scipy import stats

    rng = np.random.default_rng(0)

    def decided(N: int, repeats: int = 4000) -> float:
        x = rng.normal(distance, sd, size=(repeats, N))
        half = stats.t.ppf(0.975, N - 1) * x.std(axis=1, ddof=1) / np.sqrt(N)
        return float(np.mean(x.mean(axis=1) - half > 0))

    N = claims.units_needed(sd, distance)
    assert claims.POWER - 0.04 <= decided(N) <= claims.POWER + 0.06
    if N >= 2 * claims.MIN_UNITS:
        assert decided(N // 2) < claims.POWER - 0.1


def test_units_needed_keeps_t_at_the_units_it_asks_for():
    """At n = 2 a half-width scaled as 1/√n with t at 1 degree of freedom overstates N about 40-fold; what the
    ledger prints now comes from the simulation-checked solution above (2 values 1 apart, border 1 below the mean)."""
    d = decide([0.5, 1.5], "above")
    naive = math.ceil(2 * (d.interval.half_width / abs(d.difference)) ** 2)
    assert d.verdict == "inconclusive" and d.needed == claims.units_needed(d.sd, 1.0, 2)
    assert d.needed < naive / 4


def test_one_value_decides_nothing():
    d = decide([0.97], "within", published=0.96, tolerance=0.05)
    assert d.verdict == "inconclusive" and d.interval is None and d.n == 1


def test_fewer_than_three_units_decide_nothing_however_tight():
    d = decide([1.0, 1.0], "above")
    assert d.verdict == "inconclusive" and "at least 3" in d.reason and d.needed == 3
    assert decide([1.0, 1.1, 0.9], "above").verdict == "reproduced"


def test_tied_values_are_not_certainty_below_the_resolution():
    # three runs that each pruned 1 block: one block is the step, so the mean is known to ±(t · (1/√12)/√3) only
    d = decide([1.0, 1.0, 1.0], "above", margin=0.5, resolution=1.0)
    assert d.interval.low < 0.5 < d.interval.high and d.verdict == "inconclusive"
    assert decide([1.0] * 3, "above", margin=0.5).verdict == "reproduced"  # a continuous measure: ties are exact
    assert decide([1.0] * 12, "above", margin=0.5, resolution=1.0).verdict == "reproduced"


def test_a_published_number_is_compared_at_its_precision():
    # the ContinuousNet README's "0.85M" for 855,770 parameters: truncated, while its next row rounds 857,850 to 0.86M
    assert decide([0.85577], "within", published=0.85, exact=True, decimals=2, rounding="truncate").verdict == (
        "reproduced"
    )
    assert decide([0.85577], "within", published=0.85, exact=True, decimals=2).verdict == "not reproduced"
    assert decide(
        [0.85785], "within", published=0.86, exact=True, decimals=2, rounding="round or truncate"
    ).verdict == ("reproduced")
    with pytest.raises(ValueError, match="rounding"):
        decide([0.85], "within", published=0.85, exact=True, decimals=2, rounding="ceil")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(values=[1.0, 2.0], comparison="near", published=1.0), "unknown comparison"),
        (dict(values=[1.0, 2.0], comparison="within"), "needs the published value"),
        (dict(values=[1.0, float("nan")], comparison="above"), "must be finite"),
    ],
)
def test_bad_claims_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        decide(**kwargs)


def test_every_verdict_is_in_the_vocabulary():
    cases = [
        decide(around(0.96, 0.002), "within", published=0.96, tolerance=0.01),
        decide(around(0.90, 0.002), "within", published=0.96, tolerance=0.01),
        decide(around(0.0, 0.05), "above"),
        decide(None, "above"),
    ]
    assert {c.verdict for c in cases} == set(claims.VERDICTS)


SPEC = """
claims:
  - id: a.value
    claim: The model reaches 0.96.
    kind: paper
    unit: a trained model (seed)
    source: paper, Table 1
    comparison: within
    published: {value: 0.96, known: stated}
    tolerance: 0.01
    measure: final test accuracy per seed
    profiles: [quick, paper]
  - id: a.order
    claim: A learns faster than B.
    kind: original README
    unit: a seed pair
    resolution: 1
    source: paper, Figure 1
    comparison: above
    measure: epochs(B) - epochs(A) per seed
    profiles: [paper]
"""


def test_ledger_decides_measured_claims_and_names_the_profile_of_the_others(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(SPEC)
    ledger = claims.Ledger(claims.load_claims(path), "quick")
    ledger.measure("a.value", around(0.961, 0.002))
    frame = ledger.frame().set_index("id")
    assert frame.loc["a.value", "verdict"] == "reproduced"
    assert frame.loc["a.order", "verdict"] == "not testable at this profile"
    assert frame.loc["a.order", "reason"] == "measured at: paper"
    with pytest.raises(KeyError, match="no claim 'a.missing'"):
        ledger.measure("a.missing", [1.0])
    # a claim that needs a setting beyond its profile (another architecture) says so, at its own profile too
    path.write_text(SPEC + "    needs: 'arch: big (params/big)'\n")
    for profile in ("quick", "paper"):
        frame = claims.Ledger(claims.load_claims(path), profile).frame().set_index("id")
        assert frame.loc["a.order", "reason"] == "needs arch: big (params/big), at: paper"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.replace("comparison: within", "comparison: near"), "comparison 'near'"),
        (lambda s: s.replace("    published: {value: 0.96, known: stated}\n", ""), "needs published.value"),
        (lambda s: s.replace("id: a.order", "id: a.value"), "appears twice"),
        (lambda s: s.replace("    measure: epochs(B) - epochs(A) per seed\n", ""), "missing keys \\['measure'\\]"),
        (lambda s: s.replace("tolerance: 0.01", "tolerance: 0.01\n    tolerence: 1"), "unknown keys \\['tolerence'\\]"),
        (lambda s: s.replace("kind: paper", "kind: folklore"), "kind 'folklore' not in"),
        (lambda s: s.replace("    unit: a seed pair\n", ""), "needs its unit"),
        (lambda s: s.replace("known: stated}", "known: stated, rounding: up}"), "published.rounding not in"),
        (lambda s: s.replace("known: stated}", "known: stated, decimal: 2}"), "published.decimal"),
    ],
)
def test_bad_claim_files_are_named(tmp_path, edit, message):
    path = tmp_path / "claims.yaml"
    path.write_text(edit(SPEC))
    with pytest.raises(ValueError, match=message):
        claims.load_claims(path)


def test_profile_ledger_gathers_the_notebooks_ledgers(tmp_path):
    import json

    (tmp_path / "01_x").mkdir()
    rows = claims.Ledger(claims.load_claims(_spec(tmp_path)), "quick")
    rows.measure("a.value", around(0.961, 0.002))
    payload = {"profile": "quick", "claims": rows.rows()}
    (tmp_path / "01_x" / "claims.json").write_text(json.dumps(payload))
    claims.write_profile_ledger(tmp_path, ["01_x", "02_y"])
    text = (tmp_path / "CLAIMS.md").read_text()
    assert "1 reproduced, 1 not testable at this profile. 1 sampled verdict is decided" in text
    assert (
        "| **a.value**: The model reaches 0.96. | paper | a trained model (seed) | within 0.96 ± 0.01 | 10 | 0.961 | "
        "95% CI [0.96, 0.962] | reproduced |" in text
    )
    assert "## 02_y\n\nNo ledger at this profile yet" in text


def _spec(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(SPEC)
    return path


def test_session_writes_the_ledger_and_records_it(tmp_path):
    import json

    from repronets.build import session
    from repronets.runs import provenance, results

    s = session.Session("01_x", "quick", None, tmp_path, "cpu", results.RunStore(tmp_path / "runs"))
    ledger = claims.Ledger(claims.load_claims(_spec(tmp_path)), "quick")
    ledger.measure("a.value", around(0.90, 0.002))
    s.claims(ledger, data="digits")
    saved = json.loads((tmp_path / "claims.json").read_text())
    assert [r["verdict"] for r in saved["claims"]] == ["not reproduced", "not testable at this profile"]
    assert saved["claims"][1]["mean"] is None  # JSON null, not NaN
    record = json.loads((tmp_path / provenance.OUTPUTS_RECORD).read_text())
    assert {"claims.md", "claims.csv", "claims.json"} <= set(record) and record["claims.json"]["kind"] == "claims"
    assert "not reproduced" in (tmp_path / "claims.md").read_text()


def test_no_profile_ledger_while_no_notebook_has_one(tmp_path):
    assert claims.write_profile_ledger(tmp_path, ["01_x"]) is None
    assert not (tmp_path / "CLAIMS.md").exists()


def test_every_paper_notebook_has_a_valid_claim_file():
    from pathlib import Path

    from repronets.runs import params

    root = Path(__file__).resolve().parents[1] / "claims"
    papers = [n for n in params.NOTEBOOK_SCHEMAS if not n.startswith("00")]
    ids = []
    for notebook in papers:
        loaded = claims.load_claims(root / f"{notebook}.yaml")
        assert loaded, notebook
        for c in loaded:
            assert set(c.profiles) <= set(params.PROFILES), c.id
            ids.append(c.id)
    assert len(ids) == len(set(ids)), "claim ids must be unique across notebooks"


def test_a_claim_is_decided_only_at_its_profiles(tmp_path):
    ledger = claims.Ledger(claims.load_claims(_spec(tmp_path)), "smoke")
    ledger.measure("a.value", around(0.961, 0.002))  # a.value lists quick and paper only
    assert ledger.decisions()["a.value"].verdict == "not testable at this profile"
    assert claims.ledger_for("01_tau_speedup", "quick").claims  # the project's own claim file


def test_display_frame_shows_blanks_for_what_was_not_measured(tmp_path):
    ledger = claims.Ledger(claims.load_claims(_spec(tmp_path)), "quick")
    ledger.measure("a.value", around(0.96, 0.05, n=4))  # inconclusive: says how many values would decide
    shown = claims.display_frame(ledger.frame()).set_index("id")
    assert shown.loc["a.value", "verdict"].startswith("inconclusive (≈")
    assert shown.loc["a.order", "n"] == "" and shown.loc["a.order", "interval"] == ""
    assert shown.loc["a.order", "notes"] == "measured at: paper" and shown.loc["a.order", "unit"] == "a seed pair"


def test_a_mean_at_the_border_does_not_print_an_absurd_count():
    row = {"n": 2, "mean": 0.01, "sd": 0.01, "ci_low": -0.06, "ci_high": 0.08, "verdict": "inconclusive"}
    assert claims.formatted_row(row | {"needed": 24265891952220})["verdict"] == (
        "inconclusive (the mean is at the border: more than 10,000 units would be needed)"
    )
    assert claims.formatted_row(row | {"needed": 9})["verdict"] == "inconclusive (≈9 units would decide)"


def test_exact_rows_show_a_range_not_a_confidence_interval():
    row = {"n": 4, "mean": 0.0, "sd": 0.0, "needed": None, "verdict": "reproduced", "exact": True}
    assert claims.formatted_row(row | {"ci_low": -1.0, "ci_high": 2.0})["interval"] == "range [-1, 2]"
    assert claims.formatted_row(row | {"ci_low": 0.0, "ci_high": 0.0})["interval"] == ""
    assert claims.formatted_row(row | {"exact": False, "ci_low": 0.0, "ci_high": 1.0})["interval"] == "95% CI [0, 1]"


def test_an_exact_quantity_is_decided_by_one_value():
    assert decide([0.0], "within", published=0.0, exact=True).verdict == "reproduced"
    assert decide([3.0, 0.0], "within", published=0.0, exact=True).verdict == "not reproduced"
    assert decide([5.5e-5], "within", published=0.0, tolerance=5e-4, exact=True).verdict == "reproduced"
    assert decide([5.5e-5], "within", published=0.0, tolerance=5e-4).verdict == "inconclusive"  # sampled: one unit


def test_decisions_are_made_once_per_measurement(tmp_path):
    ledger = claims.Ledger(claims.load_claims(_spec(tmp_path)), "quick")
    ledger.measure("a.value", around(0.961, 0.002))
    first = ledger.decisions()
    assert ledger.decisions() is first  # not bootstrapped again
    ledger.measure("a.value", around(0.90, 0.002))
    assert ledger.decisions()["a.value"].verdict == "not reproduced"
