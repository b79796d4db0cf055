"""The package's architecture: the imports between ``ashlib/*.py`` (module-level and function-level,
read with ``ast``) form no cycle and go only to the same or a lower layer of :data:`ashlib.LAYERS`,
and every module has a layer. The checker itself is tested on small made-up packages, so these tests
cannot pass by finding nothing."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import ashlib

PACKAGE = Path(ashlib.__file__).parent
INIT = "__init__"


# ------------------------------------------------------------------------------------------ checker


def imports(source: str, modules) -> dict[str, int]:
    """The package modules ``source`` imports, anywhere in it, each with the first line that does:
    ``import ashlib[.x]``, ``from ashlib[.x] import y`` and the relative forms. ``from ashlib import x``
    is module ``x`` when ``x`` is one of ``modules``, else a name of ``__init__``."""
    found: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        found[name] = min(line, found.get(name, line))

    for node in ast.walk(ast.parse(source)):
        # a module named in full in a string (the registry's MODULES, imported by importlib) is imported too
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("ashlib."):
            name = node.value.removeprefix("ashlib.")
            if name in modules:
                add(name, node.lineno)
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "ashlib":
                    add(parts[1] if len(parts) > 1 else INIT, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.split(".")[0] == "ashlib":
                parts = node.module.split(".")[1:]
            elif node.level == 1:  # inside the package: from . import x, from .x import y
                parts = node.module.split(".") if node.module else []
            else:
                continue
            if parts:
                add(parts[0], node.lineno)
            else:
                for alias in node.names:
                    add(alias.name if alias.name in modules else INIT, node.lineno)
    return found


def import_graph(sources: dict[str, str]) -> dict[str, dict[str, int]]:
    """Module -> {imported module: first line}, self-imports left out."""
    modules = set(sources)
    graph = {}
    for name, source in sources.items():
        found = imports(source, modules)
        found.pop(name, None)
        graph[name] = found
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The modules of each import cycle (strongly connected components of more than one module), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def describe_cycle(graph: dict[str, dict[str, int]], members: list[str]) -> str:
    """``a, b: a.py:12 imports b; b.py:3 imports a``."""
    edges = [f"{m}.py:{line} imports {t}" for m in members for t, line in sorted(graph[m].items()) if t in members]
    return f"{', '.join(members)}: {'; '.join(edges)}"


def layer_problems(graph: dict[str, dict[str, int]], layers: dict[str, tuple[str, ...]]) -> list[str]:
    """Modules with no layer (or more than one), imports of a module with no layer, imports upwards."""
    level: dict[str, int] = {}
    problems = []
    for i, (layer, members) in enumerate(layers.items()):
        for m in members:
            if m in level:
                problems.append(f"{m} is listed in two layers")
            level.setdefault(m, i)
    names = list(layers)
    for m in sorted(graph):
        if m not in level:
            problems.append(f"{m} has no layer: add it to ashlib.LAYERS")
            continue
        for target, line in sorted(graph[m].items()):
            if target not in level:
                problems.append(f"{m}.py:{line} imports {target}, which has no layer")
            elif level[target] > level[m]:
                problems.append(f"{m}.py:{line} imports {target}: {names[level[m]]} -> {names[level[target]]} "
                                "is upwards")
    return problems


def package_sources() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(PACKAGE.glob("*.py"))}


# --------------------------------------------------------------------------------------- the package


def test_every_module_has_one_layer():
    unassigned = sorted(set(package_sources()) - {m for members in ashlib.LAYERS.values() for m in members})
    assert not unassigned, f"modules with no layer in ashlib.LAYERS: {unassigned}"
    listed = [m for members in ashlib.LAYERS.values() for m in members]
    assert len(listed) == len(set(listed)), f"listed twice: {sorted({m for m in listed if listed.count(m) > 1})}"


def test_no_import_cycle():
    graph = import_graph(package_sources())
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe_cycle(graph, c) for c in found)


def test_imports_go_to_the_same_or_a_lower_layer():
    problems = layer_problems(import_graph(package_sources()), ashlib.LAYERS)
    assert not problems, "\n".join(problems)


def test_the_docstring_lists_the_layers():
    """``ashlib``'s docstring names each layer, in order, with exactly the modules of :data:`ashlib.LAYERS`."""
    items = re.split(r"(?m)^\d+\. ", ashlib.__doc__)[1:]
    assert len(items) == len(ashlib.LAYERS)
    for item, (layer, members) in zip(items, ashlib.LAYERS.items()):
        assert item.startswith(f"{layer}:"), item
        assert re.findall(r"``(\w+)``", item) == list(members), layer


