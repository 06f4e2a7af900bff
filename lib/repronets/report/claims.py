"""The claims ledger: each claim of a paper, the evidence our runs give for it, and a verdict from a fixed vocabulary.

A claim file (``claims/<notebook>.yaml``) states each claim once: what is claimed, where and by whom (its ``kind``:
the paper, the original README, the original code, stored results, or this companion's own inference), the
published value and how it is known, the comparison that decides it, the *unit* of its evidence, and which profiles
can test it. A notebook measures the quantity, one value per unit, and :func:`decide` turns the values into a
decision.

**The unit.** Where a claim is about what training produces, the unit of replication is the trained model (a seed):
folds, test images and λ values are measurements within it and are averaged inside it, so the interval holds the
training noise. Every sampled claim names its unit (``unit``) and needs at least :data:`MIN_UNITS` of them before it
can be decided; an exact claim (a count, a counted cost: ``exact: true``) is decided by its one computed value.

**The interval.** ``n``, mean, sd and a 95 % confidence interval of the mean: the wider of Student's t interval and
a BCa bootstrap over the values (scipy.stats.bootstrap, seeded). t is exact for normal data, the bootstrap follows
skewed and many-peaked data; with few units the bootstrap is too narrow, with many the two agree. A measurement that
moves in steps (epochs, blocks, one image of a fold: the claim's ``resolution``) cannot be known better than its
step: the t interval's sd is at least the step's rounding error, resolution/√12, so tied values are not certainty.

**The verdict**, by the claim's comparison (:data:`COMPARISONS`):

  ``within``  the published value ± tolerance: *reproduced* if the interval lies inside the band, *not reproduced*
              if it lies outside it, else *inconclusive*. A published number given at a precision (``published:
              decimals``, ``rounding``) is compared at that precision instead: the measured value, rounded (or
              truncated) as the source rounds, must equal it.
  ``above``   the measured quantity (a difference A − B, paired by unit where the design pairs them) exceeds the
              margin: *reproduced* if the interval lies above it, *not reproduced* if it lies at or below it, else
              *inconclusive*. ``below`` is the mirror image.

A claim without measurements at this profile is *not testable at this profile* (the claim file says which profile
tests it). An inconclusive verdict says how many units would decide it (:func:`units_needed`: the n at which a
t-interval at the observed spread excludes the border with 80 % probability if the observed mean is the truth,
solved with t at n − 1 degrees of freedom and checked against a simulation in the tests).

**The ledger as a whole.** Each decided verdict is wrong with probability at most 5 % (2.5 % on the side it
decides); no correction across claims is made, because each row answers its own question and a reader citing one
verdict needs that row's error rate. A reader counting verdicts needs the ledger's: its header says how many sampled
verdicts are decided and how many of them chance alone would be expected to get wrong (:func:`ledger_error_note`).

The rules are plain functions of numbers, tested on synthetic values in ``tests/test_claims.py``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from ..runs.provenance import TIMING_SUFFIX

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not testable at this profile")
COMPARISONS = ("within", "above", "below")
KINDS = ("paper", "original README", "original code", "stored results", "inference")
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
MIN_UNITS = 3  # fewer trained models than this decide nothing, however tight they are
POWER = 0.80  # units_needed: the probability that that many units decide, if the observed mean and sd are the truth
ROUNDINGS = ("round", "truncate", "round or truncate")
# The version of these rules that a ledger row was decided by (its "rules" key; rows without one predate it): 2 is
# units, the minimum of MIN_UNITS, the resolution floor, published precision and units_needed. A page showing rows
# decided by other rules says so (rules_warning).
RULES_VERSION = 2


@dataclasses.dataclass(frozen=True)
class Interval:
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the ledger prints for one claim at one profile."""

    verdict: str
    n: int = 0
    mean: float | None = None
    sd: float | None = None
    interval: Interval | None = None
    published: float | None = None
    difference: float | None = None  # mean − published (within) or mean − margin (above / below)
    needed: int | None = None  # values that would likely decide an inconclusive claim
    reason: str = ""

    def as_row(self) -> dict:
        return {
            "verdict": self.verdict,
            "n": self.n,
            "mean": self.mean,
            "sd": self.sd,
            "ci_low": None if self.interval is None else self.interval.low,
            "ci_high": None if self.interval is None else self.interval.high,
            "published": self.published,
            "difference": self.difference,
            "needed": self.needed,
            "reason": self.reason,
        }


