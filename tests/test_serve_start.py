"""`klanten-api serve` and `migrate` started while the database is unreachable (an orchestrator that starts the
app before its database): they wait for it (KLANTEN_DB_WAIT_SECONDS), one JSON log line per attempt, and
then either use the database that came up or exit non-zero with one clear JSON line, never a traceback and
never the database password.

Real processes; "unreachable" is a loopback port where nothing listens, and "comes up" is a TCP forwarder to
the suite's PostgreSQL that starts listening on that port during the wait.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import requests
import sqlalchemy as sa

from conftest import eigen_postgres_database, token, zonder_nummer
from netwerk import Doorsturer
from processen import KLANTEN_API, ROOT, ServeProces, proces_env, vrije_poort

WACHT = 3.0
WACHTWOORD = "Zeer-geheim-wachtwoord-42"


def json_regels(tekst: str) -> list[dict]:
    """Every non-empty line must be one JSON object."""
    regels = [r for r in tekst.splitlines() if r.strip()]
    uit = []
    for regel in regels:
        try:
            uit.append(json.loads(regel))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {regel!r}\n--- all output:\n{tekst}") from None
    return uit


@pytest.mark.parametrize("commando", [["serve", "--port", "0"], ["migrate"]])
def test_zonder_database_wachten_en_dan_een_duidelijke_regel(commando, auth_config):
    poort = vrije_poort()               # nothing listens here
    env = proces_env({"KLANTEN_DATABASE_URL": f"postgresql://klanten:{WACHTWOORD}@127.0.0.1:{poort}/klanten",
                      "KLANTEN_AUTH_CONFIG": str(auth_config), "KLANTEN_DEVELOPMENT": "true",
                      "KLANTEN_DB_WAIT_SECONDS": str(WACHT), "KLANTEN_DB_NETWORK_TIMEOUT": "2"})
    begin = time.monotonic()
    proc = subprocess.run([*KLANTEN_API, *commando], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    duur = time.monotonic() - begin
    uitvoer = proc.stdout + proc.stderr
    assert proc.returncode != 0, uitvoer
    assert "Traceback" not in uitvoer, uitvoer
    assert WACHTWOORD not in uitvoer, uitvoer
    assert proc.stdout.strip() == "", proc.stdout
    regels = json_regels(proc.stderr)
    events = [r.get("event") for r in regels]
    assert events.count("db_waiting") >= 2, events            # it retried, one line per attempt
    assert events[-1] == "db_unreachable", events              # and said once, last, why it stops
    laatste = regels[-1]
    assert laatste["level"] == "ERROR" and "refused" in laatste["reason"].lower(), laatste
    assert (laatste["database_host"], laatste["database_port"]) == ("127.0.0.1", poort), laatste
    assert WACHT <= duur <= WACHT + 20, f"gave up after {duur:.1f}s, configured {WACHT}s"


def test_zonder_wachttijd_meteen_een_duidelijke_regel(auth_config):
    """KLANTEN_DB_WAIT_SECONDS=0: one attempt, then the line."""
    env = proces_env({"KLANTEN_DATABASE_URL": f"postgresql://klanten@127.0.0.1:{vrije_poort()}/klanten",
                      "KLANTEN_DB_WAIT_SECONDS": "0"})
    proc = subprocess.run([*KLANTEN_API, "migrate"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert [r.get("event") for r in json_regels(proc.stderr)] == ["db_unreachable"], proc.stderr


@pytest.mark.skipif(not os.environ.get("KLANTEN_TEST_DATABASE_URL", "").startswith("postgres"),
                    reason="needs PostgreSQL: KLANTEN_TEST_DATABASE_URL=postgresql://...")
def test_een_database_die_tijdens_het_wachten_komt_wordt_gebruikt(auth_config, tmp_path):
    with eigen_postgres_database("klanten_wacht") as (url, _admin):
        pg = sa.engine.make_url(url)
        poort = vrije_poort()
        via = pg.set(host="127.0.0.1", port=poort).render_as_string(hide_password=False)
        env = {"KLANTEN_DATABASE_URL": via, "KLANTEN_AUTH_CONFIG": str(auth_config), "KLANTEN_DEVELOPMENT": "true",
               "KLANTEN_DB_WAIT_SECONDS": "60"}
        srv = ServeProces(env, tmp_path / "serve.log", workers=2)
        doorsturer = None
        try:
            time.sleep(3)                   # serve is waiting now
            assert srv.proc.poll() is None, srv.log_tekst()
            doorsturer = Doorsturer.op_loopback((pg.host or "127.0.0.1", pg.port or 5432), poort)
            srv.wacht_tot_klaar()           # migrated and serving
            resp = requests.post(f"{srv.root}/klanten", json=zonder_nummer(), timeout=10,
                                 headers={"Authorization": f"Bearer {token()}"})
            assert resp.status_code == 201, resp.text
            log = srv.log_tekst()
            assert "Traceback" not in log, log
            events = [r.get("event") for r in json_regels(log)]
            assert "db_waiting" in events and "db_reachable" in events, events
        finally:
            srv.stop()
            if doorsturer is not None:
                doorsturer.stop()
