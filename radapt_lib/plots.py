"""One figure style for every page."""
from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns


def style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold"})


def figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6):
    style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
