"""Interactive figures for the static site: the paper's figures as plotly figures whose controls (a
slider, drop-down menus) switch between views computed in the chapter, so they work in the browser
without a kernel.

Every function takes what a chapter has already computed (the tables of :mod:`ashlib.evaluation.experiments`,
score arrays) and returns a ``plotly.graph_objects.Figure``. The numbers a control shows are the ones
passed in, never recomputed; :func:`distribution_table` computes Figure 6's and the chapter publishes
that table, so the figure and the run's CSV hold the same numbers. :func:`show` puts a figure in a
notebook's output as HTML *without* plotly's JavaScript: the site serves plotly.js from its own
``_static`` folder (:func:`ashlib.book.pipeline.build_book`), so the pages read offline, from a server or
from ``file://``. The chapters keep their static matplotlib figures (:mod:`ashlib.book.plots`) for print
and for readers without JavaScript.

- :func:`distribution_table`, :func:`score_distributions`: Figure 6, ID and OOD score histograms with a
  slider over p;
- :func:`across_p`: Figures 2 and 3, mean OOD metrics and ID accuracy against p, menus over metric and
  variant;
- :func:`local_vs_global`: Figure 4, local against global thresholds, menus over metric and variant;
- :func:`coverage_by_layer`: NAC coverage per set (Liu et al., ICLR 2024), a menu over layers.

plotly is imported only when a figure is drawn (it is in the ``book`` extra).
"""
from __future__ import annotations

import hashlib
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
import pandas as pd

from ashlib._checks import ParameterError, check_choice, check_positive_int

__all__ = ["across_p", "coverage_by_layer", "distribution_table", "html", "local_vs_global", "score_distributions",
           "show", "step_title"]

#: Metrics a curve figure can show, with their axis titles (percent, as in the result tables).
METRIC_TITLES = {"AUROC": "AUROC (%)", "FPR95": "FPR95 (%)", "AUPR": "AUPR-In (%)", "AUPR-In": "AUPR-In (%)",
                 "AUPR-Out": "AUPR-Out (%)", "ID acc": "ID accuracy (%)"}
ID_COLOUR, OOD_COLOUR = "#1f77b4", "#d62728"  # matplotlib's tab:blue and tab:red, as plots.score_distributions
THRESHOLD_COLOURS = {"local": "#1f77b4", "global": "#ff7f0e"}
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 40, 40, 6, 4


def _describe(value) -> str:
    if isinstance(value, pd.DataFrame):
        return f"<DataFrame with columns {list(map(str, value.columns))}>"
    return _REPR.repr(value)


def _fail(name: str, value, allowed: str) -> ParameterError:
    return ParameterError(f"{name}={_describe(value)} is not allowed: expected {allowed}.")


def _plotly():
    """plotly's graph objects, imported on first use."""
    try:
        import plotly.graph_objects as go
    except ImportError as err:  # pragma: no cover - the book extra pins it
        raise ImportError("ashlib.book.interactive needs plotly: pip install -e '.[book]'") from err
    return go


