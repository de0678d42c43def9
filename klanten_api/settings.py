"""One settings object, read once from the environment (nothing reads os.environ elsewhere)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = PROJECT_ROOT / "spec" / "openapi.yaml"
DEV_AUTH_CONFIG = PROJECT_ROOT / "config" / "dev-auth.yaml"

API_VERSION = "1.0.0"
API_BASE_PATH = "/api/v1"


class ConfigError(Exception):
    """A setting or configuration file is unusable; start-up stops with this message."""


def _float(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _seconden(env: dict, name: str, default: float) -> float:
    """A number of seconds where 0 means "not at all"."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _minstens(env: dict, name: str, default: int, minimum: int) -> int:
    value = _int(env, name, default)
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(env: dict, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


_EENHEDEN = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duur(env: dict, name: str, default: float) -> float:
    """A duration in seconds: a number of seconds, or a number with s, m, h or d (`24h`)."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    getal, eenheid = (raw[:-1], _EENHEDEN[raw[-1]]) if raw[-1] in _EENHEDEN else (raw, 1.0)
    try:
        value = float(getal) * eenheid
    except ValueError:
        raise ConfigError(f"{name} must be a duration such as 86400, 90m or 24h, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _list(env: dict, name: str) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in env.get(name, "").split(",") if p.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///klanten.sqlite3"
    base_url: str | None = None
    auth_config: Path | None = None
    subject_allowed_hosts: tuple[str, ...] = ()
    subject_timeout: float = 5.0
    subject_max_bytes: int = 1_048_576
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout: float = 10.0
    validate_responses: bool = False
    notifications_api_url: str | None = None
    notifications_client_id: str = ""
    notifications_secret: str = ""
    notifications_timeout: float = 10.0
    notifications_backoff: float = 1.0
    notifications_relay: bool = True
    notifications_poll: float = 1.0
    notifications_relay_wekker: str = ""     # set by `serve` for its workers: host:port of its relay's wake-up socket
    autorisaties_api_url: str | None = None
    autorisaties_client_id: str = ""
    autorisaties_secret: str = ""
    autorisaties_timeout: float = 5.0
    autorisaties_cache_seconds: float = 300.0
    development: bool = False
    max_body_bytes: int = 1_048_576
    rate_limit: str = ""                 # "<requests>/<seconds>" per client_id, e.g. "600/60"; empty: off
    redis_url: str | None = None
    cors_allowed_origins: tuple[str, ...] = ("*",)
    trusted_proxies: tuple[str, ...] = ()
    db_statement_timeout_ms: int = 30_000
    db_lock_timeout_ms: int = 10_000
    auth_max_token_bytes: int = 8192          # longer bearer tokens are refused before any JWT work
    auth_token_cache_bytes: int = 4_194_304   # per process: verified tokens remembered (by digest); 0: off
    db_network_timeout: float = 10.0     # seconds until a connect, or sent data the database does not acknowledge, fails
    db_wait_seconds: float = 60.0        # `serve`/`migrate`: how long to wait for an unreachable database at start
    serve_pid: int = 0                   # set by `serve` for its workers: they end when this process is gone
    subject_max_concurrent: int = 4          # kla-002 checks at once per worker process (of a2wsgi's 10 threads)
    subject_max_concurrent_per_client: int = 2
    allowed_hosts: tuple[str, ...] = ()      # Host values (after KLANTEN_TRUSTED_PROXIES) that may name this server
    max_header_bytes: int = 65_536           # request line + headers of one request, per request
    header_timeout: float = 10.0             # seconds for a connection to deliver a request's headers
    request_concurrency: int = 3             # requests running in a worker's thread pool at once (klanten_api/wsgi.py)
    request_overflow_after: float = 0.01     # seconds a request waits for one of those places before it runs anyway
    body_timeout: float = 30.0               # seconds for a request body (POST/PUT/PATCH) to arrive in full
    max_connections: int = 1000              # open connections per worker process
    auth_audience: tuple[str, ...] = ()       # `aud` values that name this server; a token with another aud: 403
    auth_max_token_age: int = 0               # seconds since `iat` a token is accepted; 0: off (as the reference)
    # seconds a message keeps being retried after its first transient failure (then: failed); replaces the
    # former KLANTEN_NOTIFICATIONS_MAX_ATTEMPTS, which is no longer read
    notifications_retry_horizon: float = 24 * 3600.0
    notifications_max_backoff: float = 300.0     # seconds: the longest pause between two tries of one message
    klanten_base_path: str = API_BASE_PATH    # the canonical base path of the Klanten API (DECISIONS #18)
    contactmomenten_base_path: str = "/contactmomenten/api/v1"
    services_config: Path | None = None      # YAML: API roots with credentials for cm-004/cm-005/cm-006 fetches
    cm_zaak_relatie_controle: bool = True    # cm-006: ask the Zaken API for the mirror relation
    metrics_dir: Path | None = None          # `serve`: prometheus_client's multiprocess directory; none: a temp one
    tracing: bool = False                    # OpenTelemetry traces, switched on by the standard OTEL_* variables
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        base_url = env.get("KLANTEN_BASE_URL", "").strip().rstrip("/") or None
        if base_url and not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"KLANTEN_BASE_URL must start with http:// or https://, got {base_url!r}")
        auth = env.get("KLANTEN_AUTH_CONFIG", "").strip()
        nrc = env.get("KLANTEN_NOTIFICATIONS_API_URL", "").strip() or None
        if nrc and not nrc.endswith("/"):
            nrc += "/"
        ac = env.get("KLANTEN_AUTORISATIES_API_URL", "").strip() or None
        if ac and not ac.endswith("/"):
            ac += "/"
        return cls(
            database_url=env.get("KLANTEN_DATABASE_URL", "").strip() or cls.database_url,
            base_url=base_url,
            auth_config=Path(auth) if auth else None,
            subject_allowed_hosts=_list(env, "KLANTEN_SUBJECT_ALLOWED_HOSTS"),
            subject_timeout=_float(env, "KLANTEN_SUBJECT_TIMEOUT", cls.subject_timeout),
            subject_max_bytes=_int(env, "KLANTEN_SUBJECT_MAX_BYTES", cls.subject_max_bytes),
            db_pool_size=_int(env, "KLANTEN_DB_POOL_SIZE", cls.db_pool_size),
            db_max_overflow=_int(env, "KLANTEN_DB_MAX_OVERFLOW", cls.db_max_overflow),
            db_pool_timeout=_float(env, "KLANTEN_DB_POOL_TIMEOUT", cls.db_pool_timeout),
            validate_responses=_bool(env, "KLANTEN_VALIDATE_RESPONSES", cls.validate_responses),
            notifications_api_url=nrc,
            notifications_client_id=env.get("KLANTEN_NOTIFICATIONS_CLIENT_ID", ""),
            notifications_secret=env.get("KLANTEN_NOTIFICATIONS_SECRET", ""),
            notifications_timeout=_float(env, "KLANTEN_NOTIFICATIONS_TIMEOUT", cls.notifications_timeout),
            notifications_backoff=_float(env, "KLANTEN_NOTIFICATIONS_BACKOFF", cls.notifications_backoff),
            notifications_relay=_bool(env, "KLANTEN_NOTIFICATIONS_RELAY", cls.notifications_relay),
            notifications_poll=_float(env, "KLANTEN_NOTIFICATIONS_POLL", cls.notifications_poll),
            notifications_relay_wekker=env.get("KLANTEN_NOTIFICATIONS_RELAY_WEKKER", ""),
            autorisaties_api_url=ac,
            autorisaties_client_id=env.get("KLANTEN_AUTORISATIES_CLIENT_ID", ""),
            autorisaties_secret=env.get("KLANTEN_AUTORISATIES_SECRET", ""),
            autorisaties_timeout=_float(env, "KLANTEN_AUTORISATIES_TIMEOUT", cls.autorisaties_timeout),
            autorisaties_cache_seconds=_float(env, "KLANTEN_AUTORISATIES_CACHE_SECONDS", cls.autorisaties_cache_seconds),
            development=_bool(env, "KLANTEN_DEVELOPMENT", cls.development),
            max_body_bytes=_int(env, "KLANTEN_MAX_BODY_BYTES", cls.max_body_bytes),
            rate_limit=_rate_limit(env.get("KLANTEN_RATE_LIMIT", "").strip()),
            redis_url=env.get("KLANTEN_REDIS_URL", "").strip() or None,
            cors_allowed_origins=tuple(o.strip() for o in env.get("KLANTEN_CORS_ALLOWED_ORIGINS", "*").split(",")
                                       if o.strip()),
            trusted_proxies=_list(env, "KLANTEN_TRUSTED_PROXIES"),
            db_statement_timeout_ms=_int(env, "KLANTEN_DB_STATEMENT_TIMEOUT_MS", cls.db_statement_timeout_ms),
            db_lock_timeout_ms=_int(env, "KLANTEN_DB_LOCK_TIMEOUT_MS", cls.db_lock_timeout_ms),
            auth_max_token_bytes=_minstens(env, "KLANTEN_AUTH_MAX_TOKEN_BYTES", cls.auth_max_token_bytes, 1),
            auth_token_cache_bytes=_int(env, "KLANTEN_AUTH_TOKEN_CACHE_BYTES", cls.auth_token_cache_bytes),
            db_network_timeout=_float(env, "KLANTEN_DB_NETWORK_TIMEOUT", cls.db_network_timeout),
            db_wait_seconds=_seconden(env, "KLANTEN_DB_WAIT_SECONDS", cls.db_wait_seconds),
            serve_pid=_int(env, "KLANTEN_SERVE_PID", cls.serve_pid),
            subject_max_concurrent=_minstens(env, "KLANTEN_SUBJECT_MAX_CONCURRENT", cls.subject_max_concurrent, 1),
            subject_max_concurrent_per_client=_minstens(env, "KLANTEN_SUBJECT_MAX_CONCURRENT_PER_CLIENT",
                                                        cls.subject_max_concurrent_per_client, 1),
            allowed_hosts=_list(env, "KLANTEN_ALLOWED_HOSTS"),
            max_header_bytes=_minstens(env, "KLANTEN_MAX_HEADER_BYTES", cls.max_header_bytes, 1024),
            header_timeout=_float(env, "KLANTEN_HEADER_TIMEOUT", cls.header_timeout),
            request_concurrency=_minstens(env, "KLANTEN_REQUEST_CONCURRENCY", cls.request_concurrency, 1),
            request_overflow_after=_float(env, "KLANTEN_REQUEST_OVERFLOW_AFTER", cls.request_overflow_after),
            body_timeout=_float(env, "KLANTEN_BODY_TIMEOUT", cls.body_timeout),
            max_connections=_minstens(env, "KLANTEN_MAX_CONNECTIONS", cls.max_connections, 1),
            auth_audience=tuple(a.strip() for a in env.get("KLANTEN_AUTH_AUDIENCE", "").split(",") if a.strip()),
            auth_max_token_age=_int(env, "KLANTEN_AUTH_MAX_TOKEN_AGE", cls.auth_max_token_age),
            notifications_retry_horizon=_duur(env, "KLANTEN_NOTIFICATIONS_RETRY_HORIZON",
                                              cls.notifications_retry_horizon),
            notifications_max_backoff=_float(env, "KLANTEN_NOTIFICATIONS_MAX_BACKOFF", cls.notifications_max_backoff),
            klanten_base_path=_base_path(env, "KLANTEN_KLANTEN_BASE_PATH", cls.klanten_base_path),
            contactmomenten_base_path=_base_path(env, "KLANTEN_CONTACTMOMENTEN_BASE_PATH",
                                                 cls.contactmomenten_base_path),
            services_config=Path(d) if (d := env.get("KLANTEN_SERVICES_CONFIG", "").strip()) else None,
            cm_zaak_relatie_controle=_bool(env, "KLANTEN_CM_ZAAK_RELATIE_CONTROLE", cls.cm_zaak_relatie_controle),
            metrics_dir=Path(d) if (d := env.get("KLANTEN_METRICS_DIR", "").strip()) else None,
            tracing=_tracing(env),
        )

    def rate_limit_parts(self) -> tuple[int, float] | None:
        if not self.rate_limit:
            return None
        aantal, seconden = self.rate_limit.split("/")
        return int(aantal), float(seconden)


PLACEHOLDER_MARKERS = ("changeme", "change-me", "placeholder", "not-for-production", "example", "secret", "xxx",
                       "todo", "letmein", "password")
MIN_SECRET_BYTES = 32
MIN_SECRET_CHARACTERS = 8
_MARKERS = re.compile("|".join(re.escape(m) for m in sorted(PLACEHOLDER_MARKERS, key=len, reverse=True)),
                      re.IGNORECASE)


def zwak_geheim(secret: str) -> str | None:
    """Why a secret is unfit outside development (None when it is fine).

    Strength, not spelling: the secret must hold at least 32 bytes and 8 different characters *besides* any
    placeholder words in it. A random secret (`secrets.token_urlsafe(32)`: 43 characters) that happens to
    contain `xxx` or `secret` keeps far more than 32 bytes around it and passes; a template such as
    `changeme-changeme-…` or `…-example-secret` does not."""
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        return f"shorter than {MIN_SECRET_BYTES} bytes"
    rest = _MARKERS.sub("", secret)
    if len(rest.encode("utf-8")) < MIN_SECRET_BYTES or len(set(rest)) < MIN_SECRET_CHARACTERS:
        return "a placeholder"
    return None


def _tracing(env: dict) -> bool:
    """Traces are off unless the standard OpenTelemetry variables ask for them: OTEL_TRACES_EXPORTER=otlp, or an
    OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) without another exporter
    named; OTEL_SDK_DISABLED=true switches them off whatever else is set."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        if exporter == "none":
            return False
        if exporter != "otlp":
            raise ConfigError(f"OTEL_TRACES_EXPORTER: only otlp (OTLP over HTTP) is supported, got {exporter!r}")
        return True
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
                or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip())


def _rate_limit(raw: str) -> str:
    if not raw:
        return ""
    try:
        aantal, seconden = raw.split("/")
        if int(aantal) < 1 or float(seconden) <= 0:
            raise ValueError
    except ValueError:
        raise ConfigError(f"KLANTEN_RATE_LIMIT must look like 600/60 (requests/seconds), got {raw!r}") from None
    return raw


_BASE_PATH = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")


def _base_path(env: dict, name: str, default: str) -> str:
    """An absolute path of plain segments, without the trailing slash (whether it may be used for its API, next
    to the other APIs' paths, klanten_api.apis decides)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value = raw.rstrip("/")
    if not _BASE_PATH.fullmatch(value):
        raise ConfigError(f"{name} must be an absolute path such as {default}, got {raw!r}")
    return value
