"""The package's layering, from its modules' own imports (function-level ones included): no import circle, and no
module importing from a layer above its own (repronets/__init__.py's docstring names the layers)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "repronets"
PAPERS = ("baselines", "tau", "continuous", "sss", "jeidnn")
LAYERS = {"core": 0, "runs": 1, "report": 2, **dict.fromkeys(PAPERS, 3), "build": 4}


def module_name(path: Path) -> str:
    parts = ["repronets", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def imports_of(name: str) -> set[str]:
    """The repronets modules ``name`` imports anywhere in its source (a package's __init__ for its own names)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("repronets")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base.startswith("repronets"):
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    found.discard(name)
    unknown = found - set(MODULES)
    assert not unknown, f"{name} imports modules that do not exist: {sorted(unknown)}"
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
    return found


def test_the_graph_is_read_from_the_sources():
    assert "repronets.core.train" in GRAPH["repronets.runs.results"]  # a function-level import is an edge too
    assert "repronets.build.publish" in GRAPH["repronets.build.site"]
    assert len(GRAPH) > 60


def test_no_import_circle():
    assert cycles(GRAPH) == []


def test_the_circle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [
        f"{name} (layer {layer(name)}) imports {other} (layer {layer(other)})"
        for name, targets in GRAPH.items()
        for other in targets
        if layer(name) is not None and layer(other) is not None and layer(other) > layer(name)
    ]
    assert not upward, "\n".join(upward)


def test_a_paper_imports_no_other_paper():
    crossing = [
        f"{name} imports {other}"
        for name, targets in GRAPH.items()
        for other in targets
        if name.split(".")[1:2] != other.split(".")[1:2]
        and set(name.split(".")[1:2] + other.split(".")[1:2]) <= set(PAPERS)
    ]
    assert not crossing, "\n".join(crossing)


def test_the_package_folder_holds_the_layers_not_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py"], top
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)
