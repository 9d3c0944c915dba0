"""The package's shape: no import circles between its modules, lazy imports included."""

from __future__ import annotations

import ast

from conftest import ROOT

PACKAGE = ROOT / "cronjobs"


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return found


def imports(name: str, tree: ast.Module, known: set[str], is_package: bool) -> set[str]:
    """The package's own modules that `name` imports anywhere in it (functions included)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in known else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    # a module may use its own package's __init__ (the public names): that is not a circle
    return {t for t in found if t in known and t != name and not name.startswith(t + ".")}


def test_no_module_imports_one_that_imports_it_back():
    trees = modules()
    known = set(trees)
    packages = {p for p in known if (PACKAGE.parent / p.replace(".", "/") / "__init__.py").exists()}
    graph = {name: imports(name, tree, known, name in packages) for name, tree in trees.items()}
    circles = set()
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.add(" -> ".join(path + (start,)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + (nxt,)))
    assert sorted(circles) == []