def confidence_interval(values: Sequence[float], seed: int = 0, resolution: float = 0.0) -> Interval:
    """The wider of Student's t and the BCa bootstrap 95 % intervals of the mean; the t interval's sd is at least
    ``resolution``/√12, the rounding error of a measurement that moves in steps of ``resolution`` (module docstring)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        raise ValueError(f"a confidence interval needs at least 2 values, got {len(x)}")
    mean = float(x.mean())
    sd = max(float(x.std(ddof=1)), resolution / math.sqrt(12))
    if sd == 0.0:
        return Interval(mean, mean)
    t = stats.t.ppf(0.5 + CONFIDENCE / 2, len(x) - 1) * sd / math.sqrt(len(x))
    low, high = mean - t, mean + t
    if np.ptp(x) == 0.0:  # tied values: the bootstrap has nothing to resample
        return Interval(low, high)
    boot = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=CONFIDENCE,
        method="BCa",
        n_resamples=BOOTSTRAP_RESAMPLES,
        random_state=np.random.default_rng(seed),
    ).confidence_interval
    if np.isfinite(boot.low) and np.isfinite(boot.high):  # BCa is undefined for some degenerate samples
        low, high = min(low, float(boot.low)), max(high, float(boot.high))
    return Interval(low, high)


def units_needed(sd: float, distance: float, n: int = 0, power: float = POWER, limit: int = 10**6) -> int | None:
    """The smallest number of units N whose t interval excludes a border ``distance`` away from the mean with
    probability ``power``, if the units scatter with ``sd`` around that mean: the mean's estimate falls short of the
    mean by more than t(1 − power; N − 1)·sd/√N with probability 1 − power, and the half-width is
    t(0.975; N − 1)·sd/√N, so N solves (t(0.975; N−1) + t(power; N−1))·sd/√N ≤ distance, both t at N − 1 degrees of
    freedom (scaling the half-width at n units as 1/√n keeps t at n − 1 and overstates N many times at small n).
    At least n + 1 and :data:`MIN_UNITS`; None if ``distance`` is zero or more than ``limit`` units would be needed."""
    from scipy import stats

    if distance <= 0 or sd < 0:
        return None
    if sd == 0:
        return max(n + 1, MIN_UNITS)

    def enough(N: int) -> bool:
        t = stats.t.ppf(0.5 + CONFIDENCE / 2, N - 1) + stats.t.ppf(power, N - 1)
        return t * sd / math.sqrt(N) <= distance

    if not enough(limit):
        return None
    low, high = 1, limit  # enough() is monotone in N: bisect
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return max(high, n + 1, MIN_UNITS)


def decide(
    values: Sequence[float] | None,
    comparison: str,
    *,
    published: float | None = None,
    tolerance: float = 0.0,
    margin: float = 0.0,
    seed: int = 0,
    untestable_reason: str = "",
    exact: bool = False,
    resolution: float = 0.0,
    decimals: int | None = None,
    rounding: str = "round",
) -> Decision:
    """The decision for one claim from its measured values (one per unit). ``exact``: the measured quantity is
    computed, not sampled (a parameter count, a counted cost), so its interval is the range of the values and one
    value decides. ``resolution``: the measurement's step (see :func:`confidence_interval`). ``decimals`` and
    ``rounding``: a ``within`` claim whose published value is given at that precision, compared at it."""
    if comparison not in COMPARISONS:
        raise ValueError(f"unknown comparison {comparison!r}: choose one of {COMPARISONS}")
    if comparison == "within" and published is None:
        raise ValueError("a 'within' claim needs the published value")
    if values is None or len(values) == 0:
        return Decision("not testable at this profile", published=published, reason=untestable_reason)
    x = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"measured values must be finite, got {x.tolist()}")
    n, mean = len(x), float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else None
    if exact:  # every value must satisfy the comparison; one that does not refutes it
        ci = Interval(float(x.min()), float(x.max()))
        if comparison == "within" and decimals is not None:
            ok = all(published in _at_precision(v, decimals, rounding) for v in x)
            difference = mean - published
        elif comparison == "within":
            ok = bool(np.all(np.abs(x - published) <= tolerance))
            difference = mean - published
        else:
            ok = bool(np.all(x > margin)) if comparison == "above" else bool(np.all(x < margin))
            difference = mean - margin
        verdict = "reproduced" if ok else "not reproduced"
        return Decision(verdict, n, mean, sd, ci, published, difference, reason="exact quantity")
    if n < 2:
        reason = f"1 unit: at least {MIN_UNITS} are needed to decide"
        return Decision("inconclusive", n, mean, sd, None, published, reason=reason, needed=MIN_UNITS)
    ci = confidence_interval(x, seed, resolution)
    spread = max(sd, resolution / math.sqrt(12))
    if comparison == "within":
        band_low, band_high = published - tolerance, published + tolerance
        difference = mean - published
        inside = band_low <= mean <= band_high
        # an undecided interval must shrink to the nearer border that its mean does not cross
        distance = (
            min(mean - band_low, band_high - mean) if inside else min(abs(mean - band_low), abs(mean - band_high))
        )
        if band_low <= ci.low and ci.high <= band_high:
            verdict = "reproduced"
        elif ci.high < band_low or ci.low > band_high:
            verdict = "not reproduced"
        else:
            verdict = "inconclusive"
    else:
        sign = 1.0 if comparison == "above" else -1.0
        difference = mean - margin
        distance = abs(difference)
        low, high = sorted(((ci.low - margin) * sign, (ci.high - margin) * sign))
        verdict = "reproduced" if low > 0 else "not reproduced" if high <= 0 else "inconclusive"
    if n < MIN_UNITS:  # however tight: two trained models say little about a third
        reason = f"{n} units: at least {MIN_UNITS} are needed to decide (the interval alone: {verdict})"
        needed = units_needed(spread, distance, n) if verdict == "inconclusive" else MIN_UNITS
        return Decision("inconclusive", n, mean, sd, ci, published, difference, needed, reason)
    needed = units_needed(spread, distance, n) if verdict == "inconclusive" else None
    return Decision(verdict, n, mean, sd, ci, published, difference, needed)


def _at_precision(value: float, decimals: int, rounding: str) -> set[float]:
    """``value`` as a source writing ``decimals`` decimals would print it: rounded, truncated, or either (a source
    whose neighbouring rows round one way and the other, as the ContinuousNet README's parameter counts)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding {rounding!r} not in {ROUNDINGS}")
    scale = 10**decimals
    rounded = round(value * scale) / scale
    truncated = math.trunc(value * scale) / scale
    return {"round": {rounded}, "truncate": {truncated}, "round or truncate": {rounded, truncated}}[rounding]


# ---------------------------------------------------------------- claim files and the ledger

SPEC_KEYS = {
    "id": str,
    "claim": str,
    "kind": str,
    "source": str,
    "comparison": str,
    "measure": str,
    "profiles": list,
}
OPTIONAL_KEYS = {
    "published": dict,
    "tolerance": (int, float),
    "margin": (int, float),
    "figure": str,
    "note": str,
    "exact": bool,
    "timing": bool,
    "unit": str,
    "resolution": (int, float),
    "needs": str,
}
PUBLISHED_KEYS = {"value": (int, float), "known": str, "reading_error": (int, float), "decimals": int, "rounding": str}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim as its claim file states it (see ``claims/README.md`` for the format)."""

    id: str
    claim: str
    kind: str  # who makes the claim: one of KINDS ("inference": this companion's own reading, not a source's claim)
    source: str
    comparison: str
    measure: str
    profiles: tuple[str, ...]
    published: dict | None = None  # {value, known: "stated" | "read off ...", reading_error}
    tolerance: float = 0.0
    margin: float = 0.0
    figure: str = ""  # the output that shows it
    note: str = ""
    exact: bool = False  # a computed quantity (count, counted cost): one value decides
    timing: bool = False  # measured from this machine's speed: its ledger rows go to claims_timing.* (see below)
    unit: str = ""  # what one value is (a trained model, a seed pair, …); required unless exact
    resolution: float = 0.0  # the measurement's step (1 epoch, 1 block); 0: continuous
    needs: str = ""  # what a run needs beyond its profile to measure it (e.g. another architecture's parameter set)

    @property
    def decimals(self) -> int | None:
        return None if self.published is None else self.published.get("decimals")

    @property
    def rounding(self) -> str:
        return "round" if self.published is None else self.published.get("rounding", "round")

    @property
    def published_value(self) -> float | None:
        return None if self.published is None else self.published.get("value")


def load_claims(path) -> list[Claim]:
    """Read and check a claim file; every problem is named with the claim's id and the key."""
    from pathlib import Path

    import yaml

    from ..runs.params import UniqueKeyLoader

    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 (a safe loader)
    except (yaml.YAMLError, UnicodeDecodeError) as e:  # a key given twice is one of these: PyYAML keeps the last
        raise ValueError(f"{path}: not a valid claim file: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ValueError(f"{path}: expected a mapping with a list under 'claims'")
    out, seen = [], set()
    for i, entry in enumerate(data["claims"]):
        where = f"{path}: claim {entry.get('id', i) if isinstance(entry, dict) else i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping")
        unknown = set(entry) - set(SPEC_KEYS) - set(OPTIONAL_KEYS)
        missing = set(SPEC_KEYS) - set(entry)
        if unknown or missing:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        for key, kind in {**SPEC_KEYS, **OPTIONAL_KEYS}.items():
            if key in entry and not isinstance(entry[key], kind):
                raise ValueError(f"{where}: {key} must be {kind}, got {entry[key]!r}")
        if entry["comparison"] not in COMPARISONS:
            raise ValueError(f"{where}: comparison {entry['comparison']!r} not in {COMPARISONS}")
        if entry["comparison"] == "within" and "value" not in (entry.get("published") or {}):
            raise ValueError(f"{where}: a 'within' claim needs published.value")
        if entry["kind"] not in KINDS:
            raise ValueError(f"{where}: kind {entry['kind']!r} not in {KINDS}")
        if not entry.get("exact") and not entry.get("unit"):
            raise ValueError(f"{where}: a sampled claim needs its unit (what one measured value is)")
        for key, value in (entry.get("published") or {}).items():
            if key not in PUBLISHED_KEYS or not isinstance(value, PUBLISHED_KEYS[key]):
                raise ValueError(f"{where}: published.{key} = {value!r}: expected one of {sorted(PUBLISHED_KEYS)}")
        if (entry.get("published") or {}).get("rounding", "round") not in ROUNDINGS:
            raise ValueError(f"{where}: published.rounding not in {ROUNDINGS}")
        if entry["id"] in seen:
            raise ValueError(f"{where}: id {entry['id']!r} appears twice")
        seen.add(entry["id"])
        out.append(Claim(**{**entry, "profiles": tuple(entry["profiles"])}))
    return out


def claim_file(notebook: str, root=None):
    """``claims/<notebook>.yaml`` in the project (``root``, or the project this package is installed from)."""
    from pathlib import Path

    from ..core.fileio import project_root

    return Path(root or project_root()) / "claims" / f"{notebook}.yaml"


def ledger_for(notebook: str, profile: str) -> Ledger:
    """The ledger of a notebook's claim file at ``profile``."""
    return Ledger(load_claims(claim_file(notebook)), profile)


class Ledger:
    """A notebook's claims and what its runs measured for them at one profile. Measurements of a claim whose
    ``profiles`` do not include this profile are kept out of the verdict (the claim is not testable here: its
    measure needs the papers' data or scale)."""

    def __init__(self, claims: list[Claim], profile: str):
        self.claims = {c.id: c for c in claims}
        self.profile = profile
        self.values: dict[str, list[float]] = {}
        self._decisions: dict[str, Decision] | None = None  # the bootstrap is not free: decided once per measurement

    def measure(self, claim_id: str, values) -> None:
        """The measured quantity of a claim: one value per seed, fold or seed pair (see the claim's ``measure``)."""
        if claim_id not in self.claims:
            raise KeyError(f"no claim {claim_id!r}; the claim file has {sorted(self.claims)}")
        self.values[claim_id] = [float(v) for v in values]
        self._decisions = None

    def decisions(self) -> dict[str, Decision]:
        if self._decisions is None:
            self._decisions = self._decide()
        return self._decisions

    def _decide(self) -> dict[str, Decision]:
        out = {}
        for cid, c in self.claims.items():
            values = self.values.get(cid) if self.profile in c.profiles else None
            if values is None:
                out[cid] = decide(
                    None, c.comparison, published=c.published_value, untestable_reason=self._why_untested(c)
                )
            else:
                out[cid] = decide(
                    values,
                    c.comparison,
                    published=c.published_value,
                    tolerance=c.tolerance,
                    margin=c.margin,
                    exact=c.exact,
                    resolution=c.resolution,
                    decimals=c.decimals,
                    rounding=c.rounding,
                )
        return out

    def _why_untested(self, c: Claim) -> str:
        if c.needs:
            return f"needs {c.needs}" + (f", at: {', '.join(c.profiles)}" if c.profiles else "")
        if self.profile in c.profiles:
            return (
                f"listed for the {self.profile} profile, but its notebook measured nothing for it: "
                f"the claim file's profiles or the notebook is wrong"
            )
        elsewhere = ", ".join(c.profiles)
        return f"measured at: {elsewhere}" if elsewhere else "no profile measures it (its profiles list is empty)"

    def unmeasured(self) -> list[str]:
        """The claims listed for this profile that got no measurement: a claim file or a notebook at fault."""
        return [cid for cid, c in self.claims.items() if self.profile in c.profiles and cid not in self.values]

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows())

    def rows(self) -> list[dict]:
        """One row per claim: the claim, where it is stated, the published value, the measurement and the verdict."""
        rows = []
        for cid, d in self.decisions().items():
            c = self.claims[cid]
            rows.append(
                {
                    "id": cid,
                    "claim": c.claim,
                    "kind": c.kind,
                    "source": c.source,
                    "comparison": _comparison_text(c),
                    "unit": "exact computation" if c.exact else c.unit,
                    "exact": c.exact,
                    **d.as_row(),
                    "figure": c.figure,
                    "note": c.note,
                    "rules": RULES_VERSION,
                }
            )
        return rows


