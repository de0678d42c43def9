"""Renders the Grafana dashboard's panels (make_dashboard.PANELS) from REAL scraped data: starts
`klanten-api serve --workers 2` on a throw-away SQLite database with a loopback Notificaties API (one in three
notifications answered 503, so retries show), sends a bounded load for DUUR seconds on loopback only, scrapes
/_metrics every STAP seconds with prometheus_client's parser, and draws dashboard.png with matplotlib.

No Grafana runs here: the PromQL of each panel is evaluated by hand (rate = difference of counters over the
interval, p95 = the bucket where the cumulative count passes 95 %). Needs the `docs` extra (matplotlib).

Run: PYTHONPATH=. python docs/observability/render.py
"""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

HIER = Path(__file__).resolve().parent
ROOT = HIER.parents[1]
sys.path.insert(0, str(HIER))
from make_dashboard import PANELS  # noqa: E402

DUUR, STAP = 75.0, 2.5
GEHEIM = "render-secret-for-the-dashboard-screenshot-only"


def vrije_poort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nrc(BaseHTTPRequestHandler):
    teller = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        Nrc.teller += 1
        time.sleep(random.uniform(0.002, 0.02))
        status = 503 if Nrc.teller % 3 == 0 else 201
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self):                      # a subject URL (kla-002): 200, once in ten 404
        Nrc.teller += 1
        time.sleep(random.uniform(0.001, 0.01))
        self.send_response(404 if Nrc.teller % 10 == 0 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def scrape(url: str) -> dict:
    tekst = requests.get(f"{url}/_metrics", timeout=10).text
    out = {}
    for fam in text_string_to_metric_families(tekst):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def last(root: str, stop: threading.Event, hdr: dict, subject: str):
    s = requests.Session()
    s.trust_env = False
    urls = []
    body = {"bronorganisatie": "950428139", "websiteUrl": "http://example.com", "subjectType": "natuurlijk_persoon",
            "subjectIdentificatie": {"geslachtsnaam": "Synthetisch"}}
    begin = time.monotonic()
    while not stop.is_set():
        fase = (time.monotonic() - begin) / DUUR          # the mix shifts over time, so the panels move
        keuze = random.random()
        if keuze < 0.15 + 0.2 * fase:
            met_subject = dict(body, subject=subject) if random.random() < 0.3 else body
            r = s.post(f"{root}/klanten", json=met_subject, headers=hdr, timeout=10)
            if r.status_code == 201:
                urls.append(r.json()["url"])
        elif keuze < 0.55 and urls:
            s.get(random.choice(urls), headers=hdr, timeout=10)
        elif keuze < 0.85:
            s.get(f"{root}/klanten", headers=hdr, timeout=10)
        elif keuze < 0.95:
            s.get(f"{root}/klanten", timeout=10)                                     # 403: no token
        else:
            s.get(f"{root}/klanten/00000000-0000-0000-0000-000000000000", headers=hdr, timeout=10)   # 404


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="klanten-render-"))
    auth = tmp / "auth.yaml"
    auth.write_text(yaml.safe_dump({"applicaties": [{"clientIds": ["render"], "secret": GEHEIM, "label": "Render",
                                                     "heeftAlleAutorisaties": True}]}))
    nrc = ThreadingHTTPServer(("127.0.0.1", 0), Nrc)
    threading.Thread(target=nrc.serve_forever, daemon=True).start()
    poort = vrije_poort()
    url = f"http://127.0.0.1:{poort}"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
           "KLANTEN_DATABASE_URL": f"sqlite:///{tmp / 'klanten.db'}", "KLANTEN_AUTH_CONFIG": str(auth),
           "KLANTEN_DEVELOPMENT": "true", "KLANTEN_SUBJECT_ALLOWED_HOSTS": "127.0.0.1",
           "KLANTEN_NOTIFICATIONS_BACKOFF": "1", "KLANTEN_NOTIFICATIONS_POLL": "1",
           "KLANTEN_NOTIFICATIONS_API_URL": f"http://127.0.0.1:{nrc.server_address[1]}/api/v1/"}
    proc = subprocess.Popen([sys.executable, "-m", "klanten_api.cli", "serve", "--port", str(poort),
                             "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if requests.get(f"{url}/_health/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        hdr = {"Authorization": "Bearer " + jwt.encode({"iss": "render", "iat": int(time.time()),
                                                        "client_id": "render"}, GEHEIM, algorithm="HS256")}
        stop = threading.Event()
        threads = [threading.Thread(target=last, args=(f"{url}/api/v1", stop, hdr,
                                                              f"http://127.0.0.1:{nrc.server_address[1]}/subject")) for _ in range(3)]
        for t in threads:
            t.start()
        reeks = []
        begin = time.monotonic()
        while time.monotonic() - begin < DUUR:
            reeks.append((time.monotonic() - begin, scrape(url)))
            time.sleep(STAP)
        stop.set()
        for t in threads:
            t.join()
        reeks.append((time.monotonic() - begin, scrape(url)))
    finally:
        proc.terminate()
        proc.wait(30)
        nrc.shutdown()
    teken(reeks)


def _som(scr: dict, naam: str, groep: str | None, **filter_) -> dict:
    out = defaultdict(float)
    for (n, labels), v in scr.items():
        l = dict(labels)
        if n == naam and all(l.get(k) == w for k, w in filter_.items()):
            out[l.get(groep, "") if groep else ""] += v
    return out


def _reeksen(reeks, titel):
    """{legend: [(t, value)]} for one panel, its PromQL evaluated by hand on consecutive scrapes."""
    lijnen = defaultdict(list)
    for (t0, a), (t1, b) in zip(reeks, reeks[1:]):
        dt = t1 - t0

        def rate(naam, groep=None, voorvoegsel="", **f):
            va, vb = _som(a, naam, groep, **f), _som(b, naam, groep, **f)
            for k in vb:
                lijnen[f"{voorvoegsel}{k}" or naam].append((t1, max(0.0, vb[k] - va.get(k, 0.0)) / dt))

        def p95(naam, groep=None):
            per = defaultdict(dict)
            for (n, labels), v in b.items():
                l = dict(labels)
                if n == naam + "_bucket":
                    oud = a.get((n, labels), 0.0)
                    per[l.get(groep, "p95") if groep else "p95"][float(l["le"])] = v - oud
            for k, buckets in per.items():
                grenzen = sorted(buckets)
                totaal = buckets[grenzen[-1]]
                if totaal <= 0:
                    continue
                waarde = next(g for g in grenzen if buckets[g] >= 0.95 * totaal)
                lijnen[k].append((t1, min(waarde, 10.0)))

        def gauge(naam, legenda):
            lijnen[legenda].append((t1, sum(_som(b, naam, None).values())))

        if titel.startswith("Requests per second"):
            rate("klanten_http_requests_total", "operation")
        elif titel.startswith("Responses per second"):
            rate("klanten_http_requests_total", "status_class")
        elif titel.startswith("Latency p95"):
            p95("klanten_http_request_duration_seconds", "operation")
        elif titel == "Outbox":
            gauge("klanten_outbox_pending", "pending")
            gauge("klanten_outbox_failed", "failed")
        elif titel.startswith("Oldest pending"):
            gauge("klanten_outbox_oldest_pending_age_seconds", "age")
        elif titel.startswith("Deliveries"):
            rate("klanten_notificaties_deliveries_total", "result")
        elif titel.startswith("Delivery latency"):
            p95("klanten_notificaties_delivery_duration_seconds")
        elif titel.startswith("kla-002 subject check latency"):
            p95("klanten_subject_check_duration_seconds")
        elif titel.startswith("kla-002"):
            rate("klanten_subject_checks_total", "result")
        elif titel.startswith("Autorisaties"):
            rate("klanten_autorisaties_requests_total", "result", "call ")
            rate("klanten_autorisaties_cache_lookups_total", "result", "cache ")
        elif titel.startswith("Database pool"):
            gauge("klanten_db_pool_connections_in_use", "in use")
            gauge("klanten_db_pool_size", "capacity")
            rate("klanten_db_pool_waits_total", None, "waits/s")
        elif titel.startswith("Rate-limit"):
            rate("klanten_rate_limit_refusals_total", None, "429/s")
    return lijnen


def teken(reeks) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rijen = (len(PANELS) + 1) // 2
    fig, assen = plt.subplots(rijen, 2, figsize=(16, 3.2 * rijen), facecolor="#181b1f")
    for ax, (titel, eenheid, _doelen) in zip(assen.flat, PANELS):
        ax.set_facecolor("#111217")
        ax.set_title(titel, color="#d8d9da", fontsize=11, loc="left")
        ax.tick_params(colors="#9fa7b3", labelsize=8)
        for rand in ax.spines.values():
            rand.set_color("#2c3235")
        ax.grid(color="#2c3235", linewidth=0.6)
        lijnen = _reeksen(reeks, titel)
        for legenda, punten in sorted(lijnen.items()):
            if punten:
                ax.plot([p[0] for p in punten], [p[1] for p in punten], label=legenda, linewidth=1.4)
        if lijnen:
            ax.legend(fontsize=7, loc="upper left", facecolor="#181b1f", labelcolor="#d8d9da", framealpha=0.8,
                      ncol=2)
        else:
            ax.text(0.5, 0.5, "no data (nothing of this kind happened)", color="#9fa7b3", ha="center",
                    va="center", transform=ax.transAxes)
        ax.set_ylabel({"reqps": "per second", "s": "seconds", "short": ""}[eenheid], color="#9fa7b3", fontsize=8)
        ax.set_xlabel("seconds since start of the load", color="#9fa7b3", fontsize=8)
    for ax in list(assen.flat)[len(PANELS):]:
        ax.axis("off")
    fig.suptitle("Klanten API — rendered from /_metrics of a real `klanten-api serve --workers 2` under load",
                 color="#d8d9da", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(HIER / "dashboard.png", dpi=80, facecolor=fig.get_facecolor())


if __name__ == "__main__":
    main()
