"""The motion core's settings: named, few, documented; no bare tuning numbers in rules."""

import ast
import dataclasses
import inspect
import itertools
from pathlib import Path

import pytest

from hipsense.motion import (
    ReferenceSettings,
    SegmenterSettings,
    _detect,
    _measure,
    _reference,
    _reps,
    _targets,
)

STAGES = [_reference, _detect, _measure, _reps, _targets]
# Numbers that are structure, not tuning: none, one, the other sign.
STRUCTURAL = {0, 1, -1}


def _numbers_in(node: ast.AST) -> list[tuple[int, float]]:
    """Numeric literals, except structural ones, indices and slices, and exponents."""
    skip: set[int] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Subscript):
            skip |= {id(n) for n in ast.walk(sub.slice)}
        elif isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Pow):
            skip |= {id(n) for n in ast.walk(sub.right)}
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, int | float):
            value = sub.value
            if not isinstance(value, bool) and value not in STRUCTURAL and id(sub) not in skip:
                found.append((sub.lineno, value))
    return found


def _conditions(tree: ast.AST) -> list[ast.AST]:
    """Every comparison, and every test of an if, while or conditional expression."""
    out: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            out.append(node)
        elif isinstance(node, ast.If | ast.While | ast.IfExp):
            out.append(node.test)
    return out


@pytest.mark.parametrize("module", STAGES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_no_bare_numbers_in_conditions(module: object) -> None:
    source = Path(inspect.getfile(module)).read_text(encoding="utf-8")  # type: ignore[arg-type]
    tree = ast.parse(source)
    bare = sorted({hit for cond in _conditions(tree) for hit in _numbers_in(cond)})
    assert bare == [], f"bare numbers in conditions (line, value): {bare}"


def test_at_most_30_named_settings_each_with_a_unit_or_a_ratio_and_a_reason() -> None:
    fields = [*dataclasses.fields(ReferenceSettings), *dataclasses.fields(SegmenterSettings)]
    assert len(fields) <= 30, [f.name for f in fields]
    units = ("_s", "_hz", "_deg", "_dps", "_ratio", "_max", "_min", "_reps", "_agreement")
    for f in fields:
        assert f.name.endswith(units), f"{f.name}: a name that carries its unit"
    # Each field is followed by its docstring in the source: the reason for its value.
    tree = ast.parse(Path(inspect.getfile(_reference.ReferenceSettings)).read_text("utf-8"))
    documented = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for a, b in itertools.pairwise(cls.body):
            named = isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
            if named and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
                assert isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
                documented.add(a.target.id)
    assert {f.name for f in fields} <= documented, {f.name for f in fields} - documented