def _comparison_text(c: Claim) -> str:
    """The test as the ledger prints it: "= 0.85 at 2 decimals (rounded or truncated)", "within 91.31 ± 0.5", "> 0"."""
    if c.comparison == "within" and c.decimals is not None:
        how = {"round": "rounded", "truncate": "truncated", "round or truncate": "rounded or truncated"}[c.rounding]
        return f"= {c.published_value:.{c.decimals}f} at {c.decimals} decimals ({how})"
    if c.comparison == "within":
        return f"within {c.published_value:g} ± {c.tolerance:g}"
    return f"{'>' if c.comparison == 'above' else '<'} {c.margin:g}"


# ---------------------------------------------------------------- outputs

LEDGER_NAME = "claims"  # claims.md, claims.csv, claims.json beside a notebook's figures
PROFILE_LEDGER = "CLAIMS.md"
# Claims decided from timings (``timing: true``) measure the machine, not the method: their rows are written apart,
# to claims_timing.* and CLAIMS_timing.md (every output whose name ends in this is a machine measurement), so that
# every other output is the same on any x86-64 machine (README, "Determinism").
TIMING_LEDGER = f"{LEDGER_NAME}{TIMING_SUFFIX}"
PROFILE_TIMING_LEDGER = f"CLAIMS{TIMING_SUFFIX}.md"


