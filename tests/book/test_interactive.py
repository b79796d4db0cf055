"""The interactive figures (ashlib.book.interactive): each control carries exactly the numbers it was given,
the HTML loads no JavaScript of its own, and bad inputs fail with the parameter's name. CPU, fast."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly  # noqa: F401  (the book extra pins it; `make test` installs it: a missing install must fail)
import pytest

from ashlib import ParameterError
from ashlib.book import interactive
from ashlib.stats import metrics

RNG = np.random.default_rng(0)
SCORES = {p: (RNG.normal(5 + p / 30, 1, 300), RNG.normal(3, 1.5, 200)) for p in (0, 50, 90)}
# numbers no computation of the scores above would give: the figure must show these, as given
GIVEN = pd.DataFrame({"p": [0, 50, 90], "AUROC": [12.3449, 56.7851, 99.999],
                      "IoU": [0.98765, 0.5, 0.0004]}).set_index("p")


def _front() -> pd.DataFrame:
    """A small table shaped like experiments.evaluate's: two variants at three p and the Energy baseline."""
    rows = [dict(method="Energy", family="baseline", percentile=np.nan, ood_set="Average", AUROC=80.0, FPR95=50.0,
                 **{"ID acc": 98.5})]
    for i, family in enumerate(("ASH-P", "ASH-S")):
        for p in (90, 50, 70):  # unsorted on purpose
            rows.append(dict(method=f"{family}@{p}", family=family, percentile=p, ood_set="Average",
                             AUROC=60 + p / 10 + i, FPR95=90 - p / 2 - i, **{"ID acc": 99 - p / 100 - i}))
            rows.append(dict(method=f"{family}@{p}", family=family, percentile=p, ood_set="letters",
                             AUROC=1.0, FPR95=1.0, **{"ID acc": 1.0}))
    return pd.DataFrame(rows)


