"""What the service loads: heavy libraries stay out of a live gateway."""

import subprocess
import sys


def test_service_does_not_import_scipy() -> None:
    # scipy.signal alone costs about 75 MB of resident memory (it loads stats, optimize,
    # sparse, ...); the memory target for a gateway with one sensor is 120 MB.
    code = (
        "import sys\n"
        "import hipsense.cli, hipsense.daemon, hipsense.motion, hipsense_sim\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'scipy', 'pandas'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
