"""The claims ledger: each claim of a paper, the evidence our runs give for it, and a verdict from a fixed vocabulary.

A claim file (``claims/<notebook>.yaml``) states each claim once: what is claimed, where, the published value and
how it is known, the comparison that decides it, and which profiles can test it. A notebook measures the quantity
(one value per seed, fold or paired seed difference) and :func:`decide` turns the measurements into a decision:

- ``n``, mean, sd and a 95 % confidence interval of the mean. The interval is the wider of Student's t interval and a
  BCa bootstrap over the values (scipy.stats.bootstrap, seeded): t is exact for normal data, the bootstrap follows
  skewed and many-peaked data; with few seeds the bootstrap is too narrow, with many the two agree. Taking the wider
  keeps the verdict on the safe side of both.
- the verdict, by the claim's comparison (:data:`COMPARISONS`):

  ``within``  the published value ± tolerance: *reproduced* if the interval lies inside the band, *not reproduced*
              if it lies outside it, else *inconclusive*.
  ``above``   the measured quantity (a difference A − B, paired by seed where the design pairs them) exceeds the
              margin: *reproduced* if the interval lies above it, *not reproduced* if it lies at or below it, else
              *inconclusive*. ``below`` is the mirror image.

  A claim without measurements at this profile is *not testable at this profile* (the claim file says which profile
  tests it). An inconclusive verdict says how many values would decide, from the interval's 1/√n shrinkage at the
  observed spread (an estimate: the spread itself is estimated).

The rules are plain functions of numbers, tested on synthetic values in ``tests/test_claims.py``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from .provenance import TIMING_SUFFIX

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not testable at this profile")
COMPARISONS = ("within", "above", "below")
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999


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


def confidence_interval(values: Sequence[float], seed: int = 0) -> Interval:
    """The wider of Student's t and the BCa bootstrap 95 % intervals of the mean (see the module docstring)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        raise ValueError(f"a confidence interval needs at least 2 values, got {len(x)}")
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    if sd == 0.0:
        return Interval(mean, mean)
    t = stats.t.ppf(0.5 + CONFIDENCE / 2, len(x) - 1) * sd / math.sqrt(len(x))
    low, high = mean - t, mean + t
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


def _needed(n: int, half_width: float, allowed: float) -> int | None:
    """Values for the interval's half-width to shrink (as 1/√n) to ``allowed``; None if no number would."""
    if allowed <= 0 or half_width <= 0:
        return None
    return max(n + 1, math.ceil(n * (half_width / allowed) ** 2))


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
) -> Decision:
    """The decision for one claim from its measured values (one per seed, fold or seed pair). ``exact``: the
    measured quantity is computed, not sampled (a parameter count, a counted cost), so its interval is the range of
    the values and one value decides."""
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
        if comparison == "within":
            ok = bool(np.all(np.abs(x - published) <= tolerance))
            difference = mean - published
        else:
            ok = bool(np.all(x > margin)) if comparison == "above" else bool(np.all(x < margin))
            difference = mean - margin
        verdict = "reproduced" if ok else "not reproduced"
        return Decision(verdict, n, mean, sd, ci, published, difference, reason="exact quantity")
    if n < 2:
        return Decision("inconclusive", n, mean, sd, None, published, reason="one value: no interval", needed=None)
    ci = confidence_interval(x, seed)
    if comparison == "within":
        band_low, band_high = published - tolerance, published + tolerance
        difference = mean - published
        if band_low <= ci.low and ci.high <= band_high:
            return Decision("reproduced", n, mean, sd, ci, published, difference)
        if ci.high < band_low or ci.low > band_high:
            return Decision("not reproduced", n, mean, sd, ci, published, difference)
        # the interval must shrink to the nearer side that its mean does not cross
        inside = band_low <= mean <= band_high
        allowed = min(mean - band_low, band_high - mean) if inside else min(abs(mean - band_low), abs(mean - band_high))
        return Decision("inconclusive", n, mean, sd, ci, published, difference, _needed(n, ci.half_width, allowed))
    sign = 1.0 if comparison == "above" else -1.0
    difference = mean - margin
    low, high = (ci.low - margin) * sign, (ci.high - margin) * sign
    low, high = min(low, high), max(low, high)
    if low > 0:
        return Decision("reproduced", n, mean, sd, ci, published, difference)
    if high <= 0:
        return Decision("not reproduced", n, mean, sd, ci, published, difference)
    return Decision("inconclusive", n, mean, sd, ci, published, difference, _needed(n, ci.half_width, abs(difference)))


