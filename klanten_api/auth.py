"""ZGW JWT authorisation: HS256 tokens per client, scopes from a local file (optionally the Autorisaties API).

Every failure is a 403 `Fout` (never a 500). An unknown client and a bad signature answer identically and
cost the same work (a signature check against a random secret), so a caller cannot find out which client ids
exist, neither from the answer nor from its timing.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import sys
import threading
import time
import warnings
from collections import OrderedDict
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
WRONG_AUDIENCE = ("jwt-invalid-audience", "Het JWT is niet voor deze server bestemd (claim aud).")
MISSING_IAT = ("jwt-decode-error", "Het JWT mist de claim iat; deze server aanvaardt alleen tokens met een "
               "uitgiftetijd.")
LEEWAY_SECONDS = 30
# Python's own cost of one OrderedDict entry (hash slot, entry, linked-list node), on top of the objects it holds
CACHE_ENTRY_OVERHEAD = 120


def te_lang(max_token_bytes: int) -> tuple[str, str]:
    return ("jwt-decode-error", f"Het JWT is te lang (hoogstens {max_token_bytes} tekens).")


def te_oud(max_token_age: int) -> tuple[str, str]:
    return ("jwt-expired", f"Het JWT is verlopen: het is ouder dan {max_token_age} seconden (claim iat).")


@dataclass(frozen=True)
class Applicatie:
    label: str
    client_ids: tuple[str, ...]
    secret: str
    heeft_alle_autorisaties: bool = False
    scopes: frozenset[str] | None = None   # None: ask the Autorisaties API (when configured)
    accept_weak_secret: bool = False       # the operator's explicit word: start despite a weak secret (warned)

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
        unknown = set(item) - {"label", "clientIds", "secret", "heeftAlleAutorisaties", "scopes", "acceptWeakSecret"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        label = item.get("label")
        client_ids = item.get("clientIds")
        secret = item.get("secret")
        alles = item.get("heeftAlleAutorisaties", False)
        scopes = item.get("scopes")
        zwak_toegestaan = item.get("acceptWeakSecret", False)
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
        if not isinstance(zwak_toegestaan, bool):
            raise ConfigError(f"{where}: 'acceptWeakSecret' must be true or false")
        if scopes is not None:
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise ConfigError(f"{where}: 'scopes' must be a list of strings")
            unknown_scopes = set(scopes) - ALLE_SCOPES
            if unknown_scopes:
                raise ConfigError(f"{where}: unknown scopes {sorted(unknown_scopes)}; known: {sorted(ALLE_SCOPES)}")
        app = Applicatie(label=label, client_ids=tuple(client_ids), secret=secret, heeft_alle_autorisaties=alles,
                         scopes=frozenset(scopes) if scopes is not None else None,
                         accept_weak_secret=zwak_toegestaan)
        for cid in client_ids:
            if cid in result.by_client_id:
                raise ConfigError(f"{where}: client id {cid!r} is configured twice")
            result.by_client_id[cid] = app
    return result


def controleer_geheimen(settings: Settings, applicaties: Applicaties) -> list[str]:
    """Outside development, refuse short or placeholder secrets (a guessable secret lets anyone mint tokens).

    A municipality cannot always change the secret its consuming applications already use: an application
    with `acceptWeakSecret: true` starts anyway, with a warning naming its label (never the secret). Returns
    the labels so accepted."""
    if settings.development:
        return []
    apps = list({id(a): a for a in applicaties.by_client_id.values()}.values())
    geheimen = [(f"KLANTEN_AUTH_CONFIG: secret of application {app.label!r}", app.secret, app) for app in apps]
    if settings.notifications_api_url and settings.notifications_secret:
        geheimen.append(("KLANTEN_NOTIFICATIONS_SECRET", settings.notifications_secret, None))
    if settings.autorisaties_api_url and settings.autorisaties_secret:
        geheimen.append(("KLANTEN_AUTORISATIES_SECRET", settings.autorisaties_secret, None))
    toegestaan = []
    for naam, geheim, app in geheimen:
        reden = zwak_geheim(geheim)
        if reden and app is not None and app.accept_weak_secret:
            log.warning("KLANTEN_AUTH_CONFIG: an application's weak secret is accepted because of "
                        "acceptWeakSecret: true; replace it with a random secret of at least 32 bytes",
                        extra={"event": "weak_secret_accepted", "applicatie": app.label, "reason": reden})
            toegestaan.append(app.label)
        elif reden:
            hint = (" or, for an application whose secret cannot be changed yet, set acceptWeakSecret: true on "
                    "its entry") if app is not None else ""
            raise ConfigError(f"{naam} is {reden}; use a random secret of at least 32 bytes{hint} "
                              "(KLANTEN_DEVELOPMENT=true is for developer machines only)")
    return toegestaan


class Authorisatie:
    """Decides, per request, who the client is and whether it holds the scopes an operation needs."""

    def __init__(self, applicaties: Applicaties, autorisaties_api=None, *,
                 max_token_bytes: int = Settings.auth_max_token_bytes,
                 cache_budget: int = Settings.auth_token_cache_bytes,
                 audience: tuple[str, ...] = Settings.auth_audience,
                 max_token_age: int = Settings.auth_max_token_age):
        self.applicaties = applicaties
        self.autorisaties_api = autorisaties_api
        self.max_token_bytes = max_token_bytes
        self.cache_budget = cache_budget
        self.audience = frozenset(audience)
        self.max_token_age = max_token_age
        # A token of an unknown client is checked against this secret, so that it costs exactly what a known
        # client's token with a bad signature costs (same jwt.decode, same HMAC over the whole token): the answer
        # time does not tell which client ids exist. Random per process, as long as a real secret.
        self._schijngeheim = secrets.token_urlsafe(48)
        # Clients send the same token with many requests. A token whose signature and claims were verified
        # once is remembered by the SHA-256 digest of its text (no token text is kept; no other token has that
        # digest); on a later request only the time claims are checked again, and the scopes as always. Refused
        # tokens are never remembered. Bounded by an explicit byte budget; the least recently used go first.
        self._geldig: OrderedDict[bytes, tuple[Applicatie, str, object, object, object, dict, int]] = OrderedDict()
        self._geldig_bytes = 0
        self._lock = threading.Lock()     # the Autorisaties API path verifies in a thread pool

    @property
    def cache_bytes(self) -> int:
        """Bytes the token cache holds now (Python's sizes of its keys, entries and texts); never above
        cache_budget."""
        return self._geldig_bytes

    @property
    def cache_entries(self) -> int:
        return len(self._geldig)

    def is_cached(self, token: str) -> bool:
        return _digest(token) in self._geldig

    def verify(self, authorization: str | None, required_scopes: list[str] | None, component: str = "kc") -> dict:
        """`component`: whose scopes the operation needs (Autorisaties API: `kc` Klanten, `cmc` Contactmomenten)."""
        if not self.applicaties.configured:
            raise GeenToestemming(*NO_CONFIG)
        token = bearer_token(authorization)
        if token is None:
            raise GeenToestemming()
        # before any base64, JSON or HMAC work: a long token costs no more than finding it in the header
        if len(token) > self.max_token_bytes:
            raise GeenToestemming(*te_lang(self.max_token_bytes))
        sleutel = _digest(token)
        with self._lock:
            bekend = self._geldig.get(sleutel)
            if bekend is not None:
                self._geldig.move_to_end(sleutel)
        if bekend is not None:
            app, client_id, exp, nbf, iat, info, _ = bekend
            nu = time.time()
            if exp is not None and exp <= nu - LEEWAY_SECONDS:
                self._vergeet(sleutel)
                raise GeenToestemming(*EXPIRED)
            if nbf is not None and nbf > nu + LEEWAY_SECONDS:
                raise GeenToestemming(*IMMATURE)
            if self._te_oud(iat, nu):          # a remembered token ages like any other
                self._vergeet(sleutel)
                raise GeenToestemming(*te_oud(self.max_token_age))
        else:
            app, client_id, info, claims = self._verifieer(token)
            self._onthoud(sleutel, app, client_id, claims.get("exp"), claims.get("nbf"), claims.get("iat"), info)
        _log_fact("client_id", client_id)
        if not self._staat_toe(app, client_id, set(required_scopes or []), component):
            raise GeenToestemming()
        return dict(info)

    def _te_oud(self, iat, nu: float) -> bool:
        """KLANTEN_AUTH_MAX_TOKEN_AGE: issued longer ago than that (with the leeway of exp)."""
        return bool(self.max_token_age) and iat is not None and iat < nu - self.max_token_age - LEEWAY_SECONDS

    def _onthoud(self, sleutel: bytes, app: Applicatie, client_id: str, exp, nbf, iat, info: dict) -> None:
        grootte = (CACHE_ENTRY_OVERHEAD + sys.getsizeof(sleutel)
                   + sys.getsizeof((app, client_id, exp, nbf, iat, info, 0))
                   + sys.getsizeof(exp) + sys.getsizeof(nbf) + sys.getsizeof(iat) + sys.getsizeof(info)
                   + sum(sys.getsizeof(v) for v in info.values()))
        if grootte > self.cache_budget:
            return
        with self._lock:
            oud = self._geldig.pop(sleutel, None)
            if oud is not None:
                self._geldig_bytes -= oud[-1]
            while self._geldig and self._geldig_bytes + grootte > self.cache_budget:
                _, weg = self._geldig.popitem(last=False)
                self._geldig_bytes -= weg[-1]
            self._geldig[sleutel] = (app, client_id, exp, nbf, iat, info, grootte)
            self._geldig_bytes += grootte

    def _vergeet(self, sleutel: bytes) -> None:
        with self._lock:
            weg = self._geldig.pop(sleutel, None)
            if weg is not None:
                self._geldig_bytes -= weg[-1]

    def _verifieer(self, token: str) -> tuple[Applicatie, str, dict, dict]:
        """Signature and claims of a token not seen before: (application, client id, token info, claims)."""
        try:
            ongecontroleerd = jwt.decode_complete(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise GeenToestemming(*DECODE_ERROR) from None
        header, claims = ongecontroleerd["header"], ongecontroleerd["payload"]
        if header.get("alg") != "HS256":
            raise GeenToestemming(*WRONG_ALG)
        client_id = claims.get("client_id")
        if client_id in (None, ""):
            raise GeenToestemming(*MISSING_CLIENT)
        app = self.applicaties.get(client_id) if isinstance(client_id, str) else None
        # An unknown client id takes the same path as a known one with a bad signature (see _schijngeheim).
        geheim = app.secret if app is not None else self._schijngeheim
        try:
            claims = jwt.decode(token, geheim, algorithms=["HS256"], leeway=LEEWAY_SECONDS,
                                options={"verify_aud": False, "verify_iss": False, "verify_sub": False,
                                         "verify_jti": False, "verify_iat": False})
        except jwt.InvalidSignatureError:
            raise GeenToestemming(*BAD_CREDENTIALS) from None
        except jwt.ExpiredSignatureError:
            raise GeenToestemming(*EXPIRED) from None
        except jwt.ImmatureSignatureError:
            raise GeenToestemming(*IMMATURE) from None
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise GeenToestemming(*BAD_CLAIMS) from None
        if app is None:      # a signature made with the random secret: not a client of ours either
            raise GeenToestemming(*BAD_CREDENTIALS)
        iat = claims.get("iat")
        if iat is not None and (isinstance(iat, bool) or not isinstance(iat, (int, float))):
            _log_fact("client_id", client_id)
            raise GeenToestemming(*BAD_CLAIMS)     # a future iat is fine (as the reference); a non-number is not
        if self.max_token_age:
            # without iat a token's age is unknown, and with no exp it would never end: refused
            if iat is None:
                _log_fact("client_id", client_id)
                raise GeenToestemming(*MISSING_IAT)
            if self._te_oud(iat, time.time()):
                _log_fact("client_id", client_id)
                raise GeenToestemming(*te_oud(self.max_token_age))
        if "aud" in claims and not self._voor_ons(claims["aud"]):
            # RFC 7519 §4.1.3: a token meant for other recipients must be rejected (checked after the
            # signature: only the holder of the secret can learn from this answer)
            _log_fact("client_id", client_id)
            raise GeenToestemming(*WRONG_AUDIENCE)
        info = {
            "client_id": client_id,
            "applicatie_label": app.label,
            "user_id": _claim_text(claims.get("user_id")),
            "user_representation": _claim_text(claims.get("user_representation")),
        }
        return app, client_id, info, claims

    def _voor_ons(self, aud) -> bool:
        """Does the `aud` claim (a string or a list of strings) name this server (KLANTEN_AUTH_AUDIENCE)?"""
        waarden = [aud] if isinstance(aud, str) else aud
        if not isinstance(waarden, list) or not all(isinstance(w, str) for w in waarden):
            return False
        return any(w in self.audience for w in waarden)

    def _staat_toe(self, app: Applicatie, client_id: str, required: set[str], component: str) -> bool:
        if app.heeft_alle_autorisaties or app.scopes is not None or self.autorisaties_api is None:
            return app.staat_toe(required)
        return self.autorisaties_api.staat_toe(client_id, required, component)


def bearer_token(authorization: str | None) -> str | None:
    """The token of `Bearer <token>`, or None. RFC 9110 §11.4: credentials = auth-scheme [ 1*SP token68 ], and
    the scheme name is case-insensitive (`bearer`, `BEARER`); surrounding whitespace is not part of the value."""
    if not authorization:
        return None
    schema, _, rest = authorization.strip(" \t").partition(" ")
    token = rest.lstrip(" ")
    if not token or schema.lower() != "bearer":
        return None
    return token


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


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
