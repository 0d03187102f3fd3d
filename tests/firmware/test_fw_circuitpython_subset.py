"""The firmware uses only what CircuitPython has: imports, builtins, syntax.

The host tests run the firmware under CPython, which would happily run code that the
board cannot: this keeps the two the same. MicroPython's own compiler (mpy-cross, the
one CircuitPython's is forked from) compiles every file, which catches syntax it lacks.
"""

import ast
import builtins
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.firmware.conftest import FIRMWARE

PACKAGE = sorted((FIRMWARE / "hipsense_fw").glob("*.py"))
CODE = FIRMWARE / "code.py"

# What the board-independent package may import: modules of CircuitPython's core.
PACKAGE_IMPORTS = {"gc", "math", "micropython", "struct", "sys", "time"}
# What code.py may import: core modules the nRF52840 port builds in (checked against
# CircuitPython's py/circuitpy_mpconfig.mk and ports/nordic/mpconfigport.mk), the two
# libraries the README says to copy, and ours.
BOARD_IMPORTS = PACKAGE_IMPORTS | {
    "_bleio",
    "analogio",
    "board",
    "busio",
    "digitalio",
    "microcontroller",
    "supervisor",
    "adafruit_ble",
    "adafruit_lsm6ds",
    "hipsense_fw",
}
# Builtins CircuitPython has (its builtins module; no `open` on the sensor's code path
# is needed, so it is left out on purpose).
CIRCUITPYTHON_BUILTINS = {
    "abs", "all", "any", "bool", "bytearray", "bytes", "callable", "chr", "classmethod",
    "dict", "dir", "divmod", "enumerate", "filter", "float", "getattr", "hasattr", "hash",
    "hex", "id", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max",
    "memoryview", "min", "next", "object", "oct", "ord", "pow", "print", "property",
    "range", "repr", "reversed", "round", "set", "setattr", "slice", "sorted",
    "staticmethod", "str", "sum", "super", "tuple", "type", "zip",
    "ArithmeticError", "AssertionError", "AttributeError", "ConnectionError",
    "Exception", "ImportError", "IndexError", "KeyError", "MemoryError", "NameError",
    "NotImplementedError", "OSError", "OverflowError", "RuntimeError", "StopIteration",
    "TimeoutError", "TypeError", "ValueError", "ZeroDivisionError", "True", "False", "None",
}  # fmt: skip
DECORATORS = {"property", "staticmethod", "classmethod"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert node.module is not None
            names.add(node.module.split(".")[0])
    return names


def _builtins_used(tree: ast.Module) -> set[str]:
    defined = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.alias):
            defined.add((node.asname or node.name).split(".")[0])
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return {n for n in used - defined if hasattr(builtins, n)}


def _unsupported_syntax(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Match):
            found.append(f"match statement, {where}")
        if isinstance(node, ast.AnnAssign):
            found.append(f"variable annotation, {where}")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            every = args.posonlyargs + args.args + args.kwonlyargs
            every += [a for a in (args.vararg, args.kwarg) if a is not None]
            if node.returns is not None or any(a.annotation is not None for a in every):
                found.append(f"annotation in {node.name}, {where}")
            found += [
                f"decorator {ast.unparse(d)}, {where}"
                for d in node.decorator_list
                if not (isinstance(d, ast.Name) and d.id in DECORATORS)
            ]
        if isinstance(node, ast.ClassDef) and node.decorator_list:
            found.append(f"class decorator on {node.name}, {where}")
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            for a, b in itertools.pairwise(parts):
                if (
                    isinstance(a, ast.Constant)
                    and str(a.value).endswith("=")
                    and isinstance(b, ast.FormattedValue)
                ):
                    found.append(f"f-string '=' specifier, {where}")
        if isinstance(node, ast.TryStar):
            found.append(f"except*, {where}")
    return found


def test_the_checks_see_what_they_look_for() -> None:
    """The checkers themselves: each flags code that uses what CircuitPython lacks."""
    bad = ast.parse(
        "from dataclasses import dataclass\nimport typing\nx: int = 1\n"
        "@dataclass\nclass A:\n    pass\n"
        "def f(a: int) -> int:\n    match a:\n        case 1:\n            return f'{a=}'\n"
        "    return open(a)\n"
    )
    assert _imports(bad) == {"dataclasses", "typing"}
    assert [f.split(",")[0] for f in _unsupported_syntax(bad)] == [
        "variable annotation",
        "class decorator on A",
        "annotation in f",
        "match statement",
        "f-string '=' specifier",
    ]
    assert "open" in _builtins_used(bad) - CIRCUITPYTHON_BUILTINS


@pytest.mark.parametrize("path", PACKAGE, ids=lambda p: p.name)
def test_package_imports_only_circuitpython_core(path: Path) -> None:
    tree = _tree(path)
    assert _imports(tree) <= PACKAGE_IMPORTS, path.name
    assert _builtins_used(tree) <= CIRCUITPYTHON_BUILTINS, path.name
    assert _unsupported_syntax(tree) == [], path.name


def test_micropython_const_has_a_cpython_fallback() -> None:
    """`micropython` exists only on the board: its import must be guarded."""
    for path in PACKAGE:
        tree = _tree(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Try):
                guarded = any(
                    isinstance(h.type, ast.Name) and h.type.id == "ImportError"
                    for h in node.handlers
                )
                for inner in node.body:
                    if isinstance(inner, ast.ImportFrom) and inner.module == "micropython":
                        assert guarded, path.name
    assert "micropython" not in sys.modules


def test_board_code_imports_only_what_the_board_has() -> None:
    tree = _tree(CODE)
    assert _imports(tree) <= BOARD_IMPORTS
    assert _builtins_used(tree) <= CIRCUITPYTHON_BUILTINS
    assert _unsupported_syntax(tree) == []
    # The IMU is powered from a pin: the pin name is the board definition's.
    assert "board.IMU_PWR" in CODE.read_text()


def _mpy_cross() -> str:
    local = shutil.which("mpy-cross", path=str(Path(sys.executable).parent))
    return local or require_tool("mpy-cross")


@pytest.mark.parametrize("path", [*PACKAGE, CODE], ids=lambda p: p.name)
def test_micropython_compiler_accepts_the_file(path: Path, tmp_path: Path) -> None:
    out = tmp_path / (path.stem + ".mpy")
    proc = subprocess.run(
        [_mpy_cross(), "-o", str(out), str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