def test_importing_ashlib_loads_no_module_of_it_but_the_checks_and_the_thread_settings():
    code = ("import sys, ashlib; print(sorted(m for m in sys.modules if m.startswith('ashlib.')));"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["['ashlib._checks', 'ashlib._threads']", "False"]


# --------------------------------------------------------------------------------------- the checker


def test_the_checker_finds_imports_of_every_form():
    source = ("import os\nimport ashlib\nimport ashlib.a as aa\nfrom ashlib import b, helper\n"
              "from ashlib.c.sub import x\nfrom . import d\nfrom .e import y\nfrom .. import elsewhere\n"
              "def f():\n    from ashlib.g import z\n"
              "class K:\n    def m(self):\n        import ashlib.h\n"
              "MODULES = ('ashlib.i', 'see ashlib.j', 'ashlib.unknown')\n")
    found = imports(source, {"a", "b", "c", "d", "e", "g", "h", "i", "j"})
    assert found == {INIT: 2, "a": 3, "b": 4, "c": 5, "d": 6, "e": 7, "g": 10, "h": 13, "i": 14}


def test_the_checker_reports_cycles_upward_imports_and_modules_without_a_layer():
    sources = {
        "low": "from ashlib import cache_dir\ndef f():\n    from ashlib.high import g\n",
        "high": "import ashlib.low\n",
        "mid": "from ashlib import top\n",
        "top": "from ashlib import mid\nimport ashlib.low\n",
        "stray": "from ashlib.low import f\n",
        "base": "from ashlib.ghost import x\n",
    }
    layers = {"bottom": (INIT, "low", "base"), "middle": ("high", "mid"), "upper": ("top", "unwritten")}
    graph = import_graph(sources)
    found = cycles(graph)
    assert found == [["high", "low"], ["mid", "top"]]
    assert describe_cycle(graph, found[0]) == "high, low: high.py:1 imports low; low.py:3 imports high"
    problems = layer_problems(graph, layers)
    assert problems == [
        "base.py:1 imports ghost, which has no layer",
        "low.py:3 imports high: bottom -> middle is upwards",
        "mid.py:1 imports top: middle -> upper is upwards",
        "stray has no layer: add it to ashlib.LAYERS",
    ]
    # the same package without the offending imports passes ('unwritten' is listed but absent: fine)
    clean = {**sources, "low": "from ashlib import cache_dir\n", "mid": "", "base": ""}
    del clean["stray"]
    assert cycles(import_graph(clean)) == [] and layer_problems(import_graph(clean), layers) == []
    assert layer_problems(import_graph(clean), {**layers, "bottom": (INIT, "low", "base", "high")}) == [
        "high is listed in two layers"]



def test_every_third_party_module_ashlib_imports_is_a_declared_dependency():
    """The package's imports (at any depth in its modules) are the standard library, ashlib itself, or a
    distribution pinned in pyproject.toml (its dependencies or an extra): filelock and threadpoolctl
    were used without being declared."""
    import ast
    import importlib.metadata as md
    import re
    import sys
    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")
                for req in [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]}
    providers = md.packages_distributions()  # top-level module -> distributions
    missing = {}
    for path in sorted((root / "ashlib").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top == "ashlib" or top in sys.stdlib_module_names:
                    continue
                dists = {d.lower().replace("_", "-") for d in providers.get(top, [])}
                if not dists & declared:
                    missing.setdefault(top, []).append(path.name)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
