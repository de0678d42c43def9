"""`make conformance`: the schemathesis CLI against any Klanten API server.

    make conformance BASE_URL=http://127.0.0.1:8000/api/v1 CLIENT_ID=klanten-dev SECRET=...

BASE_URL is the API root (ending in /api/v1); the document is read from BASE_URL/schema/openapi.yaml.
CLIENT_ID/SECRET sign a ZGW token (HS256) with all the scopes that client has on that server.
SUBJECT_URL (default: the document's own URL) must answer 200 from the server under test (kla-002).
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
    env = dict(os.environ, KLANTEN_TOKEN=token, PYTHONPATH=str(HERE),
               KLANTEN_ST_SUBJECT_URL=os.environ.get("SUBJECT_URL", f"{base}/schema/openapi.yaml"))
    # one seed or several ("1 2 3" or "1,2,3"), one run after another: the contract must hold for any seed
    seeds = os.environ.get("SEED", "20261128").replace(",", " ").split()
    failed = []
    for seed in seeds:
        cmd = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(HERE / "schemathesis.toml"),
               "run", f"{base}/schema/openapi.yaml", "--url", base,
               "--seed", seed, "--max-examples", os.environ.get("MAX_EXAMPLES", "50")]
        print("conformance:", " ".join(cmd), flush=True)
        if subprocess.call(cmd, env=env) != 0:
            failed.append(seed)
    if len(seeds) > 1:
        print(f"conformance: {len(seeds) - len(failed)} of {len(seeds)} seeds passed"
              + (f"; failed: {' '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
