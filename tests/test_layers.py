"""The package's imports point one way: engine <- API <- tabular <- sweeps <- cli, with the bottom modules (errors,
utils, files, version) under all of them, and no circle anywhere. Every import is read with ast, at the top of
a module and inside functions alike, so a lazy import cannot hide a climb."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nbtrain"
BOTTOM = {"nbtrain.errors", "nbtrain.utils", "nbtrain.files", "nbtrain.version", "nbtrain.text"}
FLOORS = ["bottom", "engine", "api", "tabular", "sweeps", "cli"]


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def floor(module):
    """The layer a module belongs to; the package itself (its public names) sits just under the command line."""
    if module in BOTTOM:
        return "bottom"
    if module == "nbtrain":
        return "sweeps"
    if module == "nbtrain.__main__":  # `python -m nbtrain` runs the command line
        return "cli"
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in ("engine", "tabular", "sweeps", "cli")):
        return {"engine": "engine", "tabular": "tabular", "sweeps": "sweeps", "cli": "cli"}[parts[1]]
    return "api"


def imports(module):
    """The nbtrain modules `module` imports, anywhere in its code."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "nbtrain")
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.split(".")[0] != "nbtrain":
                continue
            for alias in node.names:  # `from . import layers` imports the module nbtrain.layers
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports(module) for module in MODULES}


def test_every_import_points_down_or_sideways():
    upward = [f"{MODULES[a].relative_to(PACKAGE.parent)} ({floor(a)}) imports {MODULES[b].relative_to(PACKAGE.parent)} "
              f"({floor(b)})" for a, targets in GRAPH.items() for b in targets
              if FLOORS.index(floor(b)) > FLOORS.index(floor(a))]
    assert not upward, "imports that climb a layer:\n" + "\n".join(upward)


def test_no_import_circle():
    def find_cycle():
        state, stack = {}, []

        def visit(node):
            state[node] = "open"
            stack.append(node)
            for nxt in sorted(GRAPH[node]):
                if state.get(nxt) == "open":
                    return stack[stack.index(nxt):] + [nxt]
                if nxt not in state and (cycle := visit(nxt)):
                    return cycle
            state[node] = "done"
            stack.pop()
            return None
        for node in sorted(GRAPH):
            if node not in state and (cycle := visit(node)):
                return cycle
        return None
    cycle = find_cycle()
    assert cycle is None, "an import circle: " + " -> ".join(str(MODULES[m].relative_to(PACKAGE.parent))
                                                             for m in cycle)


def test_the_walk_sees_lazy_and_relative_imports():
    """The test itself can fail: cli's lazy import of tabular.fit and model's relative imports are found."""
    assert "nbtrain.tabular.fit" in GRAPH["nbtrain.cli.fit"]
    assert {"nbtrain.saving", "nbtrain.callbacks", "nbtrain.engine"} <= GRAPH["nbtrain.model"]
    assert floor("nbtrain.engine.cpu") == "engine" and floor("nbtrain.arrays") == "api"
