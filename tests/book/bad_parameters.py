"""Bad values for every parameter of every notebook, as a user would type them (tests and
benchmarks/refusal_time.py): each must be refused by ``python -m ashlib run`` before any kernel starts,
with one line naming the parameter."""
from __future__ import annotations

import ast
import json
from pathlib import Path

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))

#: A bad value for every parameter any notebook declares (a new parameter needs one here).
BAD = {
    "benchmark": "cifar", "model": "vgg", "width": 0, "epochs": 0, "device": "gpu", "batch_size": 0, "seed": -1,
    "fpr_convention": "tnr", "data_root": "", "checkpoint": "weights.pt", "results_dir": 5,
    "preprocessing": "whiten", "compare": ["gpu"], "percentile": 150, "sweep": [1, 101], "accuracy_sweep": "all",
    "distribution_set": "bogus", "distribution_percentiles": [], "placements": ["layer_9"], "percentiles": 90,
    "rand_percentiles": [-1], "seeds": [0, -2], "n_fit": 0, "nac_layers": ["avgpool", "layer_3"],
    "snapshot_epochs": [12], "shift_kind": "blur", "shift_amount": 400, "entropy_weights": [], "near_set": "bogus",
    "far_set": "letters", "mixture_fractions": [1.5], "mixture_n": 0, "candidates": ["raw", "tanh"],
    "second_benchmark": "mnist5k", "scale_factors": [1, -2], "n_scaled": 0, "n_train": 100, "n_test": 0,
    "n_ood": 0, "num_workers": -1, "nac_search_set": "bogus", "mahalanobis_n_val": 9,
    "sample_assignment": "homework", "timeout": 0, "vit_width": 30, "vit_epochs": 0, "histogram_set": "bogus",
    "train_seeds": [1, 1], "units": [128, 4], "more_seeds": "", "second_units": [],
    "expansion": -1, "network_candidates": [],
}

#: Values that are bad only together: notebook -> [(overrides, the parameter the refusal names)].
CROSS = {
    "05_nac": [({"n_fit": 100000, "nac_search_set": "letters"}, "nac_search_set"),
               ({"n_fit": 5}, "n_fit"),  # fewer than one image per class
               ({"shift_kind": "rotate", "shift_amount": 400}, "shift_amount"),
               ({"benchmark": "cifar10", "nac_search_set": "letters"}, "nac_search_set")],
    "03_global_vs_local": [({"benchmark": "cifar10", "train_seeds": [0, 1]}, "train_seeds")],
    "06_misp": [({"near_set": "faces", "far_set": "faces"}, "far_set")],
}

#: Past int64: torch and numpy overflow on these ("Overflow when unpacking long long").
OVERFLOW = 2**64


def defaults(notebook: str) -> dict:
    """The values the notebook's parameters cell assigns."""
    nb = json.loads((NOTEBOOKS[0].with_name(f"{notebook}.ipynb")).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    found: dict = {}
    exec("".join(cell["source"]), found)
    found.pop("__builtins__", None)
    return {k: v for k, v in found.items() if not k.startswith("_") and not callable(v)
            and not isinstance(v, type(ast))}


def bad_cases(notebook: str) -> list[tuple[dict, str]]:
    """Every bad value to try on ``notebook``: (overrides, the parameter the refusal must name). The
    table's value for each parameter; for each integer parameter, and each list of integers, one past
    int64; the cross-parameter cases."""
    cases = []
    for name, value in defaults(notebook).items():
        cases.append(({name: BAD[name]}, name))
        if isinstance(value, int) and not isinstance(value, bool):
            cases.append(({name: OVERFLOW}, name))
        elif isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            cases.append(({name: [*value[:-1], OVERFLOW]}, name))
    return cases + CROSS.get(notebook, [])
