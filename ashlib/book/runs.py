"""One call that sets a notebook up: check its parameters, load the benchmark and the model, cache
the features, and say which benchmark, model and device the run used."""
from __future__ import annotations

import inspect
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import torch

from ashlib.evaluation import experiments
from ashlib.stats import metrics
from ashlib._checks import ParameterError
from ashlib.assets.data import default_preprocessing, load_benchmark
from ashlib.assets.models import (TRAINABLE, TrainRecipe, default_expansion, load_or_train, load_or_train_many, model_for,
                           pretrained_model)
from ashlib.book.params import check_run_parameters, check_seed, check_train_seeds


@dataclass
class Run:
    """What a notebook works with: the benchmark, the trained model and the method context."""

    benchmark: object
    model: torch.nn.Module
    checkpoint: str
    ctx: experiments.Context
    settings: dict
    results_dir: str | None = None

    @property
    def label(self) -> str:
        """Benchmark and preprocessing, e.g. ``mnist5k (match)``: a column name for comparisons."""
        return f"{self.settings['benchmark']} ({self.settings['preprocessing']})"

    @property
    def id_accuracy(self) -> float:
        """ID test accuracy (percent) of the unmodified network."""
        return 100 * metrics.accuracy(experiments.method_logits(experiments.Method("energy"), self.ctx,
                                                                experiments.ID_SET), self.benchmark.y_test)

    def publish(self, name: str, value, display_value=None):
        """:func:`publish` into this run's results folder (``results_dir=``, else ``$ASHLIB_RESULTS_DIR``,
        which ``python -m ashlib run`` sets)."""
        publish(name, value, self.results_dir, display_value)

    def keep_scores(self, name: str, networks=None) -> Path | None:
        """Save every per-image score and ID prediction computed so far (:func:`ashlib.evaluation.experiments.kept_scores`)
        as ``<results_dir>/<name>.npz``, so that every interval and difference of the chapter can be
        recomputed from it without a network. ``networks``: None for this run's network alone; a list of
        runs of the same network trained with other seeds (:func:`seed_runs`), keyed
        ``"train_seed=<t>/<method>/<set>"``; or a mapping of names to contexts (other networks of the
        chapter), keyed ``"<name>/<method>/<set>"``. Written whole or not at all; None without a results
        folder."""
        import numpy as np

        if not self.results_dir:
            return None
        if networks is None:
            networks = [self]
        if not isinstance(networks, dict):
            networks = {f"train_seed={r.settings.get('train_seed', r.settings['seed'])}": r.ctx for r in networks}
        arrays = {f"{prefix}/{key}": value for prefix, ctx in networks.items()
                  for key, value in experiments.kept_scores(ctx).items()}
        folder = Path(self.results_dir)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{name}.npz.partial"
        with open(partial, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        return partial.replace(folder / f"{name}.npz")

    def describe(self) -> str:
        """One Markdown line naming benchmark, model, checkpoint, device, versions and seed."""
        s = self.settings
        hardware = (torch.cuda.get_device_name(s["device"]) if s["device"].startswith("cuda")
                    else platform.processor() or platform.machine())
        size = ""
        if s["model"] == "smallresnet":
            head = f", expansion head to {s['expansion']:,} units" if s.get("expansion") else ""
            size = f"width {s['width']}{head}, "
        return (f"**This run:** benchmark `{s['benchmark']}` (preprocessing `{s['preprocessing']}`), "
                f"model `{s['model']}` ({size}weights "
                f"`{self.checkpoint}`), device `{s['device']}` ({hardware}), "
                f"torch {torch.__version__}, seed {s['seed']}{self._train_seed()}{self._subsets()}. ID test accuracy of the unmodified "
                f"network: **{self.id_accuracy:.2f}%**.")

    def _train_seed(self) -> str:
        return f" (training seed {self.settings['train_seed']})" if "train_seed" in self.settings else ""

    def _subsets(self) -> str:
        sizes = [f"{k}={self.settings[k]:,}" for k in ("n_train", "n_test", "n_ood") if k in self.settings]
        return f", subsets {', '.join(sizes)} (not the benchmark's sizes)" if sizes else ""


def publish(name: str, value, results_dir: str | None = None, display_value=None) -> None:
    """Make a result available beyond the notebook: glued under ``name`` for the book's prose and results
    page (myst-nb), and saved as ``<results_dir>/<name>.csv`` when it is a table and there is a results
    folder (None: ``$ASHLIB_RESULTS_DIR``, else none). ``display_value`` (e.g. a styled table) is what is
    glued."""
    from myst_nb import glue

    results_dir = results_dir or os.environ.get("ASHLIB_RESULTS_DIR")
    if isinstance(value, pd.DataFrame) and results_dir:
        Path(results_dir).mkdir(parents=True, exist_ok=True)
        as_columns(name, value).to_csv(Path(results_dir) / f"{name}.csv", index=False)
    glue(name, value if display_value is None else display_value, display=False)


def as_columns(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as its CSV file holds it: one header row, every column named, no nameless index
    column. A default index (0, 1, ..., n - 1 without a name) is dropped; a named index becomes the
    first column(s); columns of several levels are joined into one name ("global AUROC"). An index that
    means something but has no name is refused (name it with ``rename_axis``): it would be written as
    a column without a header, which pandas reads back as ``Unnamed: 0``."""
    if isinstance(table.columns, pd.MultiIndex):
        table = table.set_axis([" ".join(str(part) for part in column if str(part)) for column in table.columns],
                               axis=1)
    index = table.index
    if isinstance(index, pd.RangeIndex) and index.name is None and index.start == 0 and index.step == 1:
        return table
    nameless = [level for level, label in enumerate(index.names) if label is None]
    if nameless:
        raise ParameterError(f"table {name!r} with an index without a name (level {nameless[0]}, first values "
                         f"{list(index.get_level_values(nameless[0])[:3])}) is not allowed: expected a named "
                         "index (DataFrame.rename_axis) or the default 0..n-1.")
    clash = [label for label in index.names if label in table.columns]
    if clash:
        raise ParameterError(f"table {name!r} with index {clash[0]!r} that is also a column is not allowed: "
                         "expected distinct names.")
    return table.reset_index()


def _training(model: str, bench, width: int, epochs: int, seed: int, expansion: int = 0) -> dict:
    """:func:`ashlib.assets.models.load_or_train`'s arguments for a run's network (:func:`prepare`)."""
    return dict(name=model, x_train=bench.x_train, y_train=bench.y_train, num_classes=bench.num_classes,
                width=width, recipe=TrainRecipe(epochs=epochs, seed=seed), expansion=expansion)


def train_networks(variants: list[dict], workers: int | None = None, progress: bool = True) -> int:
    """Train the networks that :func:`prepare` needs for each of ``variants`` (its keyword arguments)
    side by side (:func:`ashlib.assets.models.load_or_train_many`), so that preparing the variants one by one
    then finds them cached: a chapter that compares several benchmarks trains their networks at once.
    Skipped: a variant whose network is not trained (the paper's pretrained ones) and one whose data
    are missing (:func:`prepare` then says why). Returns how many networks it covered."""
    from ashlib.assets.data import DataNotFoundError

    specs, device = [], "cpu"
    for variant in variants:
        bound = inspect.signature(prepare).bind(**variant)
        bound.apply_defaults()  # prepare's defaults, so that the same network is named
        a = bound.arguments
        model = model_for(a["benchmark"], a["model"])
        if model not in TRAINABLE:
            continue
        device = a["device"]
        try:
            bench, _, _ = _load(a["benchmark"], a["preprocessing"], a["seed"], a["data_root"],
                                a["n_train"], a["n_test"], a["n_ood"])
        except DataNotFoundError:
            continue
        train_seed = a["seed"] if a["train_seed"] is None else a["train_seed"]
        specs.append(_training(model, bench, a["width"], a["epochs"], train_seed, default_expansion(model, a["expansion"])))
    load_or_train_many(specs, device=device, progress=progress, workers=workers)
    return len(specs)


def _load(benchmark: str, preprocessing: str | None, seed: int, data_root: str | None,
          n_train: int | None, n_test: int | None, n_ood: int | None):
    """A run's benchmark (:func:`prepare`'s arguments): ``(benchmark, preprocessing, subset sizes)``, the
    preprocessing being the benchmark's default for None and the sizes only those given."""
    preprocessing = preprocessing or default_preprocessing(benchmark)
    sizes = {k: v for k, v in dict(n_train=n_train, n_test=n_test, n_ood=n_ood).items() if v is not None}
    bench = load_benchmark(benchmark, seed=seed, preprocessing=preprocessing, **sizes,
                           **({"root": data_root} if data_root else {}))
    return bench, preprocessing, sizes


def _sha256(path) -> str:
    import pooch

    return pooch.file_hash(str(path), alg="sha256")


def prepare(benchmark: str = "mnist5k", model: str | None = None, width: int = 16, epochs: int = TrainRecipe.epochs,
            device: str = "cpu", batch_size: int = 256, seed: int = 0, data_root: str | None = None,
            checkpoint: str | None = None, results_dir: str | None = None, preprocessing: str | None = None,
            n_train: int | None = None, n_test: int | None = None, n_ood: int | None = None,
            num_workers: int | None = None, mahalanobis_n_val: int = 1000, train_seed: int | None = None,
            expansion: int | None = None, **checked) -> Run:
    """Check the parameters (``checked`` holds the notebook's others, e.g. ``percentile``), load the
    benchmark (``preprocessing``: None for its default; ``n_train``/``n_test``/``n_ood``: None for the
    benchmark's sizes, else smaller subsets for a smoke run), then the model — trained once and cached
    (``smallresnet``) or the paper's pretrained weights (``checkpoint``: your own file instead of the
    published one) — and build the method context (features cached; ``num_workers`` data-loading
    processes, None: :func:`ashlib.assets.features.default_num_workers`; ``mahalanobis_n_val``: validation
    images of the paper's Mahalanobis, :meth:`ashlib.evaluation.experiments.Context.mahalanobis_detector`).
    ``train_seed``: the seed of the small ResNet's training (initial weights, batch order, shifts); None:
    ``seed``, which also draws the data split and the OOD sets (:func:`seed_runs` varies it alone).
    ``expansion``: the small ResNet's 1x1 expansion head, its penultimate units (0: none; :func:`ashlib.assets.models.small_resnet`);
    None: :data:`ashlib.assets.models.DEFAULT_EXPANSION` for the small ResNets (the book's default network), none for the others."""
    from ashlib.assets.features import default_num_workers

    check_run_parameters(benchmark=benchmark, model=model, device=device, batch_size=batch_size,
                         seed=seed, preprocessing=preprocessing, **checked)
    if train_seed is not None:
        check_seed("train_seed", train_seed)
    train_seed = seed if train_seed is None else train_seed
    model = model_for(benchmark, model)
    expansion = default_expansion(model, expansion)
    torch.manual_seed(seed)
    bench, preprocessing, sizes = _load(benchmark, preprocessing, seed, data_root, n_train, n_test, n_ood)
    if model in TRAINABLE:
        net, path = load_or_train(**_training(model, bench, width, epochs, train_seed, expansion), device=device)
        weights = path.name
    else:
        net, path = pretrained_model(model, bench.num_classes, checkpoint=checkpoint, with_path=True)
        net = net.to(device)
        weights = f"{path.name}, sha256 {_sha256(path)[:12]}" + (", your checkpoint" if checkpoint else "")
    workers = default_num_workers() if num_workers is None else num_workers
    ctx = experiments.build_context(net, bench, baselines=experiments.baseline_settings(benchmark, model),
                                    batch_size=batch_size, device=device, num_workers=workers,
                                    mahalanobis_n_val=mahalanobis_n_val)
    settings = dict(benchmark=benchmark, preprocessing=preprocessing, model=model, width=width, epochs=epochs,
                    device=device, batch_size=batch_size, seed=seed, num_workers=workers, expansion=expansion, **sizes,
                    **({"train_seed": train_seed} if train_seed != seed else {}))
    return Run(bench, net, weights, ctx, settings, results_dir or os.environ.get("ASHLIB_RESULTS_DIR"))


def setup(params) -> Run:
    """The one call that sets a chapter up: :func:`prepare` with every one of the chapter's checked parameters
    (its ``Parameters``, :mod:`ashlib.book.chapters`) that :func:`prepare` takes by name; the others are the
    chapter's own."""
    takes = {name for name, p in inspect.signature(prepare).parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD}
    return prepare(**{name: value for name, value in params.as_dict().items() if name in takes})


def prepare_profile(profile: str, like: Run, data_root: str | None = None) -> Run:
    """The run a chapter would get under ``profile`` (its benchmark and preprocessing), with ``like``'s
    other settings (width, expansion, epochs, device, batch size, seed): a variant to check claims on. Missing
    data raise as in :func:`prepare` (e.g. :class:`ashlib.assets.data.DataNotFoundError` for fmnist)."""
    from ashlib.book.params import load_profile

    spec = load_profile(profile)["defaults"] or {}
    s = like.settings
    return prepare(benchmark=spec.get("benchmark", "mnist5k"), preprocessing=spec.get("preprocessing"),
                   width=s["width"], epochs=s["epochs"], device=s["device"], batch_size=s["batch_size"],
                   seed=s["seed"], data_root=data_root, expansion=s["expansion"])


#: Training seeds a chapter's main table and claims average over by default (:func:`default_train_seeds`).
TRAIN_SEEDS = 3


def default_train_seeds(model: str, seed: int) -> list[int]:
    """The training seeds of a run of ``model`` (a network's name, :data:`ashlib.assets.models.MODELS`) whose own
    seed is ``seed``: ``seed`` and the next ones, :data:`TRAIN_SEEDS` in all, for a network trained here;
    ``[seed]`` alone for a pretrained one."""
    return list(range(seed, seed + TRAIN_SEEDS)) if model in TRAINABLE else [seed]


def seed_runs(run: Run, train_seeds=None, data_root: str | None = None, progress: bool = True) -> list[Run]:
    """``run``'s network trained again with each of ``train_seeds`` (the recipe, the data and every other
    setting unchanged), one prepared run per seed, in order; ``run`` itself stands for its own seed.
    None: :func:`default_train_seeds`.
    The networks not cached yet train side by side first (:func:`train_networks`). Only the small
    ResNets are trained here; a pretrained network has one seed (its own), so asking for others is an error."""
    from ashlib._checks import ParameterError

    s = run.settings
    if train_seeds is None:
        train_seeds = default_train_seeds(s["model"], s.get("train_seed", s["seed"]))
    check_train_seeds("train_seeds", train_seeds)
    own = s.get("train_seed", s["seed"])
    if s["model"] not in TRAINABLE and list(train_seeds) != [own]:
        raise ParameterError(f"train_seeds={train_seeds!r} is not allowed for model={s['model']!r}: a pretrained "
                             f"network has one training seed; expected [{own}].")
    shared = dict(benchmark=s["benchmark"], model=s["model"], width=s["width"], expansion=s["expansion"], epochs=s["epochs"],
                  device=s["device"], batch_size=s["batch_size"], seed=s["seed"], data_root=data_root,
                  preprocessing=s["preprocessing"], num_workers=s["num_workers"],
                  **{k: s[k] for k in ("n_train", "n_test", "n_ood") if k in s})
    others = [t for t in train_seeds if t != own]
    train_networks([{**shared, "train_seed": t} for t in others], progress=progress)
    made = {t: prepare(**shared, train_seed=t, results_dir=run.results_dir,
                       mahalanobis_n_val=run.ctx.mahalanobis_n_val) for t in others}
    return [run if t == own else made[t] for t in train_seeds]
