"""The paper's figures, drawn from the tidy results of :mod:`ashlib.experiments`."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

BASELINE_MARKERS = "sD^vP*Xph<>"
ASH_COLORS = {"ASH-P": "tab:blue", "ASH-B": "tab:orange", "ASH-S": "tab:green", "ASH-RAND": "tab:purple"}


def pareto_front(results: pd.DataFrame, metric: str = "AUROC", title: str | None = None, ax=None):
    """Figure 2: mean OOD ``metric`` (over OOD sets) against ID accuracy.

    Baselines are points with their own markers; each ASH variant is a dashed line through its
    pruning levels, larger markers for larger p. The dotted line marks the unmodified network.
    """
    avg = results[results["ood_set"] == "Average"]
    ax = ax or plt.subplots(figsize=(7, 5))[1]
    base = avg[avg["family"] == "baseline"]
    plain = base.loc[base["shaping"].eq("none") & ~base["dice"], "ID acc"]
    if len(plain):
        ax.axvline(plain.iloc[0], color="0.6", ls=":", lw=1, label="unmodified network")
    for (_, row), marker in zip(base.iterrows(), BASELINE_MARKERS):
        ax.scatter(row["ID acc"], row[metric], marker=marker, s=45, color="0.25", zorder=3,
                   label=row["method"])
    for family, group in avg[avg["family"] != "baseline"].groupby("family", sort=False):
        group = group.sort_values("percentile")
        sizes = 10 + 50 * (group["percentile"] / 100) ** 3
        color = ASH_COLORS.get(family)
        ax.plot(group["ID acc"], group[metric], ls="--", color=color, lw=1)
        ax.scatter(group["ID acc"], group[metric], s=sizes, color=color, label=family, zorder=3)
    ax.set_xlabel("ID accuracy (%)")
    ax.set_ylabel(f"mean {metric} over OOD sets (%)")
    ax.set_title(title or "ID-OOD trade-off (paper Figure 2)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    sns.despine(ax=ax)
    return ax


def image_grid(sets: dict, n: int = 8, title: str | None = None):
    """One row of ``n`` images per named set: what the network sees, ID and OOD side by side."""
    fig, axes = plt.subplots(len(sets), n, figsize=(n * 0.9, len(sets) * 1.0), squeeze=False)
    for row, (name, images) in zip(axes, sets.items()):
        for j, ax in enumerate(row):
            ax.imshow(images[j].squeeze(0).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
