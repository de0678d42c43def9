"""API roots (DECISIONS #19): `GET {base}/` lists the API's collections with absolute URLs, as the reference's
DRF API root does (`{"klanten": "http://host/api/v1/klanten"}`, no authorisation); `{base}` and `{base}/schema`
without the trailing slash redirect (301) to the slashed path on the public base URL (KLANTEN_BASE_URL when set).

zgw-consumers' connection check and zds-client read the root. One ApiRoot per base path of each API
(klanten_api.apis), so a second base path (an alias, another API) is one more instance, not more code; an alias's
root lists the collections on the canonical base path, like every URL the server writes.
"""
from __future__ import annotations

import json

from .errors import PROBLEM_JSON, problem_bytes

ALLOW = "GET, HEAD"


def collecties(spec_paths: dict) -> tuple[str, ...]:
    """The top-level collections of a spec (`/klanten` -> `klanten`), in the spec's order."""
    return tuple(p.strip("/") for p in spec_paths if p.count("/") == 1 and "{" not in p)


class ApiRoot:
    def __init__(self, base_path: str, collecties: tuple[str, ...], canonical: str | None = None):
        self.base_path = base_path.rstrip("/")
        self.collecties = collecties
        # the listed URLs are on the API's canonical base path, also on an alias's root (DECISIONS #18)
        self.canonical = (canonical or base_path).rstrip("/")
        self.root = self.base_path + "/"
        # paths without their trailing slash -> the path they redirect to
        self.redirects = {self.base_path: self.root, f"{self.base_path}/schema": f"{self.base_path}/schema/"}

    def serves(self, path: str) -> bool:
        return path == self.root or path in self.redirects

    def body(self, public_base: str) -> bytes:
        return json.dumps({naam: f"{public_base}{self.canonical}/{naam}" for naam in self.collecties},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def answer(self, scope, send, public_base: str, headers: list) -> int:
        """Answer a request for a path this root serves; returns the status sent."""
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            status, body = 405, problem_bytes(405, public_base, detail=f'Methode "{method}" niet toegestaan.')
            headers = [*headers, (b"allow", ALLOW.encode()), (b"content-type", PROBLEM_JSON.encode()),
                       (b"content-length", str(len(body)).encode())]
        elif path in self.redirects:
            status, body = 301, b""
            location = public_base + self.redirects[path]
            query = scope.get("query_string", b"")
            if query:
                location += "?" + query.decode("latin-1")
            headers = [*headers, (b"location", location.encode("latin-1")), (b"content-length", b"0")]
        else:
            status, body = 200, self.body(public_base)
            headers = [*headers, (b"content-type", b"application/json"),
                       (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        return status
