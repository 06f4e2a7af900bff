"""The original's published numbers, for side-by-side tables. Not results of this code.

From the two tables of the original README (``afqueiruga/ContinuousNet``): CIFAR-10 and CIFAR-100, one row per
trained model, keyed here by the row names of :data:`repronets.continuous.experiment.ROWS`.
"""

from __future__ import annotations

from typing import NamedTuple


class Published(NamedTuple):
    """One row of the README's tables."""

    parameters: str  # the #params column as printed, e.g. "0.27M"
    accuracy: float  # the Test accuracy column, %
    minutes: int  # the Time column, minutes of training


PUBLISHED = {
    # CIFAR-10
    "resnet20": Published("0.27M", 91.31, 48),
    "cn2_euler": Published("0.27M", 91.41, 20),
    "cn2_rk4": Published("0.27M", 91.01, 50),
    "cn1to2_rk4": Published("0.27M", 91.09, 47),
    "cn1to2_midpoint": Published("0.27M", 90.67, 29),
    "resnet56": Published("0.85M", 93.11, 105),
    "cn8_euler": Published("0.86M", 93.11, 83),
    "cn8_rk4": Published("0.86M", 93.29, 279),
    "cn1to8_rk4": Published("0.86M", 93.06, 199),
    # CIFAR-100
    "wrn58": Published("13.63M", 79.16, 193),
    "wcn8_euler": Published("13.63M", 78.45, 159),
}
