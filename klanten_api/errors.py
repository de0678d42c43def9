"""Every error, from any layer, becomes a ZGW `Fout` / `ValidatieFout` (application/problem+json).

One table maps an error kind to the reference's `type` class name, `code` and `title`.
"""
from __future__ import annotations

import json
import logging
import traceback
import uuid
from dataclasses import dataclass

log = logging.getLogger("klanten_api.errors")

PROBLEM_JSON = "application/problem+json"

# status -> (class name used in `type`, code, title); titles are the reference's (unformatted) texts.
SOORTEN: dict[int, tuple[str, str, str]] = {
    400: ("ValidationError", "invalid", "Invalid input."),
    401: ("NotAuthenticated", "not_authenticated", "Authenticatiegegevens zijn niet opgegeven."),
    403: ("PermissionDenied", "permission_denied", "Je hebt geen toestemming om deze actie uit te voeren."),
    404: ("NotFound", "not_found", "Niet gevonden."),
    405: ("MethodNotAllowed", "method_not_allowed", 'Methode "{method}" niet toegestaan.'),
    406: ("NotAcceptable", "not_acceptable", "Kan niet voldoen aan de opgegeven Accept header."),
    408: ("RequestTimeout", "request_timeout", "Het verzoek kwam niet op tijd binnen."),
    409: ("Conflict", "conflict", "Er is een conflict"),
    410: ("Gone", "gone", "De resource bestaat niet meer"),
    412: ("PreconditionFailed", "precondition_failed", "Voorwaarde is niet vervuld"),
    413: ("RequestEntityTooLarge", "request_too_large", "Het verzoek is te groot."),
    415: ("UnsupportedMediaType", "unsupported_media_type", 'Ongeldige media type "{media_type}" in aanvraag.'),
    429: ("Throttled", "throttled", "Aanvraag was verstikt."),
    500: ("APIException", "error", "Er is een serverfout opgetreden."),
    503: ("ServiceUnavailable", "service_unavailable", "Dienst tijdelijk niet beschikbaar."),
}
OUR_PACKAGES = ("klanten_api", "service", "storage", "handlers", "notificaties")
PARSE_ERROR = ("ParseError", "parse_error", "Ongeldig samengestelde request.")
VALIDATIE_DETAIL = "Er is een validatiefout opgetreden."


@dataclass
class InvalidParam:
    name: str
    code: str
    reason: str

    def as_dict(self) -> dict:
        return {"name": self.name, "code": self.code, "reason": self.reason}


class ApiProblem(Exception):
    """An error answered as a problem document. Raised by our code at any layer."""

    status = 500
    soort: tuple[str, str, str] | None = None

    def __init__(self, detail: str | None = None, *, status: int | None = None, code: str | None = None,
                 headers: dict | None = None, soort: tuple[str, str, str] | None = None):
        if status is not None:
            self.status = status
        if soort is not None:
            self.soort = soort
        self.detail = detail
        self.code = code
        self.headers = headers or {}
        super().__init__(detail or "")

    # connexion/starlette read `status_code` when choosing among security errors
    @property
    def status_code(self) -> int:
        return self.status


class ValidatieFout(ApiProblem):
    status = 400

    def __init__(self, invalid_params: list[InvalidParam]):
        super().__init__(VALIDATIE_DETAIL)
        self.invalid_params = invalid_params


class ParseFout(ApiProblem):
    status = 400
    soort = PARSE_ERROR


class NietGevonden(ApiProblem):
    status = 404

    def __init__(self, detail: str = "Niet gevonden."):
        super().__init__(detail)


class GeenToestemming(ApiProblem):
    status = 403

    def __init__(self, code: str = "permission_denied",
                 detail: str = "Je hebt geen toestemming om deze actie uit te voeren."):
        super().__init__(detail, code=code)


class VoorwaardeNietVervuld(ApiProblem):
    """If-Match did not match the current ETag (RFC 9110 §13.1.1, DECISIONS #27)."""
    status = 412

    def __init__(self, wat: str = "klant"):
        super().__init__(f"De {wat} is gewijzigd sinds de opgegeven versie: If-Match komt niet overeen met de "
                         f"huidige ETag. Haal de {wat} opnieuw op en probeer het nog eens.")


class OngeldigMediaType(ApiProblem):
    status = 415

    def __init__(self, media_type: str):
        super().__init__(f'Ongeldige media type "{media_type}" in aanvraag.')


