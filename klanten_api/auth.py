"""ZGW JWT authorisation: HS256 tokens per client, scopes from a local file (optionally the Autorisaties API).

Every failure is a 403 `Fout` (never a 500). An unknown client and a bad signature answer identically,
so a caller cannot find out which client ids exist.
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import yaml

from service.constants import ALLE_SCOPES
from .errors import GeenToestemming
from .settings import ConfigError, Settings, zwak_geheim

warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning) if hasattr(jwt, "warnings") else None

log = logging.getLogger("klanten_api.auth")

DECODE_ERROR = ("jwt-decode-error", "Het JWT kon niet gedecodeerd worden. Mogelijks heb je een copy-paste fout gemaakt")
MISSING_CLIENT = ("missing-client-identifier", "Client identifier is niet aanwezig in JWT")
BAD_CREDENTIALS = ("invalid-jwt-signature", "Client credentials zijn niet geldig")
EXPIRED = ("jwt-expired", "Het JWT is verlopen (claim exp).")
IMMATURE = ("jwt-immature", "Het JWT is nog niet geldig (claim nbf).")
BAD_CLAIMS = ("jwt-decode-error", "Het JWT bevat ongeldige claims.")
WRONG_ALG = ("jwt-decode-error", "Het JWT moet met HS256 ondertekend zijn.")
NO_CONFIG = ("permission_denied", "Deze server heeft geen applicaties geconfigureerd (KLANTEN_AUTH_CONFIG).")
LEEWAY_SECONDS = 30
GELDIGE_TOKENS_MAX = 4096        # verified tokens remembered per process (see Authorisatie.verify)


@dataclass(frozen=True)
class Applicatie:
    label: str
    client_ids: tuple[str, ...]
    secret: str
    heeft_alle_autorisaties: bool = False
    scopes: frozenset[str] | None = None   # None: ask the Autorisaties API (when configured)

    def staat_toe(self, required: set[str]) -> bool:
        return self.heeft_alle_autorisaties or (self.scopes is not None and required <= self.scopes)


@dataclass
class Applicaties:
    by_client_id: dict[str, Applicatie] = field(default_factory=dict)
    configured: bool = True

    def get(self, client_id: str) -> Applicatie | None:
        return self.by_client_id.get(client_id)


def load_applicaties(path: Path | None) -> Applicaties:
    """Read and check the YAML file of applications; any problem stops start-up with a clear message."""
    if path is None:
        return Applicaties(configured=False)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"KLANTEN_AUTH_CONFIG: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # PyYAML's message quotes the offending line, which may hold a secret: position only
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"KLANTEN_AUTH_CONFIG: {path} is not valid YAML{where}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("applicaties"), list):
        raise ConfigError(f"KLANTEN_AUTH_CONFIG: {path} must hold a mapping with a list 'applicaties'")
    result = Applicaties()
    for i, item in enumerate(raw["applicaties"]):
        where = f"KLANTEN_AUTH_CONFIG: {path}: applicaties[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a mapping")
        unknown = set(item) - {"label", "clientIds", "secret", "heeftAlleAutorisaties", "scopes"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        label = item.get("label")
        client_ids = item.get("clientIds")
        secret = item.get("secret")
        alles = item.get("heeftAlleAutorisaties", False)
        scopes = item.get("scopes")
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"{where}: 'label' must be a non-empty string")
        if (not isinstance(client_ids, list) or not client_ids
                or not all(isinstance(c, str) and c.strip() and len(c) <= 100 for c in client_ids)):
            raise ConfigError(f"{where}: 'clientIds' must be a non-empty list of strings of at most 100 characters")
        if len(label) > 200:
            raise ConfigError(f"{where}: 'label' must be at most 200 characters (it is the audit trail's "
                              "applicatieWeergave)")
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f"{where}: 'secret' must be a non-empty string")
        if not isinstance(alles, bool):
            raise ConfigError(f"{where}: 'heeftAlleAutorisaties' must be true or false")
        if scopes is not None:
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise ConfigError(f"{where}: 'scopes' must be a list of strings")
            unknown_scopes = set(scopes) - ALLE_SCOPES
            if unknown_scopes:
                raise ConfigError(f"{where}: unknown scopes {sorted(unknown_scopes)}; known: {sorted(ALLE_SCOPES)}")
        app = Applicatie(label=label, client_ids=tuple(client_ids), secret=secret, heeft_alle_autorisaties=alles,
                         scopes=frozenset(scopes) if scopes is not None else None)
        for cid in client_ids:
            if cid in result.by_client_id:
                raise ConfigError(f"{where}: client id {cid!r} is configured twice")
            result.by_client_id[cid] = app
    return result


def controleer_geheimen(settings: Settings, applicaties: Applicaties) -> None:
    """Outside development, refuse short or placeholder secrets (a guessable secret lets anyone mint tokens)."""
    if settings.development:
        return
    geheimen = [(f"KLANTEN_AUTH_CONFIG: secret of application {app.label!r}", app.secret)
                for app in {id(a): a for a in applicaties.by_client_id.values()}.values()]
    if settings.notifications_api_url and settings.notifications_secret:
        geheimen.append(("KLANTEN_NOTIFICATIONS_SECRET", settings.notifications_secret))
    if settings.autorisaties_api_url and settings.autorisaties_secret:
        geheimen.append(("KLANTEN_AUTORISATIES_SECRET", settings.autorisaties_secret))
    for naam, geheim in geheimen:
        reden = zwak_geheim(geheim)
        if reden:
            raise ConfigError(f"{naam} is {reden}; use a random secret of at least 32 bytes "
                              "(or set KLANTEN_DEVELOPMENT=true on a developer machine)")


class Authorisatie:
    """Decides, per request, who the client is and whether it holds the scopes an operation needs."""

    def __init__(self, applicaties: Applicaties, autorisaties_api=None):
        self.applicaties = applicaties
        self.autorisaties_api = autorisaties_api
        # Clients send the same token with many requests. A token whose signature and claims were verified
        # once is remembered by its exact text (signature included, so no other token can match it); on a
        # later request only the time claims are checked again, and the scopes as always. Refused tokens are
        # never remembered.
        self._geldig: dict[str, tuple[Applicatie, str, object, object, dict]] = {}

    def verify(self, authorization: str | None, required_scopes: list[str] | None) -> dict:
        if not self.applicaties.configured:
            raise GeenToestemming(*NO_CONFIG)
        if not authorization or not authorization.startswith("Bearer "):
            raise GeenToestemming()
        token = authorization[len("Bearer "):].strip()
        bekend = self._geldig.get(token)
        if bekend is not None:
            app, client_id, exp, nbf, info = bekend
            nu = time.time()
            if exp is not None and exp <= nu - LEEWAY_SECONDS:
                self._geldig.pop(token, None)
                raise GeenToestemming(*EXPIRED)
            if nbf is not None and nbf > nu + LEEWAY_SECONDS:
                raise GeenToestemming(*IMMATURE)
        else:
            app, client_id, info, claims = self._verifieer(token)
            if len(self._geldig) >= GELDIGE_TOKENS_MAX:
                self._geldig.clear()
            self._geldig[token] = (app, client_id, claims.get("exp"), claims.get("nbf"), info)
        _log_fact("client_id", client_id)
        if not self._staat_toe(app, client_id, set(required_scopes or [])):
            raise GeenToestemming()
        return dict(info)

    def _verifieer(self, token: str) -> tuple[Applicatie, str, dict, dict]:
        """Signature and claims of a token not seen before: (application, client id, token info, claims)."""
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError):
            raise GeenToestemming(*DECODE_ERROR) from None
        if header.get("alg") != "HS256":
            raise GeenToestemming(*WRONG_ALG)
        client_id = claims.get("client_id") if isinstance(claims, dict) else None
        if client_id in (None, ""):
            raise GeenToestemming(*MISSING_CLIENT)
        app = self.applicaties.get(client_id) if isinstance(client_id, str) else None
        if app is None:
            raise GeenToestemming(*BAD_CREDENTIALS)
        try:
            claims = jwt.decode(token, app.secret, algorithms=["HS256"], leeway=LEEWAY_SECONDS,
                                options={"verify_aud": False, "verify_iss": False, "verify_sub": False,
                                         "verify_jti": False, "verify_iat": False})
        except jwt.InvalidSignatureError:
            raise GeenToestemming(*BAD_CREDENTIALS) from None
        except jwt.ExpiredSignatureError:
            raise GeenToestemming(*EXPIRED) from None
        except jwt.ImmatureSignatureError:
            raise GeenToestemming(*IMMATURE) from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise GeenToestemming(*BAD_CLAIMS) from None
        iat = claims.get("iat")
        if iat is not None and (isinstance(iat, bool) or not isinstance(iat, (int, float))):
            _log_fact("client_id", client_id)
            raise GeenToestemming(*BAD_CLAIMS)     # a future iat is fine (as the reference); a non-number is not
        info = {
            "client_id": client_id,
            "applicatie_label": app.label,
            "user_id": _claim_text(claims.get("user_id")),
            "user_representation": _claim_text(claims.get("user_representation")),
        }
        return app, client_id, info, claims

    def _staat_toe(self, app: Applicatie, client_id: str, required: set[str]) -> bool:
        if app.heeft_alle_autorisaties or app.scopes is not None or self.autorisaties_api is None:
            return app.staat_toe(required)
        return self.autorisaties_api.staat_toe(client_id, required)


def _log_fact(key: str, value) -> None:
    from .http import VERZOEK_LOG
    facts = VERZOEK_LOG.get(None)
    if facts is not None:
        facts[key] = value


def _claim_text(value, max_length: int = 255) -> str:
    """user_id / user_representation go into the audit trail (maxLength 255 there): text only, printable,
    valid Unicode, cut to length. They are the client's word about its user, not something to refuse."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = "".join(c if c.isprintable() else " " for c in text)
    return text[:max_length]


def make_token(app: Applicatie, client_id: str, user_id: str = "", user_representation: str = "",
               now: int | None = None) -> str:
    """A ZGW token as clients make them: HS256, claims iss/iat/client_id/user_id/user_representation."""
    issued = int(time.time()) if now is None else now
    payload = {"iss": client_id, "iat": issued, "client_id": client_id,
               "user_id": user_id, "user_representation": user_representation}
    return jwt.encode(payload, app.secret, algorithm="HS256")
