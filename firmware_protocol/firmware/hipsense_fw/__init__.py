"""hipsense reference firmware: everything that does not touch the board.

Written in the subset of Python that CircuitPython runs (struct, math and nothing from
the CPython standard library beyond them), so the same files run on the sensor and
under the hipsense test suite. `code.py` beside this package is the board part.
"""
