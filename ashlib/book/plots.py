"""The paper's figures, drawn from the tidy results of :mod:`ashlib.evaluation.experiments`."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ashlib.methods import registry
from ashlib._checks import ParameterError
from ashlib.stats.metrics import histogram_iou

BASELINE_MARKERS = "sD^vP*Xph<>"


def family_colour(family: str) -> str | None:
    """The colour of a shaping's family ("ASH-S", "SCALE", ...) from its registry entry; None (the
    next colour of the cycle) for anything else."""
    return {entry.label: entry.colour for entry in registry.shapings().values()}.get(family)


def pareto_front(results: pd.DataFrame, metric: str = "AUROC", title: str | None = None, ax=None):
    """Figure 2: mean OOD ``metric`` (over OOD sets) against ID accuracy.

    Baselines are points with their own markers; each ASH variant is a dashed line through its
    pruning levels, larger markers for larger p. The dotted line marks the unmodified network. Rows
    with both intervals (``<metric>_lo/_hi`` and ``ID acc_lo/_hi``, ``evaluate(intervals=...)``) get
    them as thin error bars.
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
        color = family_colour(family)
        ax.plot(group["ID acc"], group[metric], ls="--", color=color, lw=1)
        ax.scatter(group["ID acc"], group[metric], s=sizes, color=color, label=family, zorder=3)
    bounds = [f"{metric}_lo", f"{metric}_hi", "ID acc_lo", "ID acc_hi"]
    if set(bounds) <= set(avg.columns):  # every point's 95% intervals, both ways
        colours = [family_colour(f) or "0.25" for f in avg["family"]]
        ax.errorbar(avg["ID acc"], avg[metric], fmt="none", elinewidth=0.6, alpha=0.45, ecolor=colours,
                    yerr=[avg[metric] - avg[bounds[0]], avg[bounds[1]] - avg[metric]],
                    xerr=[avg["ID acc"] - avg[bounds[2]], avg[bounds[3]] - avg["ID acc"]])
    ax.set_xlabel("ID accuracy (%)")
    ax.set_ylabel(f"mean {metric} over OOD sets (%)")
    ax.set_title(title or "ID-OOD trade-off (paper Figure 2)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    sns.despine(ax=ax)
    return ax


def image_grid(sets: dict, n: int = 8, title: str | None = None):
    """One row of ``n`` images per named set: what the network sees, ID and OOD side by side.

    Gray (1, H, W) and colour (3, H, W) images; values in [0, 1] are shown as they are, others
    (standardised images) stretched per image to their own range. A set with fewer than ``n`` images
    leaves the rest of its row empty.
    """
    fig, axes = plt.subplots(len(sets), n, figsize=(n * 0.9, len(sets) * 1.0), squeeze=False)
    for row, (name, images) in zip(axes, sets.items()):
        for j, ax in enumerate(row):
            ax.set_xticks([]), ax.set_yticks([])
            if j >= len(images):
                ax.axis("off")
                continue
            img = images[j].detach().cpu().float()
            arr = img.permute(1, 2, 0) if img.shape[0] == 3 else img[0]
            lo, hi = float(arr.min()), float(arr.max())
            if lo >= 0 and hi <= 1:
                lo, hi = 0.0, 1.0
            elif hi > lo:
                arr = (arr - lo) / (hi - lo)
                lo, hi = 0.0, 1.0
            ax.imshow(arr.numpy(), cmap="gray", vmin=lo, vmax=hi)
        row[0].axis("on")
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def energy_vs_norm(frame: pd.DataFrame, title: str | None = None, ax=None):
    """Energy score against the input's L2 norm, one colour per set (:func:`ashlib.book.fidelity.energy_and_norm`)."""
    ax = ax or plt.subplots(figsize=(7, 4.5))[1]
    sns.scatterplot(frame, x="input norm", y="energy", hue="set", s=8, alpha=0.5, linewidth=0, ax=ax)
    ax.set_title(title or "Energy score against input norm")
    ax.legend(fontsize=8, markerscale=2, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    sns.despine(ax=ax)
    return ax


def scaling_curves(frame: pd.DataFrame, title: str | None = None, ax=None):
    """Mean energy of each set's images multiplied by a factor (:func:`ashlib.book.fidelity.energy_under_scaling`)."""
    ax = ax or plt.subplots(figsize=(7, 4.5))[1]
    sns.lineplot(frame, x="factor", y="energy", hue="set", marker="o", ax=ax)
    ax.set_xscale("log", base=2)
    ax.axvline(1, color="0.6", ls=":", lw=1)
    ax.set_xlabel("input multiplied by (log scale; 1 = the image as it is)")
    ax.set_ylabel("mean energy score")
    ax.set_title(title or "Scaling an input up raises its energy")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    sns.despine(ax=ax)
    return ax


def accuracy_vs_p(acc: pd.DataFrame, hue: str = "family", title: str | None = None, ax=None):
    """Figures 3 and 5: ID accuracy against the pruning percentile p, one line per ``hue`` value
    (ASH variant for Figure 3, placement for Figure 5). Lines that coincide (ASH-P and ASH-S) are
    drawn dashed on top of each other so both stay visible. Rows with ``ID acc_lo``/``ID acc_hi``
    (``experiments.id_accuracy(intervals=...)``) get their 95% interval as a band."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    bands = {"ID acc_lo", "ID acc_hi"} <= set(acc.columns)
    for i, (name, group) in enumerate(acc.groupby(hue, sort=False)):
        group = group.sort_values("percentile")
        line, = ax.plot(group["percentile"], group["ID acc"], marker="o", ms=3, lw=1.5,
                        ls=("-", "--", ":", "-.")[i % 4], color=family_colour(name), label=name)
        if bands:
            ax.fill_between(group["percentile"], group["ID acc_lo"], group["ID acc_hi"], color=line.get_color(),
                            alpha=0.15, lw=0)
    ax.set_xlabel("pruning percentile p")
    ax.set_ylabel("ID accuracy (%)")
    ax.set_title(title or "ID accuracy across pruning percentiles")
    ax.legend(fontsize=8, title=hue)
    sns.despine(ax=ax)
    return ax


def score_distributions(panels: dict, id_label: str = "ID", ood_label: str = "OOD", bins: int = 50,
                        score_label: str = "energy score"):
    """Figure 6: ID vs OOD score histograms side by side, one panel per setting, IoU in each title.

    ``panels`` maps a panel title (e.g. "p = 90") to ``(score_id, score_ood)``.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, (name, (s_id, s_ood)) in zip(axes[0], panels.items()):
        s_id, s_ood = np.asarray(s_id, dtype=float), np.asarray(s_ood, dtype=float)
        edges = np.histogram_bin_edges(np.concatenate([s_id, s_ood]), bins=bins)
        ax.hist(s_id, edges, alpha=0.55, density=True, label=id_label, color="tab:blue")
        ax.hist(s_ood, edges, alpha=0.55, density=True, label=ood_label, color="tab:red")
        ax.set_title(f"{name}   IoU = {histogram_iou(s_id, s_ood, bins):.3f}", fontsize=10)
        ax.set_xlabel(score_label)
        ax.set_yticks([])
        sns.despine(ax=ax, left=True)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def metric_curves(frame: pd.DataFrame, x: str, hue: str, metrics=("FPR95", "AUROC", "AUPR-In"),
                  style: str | None = None, references: pd.DataFrame | None = None, title: str | None = None):
    """Figure 4 (b)-(d) style: one panel per metric against ``x``, one line per ``hue`` (and
    ``style``); repeated rows (e.g. several seeds) are drawn as mean +- one standard deviation, and
    otherwise a metric's 95% interval (``<metric>_lo``, ``<metric>_hi`` of ``evaluate(intervals=...)``,
    where a row has them) as a band around its line. ``references`` (index: label, columns: metrics)
    adds dotted horizontal lines, e.g. baselines."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.6), squeeze=False)
    groups = [hue] + ([style] if style else [])
    repeated = frame.duplicated([x] + groups).any()
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(data=frame, x=x, y=metric, hue=hue, style=style, marker="o", ax=ax,
                     errorbar=("sd", 1) if repeated else None)
        bounds = [f"{metric}_lo", f"{metric}_hi"]
        if not repeated and set(bounds) <= set(frame.columns):
            colours = dict(zip(frame[hue].drop_duplicates(), sns.color_palette(n_colors=frame[hue].nunique())))
            for key, rows in frame.dropna(subset=bounds).sort_values(x).groupby(groups, sort=False):
                first = key[0] if isinstance(key, tuple) else key
                ax.fill_between(rows[x], rows[bounds[0]], rows[bounds[1]], color=colours[first], alpha=0.2, lw=0)
        if references is not None:
            for i, (label, row) in enumerate(references.iterrows()):
                ax.axhline(row[metric], ls=":", lw=1.2, color=f"C{(i + 3) % 10}", label=label)
        ax.set_title(metric)
        ax.set_ylabel(f"{metric} (%)")
        sns.despine(ax=ax)
        if ax is not axes[0][-1] and ax.get_legend():
            ax.get_legend().remove()
    legend = axes[0][-1].get_legend()
    if legend:
        axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def interval_bars(results: pd.DataFrame, metric: str = "AUROC", title: str | None = None, ax=None):
    """Each method's "Average" ``metric`` with its 95% interval (``<metric>_lo``, ``<metric>_hi``, from
    ``experiments.evaluate(intervals=...)`` or ``experiments.seed_results``) as a horizontal error bar,
    methods top to bottom in the table's order, coloured by family."""
    avg = results[results["ood_set"] == "Average"].reset_index(drop=True)
    missing = [c for c in (metric, f"{metric}_lo", f"{metric}_hi") if c not in avg.columns]
    if missing:
        raise ParameterError(f"results without the columns {missing} are not allowed: expected "
                         "experiments.evaluate(..., intervals=N)'s table.")
    ax = ax or plt.subplots(figsize=(7, 0.32 * len(avg) + 1.2))[1]
    for y, row in avg.iterrows():
        ax.errorbar(row[metric], y, xerr=[[row[metric] - row[f"{metric}_lo"]], [row[f"{metric}_hi"] - row[metric]]],
                    fmt="o", capsize=3, color=family_colour(row["family"]) or "0.3")
    ax.set_yticks(range(len(avg)), avg["method"])
    ax.invert_yaxis()
    seeds = int(avg["seeds"].max()) if "seeds" in avg.columns else 1
    over = f"{seeds} training seeds and the test images" if seeds > 1 else "the test images"
    ax.set_xlabel(f"mean {metric} (%) over the OOD sets, 95% interval over {over}")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def line_with_band(data: pd.DataFrame, x: str, y: str, color=None, label: str | None = None, ax=None,
                   order=None, **kwargs):
    """One line of ``y`` over ``x`` with markers and its 95% interval (columns ``<y>_lo``, ``<y>_hi``) as a
    band around it; for ``seaborn.FacetGrid.map_dataframe`` (which passes ``color`` and ``label``).
    ``order``: the categories of ``x`` left to right (e.g. a network's stages), so that lines with
    different categories share one axis; None: ``x`` as it is."""
    missing = [c for c in (x, y, f"{y}_lo", f"{y}_hi") if c not in data.columns]
    if missing:
        raise ParameterError(f"data without the columns {missing} is not allowed: expected {x}, {y} and its "
                             f"interval {y}_lo, {y}_hi.")
    ax = ax or plt.gca()
    xs = data[x]
    if order is not None:
        unknown = sorted(set(data[x]) - set(order), key=str)
        if unknown:
            raise ParameterError(f"order={list(order)!r} is not allowed: it lacks {unknown} of {x!r}.")
        data = data.assign(_at=data[x].map({v: i for i, v in enumerate(order)})).sort_values("_at")
        xs = data["_at"]
        ax.set_xticks(range(len(order)), list(order))
    line, = ax.plot(xs, data[y], marker="o", color=color, label=label)
    ax.fill_between(xs, data[f"{y}_lo"], data[f"{y}_hi"], color=line.get_color(), alpha=0.2, lw=0)
    return ax


def gain_vs_width(gains: pd.DataFrame, families=("ASH-P", "ASH-B", "ASH-S", "SCALE"), title: str | None = None,
                  reference: str = "Energy"):
    """Chapter *When does ASH help?*: each family's mean-AUROC gain over ``reference`` (points) against the
    penultimate units (log axis), a line per p with its 95% interval as error bars, one panel per family.
    ``gains``: :func:`ashlib.book.when_ash_helps.gains`'s rows, ``network`` the units."""
    missing = [c for c in ("network", "family", "percentile", "difference", "lo", "hi") if c not in gains.columns]
    if missing:
        raise ParameterError(f"gains without the columns {missing} is not allowed: expected when_ash_helps.gains's.")
    families = [f for f in families if f in set(gains["family"])]
    fig, axes = plt.subplots(1, len(families), figsize=(3.6 * len(families), 3.6), sharey=True, squeeze=False)
    palette = dict(zip(sorted(gains["percentile"].unique()), sns.color_palette("viridis", gains["percentile"].nunique())))
    for ax, family in zip(axes[0], families):
        for p, group in gains[gains["family"] == family].groupby("percentile"):
            group = group.sort_values("network")
            ax.errorbar(group["network"], group["difference"],
                        yerr=[group["difference"] - group["lo"], group["hi"] - group["difference"]],
                        marker="o", capsize=3, color=palette[p], label=f"p = {p:g}")
        ax.axhline(0, color="0.5", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(gains["network"].unique()), [f"{u:,}" for u in sorted(gains["network"].unique())])
        ax.set_title(family)
        ax.set_xlabel("penultimate units")
    axes[0][0].set_ylabel(f"mean AUROC minus {reference}'s (points)")
    axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def premise_vs_gain(points: pd.DataFrame, title: str | None = None, ax=None):
    """Chapter *When does ASH help?*: ASH-S's gain over the energy score (``difference`` with ``lo``, ``hi``)
    against its premise (``premise AUROC``: the AUROC of s1/s2 as an ID score, 50 = no premise), one
    point per network (``label``), marked by ``kind`` (e.g. width or training epoch)."""
    missing = [c for c in ("premise AUROC", "difference", "lo", "hi", "label", "kind") if c not in points.columns]
    if missing:
        raise ParameterError(f"points without the columns {missing} is not allowed.")
    ax = ax or plt.subplots(figsize=(6.5, 4.5))[1]
    for (kind, group), marker in zip(points.groupby("kind", sort=False), "osD^"):
        bars = ax.errorbar(group["premise AUROC"], group["difference"],
                           yerr=[group["difference"] - group["lo"], group["hi"] - group["difference"]],
                           fmt=marker, capsize=3, label=kind)
        for _, row in group.iterrows():
            ax.annotate(row["label"], (row["premise AUROC"], row["difference"]), textcoords="offset points",
                        xytext=(5, 4), fontsize=8, color=bars[0].get_color())
    ax.axhline(0, color="0.5", ls=":", lw=1)
    ax.axvline(50, color="0.5", ls=":", lw=1)
    ax.set_xlabel("premise AUROC: s1/s2 as an ID score (%)")
    ax.set_ylabel("ASH-S minus Energy, mean AUROC (points)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax
