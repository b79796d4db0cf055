from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ashlib import plots  # noqa: E402


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
