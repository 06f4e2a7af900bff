"""One look for every figure; figures as PNG and PDF, tables as Markdown, LaTeX (booktabs) and CSV.

Files are written atomically. PDFs carry no creation date, so the same figure gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from ..core import fileio

FIGURE_FORMATS = ("png", "pdf")


def use_style() -> None:
    sns.set_theme(
        context="paper",
        style="whitegrid",
        palette="colorblind",
        font_scale=1.15,
        rc={
            "figure.dpi": 110,
            "savefig.dpi": 200,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "legend.frameon": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.constrained_layout.use": True,  # titles, suptitles and outside legends without overlaps
            "pdf.fonttype": 42,  # TrueType in PDFs, editable in vector tools and accepted by publishers
        },
    )


def save_figure(fig, folder: str | Path, name: str) -> list[Path]:
    paths = []
    for fmt in FIGURE_FORMATS:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, metadata={"CreationDate": None} if fmt == "pdf" else None)
        content = buffer.getvalue()
        paths.append(fileio.atomic_write(Path(folder) / f"{name}.{fmt}", lambda f, c=content: f.write(c), "wb"))
    return paths


def save_table(df, folder: str | Path, name: str, caption: str = "", precision: int = 4) -> list[Path]:
    folder = Path(folder)
    md = df.to_markdown(index=False, floatfmt=f".{precision}g")
    tex = (
        df.style.hide(axis="index")
        .format(precision=precision, na_rep="--")
        .to_latex(hrules=True, caption=caption or None, position_float="centering")
    )
    return [
        fileio.write_text(folder / f"{name}.md", (f"{caption}\n\n" if caption else "") + md + "\n"),
        fileio.write_text(folder / f"{name}.tex", tex),
        fileio.write_text(folder / f"{name}.csv", df.to_csv(index=False)),
    ]


@contextlib.contextmanager
def seeded_jitter(seed: int = 0):
    """seaborn's strip plots jitter with numpy's global generator: drawn inside this, a figure is the same on every
    build (the generator's state is restored afterwards, so nothing else sees the seed)."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def mean_band(ax, df, x: str, y: str, hue: str | None = None, **kw):
    """Mean line with a band of ±1 standard deviation over seeds (seaborn's errorbar='sd')."""
    return sns.lineplot(data=df, x=x, y=y, hue=hue, errorbar="sd", ax=ax, **kw)


def image_grid(split, per_class: int, title: str = ""):
    """The first ``per_class`` images of each class of a :class:`repronets.core.data.Split`, one row per class."""
    rows = split.num_classes
    fig, axes = plt.subplots(
        rows,
        per_class,
        figsize=(0.5 * per_class + 0.6, 0.5 * rows + 0.4),
        squeeze=False,
        gridspec_kw={"wspace": 0.06, "hspace": 0.06},
        layout="none",
    )
    for c in range(rows):
        images = split.x[split.y == c][:per_class].cpu()
        for i, ax in enumerate(axes[c]):
            if i < len(images):
                image = images[i].permute(1, 2, 0)
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
        axes[c][0].set_ylabel(split.classes[c].split(" - ")[-1], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=0.92)
    return fig


__all__ = ["use_style", "save_figure", "save_table", "mean_band", "image_grid", "plt", "sns"]
