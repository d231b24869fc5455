"""The import graph of ``pipeline/``, drawn from the source with ``ast``: no cycles, and
configuration below what it configures.

Every import counts: module level, inside functions, and under ``TYPE_CHECKING`` (a cycle
hidden in a function-level import is still a cycle in the design).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` under ``root/package``."""
    out = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(root: Path, package: str = "pipeline") -> dict[str, set[str]]:
    """Module → the modules of ``package`` it imports (``from pkg import submodule`` counts
    as the submodule; ``from pkg.mod import name`` as ``pkg.mod``)."""
    modules = module_files(root, package)

    def known(name: str) -> str | None:
        parts = name.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts) or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(known(a.name) for a in node.names if a.name.startswith(package))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*up, *([base] if base else [])])
                if base.split(".")[0] != package:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else known(base))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_cycle_finder_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.b import B\n")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\nB = 1\n"
    )
    (pkg / "c.py").write_text("from . import a\nfrom .sub.b import B\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.c"] == {"pkg.a", "pkg.sub.b"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]


def test_no_import_cycle_inside_pipeline() -> None:
    graph = import_graph(ROOT)
    assert len(graph) > 100  # the whole package was read
    assert cycles(graph) == []


# Configuration modules → the only pipeline modules they may import: settings and contracts,
# never the stages they configure.
CONFIGURATION = {
    "pipeline.config": set(),
    "pipeline.cpu_isa": set(),
    "pipeline.contracts": set(),
    "pipeline.match_config": {"pipeline.config", "pipeline.contracts"},
    "pipeline.score.risk.config": {"pipeline.config", "pipeline.contracts"},
    "pipeline.transcribe.model": {
        "pipeline.config",
        "pipeline.cpu_isa",
        "pipeline.transcribe.heap",
        "pipeline.transcribe.models",
    },
    "pipeline.transcribe.models": {"pipeline.contracts"},  # the embedded models, by name
    "pipeline.transcribe.decode_config": {
        "pipeline.config",
        "pipeline.contracts",  # the per-model decode table (decode_models.yaml)
        "pipeline.cpu_isa",
        "pipeline.transcribe.model",
    },
}


@pytest.mark.parametrize("module", sorted(CONFIGURATION))
def test_configuration_sits_below_what_it_configures(module: str) -> None:
    assert import_graph(ROOT)[module] <= CONFIGURATION[module]
