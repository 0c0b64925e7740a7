"""The R-Adapt pages' figures: clean-vs-robust trade-off, robust accuracy against eps, and the sweeps.

Each function draws from frames the study and the sweeps computed (dataset averages with 95% CI
columns) in the book's one figure style (`radapt_lib.plots`), and returns the figure.
"""
from __future__ import annotations

import pandas as pd


def plot_tradeoff(avg: pd.DataFrame, paper_clean: dict, paper_robust: dict, attack_label: str):
    """Clean vs robust accuracy (dataset averages, 95% CI bars) per method; the paper's averages as hollow markers."""
    from .. import plots

    fig, axes = plots.figure(ncols=2, width=5.2, height=4.2)
    ax = axes[0][0]
    import seaborn as sns

    palette = dict(zip(avg["method"], sns.color_palette("colorblind", len(avg))))
    for r in avg.itertuples():
        ax.errorbar(r.clean, r.robust, xerr=[[r.clean - r.clean_lo], [r.clean_hi - r.clean]],
                    yerr=[[r.robust - r.robust_lo], [r.robust_hi - r.robust]], fmt="o", color=palette[r.method],
                    label=r.method, capsize=2)
    ax.set(xlabel="clean accuracy (%)", ylabel=f"robust accuracy (%), {attack_label}", title="this replication (mini)")
    ax.legend(fontsize=7, loc="best")
    ax = axes[0][1]
    for m in avg["method"]:
        if m in paper_clean:
            ax.scatter(paper_clean[m], paper_robust[m], facecolors="none", edgecolors=[palette[m]], s=50, label=m)
    ax.set(xlabel="clean accuracy (%)", ylabel="robust accuracy (%), AutoAttack 4/255", title="paper (16-dataset avg)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_sweep(frame: pd.DataFrame, x: str, xlabel: str, title: str, ax=None, logx: bool = False):
    """Clean and robust accuracy (with 95% CI bands) against a swept setting."""
    from .. import plots

    if ax is None:
        fig, axes = plots.figure(width=5.0, height=3.6)
        ax = axes[0][0]
    plots.style()
    f = frame.sort_values(x)
    for metric, marker in (("clean", "o"), ("robust", "s")):
        ax.plot(f[x], f[metric], marker=marker, label=metric)
        ax.fill_between(f[x], f[f"{metric}_lo"], f[f"{metric}_hi"], alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="accuracy (%)", title=title, ylim=(0, 100))
    ax.legend()
    return ax


def plot_eps(avg: pd.DataFrame, names: dict[str, str]):
    """Robust accuracy (dataset average, 95% CI) against eps, one panel per attack, one line per method."""
    from .. import plots

    attacks_ = list(dict.fromkeys(avg["attack"]))
    fig, axes = plots.figure(ncols=len(attacks_), width=4.0, height=3.4)
    for ax, attack in zip(axes[0], attacks_):
        g = avg[avg["attack"] == attack]
        for method, h in g.groupby("method", sort=False):
            h = h.sort_values("eps")
            ax.errorbar(h["eps"], h["robust"], yerr=[h["robust"] - h["robust_lo"], h["robust_hi"] - h["robust"]],
                        marker="o", capsize=2, label=method)
        ax.set(xlabel="eps (x 1/255, l-inf)", ylabel="robust accuracy (%)", title=names.get(attack, attack), ylim=(0, 100))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_fig7(frame_a: pd.DataFrame, frame_d: pd.DataFrame, resolution: int):
    from .. import plots

    fig, axes = plots.figure(ncols=2, width=5.0, height=3.6)
    plot_sweep(frame_a, "alpha", "alpha (beta = max(1 - alpha, 0))", "R-Adapt+: anchor weight", ax=axes[0][0])
    plot_sweep(frame_d, "d0", f"GIF cutoff D0 at 224 px (x {resolution}/224 at {resolution} px)", "R-Adapt+: GIF cutoff",
               ax=axes[0][1])
    fig.tight_layout()
    return fig


def plot_training_scale(frame_n: pd.DataFrame, frame_e: pd.DataFrame):
    from .. import plots

    fig, axes = plots.figure(ncols=2, width=5.0, height=3.6)
    plot_sweep(frame_n, "n_images", "R-Adapt+ training images", "Table 7: training images", ax=axes[0][0])
    plot_sweep(frame_e, "epochs", "R-Adapt+ epochs", "Table 8: epochs", ax=axes[0][1])
    fig.tight_layout()
    return fig


def plot_audit(curves: pd.DataFrame):
    """The audit's convergence checks: robust accuracy vs PGD iterations, vs restarts, and vs eps; one line per model."""
    from .. import plots

    panels = (("iterations", "PGD iterations (4/255)", True), ("restarts", "PGD-50 random starts (worst over them)", False),
              ("eps (1/255)", "eps (x 1/255, PGD-20)", True))
    fig, axes = plots.figure(ncols=3, width=4.0, height=3.4)
    for ax, (curve, xlabel, logx) in zip(axes[0], panels):
        for model, g in curves[curves["curve"] == curve].groupby("model", sort=False):
            ax.plot(g["x"], g["robust"], marker="o", label=model)
        if logx:
            ax.set_xscale("log", base=2)
        ax.set(xlabel=xlabel, ylabel="robust accuracy (%)", ylim=(0, None))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_trend(frame: pd.DataFrame):
    """Each trend quantity (columns) against training steps on each scale axis (rows), 95% CI bars; the paper's
    value dashed where it gives one."""
    from .. import plots
    from .trend import AXES, QUANTITIES

    fig, axes = plots.figure(ncols=len(QUANTITIES), nrows=len(AXES), width=3.0, height=2.8)
    for i, (axis, (_, method)) in enumerate(AXES.items()):
        for j, q in enumerate(QUANTITIES):
            ax, part = axes[i][j], frame[(frame["axis"] == axis) & (frame["quantity"] == q.key)].sort_values("steps")
            ax.errorbar(part["steps"], part["mean"], yerr=[part["mean"] - part["low"], part["high"] - part["mean"]],
                        fmt="o-", capsize=3, color=f"C{i}")
            if method in q.paper:
                ax.axhline(q.paper[method], color="gray", ls="--", lw=1, label=f"paper {q.paper[method]:g}")
                ax.legend(fontsize=7, loc="best")
            ax.set_xticks(list(part["steps"]))
            ax.set(xlabel="training steps", ylabel=f"{q.key} ({q.unit})")
            ax.set_title(f"{axis}\n{q.claim}: {q.key}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_retrieval_examples(rset, n: int = 4):
    """The first n test images of a retrieval set (fewer if it has fewer) with their first caption above each."""
    from .. import plots

    fig, axes = plots.figure(ncols=min(n, len(rset)), width=2.6, height=2.9)
    for i, ax in enumerate(axes[0]):
        ax.imshow(rset.images[i].permute(1, 2, 0).numpy(), interpolation="nearest")
        caption = rset.captions[int((rset.caption_image == i).nonzero()[0])]
        ax.set_title(caption.replace(". ", ".\n"), fontsize=8, fontweight="normal")
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_retrieval(frame: pd.DataFrame):
    """Recall@k (95% CI bars) per method, one panel per setting (clean, then each eps)."""
    from .. import plots

    settings = list(dict.fromkeys(frame["setting"]))
    fig, axes = plots.figure(ncols=len(settings), width=3.6, height=3.4)
    for ax, setting in zip(axes[0], settings):
        for method, g in frame[frame["setting"] == setting].groupby("method", sort=False):
            ax.errorbar(g["k"], g["recall"], yerr=[g["recall"] - g["low"], g["high"] - g["recall"]], marker="o",
                        capsize=2, label=method)
        ax.set(xlabel="k", ylabel="Recall@k (%)", title=setting, ylim=(0, 100), xticks=sorted(frame["k"].unique()))
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
