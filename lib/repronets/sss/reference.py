"""The original code base's numbers, for the checks of a re-implementation. Not results of this code.

The paper's tables were not available (docs/papers/sss.md §5), so no accuracy of the paper is quoted anywhere.
These numbers belong to the original code (``MatthiasKi/statespace_learning`` @ aff3ee9, initialised with
``MatthiasKi/tvsclib`` @ 6a6b3a4): parameter counts from its layer shapes, and the initialisation's norms from
running its Hankel-SVD realisation with numpy (docs/papers/sss.md §1.4, §1.5, §3, §4.2–4.4, §7).
"""

# SSS layer parameters with the bias, n = 50, m = 1, by state dimension s (§1.4; a dense 50 × 50 layer has 2550).
LAYER_PARAMETERS_N50 = {1: 392, 2: 860, 3: 1488, 4: 2260, 5: 3160}

# SSS layer weights without the bias, m = 1: n → {s: count} (§1.4). Also the minimal multiply-adds per sample of a
# forward pass, one per generator entry (§1.3).
LAYER_WEIGHTS = {
    64: {1: 440, 2: 1048, 4: 2896},
    256: {1: 1784, 2: 4312, 4: 12304},
    1024: {1: 7160, 2: 17368, 4: 49936},
}

# More layer counts with the bias (§7, check 4): (n, s, stages) → count. The original's own self-test expected
# 7n = 700 for the first; 8n − 8 = 792 is what its layer has.
LAYER_PARAMETERS = {(100, 1, 100): 792, (100, 3, 10): 2324}

# The initial SSS matrix against the Glorot draw T₀ it realises, n = 50, m = 1, means over 5 seeds (§1.5):
# s → (‖T_sss‖_F / ‖T₀‖_F, ‖T₀ − T_sss‖_F / ‖T₀‖_F), given to two decimals there.
INIT_NORM_RATIOS = {1: (0.29, 0.96), 2: (0.40, 0.92), 3: (0.50, 0.86), 4: (0.59, 0.81), 5: (0.64, 0.77)}

# The convolutional feature extractor: 10 features for both image sets, and its parameters by input shape (§3).
CONV_FEATURES = 10
CONV_PARAMETERS = {(1, 28, 28): 1390, (3, 32, 32): 1640}

# Whole-model parameter counts at h = 50 (§4.4), with the input shape and class count of each dataset's models.
MODEL_INPUTS = {
    "pendigits": ((16,), 10),
    "hand_postures": ((36,), 5),
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}
MODEL_PARAMETERS = {
    "pendigits": {
        "standard_nn": 3910,
        "ss_1_dim": 1752,
        "ss_2_dim": 2220,
        "ss_3_dim": 2848,
        "ss_4_dim": 3620,
        "ss_5_dim": 4520,
        "rank_1": 1510,
    },
    "hand_postures": {
        "standard_nn": 4655,
        "ss_1_dim": 2497,
        "ss_2_dim": 2965,
        "ss_3_dim": 3593,
        "ss_4_dim": 4365,
        "ss_5_dim": 5265,
        "rank_1": 2255,
    },
    "mnist": {
        "standard_nn": 5000,
        "ss_1_dim": 2842,
        "ss_2_dim": 3310,
        "ss_3_dim": 3938,
        "ss_4_dim": 4710,
        "ss_5_dim": 5610,
        "rank_1": 2600,
    },
    "cifar10": {
        "standard_nn": 5250,
        "ss_1_dim": 3092,
        "ss_2_dim": 3560,
        "ss_3_dim": 4188,
        "ss_4_dim": 4960,
        "ss_5_dim": 5860,
        "rank_1": 2850,
    },
}

# The protocol on pendigits at share 0.1 (§4.3, §7 check 8): the subset, then 15 % of it for validation.
PENDIGITS_TRAIN_SAMPLES = 7494
PENDIGITS_SHARE_0_1 = {"samples": 749, "train": 636, "validation": 113}
