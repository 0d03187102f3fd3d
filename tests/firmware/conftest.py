"""Make the firmware package importable: it lives beside the protocol, not in src/.

Only the package is registered, under its own name: the firmware folder itself must
not go on sys.path, where its code.py would shadow the standard library's `code`.
"""

import importlib.util
import sys

from tests.conftest import ROOT

FIRMWARE = ROOT / "firmware_protocol" / "firmware"

if "hipsense_fw" not in sys.modules:
    _pkg = FIRMWARE / "hipsense_fw"
    _spec = importlib.util.spec_from_file_location(
        "hipsense_fw", _pkg / "__init__.py", submodule_search_locations=[str(_pkg)]
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["hipsense_fw"] = _module
    _spec.loader.exec_module(_module)
