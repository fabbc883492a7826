"""The package layout shows the flow: one subpackage per step, imports only run downwards.

The import graph is read from the source (every `import`, also inside functions), so a
lazy import cannot hide a cycle or an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "scorerate"

#: the layers, lowest first; a module may import from its own layer and those before it.
#: (README.md, section Layout, shows the same order.)
LAYERS = [
    {"version", "checks", "cache", "registry", "seeding", "theory", "params"},  # shared
    {"engine", "densities", "estimators", "sampler"},  # the models a job runs
    {"config"},
    {"store"},
    {"metrics"},
    {"job"},
    {"study"},
    {"report"},
    {"commands", "cli", "__main__", "scorerate"},  # the front doors; the package's facade
]


#: the one import that runs upwards, lazily, and why: a plug-in names job parameters (rtol,
#: c_rho, ...) as its options, and check_variant checks their values against the job's
#: table, which itself lists the estimators' own options
ALLOWED_UP = {("scorerate.estimators", "scorerate.config.spec")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The scorerate modules that `name` imports, anywhere in its source."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            submodules = {f"{module}.{a.name}" for a in node.names} & known
            if submodules:  # `from . import seeding` imports a module, not the package
                found.update(submodules)
            elif module in known:
                found.add(module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
    found.discard(name)
    return {dep for dep in found if (name, dep) not in ALLOWED_UP}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _layer(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "scorerate"
    for i, layer in enumerate(LAYERS):
        if key in layer:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py")


def test_every_module_has_a_layer():
    for module in _graph():
        _layer(module)


def test_imports_only_run_downwards():
    upward = [f"{a} -> {b}" for a, deps in _graph().items() for b in deps
              if _layer(b) > _layer(a)]
    assert not upward, upward


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(
                    [*stack[stack.index(dep):], dep]))
            if dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_layer_check_can_fail():
    """The graph reader sees relative, lazy and package-level imports (else the test is empty)."""
    graph = _graph()
    assert "scorerate.store.variables" in graph["scorerate.job.metric_table"]
    assert "scorerate.estimators" in graph["scorerate.config.spec"]  # a lazy import
    assert "scorerate.seeding" in graph["scorerate.sampler"]  # `from . import seeding`
