"""Entity tags, in one place: the HTTP layer tags the bodies it serves, the service checks `If-Match` against
the current representation (DECISIONS #4, #27). Both hash the same bytes: the JSON that connexion serves."""
from __future__ import annotations

import hashlib
import json

from connexion.jsonifier import Jsonifier

# How every JSON answer is serialised (app.py hands this one to connexion): compact, UTF-8, with the
# Jsonifier's trailing newline. An ETag of a representation is the ETag of exactly these bytes.
JSONIFIER = Jsonifier(json, separators=(",", ":"), ensure_ascii=False)


def als_json(data) -> bytes:
    """The body connexion serves for `data`."""
    return JSONIFIER.dumps(data).encode("utf-8")


def etag(body: bytes) -> str:
    """The strong entity tag of a served body: the quoted MD5 of its bytes."""
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


def etag_van(data) -> str:
    """The entity tag the body of `data` gets when it is served."""
    return etag(als_json(data))


def _tags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def if_none_match(etag_: str, header: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison (a W/ prefix is ignored); `*` matches."""
    return any(t == "*" or t.removeprefix("W/") == etag_ for t in _tags(header))


def if_match(etag_: str, header: str) -> bool:
    """RFC 9110 §13.1.1: strong comparison (a W/ tag never matches); `*` matches any current representation."""
    return any(t == "*" or t == etag_ for t in _tags(header))
