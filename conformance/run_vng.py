"""Run VNG's official Postman conformance collections (via newman) against fresh servers.

`make vng-conformance` runs this script. It runs two collections, each against its own freshly started
`klanten-api serve` (free loopback port, empty SQLite database):

- Klanten API (`klanten_api_tests.json`, 18 assertions, client `klanten-conformance`);
- Contactmomenten API (`contactmomenten_api_tests.json`, client `contactmomenten-conformance`), with
  loopback stand-ins for the Zaken, Catalogi and Referentielijsten APIs it calls (`zgw_standins.py`),
  configured to our server through a temporary services file (KLANTEN_SERVICES_CONFIG), so the cm-005 and
  cm-006 checks run against a Zaken API.

It needs the shared material at `<repo>/../shared` (skipped, exit 0, when it is absent), Node.js with npm
(newman is installed into `build/newman` on first use) and the project's `.venv`. A run is judged on its
assertions, not on newman's exit code (the Klanten collection always ends with one request error): every
assertion must pass except those listed in the suite's `cannot_pass` (by request and assertion name, each
with its reason), and at least the expected number of assertions must have run.

Steps: copy each collection into a temporary directory (rewriting one URL, see `copy_collection`), start a
loopback mock for `{{mock_url}}`, start the stand-ins and the server, run newman, judge its JSON report,
stop everything. Exit 0 when both suites pass, 1 otherwise. Set VNG_CONFORMANCE_KEEP=1 to keep the
temporary directory (per suite: newman.json, server.log) for inspection; VNG_CONFORMANCE_ONLY=klanten or
=contactmomenten runs one suite.
"""
from __future__ import annotations

import json
import secrets
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from zgw_standins import ZgwStandIns     # conformance/, this script's directory

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CONFORMANCE = SHARED / "conformance"
# VNG's own environment has no kla_url; this one (written for this project) names every variable both
# collections use, and the runner sets them all through --env-var anyway.
ENVIRONMENT = CONFORMANCE / "klanten-local.postman_environment.json"
AUTH_CONFIG = "config/dev-auth.yaml"                 # relative to REPO, the server's working directory
# `python -m klanten_api.cli` with PYTHONPATH=REPO rather than `.venv/bin/klanten-api`: the script entry
# point imports the code of the checkout the venv was installed from, which in a git worktree sharing
# another checkout's venv is not this one.
PYTHON = REPO / ".venv" / "bin" / "python"
SERVER = [str(PYTHON), "-m", "klanten_api.cli"]
NEWMAN_PREFIX = REPO / "build" / "newman"
NEWMAN = NEWMAN_PREFIX / "node_modules" / ".bin" / "newman"
NEWMAN_PACKAGE = "newman@6"

SERVER_START_TIMEOUT = 30      # seconds
NEWMAN_TIMEOUT = 600           # seconds for one newman run

# The client our server uses towards the Zaken API stand-in (cm-005, cm-006), written to a temporary
# services file; its secret is made per run.
SERVICES_CLIENT_ID = "klanten-api-conformance"


@dataclass(frozen=True)
class CannotPass:
    """An assertion that cannot pass against any correct server, and how it must fail: with this HTTP status
    whose body contains `contains`, or with no response at all (status None). A failure any other way (a 500,
    a different refusal) is counted like any other failed assertion."""
    reason: str
    status: int | None
    contains: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    collection: Path
    client_id: str                        # an application of AUTH_CONFIG with the scopes the collection needs
    expected_assertions: int              # fewer means requests were skipped or scripts broke: not a pass
    # (request name, assertion name) -> why it cannot pass; such a failure is reported but not counted.
    # Every other failed assertion fails the run. (Request and assertion together: assertion names repeat.)
    cannot_pass: dict[tuple[str, str], CannotPass] = field(default_factory=dict)
    standins: bool = False                # start the Zaken/Catalogi/Referentielijsten stand-ins


# Klanten: 18 `pm.test` assertions (7 OAS requests with 2 each, DELETE with 1, kla-001a, kla-001b,
# kla-002a with 1 each). None is excluded: kla-001b sends the literal body `[object Object]` (its test
# stores `pm.request.body`, an object, instead of its raw text), so it never tests kla-001 uniqueness; but
# it asserts only "status 400", which a correct server gives for malformed JSON (400 parse_error, like the
# reference), so it passes and need not be excluded. tests/test_kla_001.py covers the duplicate.
KLANTEN = Suite(
    name="klanten",
    collection=CONFORMANCE / "klanten_api_tests.json",
    client_id="klanten-conformance",
    expected_assertions=18,
)

