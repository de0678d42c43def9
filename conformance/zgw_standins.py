"""Loopback stand-ins for the ZGW APIs that VNG's Contactmomenten collection calls besides ours.

The collection's setUp creates a catalogus, a zaaktype (with a selectielijst procestype from the
Referentielijsten API) and a zaak, and our server then fetches that zaak (cm-005) and asks the Zaken API
for its `zaakcontactmomenten` (cm-006). One in-memory HTTP server answers all three APIs under three
roots, with just the fields the collection and our server read:

    /zaken/api/v1/               zaken (POST, GET, DELETE), zaakcontactmomenten (GET ?zaak=&contactmoment=, POST)
    /catalogi/api/v1/            catalogussen (GET ?domein=, POST), zaaktypen (POST, /publish, DELETE)
    /referentielijsten/api/v1/   resultaten (GET: three selectielijstklassen, one per procestermijn)

It is a consistent Zaken API, not a scripted one: `zaakcontactmomenten` lists only what was POSTed to
it. The collection never creates one (its own "TODO use zrc endpoint to create zaakcontactmoment"), so
cm-006 finds none, as the Zaken API of a real ecosystem would.

Every request needs a bearer JWT (HS256) signed with the secret of a client it knows: the collection's
client and the client our server has in its services file (KLANTEN_SERVICES_CONFIG). A missing or
wrongly signed token gets 403, so the run also shows that our server sends the configured credentials.
"""
from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt

ZAKEN = "/zaken/api/v1/"
CATALOGI = "/catalogi/api/v1/"
REFERENTIELIJSTEN = "/referentielijsten/api/v1/"
PROCESTERMIJNEN = ("nihil", "ingeschatte_bestaansduur_procesobject", "vast_te_leggen_datum")


class ZgwStandIns(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, clients: dict[str, str]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.clients = dict(clients)              # client_id -> secret
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.lock = threading.Lock()
        self.zaken: dict[str, dict] = {}
        self.zaakcontactmomenten: list[dict] = []
        self.catalogussen: dict[str, dict] = {}
        self.zaaktypen: dict[str, dict] = {}
        self.hits: list[str] = []                 # "METHOD path -> status (client)", no query values
        self._thread: threading.Thread | None = None

    def root(self, api: str) -> str:
        return self.base + {"zaken": ZAKEN, "catalogi": CATALOGI, "referentielijsten": REFERENTIELIJSTEN}[api]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="zgw-standins", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server: ZgwStandIns

    # --- plumbing ---
    def _client(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header[len("Bearer "):].strip()
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            client_id = claims.get("client_id") or jwt.get_unverified_header(token).get("client_identifier")
            secret = self.server.clients.get(client_id)
            if secret is None:
                return None
            jwt.decode(token, secret, algorithms=["HS256"], options={"verify_iat": False})
            return client_id
        except jwt.PyJWTError:
            return None

    def _send(self, status: int, body=None, client: str | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.server.hits.append(f"{self.command} {urlsplit(self.path).path} -> {status} ({client or 'no valid token'})")

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            data = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def log_message(self, format, *args) -> None:     # noqa: A002 - hits are collected in `_send` instead
        pass

    def _handle(self) -> None:
        client = self._client()
        if client is None:
            self._send(403, {"code": "not-authenticated", "detail": "geen geldig JWT"})
            return
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        for prefix, api in ((ZAKEN, self._zaken), (CATALOGI, self._catalogi),
                            (REFERENTIELIJSTEN, self._referentielijsten)):
            if path.startswith(prefix):
                status, body = api(self.command, path[len(prefix):].strip("/").split("/"), query)
                self._send(status, body, client)
                return
        self._send(404, {"detail": "niet gevonden"}, client)

    do_GET = do_POST = do_DELETE = do_HEAD = _handle      # noqa: N815 (http.server's naming)

    def _nieuw(self, api: str, collectie: str, body: dict) -> dict:
        ident = str(uuid.uuid4())
        return {**body, "url": f"{self.server.root(api)}{collectie}/{ident}", "uuid": ident}

    # --- Zaken API ---
    def _zaken(self, method: str, segments: list[str], query: dict):
        s = self.server
        with s.lock:
            if segments == ["zaken"] and method == "POST":
                zaak = self._nieuw("zaken", "zaken", self._body())
                s.zaken[zaak["uuid"]] = zaak
                return 201, zaak
            if len(segments) == 2 and segments[0] == "zaken":
                zaak = s.zaken.get(segments[1])
                if zaak is None:
                    return 404, {"detail": "niet gevonden"}
                if method in ("GET", "HEAD"):
                    return 200, zaak
                if method == "DELETE":
                    del s.zaken[segments[1]]
                    return 204, None
            if segments == ["zaakcontactmomenten"] and method in ("GET", "HEAD"):
                # ZRC 1.0 answers this list unpaginated, as a JSON array
                return 200, [z for z in s.zaakcontactmomenten
                             if all(z[k] == query[k] for k in ("zaak", "contactmoment") if k in query)]
            if segments == ["zaakcontactmomenten"] and method == "POST":
                relatie = self._nieuw("zaken", "zaakcontactmomenten", self._body())
                s.zaakcontactmomenten.append(relatie)
                return 201, relatie
        return 405 if segments and segments[0] in ("zaken", "zaakcontactmomenten") else 404, None

    # --- Catalogi API ---
    def _catalogi(self, method: str, segments: list[str], query: dict):
        s = self.server
        with s.lock:
            if segments == ["catalogussen"] and method == "GET":
                found = [c for c in s.catalogussen.values() if c.get("domein") == query.get("domein", c.get("domein"))]
                return 200, {"count": len(found), "next": None, "previous": None, "results": found}
            if segments == ["catalogussen"] and method == "POST":
                catalogus = self._nieuw("catalogi", "catalogussen", self._body())
                catalogus.update(zaaktypen=[], besluittypen=[], informatieobjecttypen=[])
                s.catalogussen[catalogus["uuid"]] = catalogus
                return 201, catalogus
            if segments == ["zaaktypen"] and method == "POST":
                zaaktype = self._nieuw("catalogi", "zaaktypen", self._body())
                zaaktype.update(concept=True, eigenschappen=[], resultaattypen=[], statustypen=[], roltypen=[])
                s.zaaktypen[zaaktype["uuid"]] = zaaktype
                return 201, zaaktype
            if len(segments) == 3 and segments[0] == "zaaktypen" and segments[2] == "publish" and method == "POST":
                zaaktype = s.zaaktypen.get(segments[1])
                if zaaktype is None:
                    return 404, {"detail": "niet gevonden"}
                zaaktype["concept"] = False
                return 200, zaaktype
            if len(segments) == 2 and segments[0] == "zaaktypen" and method == "DELETE":
                return (204, None) if s.zaaktypen.pop(segments[1], None) else (404, {"detail": "niet gevonden"})
        return 404, {"detail": "niet gevonden"}

    # --- Referentielijsten API ---
    def _referentielijsten(self, method: str, segments: list[str], query: dict):
        if segments == ["resultaten"] and method == "GET":
            root = self.server.root("referentielijsten")
            results = [{"url": f"{root}resultaten/{uuid.UUID(int=i + 1)}",
                        "procesType": f"{root}procestypen/{uuid.UUID(int=i + 1)}",
                        "procestermijn": termijn, "nummer": i + 1}
                       for i, termijn in enumerate(PROCESTERMIJNEN)]
            return 200, {"count": len(results), "next": None, "previous": None, "results": results}
        return 404, {"detail": "niet gevonden"}
