"""Our spec/openapi.yaml has the official contract (one allowed deviation) and its own texts."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = SHARED / "reference" / "klanten-api-1.0.0"


@pytest.mark.skipif(not (SHARED / "tools" / "spec_contract.py").exists(), reason="../shared is not present")
def test_spec_has_the_official_contract_and_our_own_texts():
    result = subprocess.run(
        [sys.executable, str(SHARED / "tools" / "spec_contract.py"), str(ROOT / "spec" / "openapi.yaml"),
         str(REFERENCE / "openapi.yaml"), "--allow", str(REFERENCE / "allowed-deviations.txt")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 contract differences" in result.stdout
    assert "0 documentation texts copied" in result.stdout