_WIP_OCM = ("the \"(WIP) objectcontactmomenten\" folder (marked work-in-progress by VNG) POSTs an "
            "objectcontactmoment for its zaak without the zaakcontactmoment in the Zaken API that cm-006 requires "
            "(the collection never creates one: \"TODO use zrc endpoint to create zaakcontactmoment\"), so a "
            "correct server refuses it with 400 inconsistent-relation, as the reference does and as cm-006a in the "
            "same collection requires. Had the Zaken API held the zaakcontactmoment, the folder's DELETE would be "
            "refused in turn (cm-006 on delete: 400 remote-relation-exists), so the folder cannot pass against a "
            "consistent Zaken API either way")
_WIP_OCM_FOLLOW = ("follows from the refused create in the \"(WIP) objectcontactmomenten\" folder: `ocm_url` was "
                   "never set, so newman requests the literal `{{ocm_url}}` and gets no response")

# Contactmomenten: 47 `pm.test` blocks, of which 46 run: cm-005b's test script always jumps to cm-006a
# (`postman.setNextRequest`), so "(WIP) Create objectcontactmoment" and cm-005c never run.
CONTACTMOMENTEN = Suite(
    name="contactmomenten",
    collection=CONFORMANCE / "contactmomenten_api_tests.json",
    client_id="contactmomenten-conformance",
    expected_assertions=46,
    cannot_pass={
        ("(WIP) Maak een OBJECT-CONTACTMOMENT relatie aan.", "Maak een OBJECT-CONTACTMOMENT relatie aan. geeft 201"):
            CannotPass(_WIP_OCM, status=400, contains='"inconsistent-relation"'),
        ("Een specifiek OBJECT-CONTACTMOMENT relatie opvragen.",
         "Een specifiek OBJECT-CONTACTMOMENT relatie opvragen. geeft 200"): CannotPass(_WIP_OCM_FOLLOW, status=None),
        ("Een specifiek OBJECT-CONTACTMOMENT relatie opvragen.",
         "Een specifiek OBJECT-CONTACTMOMENT relatie opvragen. heeft valide body"):
            CannotPass(_WIP_OCM_FOLLOW, status=None),
        ("Verwijder een OBJECT-CONTACTMOMENT relatie.", "Verwijder een OBJECT-CONTACTMOMENT relatie. geeft 204"):
            CannotPass(_WIP_OCM_FOLLOW, status=None),
    },
    standins=True,
)

SUITES = (KLANTEN, CONTACTMOMENTEN)


def log(message: str) -> None:
    print(f"[vng-conformance] {message}", flush=True)


# --- inputs -------------------------------------------------------------------------------------------

def read_secret(path: Path, client_id: str) -> str:
    """The secret of the application that lists `client_id` in its clientIds.

    A deliberately small reader for the shape of config/dev-auth.yaml (a list of applications with
    `clientIds: [..]` and `secret: "..."`), so the script needs no YAML library.
    """
    entries: list[dict[str, str]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        stripped = line.strip()
        if stripped.startswith("- "):
            entries.append({})
            stripped = stripped[2:].strip()
        if entries and ":" in stripped:
            key, _, value = stripped.partition(":")
            entries[-1][key.strip()] = value.strip()
    for entry in entries:
        ids = entry.get("clientIds", "").strip("[]")
        if client_id in [i.strip().strip("'\"") for i in ids.split(",")]:
            secret = entry.get("secret", "").strip()
            if len(secret) >= 2 and secret[0] == secret[-1] and secret[0] in "'\"":
                secret = secret[1:-1]
            if secret:
                return secret
    raise SystemExit(f"[vng-conformance] FAILED: no secret for client {client_id!r} in {path}")


def copy_collection(suite: Suite, tmp: Path, mock_url: str) -> Path:
    """Copy the collection into `tmp`, pointing `http://example.com` at the mock's `/200`.

    Both collections create a klant with `http://example.com` as its `subject` (the Klanten collection
    in "Maak een KLANT aan" and kla-001a/kla-002a, the Contactmomenten one in its two setUps). kla-002
    makes the server GET that URL and require HTTP 200; CI has no outbound internet access, so the create
    would fail for reasons that have nothing to do with the server. The local mock's `/200` answers 200,
    exactly what the collection expects of example.com. Every occurrence is rewritten (also
    `websiteUrl`, which is never fetched; `https://example.com` in list filters is not touched). The
    shared file itself is never modified and no copy of it is kept in the repository.
    """
    text = suite.collection.read_text(encoding="utf-8")
    count = text.count("http://example.com")
    if count == 0:
        log("warning: the collection no longer contains http://example.com; nothing rewritten")
    target = tmp / suite.collection.name
    target.write_text(text.replace("http://example.com", f"{mock_url}/200"), encoding="utf-8")
    log(f"collection copied to {target} ({count} x http://example.com -> {mock_url}/200)")
    return target


def env_variables(path: Path) -> set[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {v["key"] for v in data.get("values", []) if v.get("enabled", True)}


# --- the mock for {{mock_url}} -------------------------------------------------------------------------

MOCK_HITS: list[str] = []


class MockHandler(BaseHTTPRequestHandler):
    """`/200` -> 200, `/404` -> 404 (ZGW_mocks.json); anything else 404."""

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        status = 200 if path == "/200" else 404
        payload = b'{"status": %d}' % status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def do_GET(self) -> None:       # noqa: N802 (http.server's naming)
        self._answer(body=True)

    def do_HEAD(self) -> None:      # noqa: N802
        self._answer(body=False)

    def log_message(self, format: str, *args) -> None:     # noqa: A002
        # Collected, not printed: the mock runs while newman writes to the same terminal.
        MOCK_HITS.append(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else '?'}")


def start_mock() -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), MockHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="vng-mock", daemon=True)
    thread.start()
    return server, thread