# ---------------------------------------------------------------- claim files and the ledger

SPEC_KEYS = {
    "id": str,
    "claim": str,
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
}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim as its claim file states it (see ``claims/README.md`` for the format)."""

    id: str
    claim: str
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

    @property
    def published_value(self) -> float | None:
        return None if self.published is None else self.published.get("value")


def load_claims(path) -> list[Claim]:
    """Read and check a claim file; every problem is named with the claim's id and the key."""
    from pathlib import Path

    import yaml

    from .params import UniqueKeyLoader

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
        if entry["id"] in seen:
            raise ValueError(f"{where}: id {entry['id']!r} appears twice")
        seen.add(entry["id"])
        out.append(Claim(**{**entry, "profiles": tuple(entry["profiles"])}))
    return out


def claim_file(notebook: str, root=None):
    """``claims/<notebook>.yaml`` in the project (``root``, or the project this package is installed from)."""
    from pathlib import Path

    from .provenance import project_root

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
                testable = ", ".join(p for p in c.profiles if p != self.profile) or "none yet"
                reason = f"measured at: {testable}"
                out[cid] = decide(None, c.comparison, published=c.published_value, untestable_reason=reason)
            else:
                out[cid] = decide(
                    values,
                    c.comparison,
                    published=c.published_value,
                    tolerance=c.tolerance,
                    margin=c.margin,
                    exact=c.exact,
                )
        return out

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
                    "source": c.source,
                    "comparison": _comparison_text(c),
                    **d.as_row(),
                    "figure": c.figure,
                    "note": c.note,
                }
            )
        return rows


def _comparison_text(c: Claim) -> str:
    if c.comparison == "within":
        return f"= {c.published_value:g} ± {c.tolerance:g}"
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
    """The measured columns of one ledger row as a reader reads them: numbers rounded, the interval in one cell,
    blanks where nothing was measured (a row from JSON holds None, one from a DataFrame NaN)."""

    def number(v, digits=4):
        return "" if _missing(v) else f"{v:.{digits}g}"

    if _missing(r["needed"]):
        needed = ""
    elif r["needed"] > PRACTICAL_VALUES:  # the mean sits (almost) on the border: the count is meaningless
        needed = f" (the mean is at the border: more than {PRACTICAL_VALUES:,} values would be needed)"
    else:
        needed = f" (≈{int(r['needed'])} values would decide)"
    return {
        "n": "" if _missing(r["n"]) or not r["n"] else int(r["n"]),
        "mean": number(r["mean"]),
        "sd": number(r["sd"], 2),
        "95% CI": "" if _missing(r["ci_low"]) else f"[{number(r['ci_low'])}, {number(r['ci_high'])}]",
        "verdict": r["verdict"] + needed,
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
                "source": r["source"],
                "test": r["comparison"],
                **{k: shown[k] for k in ("n", "mean", "sd", "95% CI", "verdict")},
                "note": "; ".join(t for t in (r["reason"], r.get("note")) if isinstance(t, str) and t),
                "shown in": r["figure"],
            }
        )
    return pd.DataFrame(rows)


def verdict_tally(rows) -> str:
    """'3 reproduced, 1 inconclusive' for ledger rows (each with a "verdict"), in the vocabulary's order."""
    counts = {v: 0 for v in VERDICTS}
    for r in rows:
        counts[r["verdict"]] += 1
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n)


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
        "profile (rules: `lib/repronets/claims.py`; claims: `claims/<notebook>.yaml`). Regenerated by every build."
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

    from . import fileio

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
        parts.append("\n| claim | verdict | n | mean | 95% CI | shown in |\n|---|---|---:|---:|---|---|\n")
        for r in rows:
            every_row.append(r)
            link = f"[{r['figure']}]({notebook}/{r['figure']})" if r.get("figure") else ""
            f = formatted_row(r)
            claim = f"**{r['id']}**: {r['claim']}"
            parts.append(f"| {claim} | {f['verdict']} | {f['n']} | {f['mean']} | {f['95% CI']} | {link} |\n")
    summary = verdict_tally(every_row)
    parts.insert(2, f"\n{summary or 'no claims yet'}.\n")
    return fileio.write_text(figures_dir / page, "".join(parts))