def ledger_rows(folder) -> list[dict] | None:
    """A notebook's ledger rows as its build wrote them (``claims.json``, then the rows of ``claims_timing.json``,
    each marked ``"timing": True``); None when the notebook has no ledger there."""
    import json
    from pathlib import Path

    folder = Path(folder)
    rows = None
    for name, is_timing in ((LEDGER_NAME, False), (TIMING_LEDGER, True)):
        path = folder / f"{name}.json"
        if path.exists():
            found = json.loads(path.read_text(encoding="utf-8"))["claims"]
            rows = (rows or []) + [{**r, "timing": True} if is_timing else r for r in found]
    return rows


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


PRACTICAL_VALUES = 10_000  # an inconclusive row needing more values than this says so instead of a count


def formatted_row(r: dict) -> dict:
    """The measured columns of one ledger row as a reader reads them: numbers rounded, the interval in one cell
    saying what it is (a 95 % CI over units, or the range of exact values), blanks where nothing was measured (a
    row from JSON holds None, one from a DataFrame NaN), and the notes (why the verdict is what it is)."""

    def number(v, digits=4):
        return "" if _missing(v) else f"{v:.{digits}g}"

    if _missing(r["needed"]):
        needed = ""
    elif r["needed"] > PRACTICAL_VALUES:  # the mean sits (almost) on the border: the count is meaningless
        needed = f" (the mean is at the border: more than {PRACTICAL_VALUES:,} units would be needed)"
    else:
        needed = f" (≈{int(r['needed'])} units would decide)"
    exact = bool(r.get("exact")) and not _missing(r.get("exact"))
    if _missing(r["ci_low"]) or (exact and r["ci_low"] == r["ci_high"]):
        interval = ""
    else:
        interval = f"{'range' if exact else '95% CI'} [{number(r['ci_low'])}, {number(r['ci_high'])}]"
    return {
        "n": "" if _missing(r["n"]) or not r["n"] else int(r["n"]),
        "mean": number(r["mean"]),
        "sd": number(r["sd"], 2),
        "interval": interval,
        "verdict": r["verdict"] + needed,
        "notes": "; ".join(t for t in (r.get("reason"), r.get("note")) if isinstance(t, str) and t),
    }


