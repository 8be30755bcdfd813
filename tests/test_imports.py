"""No import cycles in genlab: statically (every import, lazy ones inside functions included) and in
practice (every module imports first thing in a fresh interpreter, in random orders)."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "genlab"


def module_imports() -> dict[str, set[str]]:
    """genlab module name → the genlab modules it imports anywhere in its file."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("genlab", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("genlab"):
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)  # `from genlab import registry`
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("genlab"))
        graph[name] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return [*stack[stack.index(d):], d]
            if not state.get(d) and (found := visit(d, stack)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if not state.get(m) and (found := visit(m, [])):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_genlab_modules():
    graph = module_imports()
    assert len(graph) > 40
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_module_imports_in_a_fresh_interpreter_in_random_order(seed):
    names = sorted(set(module_imports()) - {"genlab.__main__"})  # __main__ runs the command line
    random.Random(seed).shuffle(names)
    code = "import importlib, sys\nfor name in sys.stdin.read().split():\n    importlib.import_module(name)\n"
    proc = subprocess.run([sys.executable, "-c", code], input="\n".join(names), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_config_is_built_first_thing_in_a_fresh_process():
    code = ("from genlab.config import config_from_dict\n"
            "c = config_from_dict({'model': {'family': 'vae'}})\n"
            "print(type(c.model).__name__, c.model.latent_dim)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["VAEConfig", "2"]