def problem(status: int, base_url: str, *, detail: str | None = None, code: str | None = None,
            invalid_params: list | None = None, soort: tuple[str, str, str] | None = None) -> dict:
    klasse, default_code, title = soort or SOORTEN.get(status) or SOORTEN[500]
    body = {
        "type": f"{base_url}/ref/fouten/{klasse}/",
        "code": code or default_code,
        "title": title,
        "status": status,
        "detail": detail or title,
        "instance": f"urn:uuid:{uuid.uuid4()}",
    }
    if status == 400:
        # every 400 is a ValidatieFout in the spec, so a parse error carries invalidParams too
        body["invalidParams"] = invalid_params or [
            {"name": "nonFieldErrors", "code": body["code"], "reason": body["detail"]}]
    return body


def problem_bytes(status: int, base_url: str, **kwargs) -> bytes:
    return json.dumps(problem(status, base_url, **kwargs), ensure_ascii=False, separators=(",", ":")).encode()


def from_exception(exc: BaseException, base_url: str) -> tuple[int, dict, dict]:
    """Map any exception to (status, problem body, extra headers). Unknown exceptions are a bare 500."""
    from starlette.exceptions import HTTPException  # connexion problems and routing errors derive from it

    if isinstance(exc, ValidatieFout):
        return 400, problem(400, base_url, detail=VALIDATIE_DETAIL,
                            invalid_params=[p.as_dict() for p in exc.invalid_params]), {}
    if isinstance(exc, ApiProblem):
        return exc.status, problem(exc.status, base_url, detail=exc.detail, code=exc.code, soort=exc.soort), exc.headers
    if isinstance(exc, HTTPException):
        status = exc.status_code
        headers = dict(getattr(exc, "headers", None) or {})
        if status in (401, 403):
            # connexion's own security errors (e.g. a malformed Authorization header): the ZGW answer is 403
            return 403, problem(403, base_url), {}
        if status == 405:
            return 405, problem(405, base_url, detail=getattr(exc, "detail", None)), headers
        if status == 415:
            return 415, problem(415, base_url, detail=_text(getattr(exc, "detail", None))), {}
        if status == 400:
            detail = _text(getattr(exc, "detail", None)) or VALIDATIE_DETAIL
            return 400, problem(400, base_url, invalid_params=[
                {"name": "nonFieldErrors", "code": "invalid", "reason": detail}]), {}
        if status in SOORTEN and status < 500:
            detail = _text(getattr(exc, "detail", None))
            return status, problem(status, base_url, detail=None if status == 404 else detail), headers
        return 500, problem(500, base_url, detail="Internal Server Error"), {}
    if _database_weg(exc):
        # 57014 statement timeout, 55P03 lock timeout: the database is there but too busy (or a row is locked)
        if getattr(getattr(exc, "orig", None), "sqlstate", None) in ("57014", "55P03"):
            log.error("database timeout", extra={"event": "database_timeout", "exception_class": type(exc).__name__})
            return 503, problem(503, base_url, detail="De database kon het verzoek niet op tijd afhandelen."), \
                {"Retry-After": "1"}
        log.error("database unavailable", extra={"event": "database_unavailable",
                                                 "exception_class": type(exc).__name__})
        return 503, problem(503, base_url, detail="De database is tijdelijk niet bereikbaar."), {"Retry-After": "5"}
    # The exception message may echo request data (personal data): log the class and the frames only.
    frames = traceback.extract_tb(exc.__traceback__)
    # our own frames first (which of our functions failed), then the innermost library frames
    ours = [f for f in frames if any(f"/{pkg}/" in f.filename for pkg in OUR_PACKAGES)]
    shown = ours[-6:] + [f for f in frames[-3:] if f not in ours[-6:]]
    log.error("unhandled exception", extra={
        "event": "unhandled_exception", "exception_class": type(exc).__name__,
        "frames": [f"{'/'.join(f.filename.rsplit('/', 2)[-2:])}:{f.lineno}:{f.name}" for f in shown]})
    return 500, problem(500, base_url, detail="Internal Server Error"), {}


def _database_weg(exc: BaseException) -> bool:
    """A lost or unreachable database (not a bad query): the client may simply try again."""
    import sqlalchemy.exc as sa_exc
    if isinstance(exc, sa_exc.TimeoutError):          # no pooled connection within the pool timeout
        return True
    if isinstance(exc, sa_exc.DBAPIError) and (exc.connection_invalidated
                                                or isinstance(exc, sa_exc.OperationalError)):
        return True
    return False


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None