def display_frame(ledger_rows):
    """The ledger as a reader reads it (:func:`formatted_row`), from :meth:`Ledger.frame` or :meth:`Ledger.rows`."""
    import pandas as pd

    records = ledger_rows.to_dict("records") if hasattr(ledger_rows, "to_dict") else ledger_rows
    rows = []
    for r in records:
        shown = formatted_row(r)
        rows.append(
            {
                "id": r["id"],
                "claim": r["claim"],
                "kind": r.get("kind", ""),
                "source": r["source"],
                "unit": r.get("unit", ""),
                "test": r["comparison"],
                **{k: shown[k] for k in ("n", "mean", "sd", "interval", "verdict", "notes")},
                "shown in": r["figure"],
            }
        )
    return pd.DataFrame(rows)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows, claim_cell=None, link=None) -> str:
    """Ledger rows as one Markdown table, the same wherever a ledger is shown (CLAIMS.md, the README's blocks, the
    site): the claim and who makes it, the unit, the test, n, mean, the interval, the verdict, the notes, and with
    ``link`` (row -> Markdown or "") the output that shows it. ``claim_cell`` (row -> text) words the first cell."""
    claim_cell = claim_cell or (lambda r: f"**{r['id']}**: {r['claim']}")
    head = "| claim | by | unit | test | n | mean | interval | verdict | notes |" + (" shown in |" if link else "")
    rule = "|---|---|---|---|---:|---:|---|---|---|" + ("---|" if link else "")
    lines = [head, rule]
    for r in rows:
        f = formatted_row(r)
        cells = [claim_cell(r), r.get("kind", ""), r.get("unit", ""), r["comparison"], f["n"], f["mean"]]
        cells += [f["interval"], f["verdict"], f["notes"]] + ([link(r)] if link else [])
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def verdict_tally(rows) -> str:
    """'3 reproduced, 1 inconclusive' for ledger rows (each with a "verdict"), in the vocabulary's order."""
    counts = {v: 0 for v in VERDICTS}
    for r in rows:
        counts[r["verdict"]] += 1
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n)


def rules_warning(rows) -> str:
    """A line to print above ledger rows decided by other rules than these (:data:`RULES_VERSION`), else ""."""
    if all(r.get("rules") == RULES_VERSION for r in rows):
        return ""
    return (
        "*These verdicts were decided by an earlier version of the ledger's rules (before the unit of evidence, the "
        f"minimum of {MIN_UNITS} units and the resolution floor): rebuild this parameter set to apply the current "
        "ones.*\n\n"
    )


def ledger_error_note(rows) -> str:
    """What the ledger's decided sampled verdicts are worth together (module docstring, "The ledger as a whole")."""
    decided = [r for r in rows if r["verdict"] in VERDICTS[:2] and not r.get("exact")]
    if not decided:
        return "No sampled claim is decided."
    k = len(decided)
    return (
        f"{k} sampled verdict{'s are' if k > 1 else ' is'} decided, each by a 95 % interval and without a correction "
        f"across claims: if every one of them were a border case, chance alone would make about {0.05 * k:.1f} of "
        f"them wrong (at most 5 % each); the exact verdicts are computations."
    )


def write_profile_ledger(figures_dir, notebooks: list[str], label: str | None = None):
    """``figures/<profile>/CLAIMS.md``: every notebook's ledger in one table per notebook, each row linking the
    output that shows it; the claims decided from timings likewise in ``CLAIMS_timing.md``. Notebooks without a
    ledger yet are listed as such; nothing is written while none has one. Returns CLAIMS.md's path, or None."""
    from pathlib import Path

    figures_dir = Path(figures_dir)
    label = label or figures_dir.name + " profile"
    timing_intro = (
        "The claims that are decided from measured wall times: they measure the machine that ran the build as much "
        f"as the method, so they are kept apart from [{PROFILE_LEDGER}]({PROFILE_LEDGER}), whose every row is the "
        "same on any x86-64 machine. Regenerated by every build.\n"
    )
    timing = _write_ledger_page(
        figures_dir, notebooks, TIMING_LEDGER, PROFILE_TIMING_LEDGER, f"{label}, timings", timing_intro, False
    )
    intro = (
        "Every claim of the four papers that this companion tests, with the verdict its runs support at this "
        "profile (rules: `lib/repronets/report/claims.py`; claims: `claims/<notebook>.yaml`). Regenerated by every "
        "build."
        + (
            f" The claims decided from measured times: [{PROFILE_TIMING_LEDGER}]({PROFILE_TIMING_LEDGER}).\n"
            if timing
            else "\n"
        )
    )
    return _write_ledger_page(figures_dir, notebooks, LEDGER_NAME, PROFILE_LEDGER, label, intro, True)


