from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ashlib.book import plots  # noqa: E402


def _results():
    rows = []
    for method, family, shaping, p, acc, auroc in [
        ("Energy", "baseline", "none", None, 98.0, 20.0), ("ReAct", "baseline", "react", None, 97.5, 35.0),
        ("ASH-S@60", "ASH-S", "ash_s", 60, 98.0, 40.0), ("ASH-S@90", "ASH-S", "ash_s", 90, 97.0, 70.0),
        ("ASH-B@90", "ASH-B", "ash_b", 90, 96.0, 30.0)]:
        for ood_set in ("a", "Average"):
            rows.append(dict(method=method, family=family, shaping=shaping, percentile=p, dice=False,
                             ood_set=ood_set, AUROC=auroc, **{"ID acc": acc}))
    return pd.DataFrame(rows)


def test_pareto_front_draws_one_line_per_ash_variant_ordered_by_p():
    ax = plots.pareto_front(_results())
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 2
    s_line = next(line for line in dashed if len(line.get_xdata()) == 2)
    assert list(s_line.get_ydata()) == [40.0, 70.0]  # sorted by p
    labels = ax.get_legend_handles_labels()[1]
    assert {"Energy", "ReAct", "ASH-S", "ASH-B", "unmodified network"} <= set(labels)
    assert ax.get_lines()[0].get_xdata()[0] == 98.0  # the unmodified network's accuracy


def test_image_grid_has_one_row_per_set():
    fig = plots.image_grid({"a": torch.rand(5, 1, 28, 28), "b": torch.zeros(5, 1, 28, 28)}, n=3)
    assert len(fig.axes) == 6
    assert fig.axes[3].get_ylabel() == "b"


def test_accuracy_vs_p_one_line_per_hue():
    acc = pd.DataFrame(dict(family=["ASH-P"] * 3 + ["ASH-B"] * 3, percentile=[90, 10, 50] * 2,
                            **{"ID acc": [90.0, 99.0, 95.0, 80.0, 10.0, 40.0]}))
    ax = plots.accuracy_vs_p(acc)
    lines = ax.get_lines()
    assert len(lines) == 2
    assert list(lines[0].get_xdata()) == [10, 50, 90] and list(lines[0].get_ydata()) == [99.0, 95.0, 90.0]


def test_score_distributions_titles_carry_the_iou():
    a = torch.randn(200).numpy()
    fig = plots.score_distributions({"p = 0": (a, a), "p = 90": (a, a + 50)})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["p = 0   IoU = 1.000", "p = 90   IoU = 0.000"]


def test_metric_curves_draws_mean_and_spread_over_repeats_and_references():
    frame = pd.DataFrame(dict(p=[70, 70, 90, 90], family=["ASH-RAND"] * 4, FPR95=[10.0, 20.0, 30.0, 50.0],
                              AUROC=[90.0, 92.0, 80.0, 84.0]))
    refs = pd.DataFrame({"FPR95": [5.0], "AUROC": [99.0]}, index=["Energy"])
    fig = plots.metric_curves(frame, x="p", hue="family", metrics=("FPR95", "AUROC"), references=refs)
    fpr_ax = fig.axes[0]
    mean_line = fpr_ax.get_lines()[0]
    assert list(mean_line.get_ydata()) == [15.0, 40.0]
    assert fpr_ax.collections, "the +-1 sd band is drawn"
    assert any(list(line.get_ydata()) == [5.0, 5.0] for line in fpr_ax.get_lines())


def test_image_grid_shows_colour_and_standardised_images():
    colour = torch.rand(3, 3, 8, 8)
    standardised = torch.randn(3, 1, 8, 8) * 2
    fig = plots.image_grid({"colour": colour, "std": standardised}, n=3)
    images = [ax.get_images()[0] for ax in fig.axes]
    assert images[0].get_array().shape == (8, 8, 3)
    shown = images[3].get_array()
    assert float(shown.min()) == 0.0 and float(shown.max()) == 1.0  # stretched to its own range


def test_image_grid_leaves_the_row_of_a_small_set_empty_beyond_its_images():
    """A smoke run's OOD set may hold fewer images than the grid's columns (issue 10: IndexError)."""
    fig = plots.image_grid({"big": torch.rand(6, 3, 8, 8), "small": torch.rand(2, 3, 8, 8)}, n=4)
    shown = [len(ax.get_images()) for ax in fig.axes]
    assert shown == [1, 1, 1, 1, 1, 1, 0, 0]
    assert fig.axes[4].get_ylabel() == "small" and not fig.axes[7].axison


