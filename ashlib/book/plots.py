"""The paper's figures, drawn from the tidy results of :mod:`ashlib.evaluation.experiments`."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ashlib.methods import registry
from ashlib._checks import ParameterError, check_percentile, check_positive_int
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


def shown_range(scores, shown=(0.5, 99.5)) -> tuple[float, float]:
    """The score range a histogram draws: the ``shown`` percentiles (low, high; in [0, 100]) of ``scores``;
    None: their whole range. A few extreme scores (ASH-S at high p multiplies by exp(s1/s2)) would
    otherwise stretch the axis until the bulk of the scores is one bar."""
    scores = np.asarray(scores, dtype=float).ravel()
    if scores.size == 0:
        raise ParameterError("scores=[] is not allowed: expected at least one score.")
    if shown is None:
        return float(scores.min()), float(scores.max())
    if not isinstance(shown, (tuple, list)) or len(shown) != 2:
        raise ParameterError(f"shown={shown!r} is not allowed: expected two percentiles (low, high) or None.")
    low, high = (check_percentile("shown", q) for q in shown)
    if low >= high:
        raise ParameterError(f"shown={shown!r} is not allowed: expected low < high, e.g. (0.5, 99.5).")
    lo, hi = np.percentile(scores, [low, high])
    return float(lo), float(hi)


def _number(value: float) -> str:
    """A score for a label: thousands separated, three significant digits below 100."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def outside_note(scores, lo: float, hi: float) -> str:
    """How many of ``scores`` lie outside [lo, hi], and the whole range; "" when none do."""
    scores = np.asarray(scores, dtype=float).ravel()
    below, above = int((scores < lo).sum()), int((scores > hi).sum())
    if below + above == 0:
        return ""
    return (f"{below + above:,} of {scores.size:,} scores off the axis "
            f"(all: {_number(scores.min())} to {_number(scores.max())})")


def score_distributions(panels: dict, id_label: str = "ID", ood_label: str = "OOD", bins: int = 50,
                        score_label: str = "energy score", shown=(0.5, 99.5)):
    """Figure 6: ID vs OOD score histograms side by side, one panel per setting, IoU in each title.

    ``panels`` maps a panel title (e.g. "p = 90") to ``(score_id, score_ood)``. Each panel draws
    ``bins`` equal bins over :func:`shown_range` of its pooled scores (``shown``: percentiles, default
    0.5..99.5; None: every score) and says under its axis how many scores lie outside. The y-axis is
    the density of each set's scores: its share of *all* the set's scores per unit of score, so the
    bars of a set cover the share of it inside the range. The IoU in the title is
    :func:`ashlib.stats.metrics.histogram_iou` on all the scores (``bins`` bins over their whole range),
    the number the chapter's table publishes, whatever range is drawn.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False)
    for ax, (name, (s_id, s_ood)) in zip(axes[0], panels.items()):
        s_id, s_ood = np.asarray(s_id, dtype=float), np.asarray(s_ood, dtype=float)
        iou = histogram_iou(s_id, s_ood, bins)  # checks the scores and bins; on all scores, as the table
        pooled = np.concatenate([s_id, s_ood])
        lo, hi = shown_range(pooled, shown)
        edges = np.histogram_bin_edges(pooled, bins=bins, range=(lo, hi))
        for scores, label, colour in ((s_id, id_label, "tab:blue"), (s_ood, ood_label, "tab:red")):
            weights = np.full(scores.size, 1.0 / (scores.size * (edges[1] - edges[0])))
            ax.hist(scores, edges, weights=weights, alpha=0.55, label=label, color=colour)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_title(f"{name}   IoU = {iou:.3f}", fontsize=10)
        note = outside_note(pooled, edges[0], edges[-1])
        ax.set_xlabel(score_label + (f"\n{note}" if note else ""), fontsize=9)
        ax.set_ylabel("density")
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        sns.despine(ax=ax)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


#: Line styles of reference lines, one each: dashed, dash-dot, dotted, dash-dot-dot, long dashes.
REFERENCE_LINESTYLES = ("--", "-.", ":", (0, (6, 2, 1, 2, 1, 2)), (0, (10, 3)))


def reference_styles(n: int, hues: int = 0) -> list[dict]:
    """``ls`` and ``color`` of ``n`` horizontal reference lines drawn beside ``hues`` coloured lines: each a
    line style of :data:`REFERENCE_LINESTYLES` and a colour of the cycle after the hue lines' ("C<hues>",
    "C<hues + 1>", ...), so no two references, and no reference and hue line, look alike."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ParameterError(f"n={n!r} is not allowed: expected an integer >= 0.")
    if isinstance(hues, bool) or not isinstance(hues, int) or hues < 0:
        raise ParameterError(f"hues={hues!r} is not allowed: expected an integer >= 0.")
    if n > len(REFERENCE_LINESTYLES) or hues + n > 10:
        raise ParameterError(f"n={n!r} is not allowed beside {hues} hue lines: expected at most "
                             f"{min(len(REFERENCE_LINESTYLES), max(10 - hues, 0))} references (one line style each, "
                             "and colours of the 10-colour cycle that the hue lines do not use).")
    return [dict(ls=REFERENCE_LINESTYLES[i], color=f"C{hues + i}") for i in range(n)]