# --- our server ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, port: int, logfile, extra_env: dict[str, str]) -> subprocess.Popen:
    # A hermetic environment: no KLANTEN_* setting of the caller's shell (a notifications or
    # Autorisaties API, a base URL) may leak into the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLANTEN_")}
    env.update({
        "KLANTEN_DATABASE_URL": f"sqlite:///{tmp / 'conformance.sqlite3'}",
        "KLANTEN_AUTH_CONFIG": AUTH_CONFIG,
        "KLANTEN_SUBJECT_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "KLANTEN_DEVELOPMENT": "true",      # config/dev-auth.yaml holds development secrets
    })
    env.update(extra_env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(SERVER + ["serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO, env=env, stdout=logfile, stderr=subprocess.STDOUT)


def wait_for_server(proc: subprocess.Popen, base: str) -> bool:
    url = f"{base}/api/v1/schema/openapi.yaml"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    with requests.Session() as session:
        session.trust_env = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log(f"server exited during start-up with code {proc.returncode}")
                return False
            try:
                if session.get(url, timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.2)
    log(f"server did not answer GET {url} within {SERVER_START_TIMEOUT} s")
    return False


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        log("server did not stop on SIGTERM; killing it")
        proc.kill()
        proc.wait(timeout=5)


# --- newman --------------------------------------------------------------------------------------------

def ensure_newman() -> None:
    if NEWMAN.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("[vng-conformance] FAILED: npm not found; install Node.js (with npm) to run newman")
    log(f"installing {NEWMAN_PACKAGE} into {NEWMAN_PREFIX.relative_to(REPO)}/")
    NEWMAN_PREFIX.mkdir(parents=True, exist_ok=True)
    code = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(NEWMAN_PREFIX),
                           NEWMAN_PACKAGE], cwd=REPO).returncode
    if code != 0:
        raise SystemExit(f"[vng-conformance] FAILED: npm install {NEWMAN_PACKAGE} exited with {code}")
    if not NEWMAN.exists():
        raise SystemExit(f"[vng-conformance] FAILED: npm install did not produce {NEWMAN}")


def run_newman(collection: Path, overrides: dict[str, str], report: Path) -> int:
    cmd = [str(NEWMAN), "run", str(collection), "-e", str(ENVIRONMENT)]
    for key, value in overrides.items():
        cmd += ["--env-var", f"{key}={value}"]
    cmd += ["--reporters", "cli,json", "--reporter-json-export", str(report)]
    env = dict(os.environ)
    # Loopback traffic must never go through a proxy configured in the environment.
    env["NO_PROXY"] = env["no_proxy"] = ",".join(
        filter(None, [env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost"]))
    log("running newman: " + " ".join(c if "secret=" not in c else "secret=***" for c in cmd[1:]))
    return subprocess.run(cmd, cwd=collection.parent, env=env, timeout=NEWMAN_TIMEOUT).returncode


# --- judging -------------------------------------------------------------------------------------------

def _response_text(response: dict | None) -> str:
    if not response:
        return "(no response)"
    stream = response.get("stream")
    body = bytes(stream.get("data", [])) if isinstance(stream, dict) else b""
    text = body.decode("utf-8", "replace")
    return f"{response.get('code')} {response.get('status', '')} {text[:600]}"



def _request_line(execution: dict) -> str:
    request = execution.get("request") or {}
    url = request.get("url")
    if isinstance(url, dict):
        host = url.get("host") or []
        url = (f"{url.get('protocol', 'http')}://{'.'.join(host)}"
               f"{':' + str(url['port']) if url.get('port') else ''}/{'/'.join(url.get('path') or [])}")
    return f"{request.get('method', '?')} {url}"


def _fails_as_listed(listed: CannotPass, response: dict | None) -> bool:
    if listed.status is None:
        return not response
    return bool(response) and response.get("code") == listed.status and listed.contains in _response_text(response)


def judge(suite: Suite, report: Path) -> bool:
    run = json.loads(report.read_text(encoding="utf-8"))["run"]
    stats = run["stats"]["assertions"]
    total, failed = stats["total"], stats["failed"]

    counted, excluded, seen = [], [], set()
    for execution in run.get("executions", []):
        request_name = execution.get("item", {}).get("name", "")
        for assertion in execution.get("assertions") or []:
            key = (request_name, assertion.get("assertion", ""))
            seen.add(key)
            error = assertion.get("error")
            if not error:
                if key in suite.cannot_pass:
                    log(f"note: {key} is listed as cannot-pass but passed; check whether the list is still right")
                continue
            listed = suite.cannot_pass.get(key)
            if listed is not None and not _fails_as_listed(listed, execution.get("response")):
                log(f"FAILED: {key} is listed as cannot-pass, but failed another way than listed "
                    f"(expected {listed.status or 'no response'} {listed.contains})")
                listed = None
            print(f"  {'FAILED' if listed is None else 'failed (listed as cannot-pass)'} assertion: {key[1]!r}\n"
                  f"    request : {request_name!r}: {_request_line(execution)}\n"
                  f"    message : {error.get('message')}\n"
                  f"    response: {_response_text(execution.get('response'))}")
            (excluded if listed is not None else counted).append(key)
    for key in excluded:
        log(f"cannot-pass (not counted) {key}: {suite.cannot_pass[key].reason}")
    for key in sorted(set(suite.cannot_pass) - seen):
        log(f"note: the listed cannot-pass assertion {key} did not run")
    for failure in run.get("failures", []):
        # `at` is "assertion:N in test-script" for a failed pm.test, handled above; anything else is an
        # error outside assertions (a request without response, a script error)
        if not str(failure.get("at", "")).startswith("assertion:"):
            error = failure.get("error", {})
            log(f"request/script error (not an assertion, not counted): {failure.get('source', {}).get('name')!r}: "
                f"{error.get('name')}: {error.get('message')}")

    if suite is KLANTEN:
        for execution in run.get("executions", []):
            if execution.get("item", {}).get("name", "").startswith("(kla-001b)"):
                sent = ((execution.get("request") or {}).get("body") or {}).get("raw", "")
                log(f"note: kla-001b sent the body {sent[:40]!r} (the collection stores pm.request.body, an "
                    f"object, not its text), so it does not test uniqueness; server answered "
                    f"{_response_text(execution.get('response'))[:160]}")
    log(f"{suite.name}: assertions: {total} total, {total - failed} passed, {failed} failed, "
        f"{len(excluded)} of those listed as cannot-pass")
    ok = True
    if total < suite.expected_assertions:
        log(f"FAILED: only {total} assertions ran; the collection has {suite.expected_assertions}")
        ok = False
    if counted or failed != len(counted) + len(excluded):
        log(f"FAILED: {len(counted)} assertion(s) failed that are not listed as cannot-pass")
        ok = False
    return ok


# --- main ----------------------------------------------------------------------------------------------

def _sigterm(signum, frame):     # run the `finally` blocks (stop server and mock) on SIGTERM too
    raise SystemExit(128 + signum)


def run_suite(suite: Suite, tmp: Path, mock_url: str) -> bool:
    started = time.monotonic()
    log(f"==== {suite.name}: {suite.collection.name} ====")
    tmp.mkdir()
    secret = read_secret(REPO / AUTH_CONFIG, suite.client_id)
    collection = copy_collection(suite, tmp, mock_url)
    overrides = {"kla_url": None, "client_id": suite.client_id, "secret": secret, "mock_url": mock_url}
    extra_env: dict[str, str] = {}
    standins = None
    if suite.standins:
        services_secret = secrets.token_urlsafe(32)
        standins = ZgwStandIns({suite.client_id: secret, SERVICES_CLIENT_ID: services_secret})
        standins.start()
        services = tmp / "diensten.yaml"
        # JSON is YAML: no YAML writer needed
        services.write_text(json.dumps({"diensten": [{"apiRoot": standins.root("zaken"),
                                                       "clientId": SERVICES_CLIENT_ID,
                                                       "secret": services_secret}]}), encoding="utf-8")
        extra_env = {"KLANTEN_SERVICES_CONFIG": str(services), "KLANTEN_CM_ZAAK_RELATIE_CONTROLE": "true"}
        overrides.update(zrc_url=standins.root("zaken").rstrip("/"), ztc_url=standins.root("catalogi").rstrip("/"),
                         referentielijst_url=standins.root("referentielijsten").rstrip("/"))
        log(f"stand-ins for the Zaken, Catalogi and Referentielijsten APIs on {standins.base}")
    proc = None
    logfile = open(tmp / "server.log", "wb")
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log(f"starting klanten-api on {base} (database {tmp / 'conformance.sqlite3'}), mock on {mock_url}")
        proc = start_server(tmp, port, logfile, extra_env)
        if not wait_for_server(proc, base):
            logfile.flush()
            print((tmp / "server.log").read_text(encoding="utf-8", errors="replace")[-4000:])
            return False
        overrides["kla_url"] = f"{base}/api/v1"
        overrides["cmc_url"] = f"{base}/contactmomenten/api/v1"
        missing = set(overrides) - env_variables(ENVIRONMENT)
        if missing:
            log(f"warning: the environment file has no {sorted(missing)}; set through --env-var anyway")
        report = tmp / "newman.json"
        MOCK_HITS.clear()
        try:
            code = run_newman(collection, overrides, report)
        except subprocess.TimeoutExpired:
            log(f"FAILED: newman did not finish within {NEWMAN_TIMEOUT} s")
            return False
        log(f"newman exit code {code} (not used: the run is judged on its assertions)")
        log(f"mock requests (the server's fetches of subjects and klanten): {', '.join(MOCK_HITS) or 'none'}")
        if standins is not None:
            log(f"stand-in requests: {', '.join(standins.hits) or 'none'}")
        if not report.is_file():
            log("FAILED: newman wrote no JSON report")
            return False
        ok = judge(suite, report)
        log(f"{suite.name}: {'PASSED' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
        if not ok:
            logfile.flush()
            print("---- last lines of the server log ----")
            print((tmp / "server.log").read_text(encoding="utf-8", errors="replace")[-3000:])
        return ok
    finally:
        if proc is not None:
            stop_server(proc)
        if standins is not None:
            standins.stop()
        logfile.close()


def main() -> int:
    if not SHARED.is_dir():
        print(f"[vng-conformance] skipped: ../shared not found (looked for {SHARED})")
        return 0
    only = os.environ.get("VNG_CONFORMANCE_ONLY", "").strip()
    suites = [s for s in SUITES if not only or s.name == only]
    if not suites:
        log(f"FAILED: VNG_CONFORMANCE_ONLY={only!r} names no suite ({', '.join(s.name for s in SUITES)})")
        return 1
    for path in [ENVIRONMENT] + [s.collection for s in suites]:
        if not path.is_file():
            log(f"FAILED: {path} is missing")
            return 1
    if not PYTHON.exists():
        log(f"FAILED: {PYTHON} is missing; run `make install`")
        return 1
    signal.signal(signal.SIGTERM, _sigterm)
    started = time.monotonic()
    ensure_newman()

    keep = os.environ.get("VNG_CONFORMANCE_KEEP") == "1"
    tmp = Path(tempfile.mkdtemp(prefix="vng-conformance-"))
    mock, mock_thread = start_mock()
    results = {}
    try:
        mock_url = f"http://127.0.0.1:{mock.server_address[1]}"
        for suite in suites:
            # each suite against its own server and empty database: both collections create the same klant
            results[suite.name] = run_suite(suite, tmp / suite.name, mock_url)
    finally:
        mock.shutdown()
        mock.server_close()
        mock_thread.join(timeout=5)
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    ok = all(results.values())
    summary = ", ".join(f"{name}: {'passed' if passed else 'FAILED'}" for name, passed in results.items())
    log(f"{'PASSED' if ok else 'FAILED'} ({summary}) in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