def test_interval_bars_draw_each_methods_interval_and_need_the_bounds():
    import matplotlib.pyplot as plt
    import pytest

    from ashlib._checks import ParameterError

    results = pd.DataFrame({"method": ["Energy", "ASH-S@90", "Energy"], "family": ["baseline", "ASH-S", "baseline"],
                            "ood_set": ["Average", "Average", "letters"], "AUROC": [90.0, 80.0, 88.0],
                            "AUROC_lo": [88.0, 70.0, 85.0], "AUROC_hi": [91.0, 85.0, 90.0]})
    ax = plots.interval_bars(results)
    lines = [c for c in ax.containers]
    assert len(lines) == 2  # the Average rows only
    (_, caps, (bars,)) = lines[1]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Energy", "ASH-S@90"]
    segment = bars.get_segments()[0]
    assert (segment[0][0], segment[1][0]) == (70.0, 85.0)
    plt.close("all")
    with pytest.raises(ParameterError, match=r"results without the columns \['AUROC_lo', 'AUROC_hi'\]"):
        plots.interval_bars(results.drop(columns=["AUROC_lo", "AUROC_hi"]))


def test_metric_curves_draw_each_lines_interval_as_a_band_where_rows_have_one():
    import matplotlib.collections
    import matplotlib.pyplot as plt

    frame = pd.DataFrame({"p": [70, 80, 90] * 3, "threshold": ["local"] * 3 + ["global"] * 3 + ["local"] * 3,
                          "source": ["Ours"] * 6 + ["Paper"] * 3, "AUROC": [90.0, 91, 92, 85, 86, 87, 95, 96, 97]})
    frame["AUROC_lo"], frame["AUROC_hi"] = frame["AUROC"] - 1, frame["AUROC"] + 1
    frame.loc[frame.source == "Paper", ["AUROC_lo", "AUROC_hi"]] = float("nan")  # quoted: no interval
    fig = plots.metric_curves(frame, x="p", hue="threshold", style="source", metrics=("AUROC",))
    bands = [c for c in fig.axes[0].collections if isinstance(c, matplotlib.collections.FillBetweenPolyCollection)
             or type(c).__name__ == "PolyCollection"]
    assert len(bands) == 2  # ours, local and global; none for the paper's rows
    plt.close("all")
    repeated = pd.concat([frame[frame.source == "Ours"]] * 2)  # seeds: mean +- sd, and no band of ours on top
    with_bounds = len(plots.metric_curves(repeated, x="p", hue="threshold", metrics=("AUROC",)).axes[0].collections)
    without = plots.metric_curves(repeated.drop(columns=["AUROC_lo", "AUROC_hi"]), x="p", hue="threshold",
                                  metrics=("AUROC",))
    assert with_bounds == len(without.axes[0].collections) == 2  # seaborn's two sd bands only
    plt.close("all")


def test_line_with_band_draws_the_line_and_its_interval_on_a_facet_grid():
    import numpy as np

    from ashlib import ParameterError

    data = pd.DataFrame(dict(stage=["stem", "layer1", "layer2"], AUROC=[50.0, 60.0, 70.0], AUROC_lo=[47.0, 58.0, 61.0],
                             AUROC_hi=[52.0, 63.0, 75.0]))
    ax = plots.line_with_band(data, x="stage", y="AUROC", color="C1", label="MiSP")
    assert ax.get_lines()[-1].get_label() == "MiSP" and list(ax.get_lines()[-1].get_ydata()) == [50.0, 60.0, 70.0]
    band = ax.collections[-1].get_paths()[0].vertices[:, 1]
    assert np.isclose(band.min(), 47.0) and np.isclose(band.max(), 75.0)
    with pytest.raises(ParameterError, match=r"data without the columns \['AUROC_hi'\] is not allowed"):
        plots.line_with_band(data.drop(columns="AUROC_hi"), x="stage", y="AUROC")
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()  # a line whose first category comes later in the data: drawn in the given order
    plots.line_with_band(data.iloc[::-1], x="stage", y="AUROC", order=["stem", "layer1", "layer2"], ax=ax)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["stem", "layer1", "layer2"]
    assert list(ax.get_lines()[-1].get_xdata()) == [0, 1, 2] and list(ax.get_lines()[-1].get_ydata()) == [50.0, 60.0, 70.0]
    with pytest.raises(ParameterError, match=r"order=\['stem'\] is not allowed: it lacks \['layer1', 'layer2'\]"):
        plots.line_with_band(data, x="stage", y="AUROC", order=["stem"])
