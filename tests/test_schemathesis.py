"""schemathesis against the running server: every operation, all default checks, fixed seed, real token."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings

from conftest import token

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "conformance"))
import st_hooks  # noqa: E402,F401  (registers the hooks)

os.environ["KLANTEN_TOKEN"] = token()      # a real ZGW JWT of the all-scopes test client (no expiry)
CONFIG = schemathesis.config.SchemathesisConfig.from_path(ROOT / "conformance" / "schemathesis.toml")
schema = schemathesis.openapi.from_path(ROOT / "spec" / "openapi.yaml", config=CONFIG)
# see conformance/schemathesis.toml: 403, not 401, for a missing Authorization header (the standard)
EXCLUDED = [schemathesis.checks.missing_required_header] if hasattr(schemathesis.checks, "missing_required_header") \
    else []
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture
def st_env(server):
    os.environ["KLANTEN_ST_SUBJECT_URL"] = f"{server.url}/api/v1/schema/openapi.yaml"   # answers 200 (kla-002)
    return f"{server.url}/api/v1"


@schema.parametrize()
@seed(20261128)
@settings(max_examples=30, **SETTINGS)
def test_operation_conforms(case, st_env):
    case.call_and_validate(base_url=st_env, excluded_checks=EXCLUDED)


def test_stateful_sequences(st_env):
    schema.config.update(base_url=st_env)
    machine = schema.as_state_machine()
    st_hooks.CALLS.clear()
    machine.run(settings=settings(max_examples=25, stateful_step_count=8, **SETTINGS))
    # the explicit links made the sequences write: create -> read / update / patch / delete / audit trail
    done = {(method, path, status) for (method, path, status) in st_hooks.CALLS}
    for expected in [("POST", "/klanten", 201), ("GET", "/klanten/{uuid}", 200), ("PUT", "/klanten/{uuid}", 200),
                     ("PATCH", "/klanten/{uuid}", 200), ("DELETE", "/klanten/{uuid}", 204),
                     ("GET", "/klanten/{klant_uuid}/audittrail", 200)]:
        assert expected in done, (expected, sorted(st_hooks.CALLS.items()))
