"""`make conformance`: the schemathesis CLI against any Klanten or Contactmomenten API server.

    make conformance BASE_URL=http://127.0.0.1:8000/api/v1 CLIENT_ID=klanten-dev SECRET=...
    make conformance BASE_URL=http://127.0.0.1:8000/contactmomenten/api/v1 CLIENT_ID=... SECRET=... \
        ZAAK_URL='https://zaken.example.nl/zaken/api/v1/zaken/{uuid}'

BASE_URL is the API root (ending in /api/v1); the document is read from BASE_URL/schema/openapi.yaml (SCHEMA: another
URL or a file). API (klanten or contactmomenten) names the API; by default a BASE_URL ending in
/contactmomenten/api/v1 is the Contactmomenten API, any other the Klanten API.
CLIENT_ID/SECRET sign a ZGW token (HS256) with all the scopes that client has on that server.
Klanten: SUBJECT_URL (default: the document's own URL) must answer 200 from the server under test (kla-002).
Contactmomenten: KLANTEN_URL (default: BASE_URL with /contactmomenten/api/v1 -> /klanten/api/v1) is a Klanten API
root of the same server, where the run creates the klanten of its klantcontactmomenten (cm-004); ZAAK_URL is a zaak
URL the server can fetch (cm-005), `{uuid}` in it replaced by a fresh uuid per case (the server's cm-006 check
must find the relation there, or be switched off); without ZAAK_URL objectcontactmoment_create is left out.
SEED is one seed or several ("1 2 3"), run one after another; MAX_EXAMPLES is per operation (default 50).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt

HERE = Path(__file__).resolve().parent


def main() -> int:
    base = os.environ.get("BASE_URL", "http://127.0.0.1:8000/api/v1").rstrip("/")
    client_id = os.environ.get("CLIENT_ID", "klanten-dev")
    secret = os.environ.get("SECRET")
    if not secret:
        print("conformance: set SECRET (and CLIENT_ID, BASE_URL) for the server under test", file=sys.stderr)
        return 2
    token = jwt.encode({"iss": client_id, "iat": int(time.time()), "client_id": client_id,
                        "user_id": "conformance", "user_representation": "schemathesis"}, secret, algorithm="HS256")
    env = dict(os.environ, KLANTEN_TOKEN=token, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]),
               KLANTEN_ST_SUBJECT_URL=os.environ.get("SUBJECT_URL", f"{base}/schema/openapi.yaml"))
    api = os.environ.get("API") or ("contactmomenten" if base.endswith("/contactmomenten/api/v1") else "klanten")
    if api not in ("klanten", "contactmomenten"):
        print("conformance: API is klanten or contactmomenten", file=sys.stderr)
        return 2
    extra = []
    if api == "contactmomenten":
        env.update(KLANTEN_ST_CM_URL=base, KLANTEN_ST_KLANTEN_URL=os.environ.get(
            "KLANTEN_URL", base.removesuffix("/contactmomenten/api/v1") + "/klanten/api/v1").rstrip("/"))
        if os.environ.get("ZAAK_URL"):
            env["KLANTEN_ST_ZAAK_URL"] = os.environ["ZAAK_URL"]
        else:
            print("conformance: no ZAAK_URL, so objectcontactmoment_create is left out (cm-005 needs a zaak)",
                  flush=True)
            extra = ["--exclude-operation-id", "objectcontactmoment_create"]
    document = os.environ.get("SCHEMA", f"{base}/schema/openapi.yaml")
    # one seed or several ("1 2 3" or "1,2,3"), one run after another: the contract must hold for any seed
    seeds = os.environ.get("SEED", "20261128").replace(",", " ").split()
    failed = []
    for seed in seeds:
        cmd = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(HERE / "schemathesis.toml"),
               "run", document, "--url", base,
               "--seed", seed, "--max-examples", os.environ.get("MAX_EXAMPLES", "50"), *extra]
        print("conformance:", " ".join(cmd), flush=True)
        if subprocess.call(cmd, env=env) != 0:
            failed.append(seed)
    if len(seeds) > 1:
        print(f"conformance: {len(seeds) - len(failed)} of {len(seeds)} seeds passed"
              + (f"; failed: {' '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
