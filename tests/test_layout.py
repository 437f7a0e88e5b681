"""The import graph points one way: the rules each subpackage's __init__ docstring states, and no cycles."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"sage_dspy": REPO / "sage_dspy", "sage_dspy.programs": REPO / "programs",
         "sage_dspy.optimizers": REPO / "optimizers"}

# The package root's shared leaves, which any part may import: answer normalisation, the offline environment
# defaults, SageError, the JSONL reader, the one redaction of credentials every writer goes through, the run's
# breaker, which the search backend and the LMs report their infrastructure failures to, and the one rule for
# where a command may write (outputs.py), and the one bind of a server's port (ports.py).
SHARED = {"answers", "breaker", "environment", "errors", "jsonl", "outputs", "ports", "redact"}
# What each part may import from sage_dspy, besides itself and SHARED (a prefix allows everything under it).
ALLOWED = {
    "method": {"lm", "search"},
    "lm": {"offline"},
    "search": set(),
    "offline": {"search.passages"},
    "programs": {"method", "lm", "search"},
    "optimizers": {"method"},
}
FORBIDDEN = {"runs": {"cli", "tracking", "scale"}, "tracking": {"cli"}, "dataset": {"cli", "tracking"},
             "scale": {"cli", "tracking"}}


def modules() -> dict[str, Path]:
    found = {}
    for package, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.split(".")[0] == "sage_dspy"}


def part_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module a dotted import name refers to (`from a.b import c` may name module a.b.c or symbol c)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {module: {target for name in imports_of(path) if (target := resolve(name, modules())) not in (None, module)}
         for module, path in modules().items()}


def test_the_graph_covers_the_package():
    assert {"sage_dspy.method.loop", "sage_dspy.runs.generate", "sage_dspy.programs.sage"} <= set(GRAPH)
    # the scan sees real edges (a control: an empty graph would pass every rule below)
    assert "sage_dspy.method.solver" in GRAPH["sage_dspy.programs.sage"]
    assert "sage_dspy.search.passages" in GRAPH["sage_dspy.offline.prompt"]


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_a_part_imports_only_what_its_docstring_allows(part):
    wrong = {}
    for module, targets in GRAPH.items():
        if part_of(module) != part:
            continue
        bad = {t for t in targets if part_of(t) != part and not any(
            t.removeprefix("sage_dspy.") == rule or t.removeprefix("sage_dspy.").startswith(rule + ".")
            for rule in ALLOWED[part] | SHARED)}
        if bad:
            wrong[module] = sorted(bad)
    assert wrong == {}


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_nothing_imports_upward(part):
    wrong = {module: sorted(t for t in targets if part_of(t) in FORBIDDEN[part])
             for module, targets in GRAPH.items() if part_of(module) == part}
    assert {module: targets for module, targets in wrong.items() if targets} == {}


def test_no_cycles():
    done, path = set(), []

    def visit(module):
        if module in path:
            raise AssertionError(" -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for target in sorted(GRAPH.get(module, ())):
            if target != "sage_dspy" and not module.startswith(target + "."):  # a package's own __init__
                visit(target)
        path.pop()
        done.add(module)

    for module in sorted(GRAPH):
        visit(module)


def test_every_subpackage_says_what_it_may_import():
    for init in (REPO / "sage_dspy").glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "import" in doc.lower() and 1 <= len(doc.splitlines()) <= 4, init
