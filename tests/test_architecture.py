"""The shape of the package: no import cycles, a comparison side free of the proxy's dependencies, small modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "shadowdiff"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """shadowdiff modules that `name` imports anywhere in its code (lazy imports too)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:  # `from pkg import module` names a module; `from module import thing` does not
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


def test_no_import_cycles() -> None:
    """No shadowdiff module imports, directly or through others, a module that imports it back."""
    graph = {name: _imports(name) for name in MODULES}
    cycles = []

    def visit(name: str, path: list[str], done: set[str]) -> None:
        for nxt in graph[name]:
            if nxt in path:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in done:
                visit(nxt, [*path, nxt], done)
        done.add(name)

    done: set[str] = set()
    for name in graph:
        if name not in done:
            visit(name, [name], done)
    assert cycles == []


def test_compare_depends_on_the_model_alone() -> None:
    """Nothing in compare/ imports a shadowdiff module outside compare/ but the model; the model imports none."""
    for name in MODULES:
        if name.startswith("shadowdiff.compare"):
            outside = {m for m in _imports(name) if not m.startswith("shadowdiff.compare") and m != "shadowdiff.model"}
            assert outside == set(), name
    assert _imports("shadowdiff.model") == set()


@pytest.mark.parametrize("module", ["shadowdiff.model", "shadowdiff.compare", "shadowdiff.experiment.worker_main"])
def test_the_comparison_side_loads_no_proxy_dependencies(module: str) -> None:
    """Importing the model, the comparison engine or the comparison worker's main loads no aiohttp, no yaml and
    no config: what the comparison worker process runs stays small."""
    probe = (
        f"import sys, {module}; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'yaml', 'prometheus_client') "
        "or m.startswith('shadowdiff.config'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small_or_say_why(name: str) -> None:
    """A module over 400 lines says in its docstring why it is one piece."""
    path = MODULES[name]
    lines = len(path.read_text().splitlines())
    if lines > MAX_LINES:
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "one piece" in docstring, f"{name}: {lines} lines"
