"""How fast `klanten-api import` moves a register: from a local instance of ours (the source, `klanten-api serve
--workers 2` on PostgreSQL, seeded with bench/dataset.py) into an empty database, over loopback HTTP.

    .venv/bin/python bench/import_bench.py --size 100000 [--workers 8] [--batch 200] [--reuse]

Databases `klanten_import_bron` (kept for --reuse) and `klanten_import_doel` (dropped and created) on
KLANTEN_BENCH_PG. The result goes to stdout and bench/results/import-<YYYY-MM-DD>-<size>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataset import RijenBouwer, seed  # noqa: E402
from run import (BASE_URL, BENCH, CLIENT_ID, KLANTEN_API, LABEL, Server, aantal_klanten, cpu_seconden,  # noqa: E402
                 db_url, kinderen, libpq, log, maak_database, migreer, server_env)

BRON, DOEL = "klanten_import_bron", "klanten_import_doel"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=8, help="the import's concurrent requests")
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--reuse", action="store_true", help="keep the source database when it holds --size klanten")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="klanten-import-bench-") as tmp_naam:
        tmp = Path(tmp_naam)
        geheim = secrets.token_hex(32)
        auth = tmp / "applicaties.yaml"
        auth.write_text(yaml.safe_dump({"applicaties": [{
            "label": LABEL, "clientIds": [CLIENT_ID], "secret": geheim, "heeftAlleAutorisaties": False,
            "scopes": ["klanten.lezen", "audittrails.lezen"]}]}))
        (tmp / "secret").write_text(geheim)
        # this checkout's code, whatever the virtualenv's entry point was installed from
        pad = {"PYTHONPATH": str(BENCH.parent)}
        bron_env = {**server_env(db_url(BRON), auth, None), **pad}
        if args.reuse and (aantal_klanten(BRON) or 0) == args.size:
            log(f"reusing {BRON}")
            migreer(bron_env)
        else:
            maak_database(BRON)
            migreer(bron_env)
            log(f"seeding the source with {args.size:,} klanten")
            seed(libpq(db_url(BRON)), args.size, RijenBouwer(BASE_URL, CLIENT_ID, LABEL))
        maak_database(DOEL)
        doel_env = {**server_env(db_url(DOEL), auth, None), **pad}
        migreer(doel_env)

        bron = Server(bron_env, tmp, token="", naam="bron")
        try:
            time.sleep(1.0)
            deadline = time.time() + 60
            while "Application startup complete" not in bron.logpad.read_text(errors="replace"):
                if time.time() > deadline:
                    raise SystemExit("bench: the source server did not start")
                time.sleep(0.1)
            rapport = tmp / "rapport.json"
            log(f"importing {args.size:,} klanten from http://127.0.0.1:{bron.port}/api/v1")
            werkers = kinderen(bron.proc.pid)
            bron_cpu = sum(cpu_seconden(w) for w in werkers)
            eigen_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            res = subprocess.run([str(KLANTEN_API), "import", "--from", f"http://127.0.0.1:{bron.port}/api/v1",
                                  "--client-id", CLIENT_ID, "--secret-file", str(tmp / "secret"),
                                  "--workers", str(args.workers), "--batch", str(args.batch), "--report", str(rapport)],
                                 env=doel_env, stdout=subprocess.PIPE, text=True)
            seconden = time.perf_counter() - start
            bron_cpu = sum(cpu_seconden(w) for w in werkers) - bron_cpu
            na = resource.getrusage(resource.RUSAGE_CHILDREN)
            import_cpu = na.ru_utime + na.ru_stime - eigen_cpu.ru_utime - eigen_cpu.ru_stime
        finally:
            bron.stop()
        data = json.loads(rapport.read_text()) if rapport.exists() else {}

    resultaat = {
        "date": dt.date.today().isoformat(), "klanten": args.size, "seconds": round(seconden, 1),
        "klanten_per_second": round(args.size / seconden), "exit_status": res.returncode,
        "workers": args.workers, "batch": args.batch, "source": "klanten-api serve --workers 2, PostgreSQL, loopback",
        "cpu_seconds": {"source_workers": round(bron_cpu, 1), "import_process": round(import_cpu, 1)},
        "cpus": os.cpu_count(), "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
        "report": {k: data.get(k) for k in ("bron", "ons", "import", "schoon")},
    }
    uit = BENCH / "results" / f"import-{resultaat['date']}-{args.size}.json"
    uit.write_text(json.dumps(resultaat, indent=1) + "\n")
    print(res.stdout)
    print(json.dumps(resultaat, indent=1))
    return 0 if res.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
