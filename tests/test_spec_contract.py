"""Our spec documents have the official contracts and their own texts.

spec/openapi.yaml (Klanten) has one allowed deviation; spec/contactmomenten.yaml has none.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
TOOL = SHARED / "tools" / "spec_contract.py"
REFERENCE = SHARED / "reference" / "klanten-api-1.0.0"
CM_REFERENCE = SHARED / "reference" / "contactmomenten-api-1.0.0"


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not TOOL.exists(), reason="../shared is not present")
def test_spec_has_the_official_contract_and_our_own_texts():
    result = run_tool(ROOT / "spec" / "openapi.yaml", REFERENCE / "openapi.yaml",
                      "--allow", REFERENCE / "allowed-deviations.txt")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 contract differences" in result.stdout
    assert "0 documentation texts copied" in result.stdout


@pytest.mark.skipif(not (TOOL.exists() and (CM_REFERENCE / "openapi.yaml").exists()),
                    reason="../shared is not present")
def test_contactmomenten_spec_has_the_official_contract_and_our_own_texts():
    result = run_tool(ROOT / "spec" / "contactmomenten.yaml", CM_REFERENCE / "openapi.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 contract differences" in result.stdout
    assert "0 documentation texts copied" in result.stdout
