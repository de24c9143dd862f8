"""The package layout's import rules, checked from the source so that a new import cannot quietly break them.

* no import cycle between the modules of ``models/``, ``pipeline/`` and ``serving/``: the graph is read
  from the AST with every import, module-level and inside functions (a function-level import hides a
  cycle only until that function runs);
* the serving wings (``serving/export``, ``serving/server``, ``serving/proxy``) import nothing from each
  other; ``serving/layout.py`` is what they share, and it imports no wing;
* ``models/`` imports neither ``pipeline/`` nor ``serving/``;
* every module of each serving wing imports in a fresh interpreter, and the proxy's app (and the layout
  module) without TensorFlow.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The repository's folders -> their import names (setup.py's package_dir).
PACKAGES = {"models": "tfxformers.models", "pipeline": "tfxformers.pipeline", "serving": "tfxformers.serving"}
WINGS = ("tfxformers.serving.export", "tfxformers.serving.server", "tfxformers.serving.proxy")
SHARED = ("tfxformers.serving", "tfxformers.serving.layout")  # what every wing may import from serving/


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _imported(module: str, path: Path) -> set[str]:
    """The project modules ``module`` imports anywhere in its source (``from P import name`` counts as P.name
    when that is a module, else as P)."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    found = set()
    for name in names:
        # `import a.b.c` of a non-module attribute path: the longest prefix that is a module.
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


GRAPH = {module: _imported(module, path) for module, path in MODULES.items()}


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan): the modules caught in cycles."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(start):
        # Iterative, so a deep import chain cannot hit the recursion limit.
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(components)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle per strongly connected component."""
    return [_one_cycle(graph, set(component)) for component in _components(graph)]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    return sorted(component)


def _edges_into(source_prefix: str, target_prefixes: tuple[str, ...]) -> list[str]:
    def within(name, prefix):
        return name == prefix or name.startswith(prefix + ".")

    return [f"{module} imports {target}" for module, targets in sorted(GRAPH.items()) if within(module, source_prefix)
            for target in sorted(targets) if any(within(target, p) for p in target_prefixes)]


def test_the_graph_is_read_from_every_import():
    # The checks below mean something only if the reader sees imports at module level and inside functions.
    assert "tfxformers.serving.server.manager" in GRAPH["tfxformers.serving.server.server"]
    assert "tfxformers.serving.server.grpc_api" in GRAPH["tfxformers.serving.server.server"]  # in start()
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles_in_models_pipeline_serving():
    components = _components(GRAPH)
    assert not components, "import cycles:\n" + "\n".join(
        f"  {' -> '.join(_one_cycle(GRAPH, set(c)))}" + (f" (and more among {', '.join(c)})" if len(c) > 2 else "")
        for c in components)


def test_serving_wings_import_no_other_wing():
    crossing = []
    for wing in WINGS:
        crossing += _edges_into(wing, tuple(w for w in WINGS if w != wing))
    crossing += _edges_into("tfxformers.serving.layout", WINGS)
    assert not crossing, "\n".join(crossing)
    # Everything under serving/ is a wing or the shared modules.
    loose = [m for m in MODULES if m.startswith("tfxformers.serving")
             and m not in SHARED and not any(m == w or m.startswith(w + ".") for w in WINGS)]
    assert not loose, f"serving modules outside the wings and layout.py: {loose}"


def test_models_import_neither_pipeline_nor_serving():
    crossing = _edges_into("tfxformers.models", ("tfxformers.pipeline", "tfxformers.serving"))
    assert not crossing, "\n".join(crossing)


_IMPORT_WING = """
import importlib, sys
failed = []
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
    if name in ("tfxformers.serving.proxy.app", "tfxformers.serving.layout") and "tensorflow" in sys.modules:
        failed.append(f"importing {name} loaded tensorflow")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_wing_module_imports_in_a_fresh_interpreter():
    processes = {}
    for wing in WINGS:
        names = [m for m, p in MODULES.items() if (m == wing or m.startswith(wing + ".")) and p.name != "__main__.py"]
        if wing.endswith(".proxy"):
            # The TensorFlow-free imports first: later modules (make_descriptors) may import TensorFlow.
            names = ["tfxformers.serving.layout", "tfxformers.serving.proxy.app"] + names
        assert len(names) > 3, (wing, names)
        processes[wing] = subprocess.Popen([sys.executable, "-c", _IMPORT_WING, wing, *names], cwd=ROOT,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failures = []
    for wing, process in processes.items():
        out, _ = process.communicate(timeout=240)
        if process.returncode != 0:
            failures.append(f"{wing}:\n{out}")
    assert not failures, "\n".join(failures)
