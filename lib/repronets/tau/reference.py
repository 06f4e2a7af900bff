"""The original's published numbers, for side-by-side tables. Not results of this code.

Read by pixel analysis off the README figure ``example_training_speedup.png`` (docs/papers/tau.md §3; about
±0.005 in accuracy, more where curves overlap). The figure does not say which T it used.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Curve:
    """One curve of the figure on one dataset."""

    final_accuracy: float  # test accuracy at epoch 200
    epochs_to: dict[float, int]  # accuracy threshold -> the first epoch at which the curve reaches it


FIGURE: dict[tuple[str, str], Curve] = {  # (dataset, curve label) -> Curve
    ("mnist", "ResNet τ variable"): Curve(final_accuracy=0.98, epochs_to={0.95: 8, 0.96: 10}),
    ("mnist", "FracDNN τ variable"): Curve(final_accuracy=0.977, epochs_to={0.95: 15, 0.96: 18}),
    ("mnist", "FracDNN τ fixed"): Curve(final_accuracy=0.97, epochs_to={0.95: 78, 0.96: 104}),
    ("mnist", "ResNet τ fixed"): Curve(final_accuracy=0.963, epochs_to={0.95: 121, 0.96: 181}),
    ("fashion_mnist", "ResNet τ variable"): Curve(final_accuracy=0.89, epochs_to={0.85: 8, 0.86: 13}),
    ("fashion_mnist", "FracDNN τ variable"): Curve(final_accuracy=0.885, epochs_to={0.85: 17, 0.86: 20}),
    ("fashion_mnist", "FracDNN τ fixed"): Curve(final_accuracy=0.877, epochs_to={0.85: 83, 0.86: 117}),
    ("fashion_mnist", "ResNet τ fixed"): Curve(final_accuracy=0.864, epochs_to={0.85: 125, 0.86: 172}),
}
DATASETS = tuple(dict.fromkeys(dataset for dataset, _ in FIGURE))

# The original figure's colours (matplotlib's default cycle, in its legend order).
COLORS = {
    "FracDNN τ fixed": "tab:blue",
    "FracDNN τ variable": "tab:orange",
    "ResNet τ fixed": "tab:green",
    "ResNet τ variable": "tab:red",
    "ResNet τ fixed (only τ0, as released)": "tab:olive",
}
