"""Rewriting the store's SQL (written for SQLite) for a server engine: one function per difference.

The callers keep one set of statements; each engine module lists the rewrites it needs. Results are
cached per statement, so the hot path pays for a rewrite once per process.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

_INDEXED_BY = re.compile(r"\s+INDEXED BY \w+")
_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def strip_indexed_by(sql: str) -> str:
    """`INDEXED BY` is SQLite's planner hint; the server planners need none."""
    return _INDEXED_BY.sub("", sql)


def placeholders(sql: str) -> str:
    """`?` becomes `%s` (the drivers' format style), so a literal `%` must be doubled first."""
    return sql.replace("%", "%%").replace("?", "%s")


def scalar_min_max(sql: str, null_strict: bool = False) -> str:
    """SQLite's MAX(a, b) and MIN(a, b) with several arguments are GREATEST and LEAST elsewhere.

    SQLite's (and MariaDB's) are NULL when an argument is NULL; PostgreSQL's ignore NULLs, so with
    `null_strict` a NULL argument gives NULL explicitly. That repeats each argument, so none may be a
    bound parameter there (it would count twice, and `? IS NULL` has no type): ValueError.
    """
    out, i = [], 0
    upper = sql.upper()
    while True:
        found = [pos for pos in (upper.find("MAX(", i), upper.find("MIN(", i)) if pos >= 0]
        if not found:
            out.append(sql[i:])
            return "".join(out)
        start = min(found)
        if start and (sql[start - 1].isalnum() or sql[start - 1] == "_"):
            out.append(sql[i:start + 4])
            i = start + 4
            continue
        depth, j, commas = 0, start + 3, []
        while j < len(sql):
            if sql[j] == "(":
                depth += 1
            elif sql[j] == ")":
                depth -= 1
                if depth == 0:
                    break
            elif sql[j] == "," and depth == 1:
                commas.append(j)
            j += 1
        name = sql[start:start + 3].upper()
        if not commas:
            out.append(sql[i:start] + f"{name}({scalar_min_max(sql[start + 4:j], null_strict)})")
        else:
            bounds = [start + 3, *commas, j]
            args = [scalar_min_max(sql[a + 1:b].strip(), null_strict) for a, b in zip(bounds, bounds[1:])]
            call = f"{'GREATEST' if name == 'MAX' else 'LEAST'}({', '.join(args)})"
            if null_strict:
                if any("?" in arg for arg in args):
                    raise ValueError(f"no bound parameter in a MIN or MAX of several values here: {sql}")
                call = f"(CASE WHEN {' OR '.join(f'({a}) IS NULL' for a in args)} THEN NULL ELSE {call} END)"
            out.append(sql[i:start] + call)
        i = j + 1


def named_to_positional(sql: str, params: Any) -> tuple[str, Sequence[Any]]:
    """`:name` parameters with a dict become `?` with a tuple, in the order they appear."""
    names = _NAMED.findall(sql)
    return _NAMED.sub("?", sql), tuple(params[name] for name in names)
