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


def test_score_distributions_have_a_labelled_density_axis_with_ticks():
    """Issue 36: Figure 6's histograms had no y-axis (its ticks were removed)."""
    import matplotlib.pyplot as plt
    import numpy as np

    a = np.random.default_rng(0).normal(size=300)
    fig = plots.score_distributions({"p = 0": (a, a + 1)})
    ax = fig.axes[0]
    assert ax.get_ylabel() == "density"
    assert len(ax.get_yticks()) > 1 and ax.spines["left"].get_visible()
    heights = [patch.get_height() for patch in ax.patches]
    width = ax.patches[0].get_width()
    assert np.isclose(sum(heights[:50]) * width, 0.99, atol=0.01)  # a density: the ID bars cover its share inside
    plt.close("all")


def test_score_distributions_draw_the_bulk_of_extreme_scores_and_count_the_rest():
    """Issue 36: a few huge ASH-S scores at p = 95 stretched the axis to 40,000 and the bulk was one bar.
    The axis now spans the 0.5..99.5 percentiles, the panel counts the scores off it, and the title's IoU
    is still computed on every score."""
    import matplotlib.pyplot as plt
    import numpy as np

    from ashlib.stats.metrics import histogram_iou

    rng = np.random.default_rng(0)
    s_id = np.concatenate([rng.normal(1000, 100, 995), [20_000, 25_000, 30_000, 35_000, 40_000]])
    s_ood = rng.normal(900, 100, 1000)
    ax = plots.score_distributions({"p = 95": (s_id, s_ood)}).axes[0]
    lo, hi = np.percentile(np.concatenate([s_id, s_ood]), [0.5, 99.5])
    assert ax.get_xlim() == (lo, hi) and hi < 2000
    assert "20 of 2,000 scores off the axis (all: " in ax.get_xlabel() and "to 40,000)" in ax.get_xlabel()
    assert ax.get_title() == f"p = 95   IoU = {histogram_iou(s_id, s_ood, 50):.3f}"
    whole = plots.score_distributions({"all": (s_id, s_ood)}, shown=None).axes[0]  # the old range, on request
    assert whole.get_xlim()[1] == 40_000 and whole.get_xlabel() == "energy score"
    plt.close("all")


@pytest.mark.parametrize("shown", [(99.5, 0.5), (0, 101), (50,), "0.5..99.5"])
def test_score_distributions_refuse_a_bad_shown_range(shown):
    from ashlib import ParameterError

    with pytest.raises(ParameterError, match="shown="):
        plots.score_distributions({"p": ([0.0, 1.0], [2.0, 3.0])}, shown=shown)


def test_metric_curves_reference_lines_differ_from_each_other_and_from_the_hue_lines():
    """Issue 36: ASH-RAND's three reference lines were all dotted, in C3, C4, C5."""
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(dict(p=[70, 90], family=["ASH-RAND"] * 2, AUROC=[90.0, 80.0]))
    refs = pd.DataFrame({"AUROC": [95.0, 93.0, 92.0]}, index=["Energy", "ASH-B@65", "ASH-S@90"])
    fig = plots.metric_curves(frame, x="p", hue="family", metrics=("AUROC",), references=refs)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    hue_colour = lines["ASH-RAND"].get_color() if "ASH-RAND" in lines else fig.axes[0].get_lines()[0].get_color()
    looks = [(lines[name].get_linestyle(), lines[name].get_color()) for name in refs.index]
    assert len({ls for ls, _ in looks}) == 3 and len({c for _, c in looks}) == 3
    assert hue_colour not in {c for _, c in looks}
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert set(refs.index) <= set(labels)
    plt.close("all")


def test_reference_styles_skip_the_hue_colours_and_refuse_too_many():
    from ashlib import ParameterError

    assert plots.reference_styles(2, hues=3) == [dict(ls="--", color="C3"), dict(ls="-.", color="C4")]
    with pytest.raises(ParameterError, match="n=6 is not allowed beside 1 hue lines"):
        plots.reference_styles(6, hues=1)


def test_depth_order_puts_the_stem_first_and_stages_by_number():
    """Issue 36: chapter 06's depth plot read layer1 .. layer4, stem."""
    stages = ["layer1", "layer2", "layer10", "logits", "layer4", "stem", "penultimate", "layer1"]
    assert plots.depth_order(stages) == ["stem", "layer1", "layer2", "layer4", "layer10", "logits", "penultimate"]
    assert plots.depth_order(["layer2.relu", "layer1.relu"]) == ["layer1.relu", "layer2.relu"]


def _heat():
    return pd.DataFrame([dict(ood_set=s, layer=layer, score=score, AUROC=v)
                         for s in ("a", "b") for layer in ("layer1", "layer2")
                         for score, v in (("max of MSP", 70.0), ("avg of ASP", 50.0))])


def test_heatmap_grid_has_a_labelled_colour_bar_readable_numbers_and_names_the_rows_left_out():
    """Issue 36: chapter 06's heat map had tiny numbers, no colour bar and rows constant by construction."""
    import matplotlib.pyplot as plt

    fig = plots.heatmap_grid(_heat(), col="ood_set", index="score", columns="layer", rows=["max of MSP"],
                             note="ASP is constant.", cbar_label="AUROC (%)")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["ood_set = a", "ood_set = b"]
    colour_bar = [ax for ax in fig.axes if ax not in panels and ax.axison]
    assert len(colour_bar) == 1 and colour_bar[0].get_ylabel() == "AUROC (%)"
    numbers = [t for t in panels[0].texts]
    assert [t.get_text() for t in numbers] == ["70", "70"] and min(t.get_fontsize() for t in numbers) >= 9
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["max of MSP"]
    assert "Not drawn: avg of ASP. ASP is constant." in fig.get_supxlabel()
    plt.close("all")


def test_heatmap_grid_refuses_rows_left_out_without_a_note_and_unknown_rows():
    import matplotlib.pyplot as plt

    from ashlib import ParameterError

    with pytest.raises(ParameterError, match=r"leaves out \['avg of ASP'\] without a note"):
        plots.heatmap_grid(_heat(), col="ood_set", index="score", columns="layer", rows=["max of MSP"])
    with pytest.raises(ParameterError, match=r"\['MiSP'\] are not values of 'score'"):
        plots.heatmap_grid(_heat(), col="ood_set", index="score", columns="layer", rows=["MiSP"])
    with pytest.raises(ParameterError, match=r"frame without the columns \['AUROC'\]"):
        plots.heatmap_grid(_heat().drop(columns="AUROC"), col="ood_set", index="score", columns="layer")
    with pytest.raises(ParameterError, match="repeated"):
        plots.heatmap_grid(pd.concat([_heat(), _heat()]), col="ood_set", index="score", columns="layer")
    plt.close("all")
