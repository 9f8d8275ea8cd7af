"""Start-up stays lean (issue 16): importing aezoo and its CLI pulls in none of the optional heavy
packages; figures, search, compression and the explorer import theirs when they run."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("matplotlib", "sklearn", "scipy", "faiss", "constriction", "fastapi", "uvicorn", "tensorboard", "webdataset", "skimage", "pandas")


def test_import_and_cli_parse_pull_in_no_optional_package():
    # make_parser imports every command module, as `aezoo train ...` does before it trains
    code = f"import sys, aezoo, aezoo.cli; aezoo.cli.make_parser(); print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported at start-up: {out}"
