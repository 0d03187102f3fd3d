"""Make the firmware package importable: it lives beside the protocol, not in src/."""

import sys

from tests.conftest import ROOT

FIRMWARE = ROOT / "firmware_protocol" / "firmware"

if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))