def _check_table(name: str, table, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise _fail(name, table, f"a non-empty DataFrame ({what})")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise _fail(name, table, f"{what} with the columns {list(columns)}; missing {missing}")
    return table


def _check_metrics(name: str, metrics, allowed: Sequence[str]) -> tuple[str, ...]:
    if isinstance(metrics, str) or not isinstance(metrics, Sequence) or not metrics:
        raise _fail(name, metrics, f"a non-empty list of metrics out of {list(allowed)}")
    for i, metric in enumerate(metrics):
        check_choice(f"{name}[{i}]", metric, allowed)
    return tuple(metrics)


def _check_scores(name: str, scores) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """``scores``: p -> (ID scores, OOD scores), as 1-D float arrays of finite numbers."""
    if not isinstance(scores, Mapping) or not scores:
        raise _fail(name, scores, "a non-empty mapping of percentile p to (ID scores, OOD scores)")
    checked = {}
    for p, pair in scores.items():
        if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p <= 100:
            raise ParameterError(f"{name} has the key {p!r}, which is not allowed: expected percentiles p in [0, 100].")
        arrays = None
        if isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2:
            arrays = [np.asarray(a, dtype=float).ravel() if _numeric(a) else None for a in pair]
        if arrays is None or any(a is None or a.size == 0 or not np.isfinite(a).all() for a in arrays):
            raise _fail(f"{name}[{p!r}]", pair, "a pair (ID scores, OOD scores) of non-empty arrays of finite numbers")
        checked[p] = (arrays[0], arrays[1])
    return checked


def _numeric(values) -> bool:
    try:
        return np.issubdtype(np.asarray(values).dtype, np.number)
    except (TypeError, ValueError):
        return False


def _title(text: str, subtitle: str | None) -> dict:
    """A figure title, with a smaller line under it (the run, the setting) when ``subtitle`` is given."""
    title = dict(text=text, y=0.97, font=dict(size=16))
    return title if subtitle is None else dict(title, subtitle=dict(text=subtitle, font=dict(size=12)))


# ------------------------------------------------------------------------------ Figure 6: p slider


def distribution_table(scores: Mapping, bins: int = 50) -> pd.DataFrame:
    """Figure 6's numbers, one row per p: the AUROC (%, :func:`ashlib.stats.metrics.auroc`, ID positive) and
    the IoU of the ID and OOD score histograms (:func:`ashlib.stats.metrics.histogram_iou`, ``bins`` bins).

    ``scores`` maps p to ``(ID scores, OOD scores)``. The index is ``p``, the columns ``AUROC`` and
    ``IoU``: the table a chapter publishes, and what :func:`score_distributions` shows at each step.
    """
    from ashlib.stats import metrics

    scores = _check_scores("scores", scores)
    check_positive_int("bins", bins)
    rows = [{"p": p, "AUROC": 100 * metrics.auroc(s_id, s_ood), "IoU": metrics.histogram_iou(s_id, s_ood, bins)}
            for p, (s_id, s_ood) in scores.items()]
    return pd.DataFrame(rows).set_index("p")


def step_title(method: str, p: float, auroc: float, iou: float) -> str:
    """The title of Figure 6's slider step at ``p``, e.g. ``ASH-S@90: AUROC 93.21 %, histogram IoU 0.123``."""
    return f"{method}@{p:g}: AUROC {auroc:.2f} %, histogram IoU {iou:.3f}"


def _shares(s_id: np.ndarray, s_ood: np.ndarray, bins: int, shown=(0.5, 99.5)):
    """Bin centres, widths and the share (%) of ID and OOD scores per bin, on ``bins`` equal-width bins over
    :func:`ashlib.book.plots.shown_range` of the pooled scores (None: all of them, the bins
    :func:`ashlib.stats.metrics.histogram_iou` uses), and the note on the scores left off the axis."""
    from ashlib.book.plots import outside_note, shown_range

    pooled = np.concatenate([s_id, s_ood])
    edges = np.histogram_bin_edges(pooled, bins=bins, range=shown_range(pooled, shown))
    shares = [100 * np.histogram(s, edges)[0] / s.size for s in (s_id, s_ood)]
    return (edges[:-1] + edges[1:]) / 2, np.diff(edges), shares[0], shares[1], outside_note(pooled, edges[0], edges[-1])


def score_distributions(scores: Mapping, table: pd.DataFrame, method: str = "ASH-S", id_label: str = "ID",
                        ood_label: str = "OOD", bins: int = 50, score_label: str = "energy score",
                        active=None, shown=(0.5, 99.5)):
    """Figure 6 (ID and OOD score histograms under ASH-S of increasing strength) with a slider over p.

    ``scores`` maps p to ``(ID scores, OOD scores)``; ``table`` is :func:`distribution_table` of them
    (index p, columns ``AUROC`` and ``IoU``). Each slider step shows the two histograms at its p and puts
    that row's numbers in the figure title (:func:`step_title`). ``active``: the p shown first (default:
    the first). ``shown``: the percentiles of each step's pooled scores its bins cover (None: all), as
    :func:`ashlib.book.plots.score_distributions`; the x-axis title says how many scores lie outside.
    """
    go = _plotly()
    scores = _check_scores("scores", scores)
    _check_table("table", table, ("AUROC", "IoU"), "ashlib.book.interactive.distribution_table of the scores")
    absent = [p for p in scores if p not in table.index]
    if absent:
        raise _fail("table", table, f"a row for every p of the scores; it has none for p = {absent}")
    check_positive_int("bins", bins)
    ps = list(scores)
    active = ps[0] if active is None else check_choice("active", active, ps)
    fig = go.Figure()
    axis_titles = {}
    for p in ps:
        centres, widths, h_id, h_ood, note = _shares(*scores[p], bins, shown)
        axis_titles[p] = score_label + (f"; {note}" if note else "")
        for label, share, colour in ((id_label, h_id, ID_COLOUR), (ood_label, h_ood, OOD_COLOUR)):
            fig.add_bar(x=centres, y=share, width=widths, name=label, marker_color=colour, opacity=0.55,
                        visible=p == active, hovertemplate=f"{label}<br>{score_label} %{{x:.3g}}: %{{y:.1f}}%"
                                                           "<extra></extra>")
    titles = {p: step_title(method, p, float(table.loc[p, "AUROC"]), float(table.loc[p, "IoU"])) for p in ps}
    steps = [dict(label=f"{p:g}", method="update",
                  args=[{"visible": [q == p for q in ps for _ in (0, 1)]},
                        {"title.text": titles[p], "xaxis.title.text": axis_titles[p]}]) for p in ps]
    fig.update_layout(
        title=_title(titles[active], None), barmode="overlay", height=460, bargap=0,
        xaxis_title=axis_titles[active], yaxis_title="share of the set's images (%)",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
        sliders=[dict(active=ps.index(active), steps=steps, pad=dict(t=50),
                      currentvalue=dict(prefix=f"{method}, pruning percentile p = "))])
    return fig


# --------------------------------------------------------------------- curves with metric/variant menus


@dataclass(frozen=True)
class _Curve:
    """One line of a curve figure: its points per metric, and the variant it belongs to (None: always shown)."""

    name: str
    variant: str | None
    points: dict = field(hash=False)  # metric -> (x list, y list)
    colour: str | None = None
    dash: str = "solid"

    def xy(self, metric: str) -> tuple[list, list]:
        return self.points.get(metric, ([], []))


def _xy(frame: pd.DataFrame, metric: str, x: str = "percentile") -> tuple[list, list]:
    frame = frame.dropna(subset=[x, metric]).sort_values(x)
    return frame[x].astype(float).tolist(), frame[metric].astype(float).tolist()


def _curves_figure(curves: list[_Curve], metrics: tuple[str, ...], variants: list[str], title: str,
                   subtitle: str | None = None, variant: str | None = None, x_title: str = "pruning percentile p"):
    """Lines whose data switch with a metric menu (restyling x and y) and whose visibility switches with
    a variant menu (restyling ``visible``): the two menus change different properties, so they combine.
    ``variant``: the variant shown first (default: every variant)."""
    go = _plotly()
    fig = go.Figure()
    first = metrics[0]
    for c in curves:
        x, y = c.xy(first)
        fig.add_scatter(x=x, y=y, name=c.name, mode="lines+markers", line=dict(color=c.colour, dash=c.dash),
                        marker=dict(size=6), visible=variant is None or c.variant in (None, variant),
                        hovertemplate=f"{c.name}<br>p = %{{x:g}}: %{{y:.2f}}<extra></extra>")
    metric_buttons = [dict(label=METRIC_TITLES[m], method="update",
                           args=[{"x": [c.xy(m)[0] for c in curves], "y": [c.xy(m)[1] for c in curves]},
                                 {"yaxis.title.text": METRIC_TITLES[m], "title.text": f"{title}: {METRIC_TITLES[m]}"}])
                      for m in metrics]
    variant_buttons = [dict(label="every variant", method="restyle", args=[{"visible": [True] * len(curves)}])]
    variant_buttons += [dict(label=v, method="restyle", args=[{"visible": [c.variant in (None, v) for c in curves]}])
                        for v in variants]
    menu = dict(direction="down", showactive=True, yanchor="bottom", y=1.04, xanchor="left")
    fig.update_layout(title=_title(f"{title}: {METRIC_TITLES[first]}", subtitle), height=500,
                      xaxis_title=x_title, yaxis_title=METRIC_TITLES[first], margin=dict(t=130),
                      updatemenus=[dict(menu, buttons=metric_buttons, active=0, x=0),
                                   dict(menu, buttons=variant_buttons, x=0.3,
                                        active=0 if variant is None else 1 + variants.index(variant))])
    return fig


def _hex(colour) -> str | None:
    from matplotlib.colors import to_hex

    return None if colour is None else to_hex(colour)


def across_p(front: pd.DataFrame, accuracy: pd.DataFrame | None = None,
             metrics: Sequence[str] = ("AUROC", "FPR95", "ID acc"), baseline: str | None = "Energy",
             title: str = "ASH across p", subtitle: str | None = None):
    """Figures 2 and 3: each ASH variant's (and SCALE's) mean OOD metric and ID accuracy against p, with
    a menu over the metric and one over the variants.

    ``front``: :func:`ashlib.evaluation.experiments.evaluate` of the variants at several p (the chapter's Figure 2
    sweep; its ``Average`` rows, the mean over the OOD sets, are drawn). ``accuracy``:
    :func:`ashlib.evaluation.experiments.id_accuracy` over Figure 3's sweep; where it has a variant, its ``ID acc``
    replaces the front's. ``baseline``: the method of ``front`` drawn as a dotted level line (the
    unmodified network's energy score); None for none. ``subtitle``: a line under the title (the run).
    """
    metrics = _check_metrics("metrics", metrics, ("AUROC", "FPR95", "AUPR-In", "AUPR-Out", "ID acc"))
    _check_table("front", front, ("method", "family", "percentile", "ood_set", *metrics),
                 "a table of ashlib.evaluation.experiments.evaluate")
    if accuracy is not None:
        _check_table("accuracy", accuracy, ("family", "percentile", "ID acc"),
                     "a table of ashlib.evaluation.experiments.id_accuracy")
    average = front[front["ood_set"] == "Average"]
    if average.empty:
        raise _fail("front", front, "a table of ashlib.evaluation.experiments.evaluate with 'Average' rows")
    if baseline is not None:
        check_choice("baseline", baseline, list(dict.fromkeys(average["method"])))
    from ashlib.book.plots import family_colour

    shaped = average[average["family"] != "baseline"]
    variants = list(dict.fromkeys(shaped["family"]))
    curves = []
    for variant in variants:
        rows = shaped[shaped["family"] == variant]
        points = {m: _xy(rows, m) for m in metrics}
        if accuracy is not None and "ID acc" in metrics and variant in set(accuracy["family"]):
            points["ID acc"] = _xy(accuracy[accuracy["family"] == variant], "ID acc")
        curves.append(_Curve(variant, variant, points, _hex(family_colour(variant))))
    if baseline is not None:
        level = average[average["method"] == baseline].iloc[0]
        span = {m: [x for c in curves for x in c.xy(m)[0]] for m in metrics}
        points = {m: ([min(span[m]), max(span[m])], [float(level[m])] * 2) for m in metrics if span[m]}
        curves.append(_Curve(f"{baseline} (no shaping)", None, points, "#7f7f7f", "dot"))
    return _curves_figure(curves, metrics, variants, title, subtitle)


def local_vs_global(ours: pd.DataFrame, theirs: pd.DataFrame | None = None,
                    metrics: Sequence[str] = ("AUROC", "FPR95", "AUPR"), title: str = "Local vs global threshold",
                    subtitle: str | None = None):
    """Figure 4 (b)-(d) and Table A4: ASH-S and ASH-B with a local (per-sample) and a global (fitted
    on ID training data) threshold, metric against p, with a menu over the metric and one over the
    variants.

    ``ours`` and ``theirs`` (the paper's numbers, optional, drawn dashed): tidy tables with the columns
    ``family``, ``threshold`` ("local" or "global"), ``percentile`` and the ``metrics`` (the chapter's
    averages over the OOD sets; AUPR is AUPR-In). The first variant is shown first (local and global share
    their colours across variants). ``subtitle``: a line under the title (the run, the paper's setting).
    """
    metrics = _check_metrics("metrics", metrics, ("AUROC", "FPR95", "AUPR"))
    columns = ("family", "threshold", "percentile", *metrics)
    sources = {"ours": _check_table("ours", ours, columns, "the chapter's averages over the OOD sets")}
    if theirs is not None:
        sources["paper"] = _check_table("theirs", theirs, columns, "the paper's numbers")
    for name, frame in sources.items():
        bad = sorted(set(frame["threshold"]) - set(THRESHOLD_COLOURS))
        if bad:
            raise _fail("ours" if name == "ours" else "theirs", frame,
                        f"thresholds 'local' or 'global' only; it has {bad}")
    variants = list(dict.fromkeys(ours["family"]))
    curves = []
    for variant in variants:
        for (source, frame), dash in zip(sources.items(), ("solid", "dash")):
            for threshold, colour in THRESHOLD_COLOURS.items():
                rows = frame[(frame["family"] == variant) & (frame["threshold"] == threshold)]
                if len(rows):
                    curves.append(_Curve(f"{variant}, {threshold} ({source})", variant,
                                         {m: _xy(rows, m) for m in metrics}, colour, dash))
    return _curves_figure(curves, metrics, variants, title, subtitle, variant=variants[0])


# ------------------------------------------------------------------------------ NAC: coverage per layer


def _box_stats(values: np.ndarray) -> dict:
    """Quartiles, Tukey's whiskers (the furthest values within 1.5 IQR of the box) and the mean."""
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    iqr = q3 - q1
    inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
    return dict(q1=q1, median=median, q3=q3, lowerfence=inside.min(), upperfence=inside.max(), mean=values.mean())


def coverage_by_layer(coverage: pd.DataFrame, layer: str | None = None, id_set: str = "ID test",
                      title: str = "NAC coverage", subtitle: str | None = None):
    """NAC (Liu et al., ICLR 2024), the chapter's coverage-per-layer figure: box plots of one layer's
    coverage (mean over its neurons) for each set, with a menu over the layers.

    ``coverage``: tidy table with the columns ``set``, ``layer`` and ``coverage`` (one row per image and
    layer). The boxes are computed here from those values (quartiles, Tukey's whiskers, mean: no single
    image is drawn, so the page stays small); the title gives the layer's median for ``id_set``.
    ``layer``: the layer shown first (default: the first). ``subtitle``: a line under the title (the run).
    """
    go = _plotly()
    _check_table("coverage", coverage, ("set", "layer", "coverage"), "a tidy table of NAC coverage")
    values = pd.to_numeric(coverage["coverage"], errors="coerce")
    if values.isna().any() or not np.isfinite(values).all():
        raise _fail("coverage", coverage, "finite numbers in its 'coverage' column")
    layers = list(dict.fromkeys(coverage["layer"]))
    sets = list(dict.fromkeys(coverage["set"]))
    layer = layers[0] if layer is None else check_choice("layer", layer, layers)
    check_choice("id_set", id_set, sets)
    fig, titles = go.Figure(), {}
    for name in layers:
        rows = coverage[coverage["layer"] == name]
        shown = [s for s in sets if (rows["set"] == s).any()]
        stats = [_box_stats(rows.loc[rows["set"] == s, "coverage"].to_numpy(dtype=float)) for s in shown]
        fig.add_box(x=shown, name=name, visible=name == layer, boxpoints=False, marker_color=ID_COLOUR,
                    showlegend=False, **{k: [s[k] for s in stats] for k in stats[0]})
        id_median = next((s["median"] for n, s in zip(shown, stats) if n == id_set), float("nan"))
        titles[name] = f"{title}, layer {name}: median {id_set} {id_median:.3f}"
    buttons = [dict(label=name, method="update",
                    args=[{"visible": [other == name for other in layers]}, {"title.text": titles[name]}])
               for name in layers]
    fig.update_layout(title=_title(titles[layer], subtitle), height=480, margin=dict(t=130),
                      yaxis_title="coverage (mean over the layer's neurons)",
                      updatemenus=[dict(type="buttons", direction="right", buttons=buttons, active=layers.index(layer),
                                        showactive=True, x=0, xanchor="left", y=1.04, yanchor="bottom")])
    return fig


# ------------------------------------------------------------------------------------------ display


def html(fig, div_id: str | None = None) -> str:
    """The figure as an HTML fragment that loads no JavaScript: the page must already have plotly.js
    (the site serves it, :func:`ashlib.book.pipeline.build_book`). ``div_id``: the element's id (default: one
    derived from the figure, so a rebuilt chapter gives the same page)."""
    if div_id is not None and (not isinstance(div_id, str) or not div_id.replace("-", "").replace("_", "").isalnum()):
        raise _fail("div_id", div_id, "None or an id of letters, digits, '-' and '_'")
    spec = fig.to_json()
    div_id = div_id or "plotly-" + hashlib.sha256(spec.encode()).hexdigest()[:12]
    height = fig.layout.height or 450
    return fig.to_html(include_plotlyjs=False, full_html=False, div_id=div_id, default_height=f"{height}px",
                       config={"displaylogo": False, "responsive": True})


def show(fig, div_id: str | None = None) -> None:
    """Display the figure in a notebook's output as HTML (:func:`html`), for the static site."""
    from IPython.display import HTML, display

    display(HTML(html(fig, div_id)))
