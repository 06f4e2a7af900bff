"""Writes notebooks/00_data_and_baselines.ipynb (kept here so the notebook's cells can be reviewed as code)."""
import nbformat as nbf
from pathlib import Path

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("""# 00 · The data, and the baselines every paper must beat

This companion rebuilds the figures and tables of four papers. Before any of them, this notebook shows **the data they
are trained on** and **two reference baselines** on that data:

* **softmax regression**: one linear layer, the floor any network should clear;
* **a one-hidden-layer ReLU MLP**: the plain network the τ-ResNet of paper 1 extends with residual steps.

Both are trained with the τ paper's protocol: plain SGD, cross-entropy, no augmentation, pixels in [0, 1].
The `quick` profile uses the embedded handwritten digits (scikit-learn's `load_digits`, 8×8 pixels); the `paper`
profile uses MNIST and Fashion-MNIST.

All model and training code lives in `repronets` (`repronets.baselines`, `repronets.train`); this notebook only
asks for runs, which are trained once and then read from the run store (`runs/`), and draws them. The same runs can be
computed without Jupyter: `python -m repronets.baselines --profile quick`."""),
    code("""# Parameters: papermill replaces this cell's values (params/<profile>/00_data_and_baselines.yaml).
# The values here are the quick profile's, so the notebook also runs as it is in JupyterLab.
profile = "quick"
output_dir = ""
device = "auto"
data_root = ""
download = False
datasets = ["digits"]
train_limit = 0
models = ["softmax", "mlp"]
hidden = 100
epochs = 30
batch_size = 32
lr = 0.05
seeds = [0, 1, 2]
samples_per_class = 8""", metadata={"tags": ["parameters"]}),
    code("""import pandas as pd
import torch

from repronets import baselines, data, session
from repronets.plotting import plt, sns, mean_band
from repronets.results import long_frame

S = session.start("00_data_and_baselines", globals())  # validates the parameters, as run_all.sh did
P = S.params
print(f"profile {S.profile}; device {S.device}; outputs -> {S.output_dir}")"""),
    md("## The data\nSizes, shapes, class balance and pixel statistics of the training split of each dataset."),
    code("""cards = pd.DataFrame([baselines.describe(P, name) for name in P.datasets])
S.table(cards, "datasets", caption="Datasets: sizes, shapes, class balance and pixel statistics (training split).",
        data=P.datasets)
cards"""),
    code("""for name in P.datasets:
    split = data.load(name, "train", root=P.data_root or None, download=P.download)
    n = P.samples_per_class
    fig, axes = plt.subplots(split.num_classes, n, figsize=(0.55 * n, 0.55 * split.num_classes), squeeze=False)
    for c in range(split.num_classes):
        images = split.x[split.y == c][:n]
        for i, ax in enumerate(axes[c]):
            ax.imshow(images[i].permute(1, 2, 0).squeeze(-1), cmap="gray_r" if images.shape[1] == 1 else None)
            ax.set_xticks([]); ax.set_yticks([])
            ax.grid(False)
        axes[c][0].set_ylabel(split.classes[c].split(" - ")[-1], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{name}: the first {n} training images of each class", fontsize=10)
    S.figure(fig, f"samples_{name}", data=name)
    plt.show()"""),
    md("""## Baselines

One run per (dataset, model, seed). Test accuracy is measured before training (epoch 0) and after every epoch;
the bands show ±1 standard deviation over the seeds."""),
    code("""runs = baselines.run(P, S.store)
print(f"{sum(not r.cached for r in runs)} run(s) trained, {sum(r.cached for r in runs)} loaded from {S.store.root}")
curves = long_frame(runs, "test_acc", param_keys=["dataset", "model", "seed"])
fig, axes = plt.subplots(1, len(P.datasets), figsize=(4.2 * len(P.datasets), 3.2), squeeze=False, sharey=True)
for ax, name in zip(axes[0], P.datasets):
    mean_band(ax, curves[curves.dataset == name], x="epoch", y="test_acc", hue="model")
    ax.set(title=name, xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
S.figure(fig, "baseline_learning_curves", runs=runs, data=P.datasets)
plt.show()"""),
    code("""final = S.store.frame("baselines", runs)
table = (final.groupby(["dataset", "model"])
         .agg(parameters=("parameters", "first"), seeds=("seed", "count"),
              test_acc_mean=("final_test_acc", "mean"), test_acc_sd=("final_test_acc", "std"),
              seconds_per_run=("wall_time_s", "mean"))
         .reset_index())
S.table(table, "baseline_accuracy", runs=runs, data=P.datasets,
        caption=f"Final test accuracy after {P.epochs} epochs of SGD (lr {P.lr}, batch {P.batch_size}); "
                f"mean and standard deviation over {len(P.seeds)} seed(s).")
table"""),
    md("""## Reading the results

The sentence below is computed from the table above, not written by hand. On the digits, the MLP should end a
little above softmax regression (both well above 0.9); on MNIST the MLP reaches about 0.97 within 20 epochs of this
protocol. These numbers are the floor for paper 1's τ-ResNets, which add residual steps with trainable step sizes to
the same kind of network."""),
    code("""for name, group in table.groupby("dataset"):
    best = group.sort_values("test_acc_mean").iloc[-1]
    gaps = ", ".join(f"{r.model} {r.test_acc_mean:.3f} ± {0 if pd.isna(r.test_acc_sd) else r.test_acc_sd:.3f}"
                     for r in group.itertuples())
    print(f"{name}: best baseline {best.model} ({best.test_acc_mean:.3f}); all: {gaps}")"""),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
})
out = Path(__file__).resolve().parents[1] / "notebooks" / "00_data_and_baselines.ipynb"
nbf.write(nb, out)
print("wrote", out)
