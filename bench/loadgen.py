"""Closed-loop HTTP/1.1 load generator (asyncio + uvloop, raw keep-alive sockets).

`concurrency` connections each keep exactly one request in flight: send, read the whole answer, send
the next one, until the duration is over. By default (`requests_per_connection` 0) each connection is
kept for the whole run, as a proxy or a client's connection pool keeps it; with `requests_per_connection`
N it is closed and opened again after N requests (the `*_recycle` scenarios of run.py). Latency is measured per request from just before the write to
the last byte of the answer. The client is deliberately lean (one process, no HTTP library) so that on a
small machine it takes as little CPU from the server as possible.

Run as a program: `python bench/loadgen.py SPEC.json OUT.json`; SPEC holds host, port, token, the
scenario mix, the data (uuids, BSNs, pages) and the durations.
"""
from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset import ContactmomentGenerator, Generator  # noqa: E402

API = "/api/v1/klanten"
CM_API = "/contactmomenten/api/v1"


class Verzoeken:
    """Builds the next request of a scenario: (kind, raw request bytes, expected status)."""

    def __init__(self, spec: dict, seed: int):
        self.rng = random.Random(seed)
        self.gen = Generator(seed=seed + 7919, bronorganisaties=tuple(spec["bronorganisaties"]))
        self.uuids = spec["uuids"]
        self.bsns = spec["bsns"]
        self.pages = spec["pages"]
        self.cm_uuids = spec.get("cm_uuids") or []
        self.cm_pages = spec.get("cm_pages") or 1
        self.base_url = spec.get("base_url", "")
        self.cm_gen = ContactmomentGenerator(seed=seed + 104729, bronorganisaties=tuple(spec["bronorganisaties"]))
        self.host = f"{spec['host']}:{spec['port']}"
        self.auth = f"Bearer {spec['token']}"
        mix = spec["mix"]
        self.kinds = [k for k, _ in mix]
        self.cum = []
        acc = 0.0
        for _, w in mix:
            acc += w
            self.cum.append(acc)

    def _get(self, path: str) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: {self.auth}\r\n"
                f"Accept: application/json\r\n\r\n").encode()

    def _body(self, method: str, path: str, body: dict) -> bytes:
        data = json.dumps(body, ensure_ascii=False).encode()
        return (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: {self.auth}\r\n"
                f"Accept: application/json\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode() + data

    def volgende(self) -> tuple[str, bytes, int]:
        x = self.rng.random() * self.cum[-1]
        kind = self.kinds[-1]
        for k, c in zip(self.kinds, self.cum):
            if x < c:
                kind = k
                break
        r = self.rng
        if kind == "detail":
            return kind, self._get(f"{API}/{r.choice(self.uuids)}"), 200
        if kind == "bsn":
            return kind, self._get(f"{API}?subjectNatuurlijkPersoon__inpBsn={r.choice(self.bsns)}"), 200
        if kind == "page":
            page = r.randint(1, self.pages)
            return kind, self._get(API if page == 1 else f"{API}?page={page}"), 200
        if kind == "create":
            body = self.gen.klant(subject_url=False)      # no subject URL: kla-002 would fetch it
            return kind, self._body("POST", API, body), 201
        if kind == "patch":
            return kind, self._body("PATCH", f"{API}/{r.choice(self.uuids)}", self.gen.patch()), 200
        if kind == "cm_detail":
            return kind, self._get(f"{CM_API}/contactmomenten/{r.choice(self.cm_uuids)}"), 200
        if kind == "cm_page":
            page = r.randint(1, self.cm_pages)
            return kind, self._get(f"{CM_API}/contactmomenten" + ("" if page == 1 else f"?page={page}")), 200
        if kind == "cm_create":
            # no registratiedatum (the server takes now), a medewerkerIdentificatie; medewerker URLs are not
            # fetched (cm-003), so no request leaves the server
            return kind, self._body("POST", f"{CM_API}/contactmomenten", self.cm_gen.contactmoment()), 201
        if kind == "kcm_create":
            # a klant of this server (KLANTEN_BASE_URL): looked up in its own database, no HTTP (cm-004)
            body = {"contactmoment": f"{self.base_url}{CM_API}/contactmomenten/{r.choice(self.cm_uuids)}",
                    "klant": f"{self.base_url}{API}/{r.choice(self.uuids)}",
                    "rol": r.choice(("gesprekspartner", "belanghebbende"))}
            return kind, self._body("POST", f"{CM_API}/klantcontactmomenten", body), 201
        raise ValueError(kind)


async def _lees_antwoord(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Reads one response; returns (status, keep-alive)."""
    kop = await reader.readuntil(b"\r\n\r\n")
    regels = kop.split(b"\r\n")
    status = int(regels[0].split(b" ", 2)[1])
    lengte, chunked, sluiten = None, False, False
    for regel in regels[1:]:
        if not regel:
            continue
        naam, _, waarde = regel.partition(b":")
        naam = naam.strip().lower()
        if naam == b"content-length":
            lengte = int(waarde)
        elif naam == b"transfer-encoding" and b"chunked" in waarde.lower():
            chunked = True
        elif naam == b"connection" and b"close" in waarde.lower():
            sluiten = True
    if chunked:
        while True:
            grootte = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(grootte + 2)
            if grootte == 0:
                break
    elif lengte:
        await reader.readexactly(lengte)
    elif lengte is None and status not in (204, 304):
        await reader.read()                 # close-delimited
        sluiten = True
    return status, not sluiten


async def _werker(spec: dict, verzoeken: Verzoeken, einde: float, uitkomst: dict) -> None:
    reader = writer = None
    lat = uitkomst["latencies"]
    per_verbinding = spec.get("requests_per_connection") or 0
    op_verbinding = 0
    while time.perf_counter() < einde:
        kind, data, verwacht = verzoeken.volgende()
        try:
            t0 = time.perf_counter()             # a new connection's set-up counts in its first request
            if writer is None:
                reader, writer = await asyncio.open_connection(spec["host"], spec["port"])
                uitkomst["connections"] += 1
                op_verbinding = 0
            writer.write(data)
            status, alive = await _lees_antwoord(reader)
            t1 = time.perf_counter()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            uitkomst["errors"] += 1
            uitkomst["error_kinds"][type(exc).__name__] = uitkomst["error_kinds"].get(type(exc).__name__, 0) + 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
            continue
        if t1 <= einde:                      # a request that ends after the deadline is not counted
            lat.append(t1 - t0)
            per = uitkomst["per_kind"].setdefault(kind, {"count": 0, "errors": 0, "latencies": []})
            per["count"] += 1
            per["latencies"].append(t1 - t0)
            sleutel = str(status)
            uitkomst["statuses"][sleutel] = uitkomst["statuses"].get(sleutel, 0) + 1
            if status != verwacht:
                uitkomst["errors"] += 1
                per["errors"] += 1
        op_verbinding += 1
        if not alive or (per_verbinding and op_verbinding >= per_verbinding):
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def percentiel(waarden: list[float], p: float) -> float:
    if not waarden:
        return float("nan")
    s = sorted(waarden)
    k = (len(s) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


async def _run(spec: dict, duur: float, seed: int) -> dict:
    uitkomst = {"connections": 0, "latencies": [], "errors": 0, "statuses": {}, "error_kinds": {}, "per_kind": {}}
    start = time.perf_counter()
    einde = start + duur
    taken = [asyncio.create_task(_werker(spec, Verzoeken(spec, seed * 1000 + i), einde, uitkomst))
             for i in range(spec["concurrency"])]
    await asyncio.gather(*taken)
    lat = uitkomst["latencies"]
    per_kind = {k: {"requests": v["count"], "errors": v["errors"],
                    "p50_ms": 1000 * percentiel(v["latencies"], 50), "p99_ms": 1000 * percentiel(v["latencies"], 99)}
                for k, v in uitkomst["per_kind"].items()}
    return {"requests": len(lat), "duration_s": duur, "rps": len(lat) / duur,
            "p50_ms": 1000 * percentiel(lat, 50), "p99_ms": 1000 * percentiel(lat, 99),
            "max_ms": 1000 * max(lat) if lat else float("nan"),
            "connections": uitkomst["connections"], "errors": uitkomst["errors"], "statuses": uitkomst["statuses"], "error_kinds": uitkomst["error_kinds"],
            "per_kind": per_kind}


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    if "data_file" in spec:                      # uuids, BSNs, bronorganisaties: written once per benchmark
        spec = {**json.loads(Path(spec["data_file"]).read_text()), **spec}
    coro = _run(spec, spec["duration"], spec.get("seed", 1))
    try:
        import uvloop
        resultaat = uvloop.run(coro)
    except ImportError:
        resultaat = asyncio.run(coro)
    Path(sys.argv[2]).write_text(json.dumps(resultaat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
