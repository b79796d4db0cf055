"""tools/import_graph.py on the real package: every module of ashlib in exactly one cluster, the
clusters are the subpackages, no import from the science into the book machine; and the check does
report a science-to-book import when one is there."""
from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import ashlib

ROOT = Path(__file__).parents[1]
PACKAGE = Path(ashlib.__file__).parent
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
ig = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ig)

GRAPH, EDGES = ig.build()
PKGS = ig.packages(GRAPH.modules)
GROUPS = ig.clusters(GRAPH.modules, PKGS)


def _modules_on_disk() -> set[str]:
    names = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if all(p.isidentifier() for p in parts) and (path.parent / "__init__.py").is_file():
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_is_in_exactly_one_cluster():
    drawn = [m for modules in GROUPS.values() for m in modules]
    assert len(drawn) == len(set(drawn))
    assert set(drawn) == set(GRAPH.modules) == _modules_on_disk()
    dot = ig.to_dot(GROUPS, EDGES, PKGS)
    for module in drawn:  # one node line each in the DOT file
        assert sum(line.strip().startswith(f'"{module}" [') for line in dot.splitlines()) == 1, module


def test_the_clusters_are_the_subpackages():
    on_disk = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert PKGS == on_disk
    # the subpackages, and the book machine's top-level modules (the entry point ashlib.__main__)
    assert set(GROUPS) == PKGS | {"ashlib.__main__"}
    assert {"ashlib", "ashlib.stats", "ashlib.assets", "ashlib.methods", "ashlib.evaluation",
            "ashlib.book"} <= set(GROUPS)
    for group, modules in GROUPS.items():
        assert all(m == group or m.rpartition(".")[0] == group for m in modules), group
    dot = ig.to_dot(GROUPS, EDGES, PKGS)
    for group in PKGS - {"ashlib"}:
        assert f'subgraph "cluster_{group}" {{' in dot
    assert 'label="science: ashlib"' in dot and 'subgraph "cluster_book" {' in dot
    packages_dot = ig.to_dot(GROUPS, EDGES, PKGS, by_package=True)
    counts = ig.package_counts(EDGES, PKGS)
    assert counts[("ashlib.book", "ashlib.methods")] > 0
    assert f'"ashlib.book" -> "ashlib.methods" [label="{counts["ashlib.book", "ashlib.methods"]}"];' \
        in packages_dot


def test_the_book_machine_is_what_the_contract_keeps_the_science_from():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    forbidden = next(c for c in contracts if c["id"] == "science-without-book")["forbidden_modules"]
    assert set(ig.BOOK) == {m for m in forbidden if m.startswith("ashlib")}


def test_no_import_goes_from_the_science_to_the_book():
    assert ig.science_to_book(EDGES) == []
    assert "Imports from the science into the book machine: 0 (as it must be)" \
        in ig.summary(GROUPS, EDGES, PKGS)
    assert ("ashlib.__main__", "ashlib.book.cli") in EDGES  # the book importing the science is fine


def test_a_science_to_book_import_is_reported():
    bad = ("ashlib.methods.scores", "ashlib.book.plots")
    edges = EDGES + [bad, ("ashlib.stats.metrics", "ashlib.__main__")]
    assert ig.science_to_book(edges) == [bad, ("ashlib.stats.metrics", "ashlib.__main__")]
    assert "Imports from the science into the book machine: 2 (there must be none)" \
        in ig.summary(GROUPS, edges, PKGS)


def test_main_writes_the_dot_file_and_exits_1_on_a_science_to_book_import(tmp_path, monkeypatch, capsys):
    out = tmp_path / "new folder" / "graph.dot"
    monkeypatch.setattr(ig.shutil, "which", lambda name: None)  # as without Graphviz
    assert ig.main(["--out", str(out)]) == 0
    assert out.read_text().startswith("digraph ashlib {")
    assert "apt-get install graphviz" in capsys.readouterr().out
    bad = ("ashlib.methods.scores", "ashlib.book.plots")
    monkeypatch.setattr(ig, "build", lambda: (GRAPH, EDGES + [bad]))
    assert ig.main(["--out", str(out), "--packages"]) == 1
    assert "ashlib.methods.scores -> ashlib.book.plots" in capsys.readouterr().err
