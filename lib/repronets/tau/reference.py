"""The original's published numbers, for side-by-side tables. Not results of this code.

Read by pixel analysis off the README figure ``example_training_speedup.png`` (shared/papers/tau.md §3; about
±0.005 in accuracy, more where curves overlap). The figure does not say which T it used.
"""

CURVES = ("ResNet τ variable", "FracDNN τ variable", "FracDNN τ fixed", "ResNet τ fixed")

FINAL_ACCURACY = {  # epoch 200
    "mnist": {"ResNet τ variable": 0.98, "FracDNN τ variable": 0.977, "FracDNN τ fixed": 0.97, "ResNet τ fixed": 0.963},
    "fashion_mnist": {
        "ResNet τ variable": 0.89,
        "FracDNN τ variable": 0.885,
        "FracDNN τ fixed": 0.877,
        "ResNet τ fixed": 0.864,
    },
}

EPOCHS_TO = {  # (dataset, threshold) -> epochs needed, per curve
    ("mnist", 0.95): {"ResNet τ variable": 8, "FracDNN τ variable": 15, "FracDNN τ fixed": 78, "ResNet τ fixed": 121},
    ("mnist", 0.96): {"ResNet τ variable": 10, "FracDNN τ variable": 18, "FracDNN τ fixed": 104, "ResNet τ fixed": 181},
    ("fashion_mnist", 0.85): {
        "ResNet τ variable": 8,
        "FracDNN τ variable": 17,
        "FracDNN τ fixed": 83,
        "ResNet τ fixed": 125,
    },
    ("fashion_mnist", 0.86): {
        "ResNet τ variable": 13,
        "FracDNN τ variable": 20,
        "FracDNN τ fixed": 117,
        "ResNet τ fixed": 172,
    },
}

# The original figure's colours (matplotlib's default cycle, in its legend order).
COLORS = {
    "FracDNN τ fixed": "tab:blue",
    "FracDNN τ variable": "tab:orange",
    "ResNet τ fixed": "tab:green",
    "ResNet τ variable": "tab:red",
    "ResNet τ fixed (all)": "tab:olive",
}
