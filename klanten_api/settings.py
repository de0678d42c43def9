"""One settings object, read once from the environment (nothing reads os.environ elsewhere)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = PROJECT_ROOT / "spec" / "openapi.yaml"
DEV_AUTH_CONFIG = PROJECT_ROOT / "config" / "dev-auth.yaml"

API_VERSION = "1.0.0"
API_BASE_PATH = "/api/v1"
# the Contactmomenten API 1.0 (DECISIONS #18): its own document and base path, as Open Klant 1.x serves it
CM_SPEC_PATH = PROJECT_ROOT / "spec" / "contactmomenten.yaml"
CM_API_BASE_PATH = "/contactmomenten/api/v1"


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


def _minstens_1(env: dict, name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value!r}")
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
    notifications_max_attempts: int = 8
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
    services_config: Path | None = None      # YAML: API roots with credentials for cm-004/cm-005/cm-006 fetches
    cm_zaak_relatie_controle: bool = True    # cm-006: ask the Zaken API for the mirror relation
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
            notifications_max_attempts=_int(env, "KLANTEN_NOTIFICATIONS_MAX_ATTEMPTS", cls.notifications_max_attempts),
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
            auth_max_token_bytes=_minstens_1(env, "KLANTEN_AUTH_MAX_TOKEN_BYTES", cls.auth_max_token_bytes),
            auth_token_cache_bytes=_int(env, "KLANTEN_AUTH_TOKEN_CACHE_BYTES", cls.auth_token_cache_bytes),
            db_network_timeout=_float(env, "KLANTEN_DB_NETWORK_TIMEOUT", cls.db_network_timeout),
            db_wait_seconds=_seconden(env, "KLANTEN_DB_WAIT_SECONDS", cls.db_wait_seconds),
            serve_pid=_int(env, "KLANTEN_SERVE_PID", cls.serve_pid),
            subject_max_concurrent=_minstens_1(env, "KLANTEN_SUBJECT_MAX_CONCURRENT", cls.subject_max_concurrent),
            subject_max_concurrent_per_client=_minstens_1(env, "KLANTEN_SUBJECT_MAX_CONCURRENT_PER_CLIENT",
                                                          cls.subject_max_concurrent_per_client),
            services_config=Path(d) if (d := env.get("KLANTEN_SERVICES_CONFIG", "").strip()) else None,
            cm_zaak_relatie_controle=_bool(env, "KLANTEN_CM_ZAAK_RELATIE_CONTROLE", cls.cm_zaak_relatie_controle),
        )

    def rate_limit_parts(self) -> tuple[int, float] | None:
        if not self.rate_limit:
            return None
        aantal, seconden = self.rate_limit.split("/")
        return int(aantal), float(seconden)


PLACEHOLDER_MARKERS = ("changeme", "change-me", "placeholder", "not-for-production", "example", "secret", "xxx",
                       "todo", "letmein", "password")
MIN_SECRET_BYTES = 32


def zwak_geheim(secret: str) -> str | None:
    """Why a secret is unfit outside development (None when it is fine)."""
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        return f"shorter than {MIN_SECRET_BYTES} bytes"
    lowered = secret.lower()
    if len(set(secret)) < 8 or any(marker in lowered for marker in PLACEHOLDER_MARKERS):
        return "a placeholder"
    return None


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
