"""schemathesis over the Contactmomenten API 1.0 document (spec/contactmomenten.yaml) against a running server:
every operation, all default checks, stateful sequences through explicit links, a few fixed seeds, a real token.

The server gets a Zaken API stand-in on loopback (a configured service, KLANTEN_SERVICES_CONFIG): every zaak URL
under it is a zaak (cm-005), and its `zaakcontactmomenten` holds a relation until the server has asked for it
once, so the check on create finds the mirror relation and the check on delete finds it gone (cm-006 stays on).
The same seeds as tests/test_schemathesis.py (KLANTEN_ST_SEEDS); to search further, locally:
    KLANTEN_ST_SEEDS="1 2 3" KLANTEN_ST_EXAMPLES=300 pytest tests/test_schemathesis_contactmomenten.py
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, seed, settings
from pytest_httpserver import HTTPServer
from werkzeug import Response

from cm_hulp import CM_BASE
from conftest import start_server, token

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "conformance"))
import st_hooks  # noqa: E402  (registers the hooks, the Contactmomenten ones included)

SEEDS = [int(s) for s in os.environ.get("KLANTEN_ST_SEEDS", "20261128 771204 4711").split()]
EXAMPLES = int(os.environ.get("KLANTEN_ST_EXAMPLES", "30"))
# the sequences are cheap here (about 4 s for 50) and need more steps to reach every link (audit trail included)
STATEFUL_EXAMPLES = int(os.environ.get("KLANTEN_ST_STATEFUL_EXAMPLES", "50"))

os.environ["KLANTEN_TOKEN"] = token()
CONFIG = schemathesis.config.SchemathesisConfig.from_path(ROOT / "conformance" / "schemathesis.toml")
schema = schemathesis.openapi.from_path(ROOT / "spec" / "contactmomenten.yaml", config=CONFIG)
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
ZRC_SECRET = "zrc-secret-for-the-schemathesis-contactmomenten-run"
ZAAK = {"bronorganisatie": "000000000", "zaaktype": "https://ztc.example.com/zaaktypen/1",
        "verantwoordelijkeOrganisatie": "000000000", "startdatum": "2020-01-01"}


class ZakenStandIn:
    """Zaken API on loopback: /zaken/{anything} is a zaak; a (zaak, contactmoment) relation exists until the
    first lookup of that pair has answered it (the create check), and is gone afterwards (the delete check)."""

    def __init__(self):
        self.server = HTTPServer(host="127.0.0.1")
        self.gevraagd: set[tuple[str, str]] = set()
        self.lock = threading.Lock()
        self.server.expect_request(re.compile(r"/zaken/api/v1/zaken/.+")).respond_with_handler(self._zaak)
        self.server.expect_request("/zaken/api/v1/zaakcontactmomenten").respond_with_handler(self._lookup)
        self.server.start()

    def _zaak(self, request):
        return Response(json.dumps({"url": request.url, **ZAAK}), content_type="application/json")

    def _lookup(self, request):
        paar = (request.args.get("zaak"), request.args.get("contactmoment"))
        with self.lock:
            nieuw = paar not in self.gevraagd
            self.gevraagd.add(paar)
        return Response(json.dumps([{"url": "https://zrc.example.com/zcm/1", "zaak": paar[0],
                                     "contactmoment": paar[1]}] if nieuw else []), content_type="application/json")


@pytest.fixture(scope="module")
def cm_server(base_settings, engine, tmp_path_factory):
    zrc = ZakenStandIn()
    pad = tmp_path_factory.mktemp("diensten") / "diensten.yaml"
    root = zrc.server.url_for("/zaken/api/v1/")
    pad.write_text(yaml.safe_dump({"diensten": [{"apiRoot": root, "clientId": "cmc-client", "secret": ZRC_SECRET}]}))
    srv = start_server(replace(base_settings, services_config=pad, cm_zaak_relatie_controle=True), engine)
    os.environ.update(KLANTEN_ST_CM_URL=f"{srv.url}{CM_BASE}", KLANTEN_ST_KLANTEN_URL=f"{srv.url}/api/v1",
                      KLANTEN_ST_ZAAK_URL=f"{root}zaken/{{uuid}}")
    yield srv
    srv.stop()
    zrc.server.clear()
    zrc.server.stop()


@pytest.fixture
def st_cm(cm_server):
    return f"{cm_server.url}{CM_BASE}"


def _operation_test(st_seed: int):
    @schema.parametrize()
    @seed(st_seed)
    @settings(max_examples=EXAMPLES, **SETTINGS)
    def test(case, st_cm):
        case.call_and_validate(base_url=st_cm)
    return test


for _seed in SEEDS:
    globals()[f"test_operation_conforms_seed_{_seed}"] = _operation_test(_seed)


@pytest.mark.parametrize("st_seed", SEEDS)
def test_stateful_sequences(st_cm, st_seed):
    schema.config.update(base_url=st_cm)
    machine = seed(st_seed)(schema.as_state_machine())
    st_hooks.CALLS.clear()
    machine.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=8, **SETTINGS))
    # the explicit links made the sequences write: create -> read / update / patch / delete / audit trail, and
    # relations created with a contactmoment of an earlier step, then read and deleted
    done = set(st_hooks.CALLS)
    verslag = "; ".join(f"{m} {p} {s}: {n}" for (m, p, s), n in sorted(st_hooks.CALLS.items()))
    for expected in [("POST", "/contactmomenten", 201), ("DELETE", "/contactmomenten/{uuid}", 204),
                     ("POST", "/klantcontactmomenten", 201), ("POST", "/objectcontactmomenten", 201)]:
        assert expected in done, (expected, verslag)
    # which of these links a sequence takes is the seed's choice: one of each group must have worked
    # (the server's answers, uuids among them, differ per run: the same seed need not take the same links)
    for paar in ({("GET", "/contactmomenten/{uuid}", 200), ("PUT", "/contactmomenten/{uuid}", 200),
                  ("PATCH", "/contactmomenten/{uuid}", 200),
                  ("GET", "/contactmomenten/{contactmoment_uuid}/audittrail", 200)},
                 {("GET", "/klantcontactmomenten/{uuid}", 200), ("DELETE", "/klantcontactmomenten/{uuid}", 204)},
                 {("GET", "/objectcontactmomenten/{uuid}", 200), ("DELETE", "/objectcontactmomenten/{uuid}", 204)}):
        assert paar & done, (paar, verslag)
