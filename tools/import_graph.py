"""Draw ashlib's import graph: the science and the book machine, each module in its subpackage.

    python tools/import_graph.py [--out build/import_graph.dot] [--packages]

The graph is grimp's (the library import-linter checks the contracts in ``pyproject.toml`` with), so
an import inside a function counts as much as one at the top of a module. The script writes a
Graphviz DOT file with one cluster per subpackage: the science's (``ashlib`` itself with ``_checks``
and ``_threads``, ``ashlib.stats``, ``.assets``, ``.methods``, ``.evaluation``) inside a cluster
"science: ashlib", the book machine (``ashlib.book``, its subpackages nested inside it, and the entry
point ``ashlib.__main__``) in another; an edge per module import, or with ``--packages`` an edge per
pair of subpackages labelled with the number of module imports between them. If Graphviz's ``dot``
is on PATH it renders an SVG next to the DOT file.

It prints a summary: each subpackage's modules, the imports between subpackages, and whether any
import goes from the science to the book machine. There must be none: it exits 1, naming the
import, if there is one (2 on a wrong argument).
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grimp

ROOT_PACKAGE = "ashlib"
#: The book machine; every other module of ashlib is the science (the "science-without-book"
#: contract in pyproject.toml forbids the same modules).
BOOK = ("ashlib.book", "ashlib.__main__")
SCIENCE, BOOK_MACHINE = "science", "book"

Edge = tuple[str, str]  # (importer, imported)


def build(package: str = ROOT_PACKAGE) -> tuple[grimp.ImportGraph, list[Edge]]:
    """grimp's graph of ``package`` (internal imports only) and its direct imports, sorted."""
    graph = grimp.build_graph(package, include_external_packages=False)
    edges = sorted((importer, imported) for importer in graph.modules
                   for imported in graph.find_modules_directly_imported_by(importer))
    return graph, edges


def part(module: str) -> str:
    """``"book"`` for the book machine's modules, ``"science"`` for all others."""
    return BOOK_MACHINE if any(module == b or module.startswith(b + ".") for b in BOOK) else SCIENCE


def packages(modules, package: str = ROOT_PACKAGE) -> set[str]:
    """The modules that are packages (a folder with ``__init__.py``), found on disk, not imported."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: {package} is not an importable package")
    base = Path(next(iter(spec.submodule_search_locations))).parent
    return {m for m in modules if (base.joinpath(*m.split(".")) / "__init__.py").is_file()}


def cluster_of(module: str, pkgs: set[str]) -> str:
    """The subpackage a module is drawn in: itself if it is a package (its ``__init__``), else its
    parent package; a top-level module of the book machine (``ashlib.__main__``) is its own."""
    if module in pkgs:
        return module
    parent = module.rpartition(".")[0]
    if parent == ROOT_PACKAGE and part(module) == BOOK_MACHINE:
        return module
    return parent


def clusters(modules, pkgs: set[str]) -> dict[str, list[str]]:
    """Subpackage -> its modules (sorted), each module in exactly one."""
    out: dict[str, list[str]] = {}
    for module in sorted(modules):
        out.setdefault(cluster_of(module, pkgs), []).append(module)
    return out


def package_counts(edges: list[Edge], pkgs: set[str]) -> Counter:
    """(importing subpackage, imported subpackage) -> number of module imports between the two."""
    return Counter((a, b) for a, b in ((cluster_of(i, pkgs), cluster_of(j, pkgs)) for i, j in edges)
                   if a != b)


def science_to_book(edges: list[Edge]) -> list[Edge]:
    """The imports that go from the science to the book machine (there must be none)."""
    return [(i, j) for i, j in edges if part(i) == SCIENCE and part(j) == BOOK_MACHINE]


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(groups: dict[str, list[str]], edges: list[Edge], pkgs: set[str],
           by_package: bool = False) -> str:
    """Graphviz DOT: the science and the book machine as two clusters, a nested cluster per
    subpackage inside them; module imports as edges, or with ``by_package`` one node per subpackage
    and one edge per pair of subpackages, labelled with its number of imports."""
    lines = ["digraph ashlib {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica"];',
             '  edge [color="#555555", arrowsize=0.6];']
    tops = {SCIENCE: "science: ashlib", BOOK_MACHINE: "book machine: " + ", ".join(BOOK)}
    colours = {SCIENCE: "#e8f1fb", BOOK_MACHINE: "#fcefe3"}

    def nodes(group: str, indent: str) -> list[str]:
        if by_package:
            return [f"{indent}{_q(group)} [label={_q(group)}];"]
        return [f"{indent}{_q(m)} [label={_q(m if m in pkgs else m.rpartition('.')[2])}];"
                for m in groups[group]]

    def subtree(group: str, indent: str) -> list[str]:
        """A subpackage's cluster, with the subpackages below it nested inside."""
        children = [g for g in groups if g != group and g.rpartition(".")[0] == group and g in pkgs]
        out = [f"{indent}subgraph {_q('cluster_' + group)} {{",
               f'{indent}  label={_q(group)}; style="rounded,filled"; fillcolor="#ffffff99";']
        out += nodes(group, indent + "  ")
        for child in children:
            out += subtree(child, indent + "  ")
        return out + [f"{indent}}}"]

    for side in (SCIENCE, BOOK_MACHINE):
        lines += [f"  subgraph {_q('cluster_' + side)} {{",
                  f'    label={_q(tops[side])}; style="rounded,filled"; fillcolor={_q(colours[side])};'
                  ' fontsize=18;']
        for group in groups:
            if part(group) != side:
                continue
            parent = group.rpartition(".")[0]
            if group not in pkgs:                     # a top-level module: a node on its side
                lines += nodes(group, "    ")
            elif group == ROOT_PACKAGE:               # ashlib's own modules: nodes of "science: ashlib"
                lines += nodes(group, "    ")
            elif parent in groups and parent != ROOT_PACKAGE and part(parent) == side:
                continue                              # drawn nested inside its parent's cluster
            else:
                lines += subtree(group, "    ")
        lines.append("  }")
    if by_package:
        for (a, b), n in sorted(package_counts(edges, pkgs).items()):
            lines.append(f"  {_q(a)} -> {_q(b)} [label={_q(str(n))}];")
    else:
        for i, j in edges:
            lines.append(f"  {_q(i)} -> {_q(j)};")
    return "\n".join(lines + ["}"]) + "\n"


