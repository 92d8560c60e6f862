"""The import graph points one way: the layers of docs/architecture.md, no cycles, no peers in the library.

Every module of the installed packages (``xrender`` and ``xrender.recipes``, found through
pyproject's ``package-dir``) is parsed with `ast`; every import counts, also those inside functions.
A module may import its own layer and the layers below it; the recipe packages of an
*independent* layer may not import each other. An import under ``if TYPE_CHECKING:`` never runs,
so it counts for the layers but not for cycles.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Layer:
    """One layer: the modules in it (each a module or a package with everything in it, the longest
    match wins), and whether its packages are independent of each other."""

    name: str
    modules: tuple[str, ...]
    independent: bool = False


#: The layers, bottom first: a module may import from its own layer and the ones above it in this list.
#: Every module or subpackage directly in xrender/ or recipes/ has a row of its own (checked below).
LAYERS = (
    Layer("base", ("xrender._checks", "xrender._registry")),
    Layer("geometry", ("xrender.geometry",)),
    Layer(
        "volume/io",
        (
            "xrender",  # the package itself: `xrender.Volume`
            "xrender.attenuation",
            "xrender.augment",
            "xrender.datasets",
            "xrender.image",
            "xrender.info",
            "xrender.io",
            "xrender.landmarks",
            "xrender.phantom",
            "xrender.preprocess",
            "xrender.subject",
            "xrender.volume",
        ),
    ),
    Layer("render", ("xrender.render", "xrender.datasets.simulated", "xrender.physics")),
    Layer("similarity", ("xrender.similarity",)),
    Layer("registration/metrics", ("xrender.registration", "xrender.metrics", "xrender.plot")),
    Layer(
        "recipes: shared",
        ("xrender.recipes", "xrender.recipes._config", "xrender.recipes.distributed", "xrender.recipes.method_names"),
    ),
    Layer(
        "recipes",
        ("xrender.recipes.training", "xrender.recipes.registration", "xrender.recipes.regression"),
        independent=True,
    ),
    Layer("recipes: applications", ("xrender.recipes.demo",)),
    Layer("command line", ("xrender.cli",)),
)

#: Imports that break the rules, each ``(source, target): reason``; none today. An entry that no
#: longer matches an import fails the test, so none is left behind.
ALLOWED: dict[tuple[str, str], str] = {}

#: Peer libraries: only benchmarks/ imports them.
PEERS = ("diffdrr", "nanodrr")


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to a module of the graph (or an outside top-level name)."""

    source: str
    target: str
    line: int
    type_checking: bool

    def where(self) -> str:
        return f"{_file(self.source).relative_to(ROOT)}:{self.line}"


@cache
def _package_dirs() -> dict[str, Path]:
    """pyproject's package-dir: installed package name → its folder in the repository."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    return {name: ROOT / folder for name, folder in table["package-dir"].items()}


@cache
def _modules() -> dict[str, Path]:
    """Every module of the installed packages by its import name (``pkg/__init__.py`` → ``pkg``)."""
    roots = sorted(_package_dirs().items(), key=lambda item: len(item[0]))
    modules: dict[str, Path] = {}
    for package, folder in roots:
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def _file(module: str) -> Path:
    return _modules()[module]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            found.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return found


def _resolve(name: str) -> str:
    """The longest module of the graph that ``name`` starts with, else its top-level name."""
    modules = _modules()
    candidate = name
    while candidate not in modules and "." in candidate:
        candidate = candidate.rsplit(".", 1)[0]
    return candidate if candidate in modules else name.split(".")[0]


@cache
def _imports(module: str) -> tuple[Import, ...]:
    path = _file(module)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    guarded = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[tuple[str, int], Import] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            # `from P import n` imports the module P.n when there is one, else names of P
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in _modules() else base for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target != module:
                found[target, node.lineno] = Import(module, target, node.lineno, id(node) in guarded)
    return tuple(found.values())


def _all_imports() -> list[Import]:
    return [imp for module in _modules() for imp in _imports(module)]


def _entry(module: str) -> tuple[int, str]:
    """The layer index and the table entry (the longest matching one) of ``module``."""
    matches = [
        (len(entry), index, entry)
        for index, layer in enumerate(LAYERS)
        for entry in layer.modules
        if module == entry or module.startswith(entry + ".")
    ]
    if not matches:
        raise AssertionError(f"{module} ({_file(module).relative_to(ROOT)}) has no layer: add it to LAYERS")
    _, index, entry = max(matches)
    return index, entry


def _violation(imp: Import) -> str | None:
    source, target = _entry(imp.source), _entry(imp.target)
    if target[0] > source[0]:
        return "upward"
    if target[0] == source[0] and LAYERS[source[0]].independent and source[1] != target[1]:
        return f"between the independent packages of layer {LAYERS[source[0]].name!r}"
    return None


def _describe(imp: Import, what: str) -> str:
    source_layer, target_layer = LAYERS[_entry(imp.source)[0]].name, LAYERS[_entry(imp.target)[0]].name
    return f"{imp.where()}: {imp.source} ({source_layer}) imports {imp.target} ({target_layer}): {what}"


def test_every_module_has_a_layer():
    roots = set(_package_dirs())
    unclassified = [
        f"{module} ({_file(module).relative_to(ROOT)})"
        for module in _modules()
        if module not in roots and _entry(module)[1] in roots
    ]
    assert not unclassified, "give these their own row in LAYERS (tests/test_layers.py):\n" + "\n".join(unclassified)
    listed = {entry for layer in LAYERS for entry in layer.modules}
    stale = sorted(e for e in listed if not any(m == e or m.startswith(e + ".") for m in _modules()))
    assert not stale, f"LAYERS lists modules that do not exist: {stale}"


def test_imports_point_down_the_layers():
    problems = [
        _describe(imp, what)
        for imp in _all_imports()
        if imp.target in _modules()
        and (imp.source, imp.target) not in ALLOWED
        and (what := _violation(imp)) is not None
    ]
    order = " <- ".join(layer.name for layer in LAYERS)
    assert not problems, f"imports against the layers ({order}):\n" + "\n".join(problems)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def _shortest_cycle(start: str, edges: dict[str, set[str]], members: set[str]) -> list[str]:
    """A shortest path ``start -> … -> start`` inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(edges.get(node, set()) & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"{start} is on no cycle")


