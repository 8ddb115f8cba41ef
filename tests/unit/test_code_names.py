"""Names in operator/modelmon explain themselves (issue 15, point 5), derived from the source.

Each test walks the AST of every module of the package and lists every offender, so a
failure names the file, the line and the name to fix:

- no type name is defined twice in the package (classes, module-level or nested, and
  module-level CapWords aliases such as ``Profile = A | B``), so an import or a traceback
  names one thing;
- no one- or two-letter name (nor one spelled in one-letter words, ``q_f``) is bound
  outside a comprehension or a lambda: assignment and walrus targets, parameters, function
  and class names, TypeVars, loop targets, ``with ... as``, ``except ... as`` and import
  aliases;
- no module-level UPPER_CASE constant is defined and then read nowhere in operator/, tests/,
  benchmarks/ or hack/.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "modelmon"
READERS = ("operator", "tests", "benchmarks", "hack")

# Short names kept because the convention is universal, each with its reason:
SHORT_NAME_ALLOWLIST = frozenset(
    {
        "_",  # the value is deliberately ignored (unpacking, loop counters)
        "np",  # `import numpy as np`, the alias numpy's own documentation uses
        "pd",  # `import pandas as pd`, the alias pandas's own documentation uses
    }
)
SHORTEST_NAME = 3
CONSTANT = re.compile(r"_?[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
CAP_WORDS = re.compile(r"_?[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"


def _target_names(target: ast.AST) -> Iterator[ast.Name]:
    """The plain names an assignment target binds (tuples and starred unpacked; attributes
    and subscripts bind no new name)."""
    if isinstance(target, ast.Name):
        yield target
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _target_names(element)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def _bound_names(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """Every (node, name) a module binds outside comprehensions and lambdas."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Lambda | ast.comprehension):
            continue  # tiny by construction: their names live for one expression
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node, node.name
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            for argument in (
                *arguments.posonlyargs,
                *arguments.args,
                *arguments.kwonlyargs,
                *(a for a in (arguments.vararg, arguments.kwarg) if a is not None),
            ):
                yield argument, argument.arg
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr | ast.For
                        | ast.AsyncFor):
            targets = [node.target]
        elif isinstance(node, ast.With | ast.AsyncWith):
            targets = [item.optional_vars for item in node.items if item.optional_vars]
        for target in targets:
            for name in _target_names(target):
                yield name, name.id
        if isinstance(node, ast.ExceptHandler) and node.name:
            yield node, node.name
        if isinstance(node, ast.Import | ast.ImportFrom):
            # a module's own name (`import re`) is not ours to choose; an alias is
            for alias in node.names:
                if alias.asname:
                    yield node, alias.asname
        stack.extend(ast.iter_child_nodes(node))


def _module_level_names(tree: ast.Module) -> Iterator[ast.Name]:
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                yield from _target_names(target)
        elif isinstance(statement, ast.AnnAssign):
            yield from _target_names(statement.target)


def _type_definitions() -> dict[str, list[str]]:
    places: dict[str, list[str]] = defaultdict(list)
    for path in _modules():
        tree = _parse(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                places[node.name].append(_where(path, node))
        for name in _module_level_names(tree):
            if CAP_WORDS.fullmatch(name.id):
                places[name.id].append(_where(path, name))
    return places


def test_no_type_name_is_defined_twice_in_the_package() -> None:
    twice = {
        name: sorted(places) for name, places in _type_definitions().items() if len(places) > 1
    }
    assert not twice, "type names defined more than once:\n" + "\n".join(
        f"  {name}: {', '.join(places)}" for name, places in sorted(twice.items())
    )


def _is_short(name: str) -> bool:
    """One or two letters, or only one-letter words (``q_f``, ``d_f``)."""
    words = [word for word in name.split("_") if word]
    return len(name) < SHORTEST_NAME or all(len(word) == 1 for word in words)


def short_names() -> list[str]:
    """Every short name bound in the package, as 'path:line name'."""
    found: list[str] = []
    for path in _modules():
        bound = sorted(_bound_names(_parse(path)), key=lambda pair: getattr(pair[0], "lineno", 0))
        for node, name in bound:
            entry = f"{_where(path, node)} {name}"
            short = _is_short(name) and name not in SHORT_NAME_ALLOWLIST
            if short and entry not in found:
                found.append(entry)
    return found


def test_no_one_or_two_letter_names_outside_comprehensions_and_lambdas() -> None:
    found = short_names()
    assert not found, "one- or two-letter names:\n" + "\n".join(f"  {entry}" for entry in found)


def _read_names() -> set[str]:
    """Every identifier read somewhere in the code that can use the package's constants."""
    read: set[str] = set()
    for folder in READERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(_parse(path)):
                if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
                    read.add(node.id)
                elif isinstance(node, ast.Attribute):
                    read.add(node.attr)
                elif isinstance(node, ast.ImportFrom):
                    # `from m import NAME as other` reads NAME under another name
                    read.update(alias.name for alias in node.names if alias.asname)
    return read


def test_every_module_level_constant_is_read_somewhere() -> None:
    read = _read_names()
    dead = []
    for path in _modules():
        for name in _module_level_names(_parse(path)):
            if CONSTANT.fullmatch(name.id) and name.id not in read:
                dead.append(f"{_where(path, name)} {name.id}")
    assert not dead, "constants defined and never read:\n" + "\n".join(f"  {d}" for d in dead)