def summary(groups: dict[str, list[str]], edges: list[Edge], pkgs: set[str]) -> str:
    """Plain text: each subpackage's modules, the imports between subpackages, the science->book check."""
    lines = [f"{len(edges)} imports between {sum(map(len, groups.values()))} modules of {ROOT_PACKAGE} "
             "(function-level imports included)", ""]
    for side, title in ((SCIENCE, "The science"), (BOOK_MACHINE, "The book machine")):
        lines.append(f"{title}:")
        for group, modules in groups.items():
            if part(group) == side:
                names = ["__init__" if m in pkgs else m.rpartition(".")[2] for m in modules]
                lines.append(f"  {group} ({len(modules)}): {', '.join(names)}")
        lines.append("")
    counts = package_counts(edges, pkgs)
    width = max([len(a) for a, _ in counts] + [len("importer")])
    width2 = max([len(b) for _, b in counts] + [len("imported")])
    lines.append("Imports between subpackages (module imports):")
    lines.append(f"  {'importer':<{width}}  {'imported':<{width2}}  count")
    for (a, b), n in sorted(counts.items()):
        lines.append(f"  {a:<{width}}  {b:<{width2}}  {n:>5}")
    lines.append("")
    bad = science_to_book(edges)
    lines.append(f"Imports from the science into the book machine: {len(bad)}"
                 + (" (as it must be)" if not bad else " (there must be none)"))
    return "\n".join(lines)


def render_svg(dot_file: Path) -> str:
    """Render ``dot_file`` to an SVG beside it with Graphviz's ``dot``; a one-line note of what was done."""
    dot = shutil.which("dot")
    if dot is None:
        return ("No SVG: Graphviz's `dot` is not on PATH (install it with `apt-get install graphviz`, "
                f"then run this again, or `dot -Tsvg {dot_file} -o {dot_file.with_suffix('.svg')}`).")
    svg = dot_file.with_suffix(".svg")
    result = subprocess.run([dot, "-Tsvg", str(dot_file), "-o", str(svg)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: dot failed on {dot_file}: {result.stderr.strip()}")
    return f"Wrote {svg}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/import_graph.dot"),
                        help="the DOT file to write (its folder is created; default %(default)s)")
    parser.add_argument("--packages", action="store_true",
                        help="one node per subpackage, one edge per pair labelled with its import count")
    args = parser.parse_args(argv)
    if args.out.suffix != ".dot":
        parser.error(f"--out must name a .dot file (the SVG goes beside it), not {str(args.out)!r}")
    if args.out.is_dir():
        parser.error(f"--out {str(args.out)!r} is a folder; name a .dot file")

    graph, edges = build()
    pkgs = packages(graph.modules)
    groups = clusters(graph.modules, pkgs)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(to_dot(groups, edges, pkgs, by_package=args.packages), encoding="utf-8")
    except OSError as error:
        parser.error(f"cannot write --out {str(args.out)!r}: {error}")
    print(summary(groups, edges, pkgs))
    print(f"Wrote {args.out}" + (" (one edge per pair of subpackages)" if args.packages else
                                 " (one edge per module import)"))
    print(render_svg(args.out))
    bad = science_to_book(edges)
    for importer, imported in bad:
        for detail in graph.get_import_details(importer=importer, imported=imported) or [{}]:
            where = f" (line {detail['line_number']}: {detail['line_contents']})" if detail else ""
            print(f"error: the science imports the book machine: {importer} -> {imported}{where}",
                  file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