def metric_curves(frame: pd.DataFrame, x: str, hue: str, metrics=("FPR95", "AUROC", "AUPR-In"),
                  style: str | None = None, references: pd.DataFrame | None = None, title: str | None = None):
    """Figure 4 (b)-(d) style: one panel per metric against ``x``, one line per ``hue`` (and
    ``style``); repeated rows (e.g. several seeds) are drawn as mean +- one standard deviation, and
    otherwise a metric's 95% interval (``<metric>_lo``, ``<metric>_hi`` of ``evaluate(intervals=...)``,
    where a row has them) as a band around its line. ``references`` (index: label, columns: metrics)
    adds horizontal lines, e.g. baselines, each in its own line style and a colour after the hue lines'
    (:func:`reference_styles`), named in the legend."""
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
            for (label, row), look in zip(references.iterrows(), reference_styles(len(references), frame[hue].nunique())):
                ax.axhline(row[metric], lw=1.6, label=label, **look)
        ax.set_title(metric)
        ax.set_ylabel(f"{metric} (%)")
        sns.despine(ax=ax)
        if ax is not axes[0][-1] and ax.get_legend():
            ax.get_legend().remove()
    legend = axes[0][-1].get_legend()
    if legend:
        axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, handlelength=4)
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


def depth_order(stages) -> list:
    """The distinct ``stages`` of a network by depth: "stem" first, then "layer1", "layer2", ... by their
    number (a sub-layer such as "layer2.relu" with its stage, in the order given), then every other name
    ("penultimate", "logits", ...) in the order given. For ``line_with_band(order=...)``."""
    import re

    def depth(item):
        i, name = item
        match = re.match(r"layer(\d+)(?:\.|$)", str(name))
        if name == "stem":
            return (0, 0, i)
        return (1, int(match.group(1)), i) if match else (2, 0, i)

    distinct = list(dict.fromkeys(stages))
    return [name for _, name in sorted(enumerate(distinct), key=depth)]


def heatmap_grid(frame: pd.DataFrame, col: str, index: str, columns: str, value: str = "AUROC", rows=None,
                 note: str | None = None, col_wrap: int = 3, vmin: float = 0, vmax: float = 100, center: float = 50,
                 cbar_label: str = "AUROC (%)", fmt: str = ".0f", title: str | None = None):
    """One annotated heat map of ``value`` (``index`` down, ``columns`` across, in the data's order) per
    value of ``col``, ``col_wrap`` a row, sharing one colour scale and one colour bar (``cbar_label``).

    ``rows``: the ``index`` values to draw, top to bottom (None: all, in the data's order). Leaving some
    out needs a ``note`` saying why; the figure names them and prints the note under the panels.
    """
    missing = [c for c in (col, index, columns, value) if c not in frame.columns]
    if missing:
        raise ParameterError(f"frame without the columns {missing} is not allowed: expected {col}, {index}, "
                             f"{columns} and {value}.")
    if frame.duplicated([col, index, columns]).any():
        raise ParameterError(f"frame with repeated ({col}, {index}, {columns}) rows is not allowed: expected one "
                             f"{value} per cell.")
    check_positive_int("col_wrap", col_wrap)
    present = list(dict.fromkeys(frame[index]))
    rows = present if rows is None else list(rows)
    unknown = [r for r in rows if r not in present]
    if unknown:
        raise ParameterError(f"rows={rows!r} is not allowed: {unknown} are not values of {index!r}.")
    left_out = [r for r in present if r not in rows]
    if left_out and not note:
        raise ParameterError(f"rows={rows!r} leaves out {left_out} without a note: expected note= saying why.")
    panels = list(dict.fromkeys(frame[col]))
    across = list(dict.fromkeys(frame[columns]))
    ncols = min(col_wrap, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(0.85 * len(across) * ncols + 1.6, 0.42 * len(rows) * nrows + 1.4),
                             squeeze=False, layout="constrained")
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.axis("off")
            continue
        table = frame[frame[col] == panels[k]].pivot(index=index, columns=columns, values=value).reindex(
            index=rows, columns=across)
        sns.heatmap(table, ax=ax, vmin=vmin, vmax=vmax, center=center, cmap="RdBu", annot=True, fmt=fmt,
                    annot_kws={"size": 10}, cbar=False, linewidths=0.5, linecolor="white")
        ax.set_title(f"{col} = {panels[k]}", fontsize=10)
        ax.tick_params(axis="y", rotation=0)
        ax.tick_params(axis="x", rotation=0)
        if k % ncols:
            ax.set_yticks([]), ax.set_ylabel("")
        if k + ncols < len(panels):  # a panel below shares the columns
            ax.set_xticks([]), ax.set_xlabel("")
    shown = [ax for ax in axes.flat if ax.axison]
    fig.colorbar(shown[0].collections[0], ax=shown, label=cbar_label, shrink=0.9, aspect=30)
    if left_out:
        import textwrap

        fig.supxlabel(textwrap.fill(f"Not drawn: {', '.join(map(str, left_out))}. {note}", 150), fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


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