def test_no_import_cycles():
    edges: dict[str, set[str]] = {}
    for imp in _all_imports():
        if imp.target in _modules() and not imp.type_checking and (imp.source, imp.target) not in ALLOWED:
            edges.setdefault(imp.source, set()).add(imp.target)
    messages = []
    for component in _cycles(edges):
        members = set(component)
        loop = " -> ".join(_shortest_cycle(component[0], edges, members))
        inside = [
            f"  {imp.where()}: {imp.source} imports {imp.target}"
            for module in component
            for imp in _imports(module)
            if imp.target in members and not imp.type_checking
        ]
        messages.append(f"cycle between {', '.join(component)}, e.g. {loop}; its imports:\n" + "\n".join(inside))
    assert not messages, "\n".join(messages)


def test_allowed_exceptions_are_still_needed():
    edges = {(imp.source, imp.target) for imp in _all_imports()}
    stale = [
        f"{source} -> {target} ({why})" for (source, target), why in ALLOWED.items() if (source, target) not in edges
    ]
    assert not stale, "remove these entries from ALLOWED, the imports are gone:\n" + "\n".join(stale)


def test_only_the_command_line_and_the_recipes_import_the_recipes():
    problems = [
        f"{imp.where()}: {imp.source} imports {imp.target}"
        for imp in _all_imports()
        if imp.target.startswith("xrender.recipes") and not imp.source.startswith(("xrender.recipes", "xrender.cli"))
    ]
    assert not problems, "the library must not import xrender.recipes:\n" + "\n".join(problems)


def test_nothing_installed_imports_the_peer_libraries():
    problems = [f"{imp.where()}: {imp.source} imports {imp.target}" for imp in _all_imports() if imp.target in PEERS]
    assert not problems, f"only benchmarks/ may import {', '.join(PEERS)}:\n" + "\n".join(problems)


BARE_RECIPES = re.compile(r"^\s*(?:from|import)\s+recipes\b", re.MULTILINE)


def test_recipes_are_imported_as_xrender_recipes():
    """The recipes are installed as ``xrender.recipes``; a bare ``recipes`` works only from the repository root."""
    files = [p for pattern in ("*.py", "*.md") for p in ROOT.rglob(pattern)]
    skip = {ROOT / name for name in (".venv", ".venv-ci", "venv", "site", "build", "dist")}
    problems = [
        str(path.relative_to(ROOT))
        for path in sorted(files)
        if not skip.intersection(path.parents) and BARE_RECIPES.search(path.read_text(encoding="utf-8"))
    ]
    assert not problems, "import xrender.recipes..., not recipes...:\n" + "\n".join(problems)


def test_pyproject_lists_every_package():
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    packages = {module for module, path in _modules().items() if path.name == "__init__.py"}
    assert set(table["packages"]) == packages, (
        f"pyproject.toml [tool.setuptools] packages: missing {sorted(packages - set(table['packages']))}, "
        f"not a package {sorted(set(table['packages']) - packages)}"
    )


@pytest.mark.parametrize("module", ["xrender", "xrender.render", "xrender.registration", "xrender.recipes.training"])
def test_importing_the_library_leaves_the_environment_alone(module):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = f"import os, sys; import {module}; print('OMP_WAIT_POLICY' in os.environ)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "False"


def test_the_command_line_sets_openmp_waiting_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = (
        "import sys, xrender; assert 'torch' not in sys.modules, 'import xrender loaded torch'; "
        "import os, xrender.cli; print(os.environ['OMP_WAIT_POLICY'])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "PASSIVE"
