"""`klanten-api check`: validate the configuration and the connections a production server needs.

One line per check on stdout: `<part>: ok [(detail)]`, `<part>: skipped (why)` or `<part>: FAIL: <reason>`.
Exit 0 only when nothing failed. A broken setting stops `Settings.from_env` before we run (cli.main: exit 2).
Nothing printed may reveal a secret: messages carry exception class names, hosts and ports, never a
password, and every line passes through `_Redactor` (every secret we know of is masked) as a last guard.
"""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .settings import ConfigError, Settings

OK, SKIPPED, FAIL = "ok", "skipped", "FAIL"


class _Result:
    def __init__(self, status: str, detail: str = ""):
        self.status, self.detail = status, detail

    def line(self, part: str) -> str:
        if self.status == FAIL:
            return f"{part}: FAIL: {self.detail}"
        return f"{part}: {self.status}" + (f" ({self.detail})" if self.detail else "")


def ok(detail: str = "") -> _Result:
    return _Result(OK, detail)


def skipped(detail: str) -> _Result:
    return _Result(SKIPPED, detail)


def fail(detail: str) -> _Result:
    return _Result(FAIL, detail)


class _Redactor:
    """Masks every secret we know of in what we print (a last guard; messages are built without them)."""

    def __init__(self):
        self.secrets: set[str] = set()

    def add(self, secret) -> None:
        if isinstance(secret, str) and len(secret) >= 4:
            self.secrets.add(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _where(url: str) -> str:
    """A URL fit to print: no user info, no query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "(unparsable URL)"


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0]}" if text else type(inner).__name__


# ---------- the checks ----------
class Checker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.redact = _Redactor()
        self.applicaties = None
        for secret in (settings.notifications_secret, settings.autorisaties_secret):
            self.redact.add(secret)
        for url in (settings.database_url, settings.redis_url or "", settings.notifications_api_url or "",
                    settings.autorisaties_api_url or ""):
            try:
                self.redact.add(urlsplit(url).password)
            except ValueError:
                pass

    # -- KLANTEN_AUTH_CONFIG --
    def auth_config(self) -> _Result:
        from .auth import controleer_geheimen, load_applicaties
        path = self.settings.auth_config
        if path is None:
            return fail("KLANTEN_AUTH_CONFIG is not set: the server would refuse every API request (403)")
        # Parse it ourselves first: a YAML error message quotes the offending line, which may hold a secret.
        import yaml
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            return fail(f"KLANTEN_AUTH_CONFIG: cannot read {path}: {exc.strerror}")
        except yaml.YAMLError as exc:
            def at(mark) -> str:
                return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = (getattr(exc, "problem", None) or "syntax error") + at(getattr(exc, "problem_mark", None))
            context = getattr(exc, "context", None)
            if context:
                problem = f"{context}{at(getattr(exc, 'context_mark', None))}: {problem}"
            return fail(f"KLANTEN_AUTH_CONFIG: {path} is not valid YAML: {problem}")
        if isinstance(raw, dict) and isinstance(raw.get("applicaties"), list):
            for item in raw["applicaties"]:
                if isinstance(item, dict):
                    self.redact.add(item.get("secret"))
        try:
            applicaties = load_applicaties(path)
            zwak_toegestaan = controleer_geheimen(self.settings, applicaties)
        except ConfigError as exc:
            return fail(str(exc))
        self.applicaties = applicaties
        apps = {id(a): a for a in applicaties.by_client_id.values()}
        if not apps:
            return fail(f"KLANTEN_AUTH_CONFIG: {path} names no applications: every API request would be refused")
        detail = f"{len(apps)} application(s), {len(applicaties.by_client_id)} client id(s)"
        if self.settings.development:
            detail += "; KLANTEN_DEVELOPMENT=true: secret strength not checked"
        elif zwak_toegestaan:
            detail += (", weak secret accepted (acceptWeakSecret) for "
                       + ", ".join(repr(label) for label in zwak_toegestaan))
        else:
            detail += ", secrets strong"
        return ok(detail)

    # -- database --
    def database(self) -> _Result:
        import sqlalchemy as sa

        from storage.database import make_engine, normaliseer_url
        from .ops import database_status
        try:
            url = sa.engine.make_url(normaliseer_url(self.settings.database_url))
        except Exception:
            return fail("KLANTEN_DATABASE_URL is not a valid database URL")
        where = sa.engine.make_url(self.settings.database_url).render_as_string(hide_password=True)
        backend = url.get_backend_name()
        if backend == "sqlite":
            db = url.database or ""
            if db and db != ":memory:" and not db.startswith("file:") and not Path(db).exists():
                return fail(f"SQLite database file {db} does not exist (run `klanten-api migrate`)")
        elif backend != "postgresql":
            return fail(f"{backend} is not supported: use postgresql:// (or sqlite:/// for one machine)")
        try:
            engine = make_engine(str(url.render_as_string(hide_password=False)), pool_size=1, max_overflow=0,
                                 pool_timeout=self.settings.db_pool_timeout,
                                 statement_timeout_ms=self.settings.db_statement_timeout_ms,
                                 lock_timeout_ms=self.settings.db_lock_timeout_ms)
        except Exception as exc:
            return fail(f"cannot use {where}: {_first_line(exc)}")
        try:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
            except Exception as exc:
                return fail(f"cannot connect to {where}: {_first_line(exc)}")
            ready, reason = database_status(engine)
        finally:
            engine.dispose()
        if not ready:
            return fail(f"{where}: {reason}")
        detail = f"{where}, newest migration"
        if backend == "sqlite":
            detail += "; SQLite serves one machine only, use PostgreSQL in production"
        return ok(detail)

    # -- Notificaties API --
    def notificaties_api(self) -> _Result:
        from notificaties.client import NotificatiesApi
        from service.constants import KANAAL
        s = self.settings
        if not s.notifications_api_url:
            return skipped("KLANTEN_NOTIFICATIONS_API_URL is not set: no notifications are sent")
        if not s.notifications_api_url.startswith(("http://", "https://")):
            return fail("KLANTEN_NOTIFICATIONS_API_URL must start with http:// or https://")
        api = NotificatiesApi(s)
        url = f"{api.root}kanaal"
        api.session.close()                 # _get uses a session of its own (no environment proxies)
        resp = _get(url, {"naam": KANAAL}, api.headers(), s.notifications_timeout, "KLANTEN_NOTIFICATIONS_TIMEOUT")
        if isinstance(resp, _Result):
            return resp
        refused = _refused(resp.status_code, "KLANTEN_NOTIFICATIONS", bool(s.notifications_client_id and
                                                                          s.notifications_secret))
        if refused:
            return fail(f"{refused} by {_where(url)}")
        if resp.status_code >= 500:
            return fail(f"{_where(url)} answered HTTP {resp.status_code} (server error)")
        if resp.status_code == 404:
            return fail(f"{_where(url)} answered HTTP 404: KLANTEN_NOTIFICATIONS_API_URL must be the API root "
                        "(e.g. https://nrc.example/api/v1/)")
        if not 200 <= resp.status_code < 300:
            return ok(f"{_where(url)} reachable, credentials accepted (HTTP {resp.status_code})")
        kanalen = _results(resp)
        if kanalen is None:
            return ok(f"{_where(url)} reachable, credentials accepted; the kanaal list could not be read")
        if not any(isinstance(k, dict) and k.get("naam") == KANAAL for k in kanalen):
            return fail(f"kanaal {KANAAL!r} is not registered at {_where(s.notifications_api_url)}: every "
                        "notification would be refused (run `klanten-api register-kanaal`)")
        return ok(f"{_where(s.notifications_api_url)} reachable, credentials accepted, kanaal {KANAAL!r} registered")

    # -- Autorisaties API --
    def autorisaties_api(self) -> _Result:
        from notificaties.client import zgw_token
        s = self.settings
        if not s.autorisaties_api_url:
            return skipped("KLANTEN_AUTORISATIES_API_URL is not set: scopes come from KLANTEN_AUTH_CONFIG only")
        if not s.autorisaties_api_url.startswith(("http://", "https://")):
            return fail("KLANTEN_AUTORISATIES_API_URL must start with http:// or https://")
        # Ask for a client that takes its scopes from there; else for any configured one.
        remote, client_id = [], None
        if self.applicaties is not None:
            remote = [cid for cid, app in self.applicaties.by_client_id.items()
                      if app.scopes is None and not app.heeft_alle_autorisaties]
            client_id = (remote or list(self.applicaties.by_client_id) or [None])[0]
        client_id = client_id or s.autorisaties_client_id or "klanten-api-check"
        url = f"{s.autorisaties_api_url}applicaties"
        headers = {"Accept": "application/json"}
        if s.autorisaties_client_id and s.autorisaties_secret:
            headers["Authorization"] = f"Bearer {zgw_token(s.autorisaties_client_id, s.autorisaties_secret)}"
        resp = _get(url, {"clientIds": client_id}, headers, s.autorisaties_timeout, "KLANTEN_AUTORISATIES_TIMEOUT")
        if isinstance(resp, _Result):
            return resp
        refused = _refused(resp.status_code, "KLANTEN_AUTORISATIES", bool(s.autorisaties_client_id and
                                                                         s.autorisaties_secret))
        if refused:
            return fail(f"{refused} by {_where(url)}")
        # the server counts anything but 200 as "Autorisaties API unavailable" (403 for the client)
        if resp.status_code != 200:
            hint = (": KLANTEN_AUTORISATIES_API_URL must be the API root (e.g. https://ac.example/api/v1/)"
                    if resp.status_code == 404 else "")
            return fail(f"{_where(url)} answered HTTP {resp.status_code}; the server needs 200{hint}")
        applicaties = _results(resp)
        if applicaties is None:
            return fail(f"{_where(url)} answered 200 but not with a list of applicaties")
        if remote:
            known = any(isinstance(a, dict) and client_id in (a.get("clientIds") or []) for a in applicaties)
            if not known:
                return fail(f"client {client_id!r} takes its scopes from {_where(s.autorisaties_api_url)} but has "
                            "no application there: its requests would be refused (403)")
            return ok(f"{_where(s.autorisaties_api_url)} reachable, credentials accepted, "
                      f"{len(remote)} client id(s) take their scopes from it")
        return ok(f"{_where(s.autorisaties_api_url)} reachable, credentials accepted; note: no application in "
                  "KLANTEN_AUTH_CONFIG takes its scopes from it")

    # -- Redis --
    def redis(self) -> _Result:
        s = self.settings
        if not s.redis_url:
            extra = "; rate limits are counted per process" if s.rate_limit else ""
            return skipped(f"KLANTEN_REDIS_URL is not set{extra}")
        import redis
        try:
            client = redis.Redis.from_url(s.redis_url, socket_timeout=2, socket_connect_timeout=2)
        except Exception:
            return fail("KLANTEN_REDIS_URL is not a valid redis:// (or rediss://, unix://) URL")
        where = _where(s.redis_url)
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            return fail(f"credentials refused by {where} ({type(exc).__name__})")
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            return fail(f"cannot connect to {where} ({type(exc).__name__})")
        except redis.RedisError as exc:
            return fail(f"{where} answered PING with an error ({type(exc).__name__})")
        finally:
            client.close()
        if not s.rate_limit:
            return ok(f"{where} answers PING; note: KLANTEN_RATE_LIMIT is off, so Redis is not used")
        return ok(f"{where} answers PING; rate limits are shared through it")


def _get(url: str, params: dict, headers: dict, timeout: float, timeout_setting: str):
    """GET with a timeout; the response, or the failed check saying why there is none."""
    import requests
    try:
        with requests.Session() as session:
            session.trust_env = False
            return session.get(url, params=params, headers=headers, timeout=(timeout, timeout))
    except requests.Timeout:
        return fail(f"no answer from {_where(url)} within {timeout:g} s ({timeout_setting})")
    except requests.ConnectionError as exc:
        return fail(f"cannot connect to {_where(url)} ({type(exc).__name__})")
    except requests.RequestException as exc:
        return fail(f"request to {_where(url)} failed ({type(exc).__name__})")


def _refused(status: int, prefix: str, has_credentials: bool) -> str | None:
    if status not in (401, 403):
        return None
    if not has_credentials:
        return (f"credentials refused (HTTP {status}); none are configured: set {prefix}_CLIENT_ID and "
                f"{prefix}_SECRET")
    return f"credentials refused (HTTP {status}; check {prefix}_CLIENT_ID and {prefix}_SECRET)"


def _results(resp):
    try:
        data = resp.json()
    except ValueError:
        return None
    results = data.get("results") if isinstance(data, dict) else data
    return results if isinstance(results, list) else None


CHECKS = (("auth config", "auth_config"), ("database", "database"), ("notificaties api", "notificaties_api"),
          ("autorisaties api", "autorisaties_api"), ("redis", "redis"))


def cmd_check(args, settings: Settings) -> int:
    from .http import controleer_publieke_url
    checker = Checker(settings)
    failed = []
    try:
        controleer_publieke_url(settings)      # `serve` would refuse to start without a public URL or host list
        print("settings: ok", flush=True)      # Settings.from_env raised nothing (cli.main reports it otherwise)
    except ConfigError as exc:
        failed.append("settings")
        print(fail(str(exc)).line("settings"), flush=True)
    for part, method in CHECKS:
        try:
            result = getattr(checker, method)()
        except Exception as exc:               # never a traceback (it could quote a URL or a value)
            result = fail(f"unexpected error ({type(exc).__name__})")
        if result.status == FAIL:
            failed.append(part)
        print(checker.redact(result.line(part)), flush=True)
    if failed:
        print(f"klanten-api check: {len(failed)} problem(s): {', '.join(failed)}", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0
