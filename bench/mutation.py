"""A small mutation run: plant one realistic bug at a time in a core module and see whether its tests fail.

    .venv/bin/python bench/mutation.py                  # every target, every mutant (long)
    .venv/bin/python bench/mutation.py --every 3        # one mutant in three (deterministic)
    .venv/bin/python bench/mutation.py --module cronjobs/runtime/runs.py --markdown bench/MUTATION.md

Why our own and not mutmut or cosmic-ray: both need their own project layout or session database and
rewrite imports; this is ~150 lines over `ast`, runs each mutant in a private copy of the checkout (so
the working tree is never touched, even after a kill), and its operators are the bugs issue 13 planted:
off-by-one comparisons, swapped arithmetic, `and`/`or`, a dropped `not`, constants moved by one,
`min`/`max` swapped. A mutant is "killed" when its tests fail (or hang past the timeout).
Not in CI's critical path: it takes minutes per module.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Each core module with the tests that mirror it (fast ones first: -x stops at the first failure).
TARGETS: dict[str, list[str]] = {
    "cronjobs/scheduling/schedule.py": ["tests/test_schedule.py", "tests/test_runs.py", "tests/test_scheduler.py"],
    "cronjobs/scheduling/cronspec.py": ["tests/test_cronspec.py", "tests/test_schedule.py"],
    "cronjobs/runtime/runs.py": ["tests/test_worker.py", "tests/test_queue.py", "tests/test_context.py",
                         "tests/test_runs.py", "tests/test_board.py"],
    "cronjobs/runtime/context.py": ["tests/test_context.py", "tests/test_queue.py", "tests/test_worker.py"],
    "cronjobs/host/config.py": ["tests/test_config.py"],
}

COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                 ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
               ast.Mod: ast.FloorDiv}


@dataclass
class Mutant:
    index: int
    line: int
    description: str


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes inside type annotations: mutating those changes nothing at run time."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(node.returns)
            args = node.args
            annotations += [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
            annotations += [args.vararg.annotation if args.vararg else None,
                            args.kwarg.annotation if args.kwarg else None]
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            if annotation is not None:
                skip.update(id(sub) for sub in ast.walk(annotation))
    return skip


def sites(tree: ast.AST) -> list[tuple[ast.AST, str, str]]:
    """(node, operator, description) for every place a mutant can be planted, in source order."""
    skip = _annotation_nodes(tree)
    found: list[tuple[ast.AST, str, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                if type(op) in COMPARE_SWAPS:
                    swapped = COMPARE_SWAPS[type(op)].__name__
                    found.append((node, f"compare:{position}", f"{type(op).__name__} -> {swapped}"))
        elif isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAPS:
            if isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
                continue  # "%" formatting, string concatenation
            found.append((node, "binop", f"{type(node.op).__name__} -> {BINOP_SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.BoolOp):
            found.append((node, "boolop", "and -> or" if isinstance(node.op, ast.And) else "or -> and"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.append((node, "not", "drop not"))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and not isinstance(node.value, bool):
            found.append((node, "constant", f"{node.value!r} -> {node.value + 1!r}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
            found.append((node, "minmax", f"{node.func.id} -> {'max' if node.func.id == 'min' else 'min'}"))
    found.sort(key=lambda site: (getattr(site[0], "lineno", 0), getattr(site[0], "col_offset", 0)))
    return found


def mutate(source: str, index: int) -> tuple[str, Mutant]:
    tree = ast.parse(source)
    node, operator, description = sites(tree)[index]
    if operator.startswith("compare:"):
        position = int(operator.split(":")[1])
        node.ops[position] = COMPARE_SWAPS[type(node.ops[position])]()  # type: ignore[attr-defined]
    elif operator == "binop":
        node.op = BINOP_SWAPS[type(node.op)]()  # type: ignore[attr-defined]
    elif operator == "boolop":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()  # type: ignore[attr-defined]
    elif operator == "not":
        replacement = copy.copy(node.operand)  # type: ignore[attr-defined]
        node.__class__ = ast.Call  # keep the node in place: `bool(operand)` instead of `not operand`
        node.func, node.args, node.keywords = ast.Name("bool", ast.Load()), [replacement], []  # type: ignore
    elif operator == "constant":
        node.value = node.value + 1  # type: ignore[attr-defined]
    elif operator == "minmax":
        node.func.id = "max" if node.func.id == "min" else "min"  # type: ignore[attr-defined]
    ast.fix_missing_locations(tree)
    return ast.unparse(tree), Mutant(index, getattr(node, "lineno", 0), description)


def run_tests(workdir: Path, tests: list[str], timeout: float) -> bool:
    """True when the tests pass (the mutant survived)."""
    env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                               "-o", "addopts=", *tests], cwd=workdir, env=env, capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", action="append", help="a key of TARGETS (default: all)")
    parser.add_argument("--every", type=int, default=1, help="run one mutant in N")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--markdown", help="append the result table to this file")
    options = parser.parse_args()
    modules = options.module or list(TARGETS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="run-cron-mutation-") as temp:
        workdir = Path(temp) / "checkout"
        shutil.copytree(ROOT, workdir, ignore=shutil.ignore_patterns(".venv*", ".git", "__pycache__", "artifacts",
                                                                     ".ci", "*.sqlite3*"))
        for module in modules:
            original = (ROOT / module).read_text()
            tests = TARGETS[module]
            baseline = ast.unparse(ast.parse(original))
            (workdir / module).write_text(baseline)
            if not run_tests(workdir, tests, options.timeout):
                print(f"{module}: the tests fail on the unmutated module; skipped", file=sys.stderr)
                continue
            count = len(sites(ast.parse(original)))
            chosen = range(0, count, options.every)
            survivors: list[Mutant] = []
            began = time.monotonic()
            for index in chosen:
                source, mutant = mutate(original, index)
                (workdir / module).write_text(source)
                if run_tests(workdir, tests, options.timeout):
                    survivors.append(mutant)
                    print(f"  survived {module}:{mutant.line} {mutant.description}", flush=True)
            (workdir / module).write_text(original)
            killed = len(chosen) - len(survivors)
            score = 100.0 * killed / len(chosen) if chosen else 100.0
            rows.append((module, len(chosen), killed, score, time.monotonic() - began, survivors))
            print(f"{module}: {killed}/{len(chosen)} killed ({score:.0f} %)", flush=True)
    table = ["| module | mutants | killed | score | minutes |", "|---|---:|---:|---:|---:|"]
    table += [f"| {m} | {n} | {k} | {s:.0f} % | {t / 60:.1f} |" for m, n, k, s, t, _ in rows]
    lines = ["", *table, ""]
    for module, _, _, _, _, survivors in rows:
        lines += [f"- {module}:{mutant.line} {mutant.description}" for mutant in survivors]
    print("\n".join(lines))
    if options.markdown:
        with open(options.markdown, "a") as handle:
            handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