def _thresholds(shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame([dict(family=f"ASH-{v}", threshold=t, percentile=p, AUROC=70 + p / 10 + j + shift,
                              FPR95=60 - p / 3 - j + shift, AUPR=75 + p / 20 + j + shift)
                         for v in "SB" for j, t in enumerate(("local", "global")) for p in (80, 90, 95)])


def _coverage() -> pd.DataFrame:
    return pd.DataFrame([dict(set=s, layer=layer, coverage=float(v)) for layer in ("avgpool", "layer3")
                         for s, centre in (("ID test", 0.6), ("letters", 0.4), ("noise", 0.1))
                         for v in RNG.normal(centre, 0.05, 50)])


# ------------------------------------------------------------------------------------- Figure 6


def test_the_distribution_table_is_ashlibs_auroc_and_histogram_iou():
    table = interactive.distribution_table(SCORES, bins=30)
    assert list(table.index) == [0, 50, 90] and table.index.name == "p" and list(table.columns) == ["AUROC", "IoU"]
    for p, (s_id, s_ood) in SCORES.items():
        assert table.loc[p, "AUROC"] == 100 * metrics.auroc(s_id, s_ood)
        assert table.loc[p, "IoU"] == metrics.histogram_iou(s_id, s_ood, 30)


def test_each_slider_step_shows_its_p_and_carries_exactly_the_numbers_passed_in():
    fig = interactive.score_distributions(SCORES, GIVEN, method="ASH-S", id_label="ID test", ood_label="textures",
                                          shown=None)  # every score: the bins of histogram_iou
    (slider,) = fig.layout.sliders
    assert [s.label for s in slider.steps] == ["0", "50", "90"] and slider.active == 0
    titles = [s.args[1]["title.text"] for s in slider.steps]
    assert titles == ["ASH-S@0: AUROC 12.34 %, histogram IoU 0.988", "ASH-S@50: AUROC 56.79 %, histogram IoU 0.500",
                      "ASH-S@90: AUROC 100.00 %, histogram IoU 0.000"]
    assert fig.layout.title.text == titles[0]
    for i, (step, (s_id, s_ood)) in enumerate(zip(slider.steps, SCORES.values())):
        visible = step.args[0]["visible"]
        assert visible == [j // 2 == i for j in range(6)]  # the ID and OOD histograms of this p only
        shown = [trace for trace, v in zip(fig.data, visible) if v]
        assert [t.name for t in shown] == ["ID test", "textures"]
        edges = np.histogram_bin_edges(np.concatenate([s_id, s_ood]), bins=50)
        assert np.allclose(shown[0].y, 100 * np.histogram(s_id, edges)[0] / s_id.size)
        assert np.allclose(shown[1].y, 100 * np.histogram(s_ood, edges)[0] / s_ood.size)
        assert sum(shown[1].y) == pytest.approx(100)


def test_a_few_huge_scores_do_not_squash_the_histogram_and_the_axis_says_how_many_are_off_it():
    rng = np.random.default_rng(0)
    s_id, s_ood = rng.normal(1000, 200, 990), np.r_[rng.normal(800, 200, 990), np.full(10, 40_000.0)]
    table = interactive.distribution_table({95: (s_id, s_ood)})
    fig = interactive.score_distributions({95: (s_id, s_ood)}, table)
    lo, hi = np.percentile(np.r_[s_id, s_ood], [0.5, 99.5])
    centres = np.asarray(fig.data[0].x)
    assert lo < centres.min() and centres.max() < hi  # the bins cover the bulk, not the tail to 40,000
    assert fig.layout.xaxis.title.text == "energy score; 20 of 1,990 scores off the axis (all: 161 to 40,000)"
    assert fig.layout.sliders[0].steps[0].args[1]["xaxis.title.text"] == fig.layout.xaxis.title.text


def test_the_slider_starts_at_the_active_p():
    fig = interactive.score_distributions(SCORES, GIVEN, active=50)
    assert fig.layout.sliders[0].active == 1
    assert fig.layout.title.text == interactive.step_title("ASH-S", 50, 56.7851, 0.5)
    assert [t.visible for t in fig.data] == [False, False, True, True, False, False]


# ----------------------------------------------------------------------------- Figures 2, 3 and 4


def _menu(fig, i):
    return fig.layout.updatemenus[i].buttons


def test_across_p_menus_carry_the_tables_numbers_per_metric_and_variant():
    front = _front()
    accuracy = pd.DataFrame([dict(family="ASH-P", percentile=p, **{"ID acc": 100 - p / 10}) for p in (0, 95, 40)])
    fig = interactive.across_p(front, accuracy, metrics=("AUROC", "FPR95", "ID acc"))
    assert [t.name for t in fig.data] == ["ASH-P", "ASH-S", "Energy (no shaping)"]
    average = front[front.ood_set == "Average"].set_index("method")
    for button, metric in zip(_menu(fig, 0), ("AUROC", "FPR95", "ID acc")):
        restyle, relayout = button.args
        assert relayout["yaxis.title.text"] == interactive.METRIC_TITLES[metric]
        xs, ys = restyle["x"], restyle["y"]
        if metric == "ID acc":  # ASH-P from the accuracy sweep, ASH-S (absent there) from the front
            assert xs[0] == [0.0, 40.0, 95.0] and ys[0] == [100.0, 96.0, 90.5]
        else:
            assert xs[0] == [50.0, 70.0, 90.0]
            assert ys[0] == [average.loc[f"ASH-P@{p}", metric] for p in (50, 70, 90)]
        assert ys[1] == [average.loc[f"ASH-S@{p}", metric] for p in (50, 70, 90)]
        assert ys[2] == [average.loc["Energy", metric]] * 2 and xs[2] == [min(sum(xs[:2], [])), max(sum(xs[:2], []))]
    assert list(fig.data[0].y) == _menu(fig, 0)[0].args[0]["y"][0]  # drawn first: the first metric
    variants = {b.label: b.args[0]["visible"] for b in _menu(fig, 1)}
    assert variants == {"every variant": [True, True, True], "ASH-P": [True, False, True], "ASH-S": [False, True, True]}


def test_local_vs_global_menus_carry_ours_and_the_papers_numbers():
    ours, theirs = _thresholds(), _thresholds(shift=100)
    fig = interactive.local_vs_global(ours, theirs)
    names = [t.name for t in fig.data]
    assert names[:4] == ["ASH-S, local (ours)", "ASH-S, global (ours)", "ASH-S, local (paper)", "ASH-S, global (paper)"]
    assert [t.line.dash for t in fig.data[:4]] == ["solid", "solid", "dash", "dash"]
    for button, metric in zip(_menu(fig, 0), ("AUROC", "FPR95", "AUPR")):
        for name, ys in zip(names, button.args[0]["y"]):
            variant, rest = name.split(", ")
            threshold, source = rest.rstrip(")").split(" (")
            frame = ours if source == "ours" else theirs
            rows = frame[(frame.family == variant) & (frame.threshold == threshold)].sort_values("percentile")
            assert ys == rows[metric].tolist()
    visible = {b.label: b.args[0]["visible"] for b in _menu(fig, 1)}
    assert visible["ASH-B"] == [n.startswith("ASH-B") for n in names]
    # ASH-S first (the variants share the threshold colours), the menu saying so
    assert [t.visible for t in fig.data] == visible["ASH-S"] and fig.layout.updatemenus[1].active == 1


def test_local_vs_global_without_the_papers_numbers():
    fig = interactive.local_vs_global(_thresholds(), metrics=("FPR95",), subtitle="ours: a run")
    assert len(fig.data) == 4 and fig.layout.yaxis.title.text == "FPR95 (%)"
    assert fig.layout.title.text == "Local vs global threshold: FPR95 (%)"
    assert fig.layout.title.subtitle.text == "ours: a run"


# -------------------------------------------------------------------------------------------- NAC


def test_coverage_boxes_are_the_values_quartiles_and_the_menu_switches_layers():
    cov = _coverage()
    fig = interactive.coverage_by_layer(cov, layer="layer3")
    assert [t.name for t in fig.data] == ["avgpool", "layer3"] and [t.visible for t in fig.data] == [False, True]
    for trace in fig.data:
        assert list(trace.x) == ["ID test", "letters", "noise"]
        for i, name in enumerate(trace.x):
            values = cov[(cov.layer == trace.name) & (cov.set == name)].coverage.to_numpy()
            assert trace.q1[i] == pytest.approx(np.percentile(values, 25))
            assert trace.median[i] == pytest.approx(np.median(values))
            assert trace.q3[i] == pytest.approx(np.percentile(values, 75))
            assert values.min() <= trace.lowerfence[i] <= trace.q1[i]
            assert trace.q3[i] <= trace.upperfence[i] <= values.max()
    buttons = _menu(fig, 0)
    assert [b.label for b in buttons] == ["avgpool", "layer3"] and fig.layout.updatemenus[0].active == 1
    assert buttons[0].args[0]["visible"] == [True, False]
    median = np.median(cov[(cov.layer == "avgpool") & (cov.set == "ID test")].coverage)
    assert buttons[0].args[1]["title.text"] == f"NAC coverage, layer avgpool: median ID test {median:.3f}"


# ------------------------------------------------------------------------------------------- HTML


def test_the_html_loads_no_javascript_and_is_the_same_on_every_build():
    fig = interactive.score_distributions(SCORES, GIVEN)
    html = interactive.html(fig)
    assert html == interactive.html(interactive.score_distributions(SCORES, GIVEN))  # its id comes from the figure
    assert "<script src" not in html and "cdn" not in html.lower() and "require(" not in html
    assert "Plotly.newPlot" in html and 'style="height:460px' in html
    assert 'id="fig-6"' in interactive.html(fig, div_id="fig-6")
    spec = json.loads(fig.to_json())
    assert spec["layout"]["sliders"][0]["steps"][2]["args"][1]["title.text"] in html


# ---------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("call, message", [
    (lambda: interactive.distribution_table({}), r"^scores=\{\} is not allowed: expected a non-empty mapping"),
    (lambda: interactive.distribution_table({150: SCORES[0]}), r"^scores has the key 150, which is not allowed"),
    (lambda: interactive.distribution_table({90: (np.ones(3),)}), r"^scores\[90\]=.* is not allowed: expected a pair"),
    (lambda: interactive.distribution_table({90: (np.ones(3), [np.nan])}), r"^scores\[90\]=.*finite numbers"),
    (lambda: interactive.distribution_table({90: (np.ones(3), ["a"])}), r"^scores\[90\]="),
    (lambda: interactive.distribution_table(SCORES, bins=0), r"^bins=0 is not allowed: expected an integer >= 1"),
    (lambda: interactive.score_distributions(SCORES, GIVEN.drop(index=50)),
     r"^table=<DataFrame with columns \['AUROC', 'IoU'\]> is not allowed: .*none for p = \[50\]"),
    (lambda: interactive.score_distributions(SCORES, GIVEN[["AUROC"]]), r"^table=.*missing \['IoU'\]"),
    (lambda: interactive.score_distributions(SCORES, "table"), r"^table='table' is not allowed: expected a non-empty"),
    (lambda: interactive.score_distributions(SCORES, GIVEN, active=95),
     r"^active=95 is not allowed: expected one of 0, 50, 90"),
    (lambda: interactive.across_p(_front(), metrics=("AUROC", "F1")), r"^metrics\[1\]='F1' is not allowed"),
    (lambda: interactive.across_p(_front(), metrics="AUROC"),
     r"^metrics='AUROC' is not allowed: expected a non-empty list"),
    (lambda: interactive.across_p(_front().drop(columns="ood_set")), r"^front=.*missing \['ood_set'\]"),
    (lambda: interactive.across_p(_front(), baseline="ReAct"),
     r"^baseline='ReAct' is not allowed: expected one of 'Energy'"),
    (lambda: interactive.across_p(_front(), pd.DataFrame({"family": ["ASH-P"]})),
     r"^accuracy=.*missing \['percentile', 'ID acc'\]"),
    (lambda: interactive.local_vs_global(_thresholds().assign(threshold="both")),
     r"^ours=.* is not allowed: expected thresholds 'local' or 'global' only; it has \['both'\]"),
    (lambda: interactive.local_vs_global(_thresholds(), _thresholds().drop(columns="AUPR")),
     r"^theirs=.*missing \['AUPR'\]"),
    (lambda: interactive.coverage_by_layer(_coverage(), layer="layer9"),
     r"^layer='layer9' is not allowed: expected one of 'avgpool', 'layer3'"),
    (lambda: interactive.coverage_by_layer(_coverage(), id_set="ID train"), r"^id_set='ID train' is not allowed"),
    (lambda: interactive.coverage_by_layer(_coverage().assign(coverage="x")), r"^coverage=.*finite numbers"),
    (lambda: interactive.html(interactive.coverage_by_layer(_coverage()), div_id="a b"),
     r"^div_id='a b' is not allowed"),
])
def test_bad_inputs_fail_with_the_parameter_the_value_and_what_is_allowed(call, message):
    with pytest.raises(ParameterError, match=message):
        call()