def _write_ledger_page(figures_dir, notebooks, ledger_name, page, label, intro, list_unbuilt: bool):
    """One ledger page from each notebook's ``<ledger_name>.json``; ``list_unbuilt``: name the notebooks without one
    (the timing page lists only the notebooks that time a claim)."""
    import json

    from ..core import fileio

    if not any((figures_dir / n / f"{ledger_name}.json").exists() for n in notebooks):
        (figures_dir / page).unlink(missing_ok=True)
        return None
    parts = [f"# Claims ledger ({label})\n\n", intro]
    every_row = []
    for notebook in notebooks:
        path = figures_dir / notebook / f"{ledger_name}.json"
        if not path.exists() and not list_unbuilt:
            continue
        parts.append(f"\n## {notebook}\n")
        if not path.exists():
            parts.append("\nNo ledger at this profile yet (the notebook has not been built, or states no claims).\n")
            continue
        rows = json.loads(path.read_text(encoding="utf-8"))["claims"]
        every_row += rows
        shown_in = lambda r, nb=notebook: f"[{r['figure']}]({nb}/{r['figure']})" if r.get("figure") else ""  # noqa: E731
        parts.append("\n" + rules_warning(rows) + markdown_table(rows, link=shown_in))
    summary = verdict_tally(every_row)
    parts.insert(2, f"\n{summary or 'no claims yet'}. {ledger_error_note(every_row)}\n")
    return fileio.write_text(figures_dir / page, "".join(parts))
