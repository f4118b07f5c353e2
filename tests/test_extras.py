"""What runs in production imports nothing of the `stack` and `render` extras."""

from __future__ import annotations

import subprocess
import sys

EXTRAS = ("matplotlib", "moto", "aiosmtpd", "boto3")
PRODUCTION = (
    "obsctl.cli.main",
    "obsctl.exporter.runner",
    "obsctl.relay.runner",
    "obsctl.mixin.generate",
    "obsctl.validate",
)


def test_the_exporter_relay_generate_and_validate_import_without_the_extras() -> None:
    # A module set to None in sys.modules cannot be imported: as if it were not installed.
    code = "\n".join(
        [
            "import sys",
            *(f"sys.modules[{name!r}] = None" for name in EXTRAS),
            *(f"import {module}" for module in PRODUCTION),
        ]
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
