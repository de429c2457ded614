"""The house rules of docs/architecture.md, checked on the code as it is.

- the import-linter contracts in pyproject.toml hold (layers, Qt only in the GUI, engines below
  stages, the GUI and batch never import the CLI's command modules);
- no import circle among the project's modules (a package face counts as a module, so a module
  behind a face that imports the face back is a circle);
- no module over 600 lines outside tests/.

Why a test and not only a lint step: `make test` is what CI runs, and a rule that is not run is
not kept.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("annotator", "propagation", "models", "resources")
MAX_LINES = 600


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm over the direct imports (iterative: the graph is a few hundred modules)."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    sys.path.insert(0, str(ROOT))
    try:
        return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))


def test_cycle_finder_finds_a_planted_circle() -> None:
    g = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        g.add_module(name)
    g.add_import(importer="a.x", imported="a.y")
    g.add_import(importer="a.y", imported="a.x")
    g.add_import(importer="a.z", imported="a.x")
    assert _strongly_connected(g) == [["a.x", "a.y"]]


def test_no_import_circle(graph: grimp.ImportGraph) -> None:
    circles = _strongly_connected(graph)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():  # the test extra installs it beside this interpreter
        lint = Path(shutil.which("lint-imports") or "lint-imports")
    run = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    broken = [line for line in run.stdout.splitlines() if "BROKEN" in line]
    assert run.returncode == 0, f"lint-imports: {broken or run.stdout[-2000:] + run.stderr[-2000:]}"


def test_no_module_over_600_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for pkg in (*PACKAGES, "bench") for p in (ROOT / pkg).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    long.update({"main.py": n} if (n := len((ROOT / "main.py").read_text().splitlines())) > MAX_LINES else {})
    assert not long, f"modules over {MAX_LINES} lines: {long}"
